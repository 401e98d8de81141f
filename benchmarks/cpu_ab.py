"""CPU per message of the flood drain: bare paho vs the daemon from two source trees, alternating.

    PATH=$PATH:/usr/sbin python benchmarks/cpu_ab.py --tree old=/work/main --tree new=. --rounds 5

Per round and variant: the same flood as bench_mqtt.py (QoS 1, offline persistent session), drained
by a bare paho subscriber (its own process) or by ``python -m edgernn serve`` run with cwd and
PYTHONPATH set to the tree. CPU (user+sys, per thread) from /proc/<pid>/task/*/stat between connect
and the last message. Prints medians. Not a test; the machine's noise applies, hence alternation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_mqtt as bm  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")

BARE = r"""
import json, os, sys, threading, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
port, cid, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def cpu():
    out = {}
    for tid in os.listdir("/proc/self/task"):
        f = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        out[tid] = (int(f[11]), int(f[12]))
    return out
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
c.max_inflight_messages_set(1000); c.max_queued_messages_set(0)
props = Properties(PacketTypes.CONNECT); props.SessionExpiryInterval = 600
st = {"count": 0}
done = threading.Event()
def on_connect(cl, u, f, rc, p):
    st["t0"], st["c0"] = time.perf_counter(), cpu()
def on_message(cl, u, m):
    st["count"] += 1
    if st["count"] == n:
        st["t1"], st["c1"] = time.perf_counter(), cpu()
        done.set()
c.on_connect, c.on_message = on_connect, on_message
c.connect("127.0.0.1", port, keepalive=60, clean_start=False, properties=props)
c.loop_start()
done.wait(120)
c.disconnect(); c.loop_stop()
u = sum(v[0] - st["c0"].get(k, (0, 0))[0] for k, v in st["c1"].items())
s = sum(v[1] - st["c0"].get(k, (0, 0))[1] for k, v in st["c1"].items())
print(json.dumps({"seconds": st["t1"] - st["t0"], "user": u, "sys": s}))
"""


def bare(port, msgs, cid):
    c = bm.client(port, cid, persistent=True)
    sub = threading.Event()
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe("plant/+/+", qos=1)
    c.on_subscribe = lambda *a: sub.set()
    bm.connect(c)
    sub.wait(5)
    c.disconnect()
    c.loop_stop()
    bm.publish_all(port, msgs)
    out = subprocess.run([sys.executable, "-c", BARE, str(port), cid, str(len(msgs))], capture_output=True, text=True,
                         check=True)
    r = json.loads(out.stdout)
    n = len(msgs)
    return {"rate": n / r["seconds"], "user": r["user"] / TICK / n * 1e6, "sys": r["sys"] / TICK / n * 1e6,
            "main": 0.0}


def task_cpu(pid):
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            f = open(f"/proc/{pid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = (int(f[11]), int(f[12]))
    return out


class TreeDaemon(bm.Daemon):
    def __init__(self, tree, work, port, model, name, pipeline, batch_wait_ms=None, **kw):
        self.tree = tree
        super().__init__(work, port, model, name, pipeline, **kw)
        if batch_wait_ms is not None:
            self.cfg["limits"] = {"batch_wait_ms": batch_wait_ms}
            self.path.write_text(bm.yaml.safe_dump(self.cfg))

    def start(self):
        self.since = time.time()
        env = {**os.environ, "PYTHONPATH": str(self.tree)}
        self.proc = subprocess.Popen([sys.executable, "-m", "edgernn", "serve", "-c", str(self.path)], cwd=self.tree,
                                     env=env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.path.with_suffix(".log"), "ab"))
        self.samples = []
        self._stop_s = threading.Event()

        def sample():
            while not self._stop_s.is_set() and self.proc.poll() is None:
                try:
                    self.samples.append((time.time(), task_cpu(self.proc.pid)))
                except OSError:
                    break
                time.sleep(0.005)

        self._sampler = threading.Thread(target=sample, daemon=True)
        self._sampler.start()
        bm.wait_until(lambda: self.online_at(), 20, "daemon online")
        return self

    def stop(self):
        self._stop_s.set()
        super().stop()

    def at(self, t):
        return min(self.samples, key=lambda s: abs(s[0] - t))[1]


def daemon(tree, work, port, model, msgs, name, pipeline, batch_wait_ms=None):
    d = TreeDaemon(tree, work, port, model, name, pipeline, batch_wait_ms=batch_wait_ms)
    d.start()
    d.stop()
    bm.publish_all(port, msgs)
    n = len(msgs)
    d.start()
    t_conn = d.online_at()
    s = d.stats_when(lambda s: s["readings_total"] >= n)
    c0, c1 = d.at(t_conn), d.at(s["ts"])
    pid = d.proc.pid
    d.close()
    mu = sum(v[0] - c0.get(k, (0, 0))[0] for k, v in c1.items())
    ms = sum(v[1] - c0.get(k, (0, 0))[1] for k, v in c1.items())
    main = (c1[pid][0] + c1[pid][1] - sum(c0[pid])) if pid in c0 else 0
    return {"rate": n / (s["ts"] - t_conn), "user": mu / TICK / n * 1e6, "sys": ms / TICK / n * 1e6,
            "main": main / TICK / n * 1e6, "max_batch": s["batches"]["max"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", action="append", required=True,
                    help="name=path[:batch_wait_ms] (limits.batch_wait_ms of the daemon; default its own)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--messages", type=int, default=60_000)
    ap.add_argument("--model", default=str(bm.ROOT / "firmware_models" / "univariate"))
    args = ap.parse_args()
    trees = [t.split("=", 1) for t in args.tree]
    trees = [(name, *(spec.split(":", 1) if ":" in spec else (spec, None))) for name, spec in trees]
    work = Path(tempfile.mkdtemp(prefix="cpu_ab_"))
    broker, port = bm.start_broker(work)
    single = {"subscribe": "plant/+/+", "stream": "{1}/{2}",
              "payload": {"format": "json", "value": "value", "timestamp": "ts"}}
    rows: dict[str, list] = {"bare": [], **{name: [] for name, _, _ in trees}}
    try:
        msgs = bm.flood_messages(args.messages, 1000)
        for r in range(args.rounds):
            order = trees if r % 2 == 0 else trees[::-1]
            b = bare(port, msgs, f"ab-bare-{r}")
            rows["bare"].append(b)
            line = [f"bare {b['rate']:,.0f}/s {b['user']:.1f}+{b['sys']:.1f}us"]
            for name, tree, wait_ms in order:
                pipe = dict(single)
                d = daemon(Path(tree).resolve(), work, port, args.model, msgs, f"ab{r}{name}", pipe,
                           None if wait_ms is None else float(wait_ms))
                d["ratio"] = d["rate"] / b["rate"]
                rows[name].append(d)
                line.append(f"{name} {d['rate']:,.0f}/s ({d['ratio']:.2f}) {d['user']:.1f}+{d['sys']:.1f}us "
                            f"main {d['main']:.1f}us maxb {d['max_batch']}")
            print(f"round {r + 1}: " + " | ".join(line), flush=True)
    finally:
        broker.terminate()
        broker.wait()
    print("\nmedians:")
    for name, rs in rows.items():
        med = {k: float(np.median([x[k] for x in rs])) for k in ("rate", "user", "sys", "main")}
        ratio = f" ratio {np.median([x['ratio'] for x in rs]):.3f}" if name != "bare" else ""
        print(f"  {name:6s} rate {med['rate']:,.0f}/s  cpu {med['user'] + med['sys']:.1f} us/msg "
              f"(user {med['user']:.1f}, sys {med['sys']:.1f}, main thread {med['main']:.1f}){ratio}")


if __name__ == "__main__":
    main()
