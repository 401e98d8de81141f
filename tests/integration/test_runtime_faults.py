"""Faults of the environment while the daemon runs, against a real mosquitto: a full disk, a
state directory deleted, a snapshot overwritten, SIGHUP, a client certificate the broker refuses,
a clock set back. Each test states what used to happen; the daemon runs as ``python -m edgernn serve``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import Broker, Publisher, Watcher, daemon_config, free_port, wait_until
from .test_faults import no_traceback, started

pytestmark = pytest.mark.integration


def loads(path: Path) -> int:
    """The number of streams in a snapshot file (raises when it is not one)."""
    with np.load(path, allow_pickle=False) as data:
        return len(data["ids"])


@pytest.fixture
def small_fs(tmp_path):
    """A 64 kB tmpfs (root only): a disk that fills up."""
    where = tmp_path / "small"
    where.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def test_full_disk_snapshot_logged_once_counted_retried_when_idle_old_one_kept(broker, bundle_dir, small_fs, daemons):
    """The state directory's disk fills up mid-run. Before: one ERROR line per interval while
    readings flowed, the stats' snapshot ts/readings moved as if it had worked, and once readings
    stopped the failed snapshot was never retried (freed space or not). Now: one ERROR line, every
    failure counted, the last good snapshot untouched, and the snapshot is written again (logged)
    at the first interval after space is freed, without new readings."""
    d = daemons(small_fs.parent, daemon_config(broker.port, bundle_dir, small_fs))
    watch = Watcher(broker.port)
    started(d, watch)
    pub = Publisher(broker.port)
    pub.readings([(f"a/s{i}", 1.7e9 + k, 1.0 + 0.1 * k) for k in range(3) for i in range(5)])
    good = watch.wait_stats(lambda s: s["snapshot"]["readings"] == 15, what="a first snapshot")["snapshot"]
    subprocess.run(["dd", "if=/dev/zero", f"of={small_fs}/filler", "bs=1k", "count=200"], capture_output=True)
    for k in range(3, 9):  # readings keep coming for several snapshot intervals (0.5 s)
        pub.readings([(f"a/s{i}", 1.7e9 + k, 1.0 + 0.1 * k) for i in range(5)])
        time.sleep(0.4)
    stats = watch.wait_stats(lambda s: s["snapshot"]["errors"] >= 3, what="failed snapshots counted")
    assert stats["snapshot"]["readings"] == 15 and stats["snapshot"]["ts"] == good["ts"], stats["snapshot"]
    assert loads(small_fs / "plant.npz") == 5  # the last good snapshot
    assert d.log().count("snapshot to") == 1 and "No space left on device" in d.log(), d.log()[-3000:]
    (small_fs / "filler").unlink()  # space again; no new readings from here on
    watch.wait_stats(lambda s: s["snapshot"]["readings"] == 45, what="the snapshot written again")
    assert "written again, after" in d.log()
    assert d.stop() == 0
    no_traceback(d.log())
    pub.close()
    watch.close()


def test_state_directory_deleted_while_running_is_made_again(broker, bundle_dir, tmp_path, daemons):
    """Before: every snapshot failed (No such file or directory) and so did the final one: exit 1,
    the state lost. Now the directory is made again at the next interval, and restored from."""
    state = tmp_path / "state"
    d = daemons(tmp_path, daemon_config(broker.port, bundle_dir, state))
    watch = Watcher(broker.port)
    started(d, watch)
    pub = Publisher(broker.port)
    pub.readings([(f"a/s{i}", 1.7e9 + k, 1.0) for k in range(3) for i in range(4)])
    watch.wait_stats(lambda s: s["snapshot"]["readings"] == 12, what="a snapshot")
    shutil.rmtree(state)
    wait_until(lambda: (state / "plant.npz").is_file(), 5, what="the snapshot written again")
    assert loads(state / "plant.npz") == 4 and "state directory" in d.log() and "making it again" in d.log()
    time.sleep(0.3)
    assert watch.last_stats()["snapshot"]["errors"] == 0
    assert d.stop() == 0
    started(d, watch)
    d.wait_log("restored 4 stream(s)")
    assert d.stop() == 0
    no_traceback(d.log())
    pub.close()
    watch.close()


def test_snapshot_overwritten_by_garbage_while_idle_is_written_again(broker, bundle_dir, tmp_path, daemons):
    """Before: a snapshot file overwritten while no readings came stayed garbage, and a restart
    after a crash started every stream fresh. Now it is noticed at the next interval (one stat)."""
    state = tmp_path / "state"
    d = daemons(tmp_path, daemon_config(broker.port, bundle_dir, state))
    watch = Watcher(broker.port)
    started(d, watch)
    pub = Publisher(broker.port)
    pub.readings([(f"a/s{i}", 1.7e9 + k, 1.0) for k in range(3) for i in range(3)])
    watch.wait_stats(lambda s: s["snapshot"]["readings"] == 9, what="a snapshot")
    (state / "plant.npz").write_bytes(b"garbage" * 100)
    wait_until(lambda: (state / "plant.npz").read_bytes()[:2] == b"PK", 5, what="the snapshot written again")
    assert loads(state / "plant.npz") == 3 and "replaced or changed by something else" in d.log()
    d.stop(signal.SIGKILL)
    started(d, watch)
    d.wait_log("restored 3 stream(s)")
    assert d.stop() == 0
    no_traceback(d.log())
    pub.close()
    watch.close()


def test_sighup_is_logged_and_the_daemon_keeps_running(broker, bundle_dir, tmp_path, daemons):
    """Before: SIGHUP (kill -HUP, a reload) killed the daemon at once: no snapshot, no log line,
    the readings since the last snapshot lost, exit status -1. Now it says so and goes on."""
    d = daemons(tmp_path, daemon_config(broker.port, bundle_dir, tmp_path / "state", state={"snapshot_interval_s": 0}))
    watch = Watcher(broker.port)
    started(d, watch)
    pub = Publisher(broker.port)
    pub.readings([("a/b", 1.7e9 + k, 1.0) for k in range(5)])
    watch.wait_stats(lambda s: s["readings_total"] >= 5)
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("SIGHUP received")
    pub.readings([("a/b", 1.7e9 + k, 1.0) for k in range(5, 10)])
    watch.wait_stats(lambda s: s["readings_total"] >= 10, what="readings after SIGHUP")
    assert d.alive() and d.stop() == 0
    assert loads(tmp_path / "state" / "plant.npz") == 1
    no_traceback(d.log())
    pub.close()
    watch.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI needed to make certificates")
def test_client_certificate_the_broker_refuses_after_the_handshake_is_logged(tmp_path, bundle_dir, daemons):
    """An expired client certificate (valid PEM, its key matches) and a broker that requires one:
    with TLS 1.3 the broker's alert comes after the handshake, where paho closes and retries.
    Before: not a line in the log (not even at debug) and systemd's STATUS said "running". Now one
    WARNING with the TLS reason, then retries (debug), and STATUS says broker trouble."""
    from .test_security import _openssl, make_pki

    pki = make_pki(tmp_path / "pki")
    _openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "expired.crt", "-days", "-1", cwd=tmp_path / "pki")
    tls_port = free_port()
    broker = Broker(tmp_path / "broker", extra=(
        f"listener {tls_port} 127.0.0.1\n"
        f"cafile {pki['ca.crt']}\ncertfile {pki['server.crt']}\nkeyfile {pki['server.key']}\n"
        "require_certificate true\n")).start()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # stands in for systemd's NOTIFY_SOCKET
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(10)
    try:
        cfg = daemon_config(tls_port, bundle_dir, tmp_path / "state")
        cfg["mqtt"]["tls"] = {"ca": str(pki["ca.crt"]), "cert": str(tmp_path / "pki" / "expired.crt"),
                              "key": str(pki["client.key"])}
        d = daemons(tmp_path, cfg).start(env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
        d.wait_log("refused the TLS connection after the handshake")
        status = ""
        while not status.startswith("STATUS=broker trouble"):  # socket.timeout after 10 s without it
            status = notify.recv(4096).decode()
        assert "certificate expired" in status
        wait_until(lambda: d.log().count("refused the TLS connection") >= 3, 10, what="retries")
        log = d.log()
        assert sum("WARNING" in ln and "refused the TLS connection" in ln for ln in log.splitlines()) == 1, log
        assert d.alive() and d.stop() == 0
        no_traceback(d.log())
    finally:
        broker.stop()
        notify.close()


def test_restored_streams_ahead_of_the_clock_take_current_readings(broker, bundle_dir, tmp_path, daemons):
    """The snapshot was written while the wall clock was a day ahead (here: a first run that let
    readings a day ahead set the streams' clocks, clock_skew_s 2 days); the clock is right again.
    Before: every current reading of those streams was out_of_order, for a day. Now the restored
    clocks are capped at now + clock_skew_s, as a live reading's is, and the readings are scored."""
    state, now = tmp_path / "state", time.time()
    cfg = daemon_config(broker.port, bundle_dir, state)
    cfg["pipelines"][0]["clock_skew_s"] = 2 * 86400.0
    d = daemons(tmp_path, cfg, name="ahead")
    watch = Watcher(broker.port)
    started(d, watch)
    pub = Publisher(broker.port)
    pub.readings([(f"a/s{i}", now + 86400 + k, 1.0 + 0.1 * k) for k in range(3) for i in range(3)])
    watch.wait_stats(lambda s: s["readings_total"] >= 9)
    assert d.stop() == 0
    d2 = daemons(tmp_path, daemon_config(broker.port, bundle_dir, state), name="right")
    since = started(d2, watch)
    d2.wait_log("restored 3 stream(s)")
    pub.readings([(f"a/s{i}", now + 10 + k, 1.0) for k in range(4) for i in range(3)])
    stats = wait_until(lambda: (s := watch.last_stats(since=since)) and s["readings_total"] >= 12 and s, 10,
                       what="the readings processed")
    time.sleep(0.3)
    stats = watch.last_stats()
    assert stats["rejects"] == {} and stats["pipelines"]["plant"]["accepted"] == 12, stats
    assert "3 restored stream(s) had readings up to" in d2.log()
    assert d2.stop() == 0
    no_traceback(d2.log())
    pub.close()
    watch.close()


def test_a_sensor_clock_set_back_is_counted_and_logged_other_streams_go_on(broker, bundle_dir, tmp_path, daemons):
    """A sensor whose clock jumps back a year: its readings are behind its stream's clock. Before:
    counted as out_of_order, never logged (the stream silently scored nothing). Now one line
    naming the stream and how far behind; the other streams are scored as before."""
    d = daemons(tmp_path, daemon_config(broker.port, bundle_dir, tmp_path / "state"))
    watch = Watcher(broker.port)
    started(d, watch)
    pub = Publisher(broker.port)
    pub.readings([(s, 1.7e9 + k, 1.0) for k in range(3) for s in ("a/good", "a/reset")])
    pub.readings([(s, 1.7e9 + 3 + k - (365 * 86400 if s == "a/reset" else 0), 1.0)
                  for k in range(5) for s in ("a/good", "a/reset")])
    stats = watch.wait_stats(lambda s: s["readings_total"] >= 16 and s["rejects"].get("out_of_order") == 5)
    assert stats["pipelines"]["plant"]["accepted"] == 11, stats  # 3 + 3 + 5 of the good stream
    d.wait_log("(out_of_order), e.g. stream a/reset")
    log = d.log()
    assert log.count("(out_of_order)") == 1 and "365.0 days behind the stream's last reading" in log, log[-2000:]
    assert d.stop() == 0
    no_traceback(log)
    pub.close()
    watch.close()


def test_readings_from_the_future_say_the_devices_clock_may_be_unset(broker, bundle_dir, tmp_path, daemons):
    """A device with no RTC whose clock NTP has not set yet (a Pi may read 1970) sees right sensor
    timestamps as far in the future. Before: 'timestamp 1768000000 is 3456000 s in the future'. Now
    how far ahead in days, the device's clock, the limit, and how to check the clock."""
    d = daemons(tmp_path, daemon_config(broker.port, bundle_dir, tmp_path / "state"))
    watch = Watcher(broker.port)
    started(d, watch)
    pub = Publisher(broker.port)
    ahead = time.time() + 40 * 86400  # past limits.max_future_s (30 days by default)
    pub.readings([("a/ahead", ahead + k, 1.0) for k in range(3)] + [("a/now", time.time() + k, 1.0) for k in range(3)])
    stats = watch.wait_stats(lambda s: s["readings_total"] >= 3 and s["rejects"].get("bad_timestamp") == 3)
    assert stats["pipelines"]["plant"]["accepted"] == 3, stats
    d.wait_log("(bad_timestamp), e.g. on plant/a/ahead")
    log = d.log()
    assert "is 40.0 days ahead of this device's clock (" in log and "(timedatectl status)" in log, log[-2000:]
    assert d.stop() == 0
    no_traceback(log)
    pub.close()
    watch.close()


def test_a_broker_that_keeps_closing_the_connection_is_one_warning_a_minute(broker, bundle_dir, tmp_path, daemons):
    """Another client with the daemon's client id: the broker closes one for the other, again and
    again. Before: a WARNING 'disconnected ...' and an INFO 'connected ...' line per close, unbounded
    (13 of each in 6 s). Now the first close is a WARNING and the rest of that minute DEBUG."""
    import paho.mqtt.client as paho

    cfg = daemon_config(broker.port, bundle_dir, tmp_path / "state")
    d = daemons(tmp_path, cfg)
    watch = Watcher(broker.port)
    started(d, watch)
    twin = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=cfg["mqtt"]["client_id"])
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:  # take the daemon's client id, over and over
        twin.connect("127.0.0.1", broker.port)
        twin.loop(0.05)
        time.sleep(0.3)
        twin.disconnect()
    wait_until(lambda: (watch.last_stats() or {}).get("mqtt", {}).get("connects", 0) >= 3, what="reconnects")
    log = d.log()
    no_traceback(log)
    assert log.count("WARNING edgernn.mqtt: disconnected from") == 1, log[-3000:]
    # the first connect and the reconnect after the one logged disconnect; the rest of that minute: DEBUG
    assert log.count("INFO edgernn.mqtt: connected to") == 2
    assert d.alive() and d.stop() == 0
    watch.close()
