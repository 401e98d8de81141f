"""Home Assistant discovery and retained per-stream state against a real mosquitto and daemon:
configs appear (retained) per stream, vanish on eviction, come back after HA's birth message;
the state topic follows alerts; decommission clears the node."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from .conftest import ROOT, Publisher, Watcher, daemon_config, series, wait_until

pytestmark = pytest.mark.integration

NODE_ID = "edgernn_bench"


def retained(port: int, topics=("homeassistant/#", "edgernn/bench/state/#", "edgernn/bench/surprise/#"),
             settle: float = 0.5) -> dict:
    """topic -> JSON of what a client connecting now receives as retained (empty ones are gone)."""
    w = Watcher(port, topics=topics)
    time.sleep(settle)
    with w.lock:
        got = {t: p for _, t, p, r in w.messages if r}
    w.close()
    return {t: json.loads(p) for t, p in got.items() if p}


def configs(messages: dict, component: str) -> dict:
    return {t: c for t, c in messages.items() if t.startswith(f"homeassistant/{component}/{NODE_ID}/")}


def start(broker, bundle_dir, tmp_path, daemons, **over):
    cfg = daemon_config(broker.port, bundle_dir, tmp_path / "state", homeassistant={"discovery": True}, **over)
    d = daemons(tmp_path, cfg)
    watch = Watcher(broker.port, topics=("edgernn/#", "homeassistant/#"))
    since = time.monotonic()
    d.start()
    watch.wait_online(since)
    return d, watch, Publisher(broker.port)


def test_configs_per_stream_retained_and_removed_on_eviction(broker, bundle_dir, tmp_path, daemons):
    d, watch, pub = start(broker, bundle_dir, tmp_path, daemons, limits={"max_streams": 3})
    pub.readings([(f"line{i}/temp", 1.7e9 + k, 1.0 + 0.1 * k) for k in range(3) for i in range(3)])
    watch.wait_stats(lambda s: s["readings_total"] >= 9, what="readings processed")
    got = wait_until(lambda: (r := retained(broker.port)) and len(configs(r, "binary_sensor")) == 3 and r,
                     10, what="3 retained binary_sensor configs")
    sensors = configs(got, "sensor")
    assert len(sensors) == 3
    alert = got[f"homeassistant/binary_sensor/{NODE_ID}/plant_line0_temp_{_hash('line0/temp')}/config"]
    assert alert["device_class"] == "problem" and alert["payload_on"] == "problem" and alert["payload_off"] == "ok"
    assert alert["state_topic"] == alert["json_attributes_topic"] == "edgernn/bench/state/line0/temp"
    assert alert["availability_topic"] == "edgernn/bench/status"
    assert alert["device"]["identifiers"] == [NODE_ID] and alert["name"] == "line0/temp alert"
    assert alert["default_entity_id"].startswith("binary_sensor.") and alert["unique_id"].startswith(NODE_ID)
    surprise = next(c for c in sensors.values() if c["state_topic"].endswith("line0/temp"))
    assert surprise["state_class"] == "measurement" and "value_template" not in surprise
    assert surprise["state_topic"] == "edgernn/bench/surprise/line0/temp"
    assert surprise["json_attributes_topic"] == "edgernn/bench/state/line0/temp"
    assert len({c["unique_id"] for c in list(sensors.values()) + list(configs(got, "binary_sensor").values())}) == 6
    state = got["edgernn/bench/state/line0/temp"]
    assert state["state"] == "ok" and state["event"] is None and state["stream"] == "line0/temp"

    # a 4th stream with max_streams 3 evicts the least recently seen one: line0
    pub.readings([(f"line{i}/temp", 1.7e9 + 3, 1.3) for i in (1, 2)] + [("line3/temp", 1.7e9 + 3, 1.0)])
    after = wait_until(lambda: (r := retained(broker.port)) and "edgernn/bench/state/line3/temp" in r
                       and "edgernn/bench/state/line0/temp" not in r and r, 10, what="line0 removed, line3 added")
    assert not [t for t in after if "line0_temp" in t], "the evicted stream's configs are still retained"
    assert "edgernn/bench/surprise/line0/temp" not in after and "edgernn/bench/surprise/line1/temp" in after
    assert len(configs(after, "binary_sensor")) == len(configs(after, "sensor")) == 3
    assert d.stop() == 0
    pub.close()
    watch.close()


def _hash(stream: str) -> str:
    import hashlib

    return hashlib.sha1(stream.encode()).hexdigest()[:6]


def test_alert_state_retained_and_birth_republishes(broker, bundle_dir, tmp_path, daemons):
    d, watch, pub = start(broker, bundle_dir, tmp_path, daemons)
    streams, ts, x = series(1, 120, seed=9)
    x[100, 0] += 20  # a spike after warm-up
    pub.readings([(streams[0], float(ts[t]), float(x[t, 0])) for t in range(101)])
    wait_until(lambda: watch.alerts(), 10, what="an alert")
    raised = watch.alerts()[0]
    state = wait_until(lambda: (st := retained(broker.port).get("edgernn/bench/state/line0/temp", {})).get("state")
                       == "problem" and st, 10, what="retained problem state")
    assert state["event"] == "raised" and state["alert_id"] == raised["alert_id"]
    assert state["reason"] == raised["reason"] and state["top_feature"] == "value"
    assert state["features_carrying"] == raised["features_carrying"] == ["value"]
    assert state["surprise"] > 3 and state["ts"] == pytest.approx(float(ts[100]))
    # the surprise sensor: the stream's peak surprise since the last refresh (every stats.interval_s)
    def peak():
        return max([float(p) for _, _, p in watch.take("edgernn/bench/surprise/line0/temp")], default=None)

    wait_until(lambda: peak() is not None and peak() >= state["surprise"] * 0.999, 5, what="the spike's surprise")
    assert peak() == pytest.approx(state["surprise"], abs=1e-3 * max(1.0, state["surprise"]))

    # Home Assistant restarts: its birth message makes the daemon announce every stream again
    n_before = len(watch.take("homeassistant/binary_sensor/"))
    pub.send("homeassistant/status", b"online").wait_for_publish(5)
    wait_until(lambda: len(watch.take("homeassistant/binary_sensor/")) > n_before, 5, what="configs again")
    assert d.stop() == 0
    pub.close()
    watch.close()


def decommission(config_path, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgernn", "decommission", "-c", str(config_path), "--wait", "0.3",
                           *extra], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_decommission_clears_the_node(broker, bundle_dir, tmp_path, daemons):
    d, watch, pub = start(broker, bundle_dir, tmp_path, daemons)
    pub.readings([(f"line{i}/temp", 1.7e9 + k, 1.0) for k in range(2) for i in range(2)])
    wait_until(lambda: len(configs(retained(broker.port), "sensor")) == 2, 10, what="2 sensor configs")
    pub.c.publish("edgernn/bench/alerts/line0/temp", b'{"event": "raised"}', qos=1, retain=True).wait_for_publish(5)
    refused = decommission(d.config_path)
    assert refused.returncode == 2 and "looks online" in refused.stderr and "Traceback" not in refused.stderr
    assert d.stop() == 0
    dry = decommission(d.config_path, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert ("4 Home Assistant discovery config(s), 4 retained stream state(s) and surprise(s), 1 retained alert(s), "
            "status set") in dry.stdout
    assert len(configs(retained(broker.port), "sensor")) == 2  # a dry run removes nothing
    done = decommission(d.config_path)
    assert done.returncode == 0, done.stderr
    assert "removed node 'bench'" in done.stdout
    left = retained(broker.port, topics=("homeassistant/#", "edgernn/#"))
    assert left == {}, left
    # a restart restores both streams from the snapshot and announces them again (configs only:
    # a restored stream's state is what the broker holds, here nothing)
    since = time.monotonic()
    d.start()
    watch.wait_online(since)
    back = wait_until(lambda: (r := retained(broker.port)) and len(configs(r, "sensor")) == 2 and r, 10,
                      what="restored streams announced")
    assert not [t for t in back if t.startswith("edgernn/bench/state/")]
    assert d.stop() == 0
    pub.close()
    watch.close()


def test_many_new_streams_paced_within_the_publish_queue(broker, bundle_dir, tmp_path, daemons):
    """300 new streams at once = 900 retained messages with mqtt.publish_queue 60: every one arrives,
    none is refused by the client (they wait their turn), and alerts are never crowded out."""
    d, watch, pub = start(broker, bundle_dir, tmp_path, daemons, mqtt={"publish_queue": 60})
    pub.readings([(f"s{i}/v", 1.7e9, 1.0) for i in range(300)])
    watch.wait_stats(lambda s: s["readings_total"] >= 300, what="readings processed")
    def counts():
        r = retained(broker.port)
        return (len(configs(r, "binary_sensor")), len(configs(r, "sensor")),
                len([t for t in r if t.startswith("edgernn/bench/state/")]))

    wait_until(lambda: counts() == (300, 300, 300), 20, what="300 configs of each kind and 300 states")
    stats = watch.wait_stats(lambda s: s["mqtt"]["publish_pending"] == 0, what="everything confirmed")
    assert stats["mqtt"]["publish_refused"] == {}
    assert d.stop() == 0
    pub.close()
    watch.close()
