"""The Prometheus endpoint and Home Assistant discovery meeting bad input or a bad environment:
idle HTTP clients, a bind address no DNS label can hold, a storm of Home Assistant birth messages,
more retained messages than the broker confirms. Real broker, real daemon or the real classes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from .conftest import ROOT, Publisher, Watcher, daemon_config, free_port, wait_until
from .test_faults import started

pytestmark = pytest.mark.integration


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_idle_metrics_clients_cannot_take_the_daemons_files(broker, bundle_dir, tmp_path, daemons):
    # Before: every connection got a thread and kept its descriptor for ever (no timeout, no cap):
    # 250 idle clients took all of a 256-file daemon's descriptors, snapshots failed ("Too many
    # open files"), the broker could not be reached again and the final snapshot failed (exit 1)
    pytest.importorskip("prometheus_client")
    from edgernn import metrics

    MAX_CLIENTS = getattr(metrics, "MAX_CLIENTS", 16)
    port = free_port()
    d = daemons(tmp_path, daemon_config(broker.port, bundle_dir, tmp_path / "state",
                                        metrics={"host": "127.0.0.1", "port": port}))
    watch = Watcher(broker.port)
    started(d, watch)
    base = _fds(d.proc.pid)
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3 * MAX_CLIENTS)]
    try:
        time.sleep(0.5)
        assert _fds(d.proc.pid) <= base + MAX_CLIENTS + 4
        pub = Publisher(broker.port)
        pub.readings([("s/x", 1.7e9 + k, float(k % 3)) for k in range(20)])
        watch.wait_stats(lambda s: s["readings_total"] >= 20, what="readings scored while clients hang")
        assert d.stop(timeout=10) == 0  # SIGTERM while clients hang: a clean stop
        pub.close()
    finally:
        for s in idle:
            s.close()
        watch.close()
    assert "/metrics: 16 connection(s) open at once" in d.log() and "Traceback" not in d.log()


def test_a_silent_metrics_client_is_closed_after_the_timeout(monkeypatch, capfd):
    pytest.importorskip("prometheus_client")
    from edgernn import metrics

    monkeypatch.setattr(metrics._Handler, "timeout", 0.3)
    m = metrics.Metrics(SimpleNamespace(), serve=False)
    port = free_port()
    m.start("127.0.0.1", port)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\n")  # a request that never ends
            t0 = time.monotonic()
            assert s.recv(100) == b"" and time.monotonic() - t0 < 3  # closed by the server
    finally:
        m.close()
    assert "Traceback" not in capfd.readouterr().err  # socketserver printed one per timed-out client


def test_a_metrics_host_no_dns_label_can_hold_is_one_line(broker, bundle_dir, tmp_path, daemons):
    # Before: UnicodeError ("encoding with 'idna' codec failed (UnicodeError: label too long)"),
    # a traceback and exit 1
    pytest.importorskip("prometheus_client")
    d = daemons(tmp_path, daemon_config(broker.port, bundle_dir, tmp_path / "state",
                                        metrics={"host": "a" * 70, "port": free_port()}))
    r = subprocess.run([sys.executable, "-m", "edgernn", "serve", "-c", str(d.config_path)], capture_output=True,
                       text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1 and "metrics.host: cannot serve /metrics on aaaa" in r.stderr


def test_home_assistant_birth_storm_is_one_re_announce(broker, bundle_dir, tmp_path, daemons):
    # Before: every "online" on homeassistant/status queued every stream's configs again: 50 in a
    # second held 100,000 messages for 1,000 streams (RSS 53 -> 148 MB)
    from edgernn import homeassistant

    REANNOUNCE_EVERY_S = getattr(homeassistant, "REANNOUNCE_EVERY_S", 10.0)
    d = daemons(tmp_path, daemon_config(broker.port, bundle_dir, tmp_path / "state",
                                        homeassistant={"discovery": True}))
    watch = Watcher(broker.port, topics=("edgernn/#", "homeassistant/#"))
    started(d, watch)
    pub = Publisher(broker.port)
    n = 200
    pub.readings([(f"s{i}/v", 1.7e9, 1.0) for i in range(n)])
    wait_until(lambda: len(watch.take("homeassistant/sensor/")) >= n, 20, what="the first announcement")
    time.sleep(0.5)
    storm = time.monotonic()
    infos = [pub.send("homeassistant/status", b"online") for _ in range(40)]
    pub.wait(infos)

    def configs():
        return len(watch.take("homeassistant/binary_sensor/", storm) + watch.take("homeassistant/sensor/", storm))

    wait_until(lambda: configs() >= 2 * n, 10, what="configs again")
    time.sleep(1.0)
    assert configs() == 2 * n  # one round at once (before: 9,941 messages here)
    # the births that came after the first round started: one more round, REANNOUNCE_EVERY_S later
    time.sleep(REANNOUNCE_EVERY_S + 2)
    rounds = [line for line in d.log().splitlines() if "announcing 200 stream(s) again" in line]
    assert len(rounds) in (1, 2) and configs() == len(rounds) * 2 * n, (rounds, configs())
    pub.readings([(f"s{i}/v", 1.7e9 + 1, 1.0) for i in range(10)])
    watch.wait_stats(lambda s: s["readings_total"] >= n + 10, what="scoring goes on")
    assert d.stop() == 0
    pub.close()
    watch.close()


def test_retained_backlog_is_bounded_counted_and_logged(tmp_path, caplog):
    # A broker that confirms nothing (or streams that come and go faster than it confirms): the
    # queue stops at max_waiting; what is beyond is counted and logged, never held in memory
    from collections import Counter

    from edgernn.config import parse_config
    from edgernn.homeassistant import StatePublisher

    cfg = parse_config(f"node: bench\nhomeassistant: {{discovery: true}}\nlimits: {{max_streams: 10}}\npipelines:\n"
                       f"  - {{name: plant, subscribe: plant/+/+, stream: '{{1}}/{{2}}', model: {tmp_path}}}\n",
                       "edgernn.yaml")
    mqtt = SimpleNamespace(subscribe=lambda *a, **k: None, pending=lambda: 10**9, publish=lambda *a, **k: True,
                           publish_refused=Counter())
    pub = StatePublisher(cfg, mqtt, ["plant"])
    caplog.set_level("WARNING", logger="edgernn.homeassistant")
    streams = {f"s{i}/v": i for i in range(pub.max_waiting)}  # 2 configs each: twice the room
    pub.on_start([SimpleNamespace(cfg=SimpleNamespace(name="plant"), detector=SimpleNamespace(
        state=SimpleNamespace(ids=streams)))])
    assert pub.waiting == pub.max_waiting and pub.dropped == pub.max_waiting
    assert mqtt.publish_refused["retained_backlog"] == pub.max_waiting
    assert [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()][0].startswith(
        f"{pub.max_waiting} retained state / discovery message(s) waiting")
    pub.close(timeout=0.1)
