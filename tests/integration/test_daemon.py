"""The daemon against a real mosquitto: alerts, restarts, shutdown, bad input."""

from __future__ import annotations

import json
import signal
import time

import numpy as np
import pytest

from .conftest import Publisher, Watcher, daemon_config, offline_events, series, wait_until

pytestmark = pytest.mark.integration


def interleave(streams, ts, x, start: int = 0, stop: int | None = None):
    stop = len(ts) if stop is None else stop
    return [(s, float(ts[t]), float(x[t, j])) for t in range(start, stop) for j, s in enumerate(streams)]


def key(a: dict) -> tuple:
    return (a["event"], a["stream"], a["alert_id"], a["ts"])


def test_spike_alerts_normal_data_quiet_same_as_offline(broker, bundle_dir, tmp_path, daemons):
    streams, ts, x = series(4, 260)
    x[200, 1] += 15.0  # one spike on line1/temp
    readings = interleave(streams, ts, x)
    expected = offline_events(bundle_dir, readings)
    assert [e[0] for e in expected][:1] == ["raised"] and expected[0][1] == "line1/temp"
    assert all(e[1] == "line1/temp" for e in expected)  # the other streams stay quiet

    watch = Watcher(broker.port)
    pub = Publisher(broker.port)
    d = daemons(tmp_path, daemon_config(broker.port, bundle_dir, tmp_path / "state"))
    since = time.monotonic()
    d.start()
    watch.wait_online(since)
    pub.readings(readings)
    watch.wait_stats(lambda s: s["readings_total"] >= len(readings), what="all readings processed")
    wait_until(lambda: len(watch.alerts()) >= len(expected), 5, what="alerts")
    alerts = watch.alerts()
    assert [key(a) for a in alerts] == expected
    a = alerts[0]
    assert a["pipeline"] == "plant" and a["event"] == "raised"
    assert a["model"]["name"] == "fixture" and len(a["model"]["sha256"]) == 64
    assert a["value"]["value"] == pytest.approx(x[200, 1])
    for field in ("score", "likelihood", "threshold", "expected", "contributions", "alert_id", "ts"):
        assert field in a
    topics = {t for _, t, _ in watch.take("edgernn/bench/alerts/")}
    assert topics == {"edgernn/bench/alerts/line1/temp"}
    assert d.stop() == 0
    pub.close()
    watch.close()


def test_sigterm_offline_retained_snapshot_exit_0(broker, bundle_dir, tmp_path, daemons):
    streams, ts, x = series(2, 80)
    state = tmp_path / "state"
    d = daemons(tmp_path, daemon_config(broker.port, bundle_dir, state, state={"snapshot_interval_s": 0}))
    watch = Watcher(broker.port)
    since = time.monotonic()
    d.start()
    watch.wait_online(since)
    pub = Publisher(broker.port)
    pub.readings(interleave(streams, ts, x))
    watch.wait_stats(lambda s: s["readings_total"] >= 160)
    assert not (state / "plant.npz").exists()  # snapshot_interval_s 0: only at shutdown
    assert d.stop(signal.SIGTERM) == 0
    assert (state / "plant.npz").is_file()
    snap = np.load(state / "plant.npz")
    assert sorted(snap["ids"].tolist()) == sorted(streams)
    watch.close()
    late = Watcher(broker.port, topics=("edgernn/bench/status",))  # a new subscriber sees the retained value
    wait_until(lambda: late.take("edgernn/bench/status"), 5, what="retained status")
    assert late.take("edgernn/bench/status")[-1][2] == b"offline"
    late.close()
    pub.close()


def test_sigkill_restart_restores_state_and_gets_queued_readings(broker, bundle_dir, tmp_path, daemons):
    streams, ts, x = series(3, 300, seed=3)
    x[232, 0] += 15.0  # a spike soon after the restart: only a restored (warm) stream can alert on it
    readings = interleave(streams, ts, x)
    first, second = readings[: 3 * 200], readings[3 * 200:]
    expected = offline_events(bundle_dir, readings, warmup=150)
    assert ("raised", "line0/temp") in [e[:2] for e in expected], "the spike raised nothing offline"

    cfg = daemon_config(broker.port, bundle_dir, tmp_path / "state")
    cfg["pipelines"][0]["warmup"] = 150  # a fresh stream would still be warming up at the spike
    d = daemons(tmp_path, cfg)
    watch = Watcher(broker.port)
    pub = Publisher(broker.port)
    since = time.monotonic()
    d.start()
    watch.wait_online(since)
    pub.readings(first)
    watch.wait_stats(lambda s: s["snapshot"]["readings"] == len(first), what="a snapshot after the first part")
    d.stop(signal.SIGKILL)

    pub.readings(second)  # the daemon is down: the broker queues these for its persistent session
    since = time.monotonic()
    d.start()
    d.wait_log("restored 3 stream(s)")
    wait_until(lambda: (watch.last_stats(since=since) or {}).get("readings_total", 0) >= len(second), 15,
               what="queued readings processed after the restart")
    wait_until(lambda: len(watch.alerts()) >= len(expected), 5, what="alerts")
    assert [key(a) for a in watch.alerts()] == expected  # restored: no warm-up alerts, the spike caught
    assert watch.last_stats(since=since)["readings_total"] == len(second)
    assert d.stop() == 0
    pub.close()
    watch.close()


def test_broker_restart_no_qos1_reading_lost(broker, bundle_dir, tmp_path, daemons):
    streams, ts, x = series(2, 200, seed=5)
    readings = interleave(streams, ts, x)
    d = daemons(tmp_path, daemon_config(broker.port, bundle_dir, tmp_path / "state"))
    watch = Watcher(broker.port)
    since = time.monotonic()
    d.start()
    watch.wait_online(since)
    pub = Publisher(broker.port)
    pub.readings(readings[:200])
    watch.wait_stats(lambda s: s["readings_total"] >= 200)
    pub.close()
    watch.close()

    broker.stop()  # mosquitto saves its sessions and queues (persistence) and goes away
    d.wait_log("disconnected from")
    broker.start()
    pub = Publisher(broker.port)
    pub.readings(readings[200:])  # published before the daemon is back: queued for its session
    pub.close()
    d.wait_log("session resumed")
    watch = Watcher(broker.port)
    watch.wait_stats(lambda s: s["readings_total"] >= len(readings), what="every reading processed")
    stats = watch.last_stats()
    assert stats["readings_total"] == len(readings)
    assert stats["rejects_total"] == 0 and stats["inbox"]["drops"] == 0
    assert stats["mqtt"]["connects"] >= 2
    assert d.stop() == 0
    watch.close()


def test_bad_payloads_counted_daemon_keeps_working(broker, bundle_dir, tmp_path, daemons):
    cfg = daemon_config(broker.port, bundle_dir, tmp_path / "state",
                        limits={"max_streams": 5, "max_payload_bytes": 1024})
    d = daemons(tmp_path, cfg)
    watch = Watcher(broker.port)
    since = time.monotonic()
    d.start()
    watch.wait_online(since)
    pub = Publisher(broker.port)
    bad = {
        "not_json": b"{not json",
        "wrong_type": json.dumps({"ts": 1.7e9, "value": "hot"}).encode(),
        "missing_field": json.dumps({"ts": 1.7e9}).encode(),
        "non_finite": b'{"ts": 1.7e9, "value": NaN}',
        "too_large": json.dumps({"ts": 1.7e9, "value": 1.0, "pad": "x" * 5000}).encode(),
        "not_utf8": b"\xff\xfe\x00\x81\x93junk\x00\x00",
        "bad_timestamp": json.dumps({"ts": "yesterday", "value": 1.0}).encode(),
        "empty": b"",
    }
    for payload in bad.values():
        pub.send("plant/bad/x", payload).wait_for_publish(5)
    pub.send("plant/arr/x", json.dumps([{"ts": 1.7e9, "value": 1.0}, {"ts": 1.7e9 + 1, "value": True}])).wait_for_publish(5)
    # more streams than the limit: 12 streams with max_streams 5 -> evictions
    pub.readings([(f"many/s{i}", 1.7e9 + k, 1.0) for k in range(2) for i in range(12)])
    stats = watch.wait_stats(lambda s: s["readings_total"] >= 24, what="good readings processed")
    rejects = stats["rejects"]
    for reason in bad:
        if reason == "not_utf8":  # binary junk: undecodable either as text or as JSON
            assert rejects.get("not_utf8", 0) + rejects.get("not_json", 0) >= 2
        else:
            assert rejects.get(reason, 0) >= 1, (reason, rejects)
    assert rejects["wrong_type"] >= 2  # the array with one boolean value is rejected as a whole
    assert stats["evictions"] >= 7 and stats["streams"] == 5
    # ... and it still works: a stream that warms up and spikes raises an alert
    streams, ts, x = series(1, 120, seed=9)
    x[100, 0] += 20
    pub.readings(interleave(["good/one"], ts, x))
    wait_until(lambda: any(a["stream"] == "good/one" for a in watch.alerts()), 10, what="an alert after bad input")
    assert d.alive()
    assert "rejected" in d.log()  # logged (rate-limited), not silent
    assert d.stop() == 0
    pub.close()
    watch.close()
