"""Home Assistant discovery and retained state of a node of several pipelines, against a real
mosquitto and daemon: the same stream id in two pipelines gets topics and entities of its own;
pipeline names whose joined object ids could meet get a hash of the pair; a node of one pipeline
keeps every topic and id it had; decommission still clears the node."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from .conftest import ROOT, Publisher, series, wait_until
from .test_homeassistant import NODE_ID, retained
from .test_homeassistant import start as start_one

pytestmark = pytest.mark.integration

PAYLOAD = {"format": "json", "value": "value", "timestamp": "ts"}


def configs(messages: dict, component: str) -> dict:
    """object id -> discovery config of one component."""
    head = f"homeassistant/{component}/{NODE_ID}/"
    return {t[len(head):-len("/config")]: c for t, c in messages.items() if t.startswith(head)}


def pipeline(name: str, source: str, model) -> dict:
    """Readings on ``{source}/{stream}`` (JSON {"ts", "value"}), the stream id the last level."""
    return {"name": name, "subscribe": f"{source}/+", "stream": "{1}", "payload": PAYLOAD, "model": str(model)}


def start(broker, bundle_dir, tmp_path, daemons, pipelines=None):
    over = {"pipelines": [pipeline(*p, bundle_dir) for p in pipelines]} if pipelines else {}
    return start_one(broker, bundle_dir, tmp_path, daemons, **over)


def send(pub: Publisher, readings) -> None:
    """(topic, ts, value) readings, each acknowledged."""
    pub.wait([pub.send(t, json.dumps({"ts": ts, "value": float(v)})) for t, ts, v in readings])


def decommission(config_path, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgernn", "decommission", "-c", str(config_path), "--wait", "0.3",
                           *extra], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_same_stream_in_two_pipelines_has_its_own_state_and_entities(broker, bundle_dir, tmp_path, daemons):
    d, watch, pub = start(broker, bundle_dir, tmp_path, daemons,
                          pipelines=[("temperature", "temp"), ("vibration", "vib")])
    _, ts, x = series(2, 120, seed=9)
    x[100, 1] += 20  # a spike after warm-up, on vibration only
    send(pub, [(f"{src}/pump1", float(ts[t]), float(x[t, j])) for t in range(101)
               for j, src in enumerate(("temp", "vib"))])
    wait_until(lambda: watch.alerts(), 10, what="an alert")
    assert {a["pipeline"] for a in watch.alerts()} == {"vibration"}

    def states(r):
        return {p: r.get(f"edgernn/bench/state/{p}/pump1", {}).get("state") for p in ("temperature", "vibration")}

    got = wait_until(lambda: (r := retained(broker.port)) and states(r) == {"temperature": "ok", "vibration": "problem"}
                     and len(configs(r, "sensor")) == 2 and r, 10, what="each pipeline's own retained state")
    for p in ("temperature", "vibration"):
        state = got[f"edgernn/bench/state/{p}/pump1"]
        assert state["pipeline"] == p and state["stream"] == "pump1"
    assert not [t for t in got if t in ("edgernn/bench/state/pump1", "edgernn/bench/surprise/pump1")]

    # one entity pair per pipeline, each reading its own topics: HA shows problem / ok apart
    alerts, sensors = configs(got, "binary_sensor"), configs(got, "sensor")
    assert set(alerts) == set(sensors) == {"temperature_pump1", "vibration_pump1"}  # no hash: names cannot collide
    for p in ("temperature", "vibration"):
        alert, sensor = alerts[f"{p}_pump1"], sensors[f"{p}_pump1"]
        assert alert["state_topic"] == alert["json_attributes_topic"] == f"edgernn/bench/state/{p}/pump1"
        assert sensor["state_topic"] == f"edgernn/bench/surprise/{p}/pump1"
        assert sensor["json_attributes_topic"] == f"edgernn/bench/state/{p}/pump1"
        assert alert["unique_id"] == f"{NODE_ID}_{p}_pump1_alert" and alert["name"] == f"{p} pump1 alert"
        assert sensor["unique_id"] == f"{NODE_ID}_{p}_pump1_surprise"
    shown = {p: got[alerts[f"{p}_pump1"]["state_topic"]]["state"] for p in ("temperature", "vibration")}
    assert shown == {"temperature": "ok", "vibration": "problem"}

    # each pipeline's own peak surprise on its own surprise topic
    def peak(p):
        return max([float(v) for _, _, v in watch.take(f"edgernn/bench/surprise/{p}/pump1")], default=None)

    spike = got["edgernn/bench/state/vibration/pump1"]["surprise"]
    wait_until(lambda: (peak("vibration") or 0) >= spike * 0.999 and peak("temperature") is not None, 5,
               what="both surprise topics")
    assert peak("temperature") < spike * 0.5
    assert d.stop() == 0

    # decommission removes every topic of the node, the pipeline levels included
    done = decommission(d.config_path)
    assert done.returncode == 0, done.stderr
    assert "4 Home Assistant discovery config(s), 4 retained stream state(s) and surprise(s)" in done.stdout
    assert retained(broker.port, topics=("homeassistant/#", "edgernn/bench/state/#", "edgernn/bench/surprise/#",
                                         "edgernn/bench/status")) == {}
    pub.close()
    watch.close()


def test_pipeline_names_that_join_alike_get_distinct_object_ids(broker, bundle_dir, tmp_path, daemons):
    # "a_b" + "c" and "a" + "b_c" both join to "a_b_c": the shorter pipeline's stream whose slug starts
    # with the rest ("b") gets a hash of "{pipeline}/{stream}"; every other id stays plain
    d, watch, pub = start(broker, bundle_dir, tmp_path, daemons,
                          pipelines=[("a_b", "src1"), ("a", "src2"), ("other", "src3")])
    send(pub, [("src1/c", 1.7e9, 1.0), ("src2/b_c", 1.7e9, 1.0), ("src3/c", 1.7e9, 1.0), ("src2/d", 1.7e9, 1.0)])
    got = wait_until(lambda: (r := retained(broker.port)) and len(configs(r, "binary_sensor")) == 4 and r, 10,
                     what="4 binary_sensor configs")
    alerts, sensors = configs(got, "binary_sensor"), configs(got, "sensor")
    # sha1("a/b_c")[:6] = f53c27: only the shorter pipeline's stream that joins like the other's is hashed
    assert set(alerts) == set(sensors) == {"a_b_c", "a_b_c_f53c27", "other_c", "a_d"}  # (a + d: plain)
    uids = [c["unique_id"] for c in [*alerts.values(), *sensors.values()]]
    assert len(set(uids)) == 8
    assert alerts["a_b_c"]["unique_id"] == f"{NODE_ID}_a_b_c_alert"
    assert alerts["a_b_c_f53c27"]["unique_id"] == f"{NODE_ID}_a_b_c_f53c27_alert"
    assert sensors["a_b_c"]["default_entity_id"] == f"sensor.{NODE_ID}_a_b_c_surprise"
    assert alerts["other_c"]["unique_id"] == f"{NODE_ID}_other_c_alert"
    assert alerts["a_b_c"]["state_topic"] == "edgernn/bench/state/a_b/c"
    assert alerts["a_b_c_f53c27"]["state_topic"] == "edgernn/bench/state/a/b_c"
    assert alerts["other_c"]["state_topic"] == "edgernn/bench/state/other/c"
    assert {got[f"edgernn/bench/state/{p}"]["pipeline"] for p in ("a_b/c", "a/b_c", "other/c")} == {"a_b", "a", "other"}

    # a restart (streams restored from the snapshots, announced in another order) keeps every id
    assert d.stop() == 0
    since = time.monotonic()
    d.start()
    watch.wait_online(since)
    wait_until(lambda: {t.split("/")[3] for _, t, _ in watch.take("homeassistant/sensor/", since)}
               == {"a_b_c", "a_b_c_f53c27", "other_c", "a_d"}, 10, what="the same ids announced again")
    assert d.stop() == 0
    pub.close()
    watch.close()


def test_a_single_pipeline_node_keeps_its_topics_and_ids(broker, bundle_dir, tmp_path, daemons):
    d, watch, pub = start(broker, bundle_dir, tmp_path, daemons)  # the one pipeline "plant"
    pub.readings([("line0/temp", 1.7e9, 1.0), ("pump_1/v", 1.7e9, 1.0)])
    got = wait_until(lambda: (r := retained(broker.port)) and len(configs(r, "sensor")) == 2
                     and len([t for t in r if t.startswith("edgernn/bench/surprise/")]) == 2 and r, 10,
                     what="2 streams announced, their surprise published")
    # the strings the code wrote before nodes of several pipelines had topics of their own
    assert sorted(got) == [
        "edgernn/bench/state/line0/temp", "edgernn/bench/state/pump_1/v",
        "edgernn/bench/surprise/line0/temp", "edgernn/bench/surprise/pump_1/v",
        "homeassistant/binary_sensor/edgernn_bench/plant_line0_temp_9e9448/config",
        "homeassistant/binary_sensor/edgernn_bench/plant_pump_1_v_27608c/config",
        "homeassistant/sensor/edgernn_bench/plant_line0_temp_9e9448/config",
        "homeassistant/sensor/edgernn_bench/plant_pump_1_v_27608c/config",
    ]
    alert = got["homeassistant/binary_sensor/edgernn_bench/plant_line0_temp_9e9448/config"]
    sensor = got["homeassistant/sensor/edgernn_bench/plant_line0_temp_9e9448/config"]
    assert (alert["unique_id"], alert["default_entity_id"], alert["name"]) == (
        "edgernn_bench_plant_line0_temp_9e9448_alert", "binary_sensor.edgernn_bench_plant_line0_temp_9e9448_alert",
        "line0/temp alert")
    assert (sensor["unique_id"], sensor["default_entity_id"], sensor["name"]) == (
        "edgernn_bench_plant_line0_temp_9e9448_surprise", "sensor.edgernn_bench_plant_line0_temp_9e9448_surprise",
        "line0/temp surprise")
    assert alert["state_topic"] == alert["json_attributes_topic"] == sensor["json_attributes_topic"] == (
        "edgernn/bench/state/line0/temp")
    assert sensor["state_topic"] == "edgernn/bench/surprise/line0/temp"
    state = got["edgernn/bench/state/pump_1/v"]
    assert (state["pipeline"], state["stream"], state["state"]) == ("plant", "pump_1/v", "ok")
    assert d.stop() == 0
    pub.close()
    watch.close()


def test_which_streams_get_a_pair_hash_follows_from_the_names():
    from edgernn.homeassistant import colliding_heads

    assert colliding_heads(["pump", "pump_2", "other"]) == {"pump": ["2"]}  # only pump's streams named 2 / 2_...
    assert colliding_heads(["a", "a_b", "a_b_c"]) == {"a": ["b", "b_c"], "a_b": ["c"]}
    assert colliding_heads(["temperature", "vibration"]) == {}
