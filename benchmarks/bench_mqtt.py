"""MQTT daemon benchmark against a real mosquitto (started here on a free port). Not a test.

    python benchmarks/bench_mqtt.py [--model firmware_models/univariate] [--json out/bench_mqtt.json]

In one run:
  1. flood: N single-reading messages (QoS 1, many streams) queued by the broker for an offline
     persistent session, then drained by (a) a bare paho subscriber that only counts and (b) the
     daemon (`edgernn serve` as a subprocess). Both rates are from connect to the N-th message.
  2. latency: readings paced at --rate readings/s (QoS 1) with injected spikes; publish-to-alert
     latency of every `raised` alert (the reading's timestamp is its publish time).
  3. batched: gateway messages with 100 readings each (100 sensors per gateway), drained by the
     daemon from a backlog: readings/s.
Prints a table and writes JSON. Needs mosquitto (PATH or /usr/sbin).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.005)
    raise SystemExit(f"timed out waiting for {what}")


def start_broker(work: Path) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None)
    if binary is None:
        raise SystemExit("mosquitto not found (apt-get install mosquitto)")
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
                    "max_queued_messages 0\nmax_inflight_messages 100\npersistence false\n"
                    "set_tcp_nodelay true\n")  # no Nagle delay on small alert packets (see deploy/README.md)
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up():
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_until(up, 5, "mosquitto")
    return proc, port


def client(port, client_id="", persistent=False) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    props = None
    if persistent:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
    c._bench_connect = (port, props, not persistent)  # noqa: SLF001 - remembered for connect()
    return c


def connect(c: mqtt.Client) -> None:
    port, props, clean = c._bench_connect  # noqa: SLF001
    c.connect("127.0.0.1", port, keepalive=60, clean_start=clean, properties=props)
    c.loop_start()


def publish_all(port: int, messages: list[tuple[str, bytes]], qos: int = 1) -> float:
    pub = client(port, "bench-pub")
    connect(pub)
    t0 = time.perf_counter()
    infos = [pub.publish(t, p, qos=qos) for t, p in messages]
    for info in infos:
        assert info.rc == 0, info.rc
        info.wait_for_publish(60)
    dt = time.perf_counter() - t0
    pub.disconnect()
    pub.loop_stop()
    return dt


def flood_messages(n: int, streams: int, seed: int = 0) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(seed)
    t0 = 1.7e9
    vals = np.sin(np.arange(n) / 800.0) + 0.05 * rng.standard_normal(n)
    return [(f"plant/line{i % streams // 50}/s{i % streams}", json.dumps({"ts": t0 + i // streams, "value": round(float(v), 5)}).encode())
            for i, v in enumerate(vals)]


# -- 1a. bare paho ---------------------------------------------------------------------------------
def bare_rate(port: int, messages, client_id: str = "bench-bare") -> dict:
    n = len(messages)
    c = client(port, client_id, persistent=True)
    state = {"count": 0, "t_conn": None, "t_end": None}
    done, subscribed = threading.Event(), threading.Event()

    def on_connect(cl, u, f, rc, p):
        state["t_conn"] = time.perf_counter()
        cl.subscribe("plant/+/+", qos=1)

    def on_message(cl, u, m):
        state["count"] += 1
        if state["count"] == n:
            state["t_end"] = time.perf_counter()
            done.set()

    c.on_connect, c.on_message = on_connect, on_message
    c.on_subscribe = lambda *a: subscribed.set()
    connect(c)
    subscribed.wait(5)
    c.disconnect()
    c.loop_stop()
    publish_all(port, messages)
    connect(c)
    if not done.wait(120):
        raise SystemExit(f"bare subscriber got {state['count']} of {n}")
    c.disconnect()
    c.loop_stop()
    dt = state["t_end"] - state["t_conn"]
    return {"messages": n, "seconds": round(dt, 3), "msg_per_s": round(n / dt)}


# -- the daemon ------------------------------------------------------------------------------------
class Daemon:
    def __init__(self, work: Path, port: int, model: Path, name: str, pipeline: dict, stats_s: float = 0.05):
        self.cfg = {
            "node": name, "mqtt": {"host": "127.0.0.1", "port": port, "client_id": f"edgernn-{name}"},
            "state": {"dir": str(work / f"state-{name}"), "snapshot_interval_s": 0, "restore": False},
            "stats": {"interval_s": stats_s}, "log": {"level": "warning"},
            "pipelines": [{"name": "p", "model": str(model), **pipeline}],
        }
        self.path = work / f"{name}.yaml"
        self.path.write_text(yaml.safe_dump(self.cfg))
        self.name, self.port = name, port
        self.msgs: list = []
        self.lock = threading.Lock()
        w = client(port, f"bench-watch-{name}")
        w.on_connect = lambda cl, u, f, rc, p: cl.subscribe(f"edgernn/{name}/#", qos=0)
        w.on_message = self._on_message
        self.watch = w
        connect(w)
        time.sleep(0.2)

    def _on_message(self, cl, u, m):
        with self.lock:
            self.msgs.append((time.time(), m.topic, m.payload, m.retain))

    def start(self):
        self.since = time.time()
        self.proc = subprocess.Popen([sys.executable, "-m", "edgernn", "serve", "-c", str(self.path)], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=open(self.path.with_suffix(".log"), "ab"))
        wait_until(lambda: self.online_at(), 20, "daemon online")
        return self

    def online_at(self):
        with self.lock:
            for t, topic, p, r in self.msgs:
                if topic.endswith("/status") and p == b"online" and not r and t >= self.since:
                    return t
        return None

    def stats_when(self, pred, timeout=120):
        def find():
            with self.lock:
                for t, topic, p, r in self.msgs:
                    if topic.endswith("/stats") and t >= self.since:
                        s = json.loads(p)
                        if pred(s):
                            return s
            return None

        return wait_until(find, timeout, "daemon stats")

    def alerts(self):
        with self.lock:
            return [(t, json.loads(p)) for t, topic, p, r in self.msgs if "/alerts/" in topic]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(20)

    def close(self):
        if self.proc.poll() is None:
            self.stop()
        self.watch.disconnect()
        self.watch.loop_stop()


def daemon_backlog_rate(work, port, model, messages, name, pipeline, readings_per_message=1) -> dict:
    d = Daemon(work, port, model, name, pipeline)
    d.start()  # creates the persistent session and its subscription
    d.stop()
    publish_all(port, messages)
    total = len(messages) * readings_per_message
    d.start()
    t_conn = d.online_at()
    s = d.stats_when(lambda s: s["readings_total"] >= total)
    dt = s["ts"] - t_conn
    last = d.stats_when(lambda s: True)
    d.close()
    return {"messages": len(messages), "readings": total, "seconds": round(dt, 3),
            "readings_per_s": round(total / dt), "msg_per_s": round(len(messages) / dt),
            "rejects": s["rejects_total"], "drops": s["inbox"]["drops"], "max_batch": last["batches"]["max"]}


# -- 2. latency ------------------------------------------------------------------------------------
def _paced_publisher(port: int, rate: float, total: int, streams: int, warm_s: float, out) -> None:
    """Publishes ``total`` readings at ``rate``/s with spikes, in its own process: a publisher loop
    in the measuring process would hold the GIL the watcher's network thread needs, and the
    watcher's receive time would then include the bench's own scheduling delays."""
    pub = client(port, "bench-lat-pub")
    connect(pub)
    rng = np.random.default_rng(1)
    spike_every = max(int(rate * 0.02), 1)  # try a spike every ~20 ms after warm-up, on a rested stream
    rested: dict[int, int] = {}
    t0 = time.perf_counter()
    sent_spikes = 0
    for i in range(total):
        target = t0 + i / rate
        while True:
            now = time.perf_counter()
            if now >= target:
                break
            time.sleep(min(target - now, 0.002))
        s = i % streams
        k = i // streams
        v = float(np.sin(k / 8.0) * 2 + 0.3 * rng.standard_normal())
        due = i >= rate * warm_s and sent_spikes * spike_every <= i - rate * warm_s
        if due and rested.get(s, -10**9) < k - 80:  # alert cleared and cooled down on this stream
            v += 40.0
            rested[s] = k
            sent_spikes += 1
        pub.publish(f"plant/line{s // 50}/s{s}", json.dumps({"ts": time.time(), "value": v}), qos=1)
    time.sleep(0.5)
    pub.disconnect()
    pub.loop_stop()
    out.put(sent_spikes)


def latency(work, port, model, rate: float, seconds: float, streams: int, warm_s: float) -> dict:
    import multiprocessing

    # 100 streams at 2,000 readings/s: 100 readings per stream in the 5 s warm-up, so the pipeline's
    # warm-up is shortened to 64 (the shipped model's own 256 would outlast the run)
    d = Daemon(work, port, model, "lat", {"subscribe": "plant/+/+", "stream": "{1}/{2}", "warmup": 64,
                                          "payload": {"format": "json", "value": "value", "timestamp": "ts"}},
               stats_s=1.0)
    d.start()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_paced_publisher, args=(port, rate, int(rate * (warm_s + seconds)), streams, warm_s, out))
    proc.start()
    sent_spikes = out.get(timeout=warm_s + seconds + 60)
    proc.join(10)
    time.sleep(0.5)
    alerts = [(t, a) for t, a in d.alerts() if a["event"] == "raised" and a["value"]["value"] > 20]
    raised = [(t - a["ts"]) * 1e3 for t, a in alerts]
    emitted = [(a["emitted"] - a["ts"]) * 1e3 for _, a in alerts if "emitted" in a]
    d.close()
    lat, emi = np.array(raised), np.array(emitted)
    pct = lambda v, q: round(float(np.percentile(v, q)), 3) if v.size else None  # noqa: E731
    return {"rate": rate, "seconds": seconds, "spikes": sent_spikes, "alerts": int(lat.size),
            "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": round(float(lat.max()), 3) if lat.size else None,
            "daemon_p50_ms": pct(emi, 50), "daemon_p99_ms": pct(emi, 99)}


def batched_messages(n_msgs: int, gateways: int, per: int) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(2)
    out = []
    for m in range(n_msgs):
        g, k = m % gateways, m // gateways
        vals = np.sin((k + np.arange(per)) / 10.0) + 0.05 * rng.standard_normal(per)
        out.append((f"gw/g{g}/batch", json.dumps([{"sensor": f"s{j}", "ts": 1.7e9 + k, "value": round(float(v), 5)}
                                                  for j, v in enumerate(vals)]).encode()))
    return out


def fixture_model(path: Path, hidden: int = 32) -> Path:
    from edgernn.backends.base import GRU_WEIGHT_SHAPES
    from edgernn.bundle import write_bundle

    rng = np.random.default_rng(0)
    dims = {"F": 1, "H": hidden}
    w = {k: (rng.standard_normal([dims[a] for a in v]) * 0.2).astype(np.float32) for k, v in GRU_WEIGHT_SHAPES.items()}
    w["head.W_mean"][:] = 0.0
    w["head.W_logvar"][:] *= 0.1
    return write_bundle(path, name=f"random-h{hidden}", version="0", features=["value"], weights=w)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "firmware_models" / "univariate"))
    ap.add_argument("--messages", type=int, default=60_000, help="flood size (single-reading messages)")
    ap.add_argument("--streams", type=int, default=1_000)
    ap.add_argument("--rounds", type=int, default=3, help="alternating bare/daemon flood rounds (median)")
    ap.add_argument("--rate", type=float, default=2_000.0, help="paced readings/s for the latency run")
    ap.add_argument("--seconds", type=float, default=15.0, help="latency run length after warm-up")
    ap.add_argument("--batched", type=int, default=1_000, help="messages of 100 readings")
    ap.add_argument("--json", default=str(ROOT / "out" / "bench_mqtt.json"))
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench_mqtt_"))
    model = Path(args.model)
    if not (model / "manifest.yaml").is_file():
        print(f"{model} not found: using a random H=32 model (same cost per step, meaningless scores)")
        model = fixture_model(work / "model")
    broker, port = start_broker(work)
    results: dict = {"model": str(model), "cpus": os.cpu_count(), "python": sys.version.split()[0]}
    try:
        msgs = flood_messages(args.messages, args.streams)
        print(f"flood: {len(msgs)} messages over {args.streams} streams, {args.rounds} alternating rounds ...", flush=True)
        single = {"subscribe": "plant/+/+", "stream": "{1}/{2}",
                  "payload": {"format": "json", "value": "value", "timestamp": "ts"}}
        bare, daemon = [], []
        for r in range(args.rounds):  # alternate, so that both see the same background load
            bare.append(bare_rate(port, msgs, f"bench-bare-{r}"))
            daemon.append(daemon_backlog_rate(work, port, model, msgs, f"flood{r}", single))
            print(f"  round {r + 1}: bare {bare[-1]['msg_per_s']:,} msg/s, daemon {daemon[-1]['readings_per_s']:,} readings/s",
                  flush=True)
        results["bare"] = {"msg_per_s": int(np.median([b["msg_per_s"] for b in bare])), "rounds": bare}
        results["daemon"] = {**daemon[int(np.argsort([d["readings_per_s"] for d in daemon])[len(daemon) // 2])],
                             "readings_per_s": int(np.median([d["readings_per_s"] for d in daemon])), "rounds": daemon}
        results["daemon"]["msg_per_s"] = results["daemon"]["readings_per_s"]
        results["daemon_vs_bare"] = round(results["daemon"]["readings_per_s"] / results["bare"]["msg_per_s"], 3)
        print(f"latency: {args.rate:g} readings/s for {args.seconds:g} s ...", flush=True)
        results["latency"] = latency(work, port, model, args.rate, args.seconds, streams=100, warm_s=5.0)
        print(f"batched: {args.batched} messages x 100 readings ...", flush=True)
        gw = {"subscribe": "gw/+/batch", "stream": "{1}/{sensor}",
              "payload": {"format": "json", "value": "value", "timestamp": "ts"}}
        results["batched"] = daemon_backlog_rate(work, port, model, batched_messages(args.batched, 10, 100),
                                                 "batched", gw, readings_per_message=100)
    finally:
        broker.terminate()
        broker.wait()
    b, d, lat, bt = results["bare"], results["daemon"], results["latency"], results["batched"]
    rows = [
        ("bare paho receive rate (QoS 1 flood)", f"{b['msg_per_s']:,} msg/s"),
        ("daemon processed rate (same flood)", f"{d['readings_per_s']:,} readings/s  ({results['daemon_vs_bare']:.0%} of bare)"),
        (f"publish->alert latency at {lat['rate']:g} readings/s", f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, "
                                                          f"max {lat['max_ms']} ms ({lat['alerts']} alerts)"),
        ("  of which reading -> alert sent by the daemon", f"p50 {lat['daemon_p50_ms']} ms, p99 {lat['daemon_p99_ms']} ms"),
        ("daemon, batched payloads (100/msg)", f"{bt['readings_per_s']:,} readings/s ({bt['msg_per_s']:,} msg/s)"),
    ]
    w = max(len(r[0]) for r in rows)
    print(f"\nmodel {results['model']}, {results['cpus']} CPUs, Python {results['python']}")
    for name, value in rows:
        print(f"  {name:<{w}}  {value}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
