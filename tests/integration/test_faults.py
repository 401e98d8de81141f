"""Fault injection against a real mosquitto: kills, floods, bad payloads, TLS mistakes, shared
filters, broken state paths, and readings that used to poison or lock out a stream.

Each test states the behaviour it pins down; the daemon runs as ``python -m edgernn serve``.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import Broker, Publisher, Watcher, daemon_config, free_port, offline_events, series, wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
UNIVARIATE = ROOT / "firmware_models" / "univariate"  # a trained model: it predicts, so a stale state shows


def interleave(streams, ts, x, start: int = 0, stop: int | None = None):
    stop = len(ts) if stop is None else stop
    return [(s, float(ts[t]), float(x[t, j])) for t in range(start, stop) for j, s in enumerate(streams)]


def no_traceback(text: str) -> None:
    assert "Traceback" not in text, text[-3000:]


def started(d, watch: Watcher):
    since = time.monotonic()
    d.start()
    watch.wait_online(since)
    return since


# -- kills -------------------------------------------------------------------------------------
def test_broker_sigkill_mid_stream_no_qos1_reading_lost(tmp_path, bundle_dir, daemons):
    """The broker dies without saving its last state; readings published while it is down are
    queued by the publisher and delivered after the restart; every one is processed once."""
    broker = Broker(tmp_path / "broker", extra="autosave_interval 1\n").start()  # sessions saved every second
    try:
        streams, ts, x = series(2, 200, seed=5)
        readings = interleave(streams, ts, x)
        d = daemons(tmp_path, daemon_config(broker.port, bundle_dir, tmp_path / "state"))
        watch = Watcher(broker.port)
        started(d, watch)
        pub = Publisher(broker.port)
        pub.readings(readings[:200])
        watch.wait_stats(lambda s: s["readings_total"] >= 200)
        time.sleep(1.5)  # an autosave after the daemon took everything: its session has nothing queued
        broker.kill()
        d.wait_log("disconnected from")
        infos = pub.readings(readings[200:], wait=False, queue=True)  # broker down: held by the publisher
        broker.start()
        pub.wait(infos)
        stats = watch.wait_stats(lambda s: s["readings_total"] >= len(readings), timeout=30, what="every reading")
        time.sleep(0.5)  # anything redelivered twice would show up now
        stats = watch.last_stats()
        assert stats["readings_total"] == len(readings)
        assert stats["rejects_total"] == 0 and stats["inbox"]["drops"] == 0 and stats["mqtt"]["connects"] >= 2
        assert d.stop() == 0
        no_traceback(d.log())
        pub.close()
        watch.close()
    finally:
        broker.stop()


def test_daemon_sigkill_restart_from_an_older_snapshot_no_alert_burst(broker, tmp_path, daemons):
    """SIGKILL after readings the last snapshot does not hold: the restarted daemon resumes from
    that older state and must not alert on the first readings it gets (issue 13 item 4)."""
    streams, ts, x = series(20, 400, seed=11)
    assert offline_events(UNIVARIATE, interleave(streams, ts, x)) == []  # quiet data, seen without a gap
    cfg = daemon_config(broker.port, UNIVARIATE, tmp_path / "state", state={"snapshot_interval_s": 3600})
    d = daemons(tmp_path, cfg)
    watch = Watcher(broker.port)
    pub = Publisher(broker.port)
    for n, (start, stop) in enumerate(((0, 300), (300, 310), (310, 400))):
        since = started(d, watch)
        if n:
            d.wait_log("restored 20 stream(s)")
        pub.readings(interleave(streams, ts, x, start, stop))
        want = 20 * (stop - start)
        wait_until(lambda: (watch.last_stats(since=since) or {}).get("readings_total", 0) >= want, 30,
                   what=f"part {n} processed")
        if n == 0:
            assert d.stop(signal.SIGTERM) == 0  # the snapshot holds steps 0..299
        elif n == 1:
            d.stop(signal.SIGKILL)  # steps 300..309 were processed, but no snapshot has them
    time.sleep(0.3)
    burst = [a for a in watch.alerts() if a["ts"] >= ts[310]]
    assert burst == [], f"{len({a['stream'] for a in burst})} of 20 streams alerted after the restart"
    assert d.stop() == 0
    pub.close()
    watch.close()


# -- floods and bad input ------------------------------------------------------------------------
@pytest.mark.parametrize("when_full", ["drop_newest", "block"])
def test_flood_every_reading_processed_or_counted_as_dropped(when_full, broker, bundle_dir, tmp_path, daemons):
    """A full inbox with when_full drop_newest drops whole messages: every reading is either
    processed or counted as dropped, and the drops are logged. With block (the default) the
    broker holds the flood back instead: nothing is dropped."""
    cfg = daemon_config(broker.port, bundle_dir, tmp_path / "state",
                        limits={"inbox_size": 150, "when_full": when_full})
    d = daemons(tmp_path, cfg)
    watch = Watcher(broker.port)
    started(d, watch)
    pub = Publisher(broker.port)
    n_msgs, per = 60, 100
    infos = [pub.send(f"plant/flood/s{m % 4}", json.dumps([{"ts": 1.7e9 + m * per + k, "value": 1.0 + 0.01 * k}
                                                            for k in range(per)]))
             for m in range(n_msgs)]
    pub.wait(infos)
    stats = watch.wait_stats(lambda s: s["readings_total"] + s["inbox"]["drops"] >= n_msgs * per, timeout=30,
                             what="every reading processed or dropped")
    drops = stats["inbox"]["drops"]
    assert stats["readings_total"] + drops == n_msgs * per
    if when_full == "block":
        assert drops == 0 and stats["inbox"]["high_water"] <= 150
    else:
        assert drops > 0 and drops % per == 0, drops  # all or nothing per message
        d.wait_log("inbox full")
    assert d.stop() == 0
    no_traceback(d.log())
    pub.close()
    watch.close()


def test_bad_payloads_counted_by_reason_logged_once_no_traceback(broker, bundle_dir, tmp_path, daemons):
    cfg = daemon_config(broker.port, bundle_dir, tmp_path / "state",
                        limits={"max_streams": 5, "max_payload_bytes": 1024})
    d = daemons(tmp_path, cfg)
    watch = Watcher(broker.port)
    started(d, watch)
    pub = Publisher(broker.port)
    bad = {
        "not_json": b"{not json",
        "wrong_type": b'{"ts": 1.7e9, "value": "hot"}',
        "missing_field": b'{"ts": 1.7e9}',
        "non_finite": b'{"ts": 1.7e9, "value": NaN}',
        "too_large": json.dumps({"ts": 1.7e9, "value": 1.0, "pad": "x" * 5000}).encode(),
        "bad_timestamp": b'{"ts": "yesterday", "value": 1.0}',
        "empty": b"",
    }
    for payload in bad.values():
        for _ in range(3):
            pub.send("plant/bad/x", payload).wait_for_publish(5)
    # more streams than max_streams: evictions, logged with the ids
    pub.readings([(f"many/s{i}", 1.7e9 + k, 1.0) for k in range(2) for i in range(12)])
    stats = watch.wait_stats(lambda s: s["readings_total"] >= 24 and s["rejects_total"] >= 3 * len(bad))
    assert {r: stats["rejects"].get(r) for r in bad} == {r: 3 for r in bad}
    log = d.log()
    no_traceback(log)
    assert log.count("(not_json), e.g. on plant/bad/x: not JSON (") == 1  # rate-limited, with the detail
    assert "evicted" in log and "many/s" in log
    assert d.alive() and d.stop() == 0
    pub.close()
    watch.close()


def test_a_stream_id_the_broker_refuses_is_a_counted_reject_and_the_daemon_stays_connected(broker, bundle_dir,
                                                                                             tmp_path, daemons):
    """A sensor name with a control character in a batched payload ({1}/{sensor}): before, the
    reading was accepted and the first publish of that stream's state or alert made mosquitto
    close the daemon's connection (malformed packet), again after every reconnect: every stream
    stopped. Now it is a bad_stream reject and the other streams go on, on one connection."""
    cfg = daemon_config(broker.port, bundle_dir, tmp_path / "state", homeassistant={"discovery": True})
    cfg["pipelines"][0].update(subscribe="gw/+/batch", stream="{1}/{sensor}", payload={
        "format": "json", "readings": "data", "value": "value", "timestamp": "ts"})
    d = daemons(tmp_path, cfg)
    watch = Watcher(broker.port)
    started(d, watch)
    pub = Publisher(broker.port)
    pub.send("gw/7/batch", json.dumps({"data": [{"sensor": "x\u0001y", "ts": 1.7e9, "value": 1.0}]})).wait_for_publish(5)
    for k in range(40):
        pub.send("gw/7/batch", json.dumps({"data": [{"sensor": "ok", "ts": 1.7e9 + k, "value": float(k % 3)}]}))
    stats = watch.wait_stats(lambda s: s["readings_total"] >= 40 and s["rejects_total"] >= 1)
    assert stats["rejects"] == {"bad_stream": 1} and stats["mqtt"]["connects"] == 1, stats
    time.sleep(1.0)  # state publishes of the good stream went out: still one connection
    assert watch.last_stats()["mqtt"]["connects"] == 1
    log = d.log()
    no_traceback(log)
    assert "which MQTT topic names cannot hold" in log and "Malformed" not in log
    assert d.alive() and d.stop() == 0
    pub.close()
    watch.close()


# -- several pipelines on one filter ---------------------------------------------------------------
def test_pipelines_on_the_same_and_overlapping_filters_each_get_every_message_once(broker, bundle_dir, tmp_path,
                                                                                    daemons):
    """A Zigbee2MQTT-style payload with two fields, read by two pipelines on the same filter, and a
    third on a filter that covers it: each pipeline gets each message exactly once."""
    base = daemon_config(broker.port, bundle_dir, tmp_path / "state")["pipelines"][0]

    def pipe(name, field, subscribe="plant/+/+", stream="{1}/{2}"):
        return {**base, "name": name, "subscribe": subscribe, "stream": stream, "warmup": 100,
                "payload": {"format": "json", "value": field, "timestamp": "ts"}}

    cfg = daemon_config(broker.port, bundle_dir, tmp_path / "state",
                        pipelines=[pipe("temp", "temp"), pipe("hum", "hum"), pipe("every", "temp", "plant/#", "{1}")])
    streams, ts, x = series(2, 150, seed=4)
    hum = x[::-1].copy()
    hum[120, 0] += 15.0  # a spike in the second field only
    d = daemons(tmp_path, cfg)
    watch = Watcher(broker.port)
    started(d, watch)
    pub = Publisher(broker.port)
    infos = [pub.send(f"plant/{s}", json.dumps({"ts": float(ts[t]), "temp": float(x[t, j]), "hum": float(hum[t, j])}))
             for t in range(len(ts)) for j, s in enumerate(streams)]
    pub.wait(infos)
    n = len(infos)
    stats = watch.wait_stats(lambda s: s["readings_total"] >= 3 * n, what="all three pipelines fed")
    time.sleep(0.3)
    stats = watch.last_stats()
    assert {name: p["processed"] for name, p in stats["pipelines"].items()} == {"temp": n, "hum": n, "every": n}
    assert stats["rejects_total"] == 0
    wait_until(lambda: watch.alerts(), 5, what="the spike's alert")
    assert {(a["pipeline"], a["stream"]) for a in watch.alerts()} == {("hum", "line0/temp")}
    assert d.stop() == 0
    pub.close()
    watch.close()


# -- TLS mistakes ----------------------------------------------------------------------------------
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI needed to make certificates")


def _tls_config(broker_port, bundle_dir, tmp_path, **tls):
    cfg = daemon_config(broker_port, bundle_dir, tmp_path / "state")
    cfg["mqtt"]["tls"] = {k: str(v) for k, v in tls.items()}
    return cfg


@needs_openssl
@pytest.mark.parametrize("mistake", ["ca_not_pem", "key_mismatch"])
def test_garbage_tls_files_one_line_exit_2(mistake, broker, bundle_dir, tmp_path, daemons):
    """A CA that is not PEM, a key that is not the certificate's: one line naming mqtt.tls, exit 2
    (permanent: a restart cannot fix it), no traceback."""
    from .test_security import make_pki

    pki = make_pki(tmp_path / "pki")
    junk = tmp_path / "ca.pem"
    junk.write_text("-----BEGIN GARBAGE-----\nnot a certificate\n")
    files = {"ca_not_pem": {"ca": junk},
             "key_mismatch": {"ca": pki["ca.crt"], "cert": pki["client.crt"], "key": pki["server.key"]}}[mistake]
    d = daemons(tmp_path, _tls_config(broker.port, bundle_dir, tmp_path, **files))
    assert d.start().wait_exit() == 2
    log = d.log()
    no_traceback(log)
    lines = [ln for ln in log.splitlines() if "mqtt.tls" in ln]
    assert len(lines) == 1, log
    assert str(files.get("cert", junk)) in lines[0]


@needs_openssl
def test_unknown_ca_logged_with_the_tls_reason_and_retried(tmp_path, bundle_dir, daemons):
    from .test_security import make_pki

    pki, other = make_pki(tmp_path / "pki"), make_pki(tmp_path / "other")
    tls_port = free_port()
    broker = Broker(tmp_path / "broker", extra=(
        f"listener {tls_port} 127.0.0.1\n"
        f"cafile {pki['ca.crt']}\ncertfile {pki['server.crt']}\nkeyfile {pki['server.key']}\n")).start()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # stands in for systemd's NOTIFY_SOCKET
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(10)
    try:
        d = daemons(tmp_path, _tls_config(tls_port, bundle_dir, tmp_path, ca=other["ca.crt"]))
        d.start(env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
        d.wait_log("TLS handshake with MQTT broker")
        status = ""
        while not status.startswith("STATUS=broker trouble"):  # socket.timeout after 10 s without it
            status = notify.recv(4096).decode()
        assert "certificate verify failed" in status  # what `systemctl status` shows
        time.sleep(1.0)  # a few retries (reconnect_max_s 1)
        assert d.alive()
        log = d.log()
        no_traceback(log)
        assert "certificate verify failed" in log and "check mqtt.tls.ca" in log
        assert d.stop() == 0
    finally:
        broker.stop()
        notify.close()


# -- the state directory -----------------------------------------------------------------------------
def test_snapshot_path_that_is_a_directory_refused_at_startup(broker, bundle_dir, tmp_path, daemons):
    (tmp_path / "state" / "plant.npz").mkdir(parents=True)
    d = daemons(tmp_path, daemon_config(broker.port, bundle_dir, tmp_path / "state"))
    assert d.start().wait_exit() == 2
    log = d.log()
    no_traceback(log)
    assert "state.dir" in log and "is a directory" in log


def test_failed_final_snapshot_logs_error_and_exits_1(broker, bundle_dir, tmp_path, daemons):
    state = tmp_path / "state"
    d = daemons(tmp_path, daemon_config(broker.port, bundle_dir, state, state={"snapshot_interval_s": 0}))
    watch = Watcher(broker.port)
    started(d, watch)
    pub = Publisher(broker.port)
    pub.readings([("a/b", 1.7e9 + i, 1.0) for i in range(5)])
    watch.wait_stats(lambda s: s["readings_total"] >= 5)
    (state / "plant.npz").mkdir()  # the path is taken away while it runs
    assert d.stop(signal.SIGTERM) == 1
    log = d.log()
    no_traceback(log)
    assert "ERROR edgernn.daemon: pipeline plant: snapshot to" in log and "final snapshot failed" in log
    pub.close()
    watch.close()


# -- readings that used to poison or lock out a stream ---------------------------------------------------
def _one_bad_reading_then_a_spike(broker, bundle_dir, tmp_path, daemons, spoil, dt: float, spike: int = 200) -> dict:
    """Three live streams (readings published when their timestamp comes, one step every ``dt``
    seconds); ``spoil(ts, x)`` returns (step, ts, value): one extra reading for line0 after that
    step; a spike at step ``spike`` on every stream must raise an alert on every one of them."""
    streams, ts, x = series(3, spike + 30, seed=8)
    x[spike] += 15.0
    readings = interleave(streams, ts, x)
    step, *extra = spoil(ts, x)
    readings.insert(3 * (step + 1), ("line0/temp", *extra))  # right after the readings of that step
    cfg = daemon_config(broker.port, bundle_dir, tmp_path / "state")
    cfg["pipelines"][0]["warmup"] = 100
    d = daemons(tmp_path, cfg)
    watch = Watcher(broker.port)
    started(d, watch)
    pub = Publisher(broker.port)
    start, infos = time.time() + 0.5, []
    for s, t, v in readings:  # ts[k] = ts[0] + k: live time is start + k * dt
        k = (t - ts[0]) if t - ts[0] < len(ts) else step  # the far-future reading goes out with its step
        time.sleep(max(0.0, start + k * dt - time.time()))
        infos.append(pub.send(f"plant/{s}", json.dumps({"ts": start + (t - ts[0]) * dt, "value": float(v)})))
    pub.wait(infos)
    ts = start + (ts - ts[0]) * dt  # the timestamps as published
    stats = watch.wait_stats(lambda s: s["readings_total"] >= len(readings), what="all readings")
    time.sleep(0.3)
    raised = {a["stream"] for a in watch.alerts() if a["event"] == "raised" and a["ts"] >= ts[spike]}
    last = watch.last_stats()
    assert raised == set(streams), f"a spike missed on {set(streams) - raised} (rejects {last['rejects']})"
    assert last["process_errors"] == 0
    assert d.stop() == 0
    no_traceback(d.log())
    pub.close()
    watch.close()
    return stats


def test_a_huge_value_in_warm_up_does_not_blind_the_stream(broker, bundle_dir, tmp_path, daemons):
    _one_bad_reading_then_a_spike(broker, bundle_dir, tmp_path, daemons, lambda ts, x: (20, ts[20] + 0.5, 1e155),
                                  dt=0.005)


def test_a_timestamp_29_days_ahead_does_not_lock_the_stream_out(broker, bundle_dir, tmp_path, daemons):
    """A live stream may be held back a few seconds (the detector's clock skew allowance), not for
    29 days: after warm-up, a spike 7.5 s after the bad timestamp is caught."""
    dt = 0.025  # step 110 -> step 410: 7.5 s
    _one_bad_reading_then_a_spike(broker, bundle_dir, tmp_path, daemons,  # 29 days = 29 * 86400 / dt steps
                                  lambda ts, x: (110, ts[110] + 29 * 86400.0 / dt, float(x[110, 0])), dt=dt,
                                  spike=410)
