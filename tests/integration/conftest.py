"""Integration fixtures: a real mosquitto on a free port, a small fixture model, the daemon as a
subprocess (``python -m edgernn serve``), and paho clients that publish readings and watch topics.

A missing mosquitto skips these tests on a developer machine, but fails them under CI=true.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")
ROOT = Path(__file__).resolve().parents[2]


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in MOSQUITTO_CANDIDATES if os.access(p, os.X_OK)), None)


def pytest_collection_modifyitems(config, items):
    if find_mosquitto():
        return
    ci = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
    for item in items:
        if "integration" in item.keywords and not ci:
            item.add_marker(pytest.mark.skip(reason="no mosquitto binary (apt-get install mosquitto)"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout: float = 10.0, step: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


# -- broker ----------------------------------------------------------------------------------
class Broker:
    """mosquitto with persistence on a free port; ``extra`` lines are appended to its config."""

    def __init__(self, workdir: Path, extra: str = "", port: int | None = None, anonymous: bool = True):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra = extra
        self.anonymous = anonymous
        self.proc: subprocess.Popen | None = None
        self.conf = self.dir / "mosquitto.conf"

    def write_conf(self) -> None:
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"user {getpass.getuser()}\n"  # as root, mosquitto would switch to 'mosquitto' and lose the dir
            f"allow_anonymous {'true' if self.anonymous else 'false'}\n"
            "max_queued_messages 0\n"  # count deliveries: never drop queued QoS 1 messages
            "persistence true\n"
            f"persistence_location {self.dir}/\n"
            f"log_dest file {self.dir}/mosquitto.log\n"
            "log_type all\n"
            + self.extra
        )

    def start(self) -> "Broker":
        binary = find_mosquitto()
        if binary is None:
            pytest.fail("mosquitto binary not found (CI must have it: apt-get install mosquitto)")
        self.write_conf()
        self.proc = subprocess.Popen([binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until(self._listening, 5, what=f"mosquitto on port {self.port}")
        return self

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            log = (self.dir / "mosquitto.log")
            raise AssertionError(f"mosquitto exited: {log.read_text()[-2000:] if log.exists() else ''}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


    def kill(self) -> None:
        """SIGKILL: no clean shutdown, the broker keeps only what it had saved (autosave)."""
        self.stop(signal.SIGKILL)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()


# -- model -----------------------------------------------------------------------------------
def make_bundle(path: Path, features=("value",), hidden: int = 8, seed: int = 0) -> Path:
    """A small random GRU whose head predicts 'same as now' with a fixed variance."""
    from edgernn.backends.base import GRU_WEIGHT_SHAPES
    from edgernn.bundle import write_bundle

    rng = np.random.default_rng(seed)
    dims = {"F": len(features), "H": hidden}
    w = {k: (rng.standard_normal([dims[a] for a in v]) * 0.2).astype(np.float32) for k, v in GRU_WEIGHT_SHAPES.items()}
    w["head.W_mean"][:] = 0.0
    w["head.W_logvar"][:] *= 0.1
    return write_bundle(path, name="fixture", version="1", features=list(features), weights=w)


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("model") / "fixture")


def series(n_streams: int, T: int, seed: int = 1, t0: float = 1.7e9) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Normal data: a sine with noise per stream; returns stream ids, ts[T], x[T, S]."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    x = np.sin(t / 8)[:, None] * 2 + 0.3 * rng.standard_normal((T, n_streams))
    return [f"line{j}/temp" for j in range(n_streams)], t0 + t.astype(float), x


def offline_events(bundle_dir: Path, readings: list[tuple[str, float, float]], **settings) -> list[tuple]:
    """What the detector (as `edgernn replay` runs it) reports for the same readings, in order."""
    from edgernn.bundle import load_bundle
    from edgernn.detector import Batch, Detector, DetectorSettings

    det = Detector(load_bundle(bundle_dir), settings=DetectorSettings(**settings))
    out = []
    for s, ts, v in readings:
        res = det.process(Batch([s], np.array([ts]), np.array([[v]])))
        out += [(e.kind, e.stream, e.alert_id, e.ts) for e in res.events]
    return out


# -- MQTT clients in the tests -----------------------------------------------------------------
class Watcher:
    """A paho client that records every message on ``topics`` (alerts, status, stats)."""

    def __init__(self, port: int, topics=("edgernn/#",), auth: tuple[str, str] | None = None, **tls):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[float, str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if auth:
            self.c.username_pw_set(*auth)
        if tls:
            self.c.tls_set(**tls)
        subscribed = threading.Event()

        def on_connect(c, u, f, rc, p):
            c.subscribe([(t, 1) for t in topics])

        def on_subscribe(c, u, mid, rcs, p):
            subscribed.set()

        def on_message(c, u, m):
            with self.lock:
                self.messages.append((time.monotonic(), m.topic, m.payload, bool(m.retain)))

        self.c.on_connect, self.c.on_subscribe, self.c.on_message = on_connect, on_subscribe, on_message
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        assert subscribed.wait(5), "watcher could not subscribe"

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()

    def take(self, prefix: str, since: float = 0.0, live_only: bool = False):
        with self.lock:
            return [(t, topic, p) for t, topic, p, r in self.messages
                    if topic.startswith(prefix) and t >= since and not (live_only and r)]

    def alerts(self, node: str = "bench") -> list[dict]:
        return [json.loads(p) for _, _, p in self.take(f"edgernn/{node}/alerts/")]

    def last_stats(self, node: str = "bench", since: float = 0.0) -> dict | None:
        got = self.take(f"edgernn/{node}/stats", since)
        return json.loads(got[-1][2]) if got else None

    def wait_stats(self, pred, node: str = "bench", timeout: float = 15.0, what: str = "stats") -> dict:
        def check():
            s = self.last_stats(node)
            return s if s is not None and pred(s) else None

        return wait_until(check, timeout, what=what)

    def wait_online(self, since: float, node: str = "bench", timeout: float = 15.0) -> None:
        wait_until(lambda: any(p == b"online" for _, _, p in self.take(f"edgernn/{node}/status", since, live_only=True)),
                   timeout, what="daemon online")


class Publisher:
    def __init__(self, port: int, client_id: str = "test-publisher", auth: tuple[str, str] | None = None, **tls):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                             clean_session=True)
        if auth:
            self.c.username_pw_set(*auth)
        if tls:
            self.c.tls_set(**tls)
        self.c.max_inflight_messages_set(100)
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()

    def send(self, topic: str, payload, qos: int = 1, queue: bool = False):
        """Publish; ``queue``: the broker may be down (QoS 1 is then queued by paho and sent later)."""
        info = self.c.publish(topic, payload, qos=qos)
        assert info.rc == 0 or (queue and qos and info.rc == 4), info.rc  # 4: MQTT_ERR_NO_CONN, queued
        return info

    def readings(self, readings, qos: int = 1, wait: bool = True, queue: bool = False) -> list:
        """Publish (stream, ts, value) readings as {"ts", "value"} JSON on plant/<stream>; wait for acks."""
        infos = [self.send(f"plant/{s}", json.dumps({"ts": ts, "value": float(v)}), qos, queue)
                 for s, ts, v in readings]
        if wait:
            self.wait(infos)
        return infos

    @staticmethod
    def wait(infos, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        for info in infos:
            # info._published: is_published() raises for a message queued while disconnected
            wait_until(lambda: info._published, max(0.1, deadline - time.monotonic()), what="publish acknowledged")

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


# -- the daemon --------------------------------------------------------------------------------
def daemon_config(port: int, model: Path, state_dir: Path, **over) -> dict:
    """The acceptance config (node bench, plant/+/+ -> {1}/{2}) plus quick timers for tests."""
    cfg = {
        "node": "bench",
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": "edgernn-bench",
                 "reconnect_min_s": 0.2, "reconnect_max_s": 1.0, "keepalive": 10},
        "state": {"dir": str(state_dir), "snapshot_interval_s": 0.5},
        "stats": {"interval_s": 0.2},
        "pipelines": [{
            "name": "plant", "subscribe": "plant/+/+", "stream": "{1}/{2}",
            "payload": {"format": "json", "value": "value", "timestamp": "ts"},
            "model": str(model),
        }],
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


class DaemonProc:
    def __init__(self, workdir: Path, config: dict, name: str = "daemon"):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.dir / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.runs = 0
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.name = name

    def start(self, env: dict | None = None) -> "DaemonProc":
        self.runs += 1
        self.log_path = self.dir / f"{self.name}.{self.runs}.log"
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgernn", "serve", "-c", str(self.config_path), "--log-level", "debug"],
            stdout=subprocess.DEVNULL, stderr=open(self.log_path, "wb"), cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def wait_log(self, text: str, timeout: float = 10.0) -> None:
        wait_until(lambda: text in self.log() or self._dead(), timeout, what=f"{text!r} in the daemon log")
        assert text in self.log(), f"daemon exited early:\n{self.log()[-3000:]}"

    def _dead(self) -> bool:
        return self.proc.poll() is not None

    def wait_exit(self, timeout: float = 20.0) -> int:
        """The exit status of a daemon expected to stop by itself (a configuration error)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"daemon still running after {timeout} s:\n{self.log()[-3000:]}") from None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.alive():
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"daemon did not stop within {timeout} s:\n{self.log()[-3000:]}") from None
        return self.proc.returncode


@pytest.fixture
def daemons():
    started: list[DaemonProc] = []

    def factory(*args, **kw) -> DaemonProc:
        d = DaemonProc(*args, **kw)
        started.append(d)
        return d

    yield factory
    for d in started:
        if d.alive():
            d.proc.kill()
            d.proc.wait()
