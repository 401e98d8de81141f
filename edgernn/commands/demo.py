"""See edgernn work in ~20 seconds, nothing to set up: a broker, a fleet of simulated sensors with
injected faults (spike, level shift, stuck value, drift, noise burst), and the MQTT daemon with a
shipped model. Alerts are shown live as they arrive on edgernn/demo/alerts/#, then a summary.

Uses mosquitto when it is installed (PATH or /usr/sbin), else a small embedded MQTT 3.1.1 broker.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

DEFAULT_MODEL = "univariate"


def add_arguments(parser) -> None:
    parser.add_argument("--model", help=f"model bundle (default: {DEFAULT_MODEL})")
    parser.add_argument("--sensors", type=int, default=12, help="simulated sensors (default 12)")
    parser.add_argument("--readings", type=int, default=600, help="readings per sensor (default 600)")
    parser.add_argument("--rate", type=float, default=800.0, help="readings/s sent to the broker (default 800)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--broker", choices=("auto", "mosquitto", "embedded"), default="auto")


def find_model(arg: str | None) -> Path:
    """The bundle to run: --model (a path or a shipped name), else the shipped univariate model."""
    from ..models import find_model as find

    return find(arg or DEFAULT_MODEL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")
         if os.access(p, os.X_OK)), None)


def start_broker(kind: str, work: Path):
    """Returns (port, protocol, description, stop)."""
    port = _free_port()
    binary = _mosquitto() if kind in ("auto", "mosquitto") else None
    if binary:
        conf = work / "mosquitto.conf"
        user = f"user {os.environ.get('USER') or 'root'}\n" if os.geteuid() == 0 else ""
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n{user}")
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(250):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None:
                raise RuntimeError("mosquitto exited at start")
            time.sleep(0.02)

        def stop():
            proc.terminate()
            proc.wait(5)

        return port, "5", f"mosquitto ({binary})", stop
    if kind == "mosquitto":
        raise RuntimeError("mosquitto not found: sudo apt-get install mosquitto (or run with --broker embedded)")
    from ..minibroker import MiniBroker

    broker = MiniBroker("127.0.0.1", port).start()
    return port, "3.1.1", "embedded pure-Python broker (MQTT 3.1.1; install mosquitto for the real thing)", broker.stop


def run(args) -> int:
    import logging

    from ..config import parse_config
    from ..daemon import Daemon, PipelineError, build_pipeline
    from ..mqtt import MqttClient
    from ..sim import Fleet

    from ..models import ModelNotFound

    try:
        model = find_model(args.model)
    except ModelNotFound as exc:
        print(f"edgernn demo: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="  [%(levelname)s %(name)s] %(message)s")
    work = Path(tempfile.mkdtemp(prefix="edgernn-demo-"))
    try:
        port, protocol, desc, stop_broker = start_broker(args.broker, work)
    except RuntimeError as exc:
        print(f"edgernn demo: {exc}", file=sys.stderr)
        return 2
    print(f"broker:  {desc} on 127.0.0.1:{port}")
    try:
        return _run(args, model, port, protocol, work, parse_config, Daemon, PipelineError, build_pipeline,
                    MqttClient, Fleet)
    finally:
        stop_broker()
        shutil.rmtree(work, ignore_errors=True)


def _run(args, model, port, protocol, work, parse_config, Daemon, PipelineError, build_pipeline, MqttClient, Fleet):
    cfg = parse_config(json.dumps({
        "node": "demo",
        "mqtt": {"host": "127.0.0.1", "port": port, "protocol": protocol, "client_id": "edgernn-demo"},
        "state": {"dir": str(work / "state"), "snapshot_interval_s": 0},
        "stats": {"interval_s": 1},
        "log": {"level": "warning"},
        "pipelines": [{"name": "plant", "subscribe": "plant/+/+", "stream": "{1}/{2}",
                       "payload": {"format": "json", "value": "value", "timestamp": "ts"}, "model": str(model)}],
    }), "<demo>")
    try:
        pipes = [build_pipeline(cfg, p, cfg.limits) for p in cfg.pipelines]
    except PipelineError as exc:
        print(f"edgernn demo: model {model}: {exc}", file=sys.stderr)
        return 2
    b = pipes[0].bundle
    fleet = Fleet(n_sensors=args.sensors, n_readings=args.readings, seed=args.seed,
                  first_fault=max(b.calibration.warmup + 60, args.readings // 3))
    print(f"model:   {b.name} v{b.version} ({', '.join(b.features)}, H={b.hidden}, sha256 {b.sha256[:12]}…)")
    print(f"sensors: {fleet.n} streams x {fleet.T} readings (one per {fleet.period_s:g} s simulated), "
          f"{len(fleet.faults)} injected faults, the first after reading {min(f.start for f in fleet.faults)}")
    print()

    daemon = Daemon(cfg, pipelines=pipes, install_signals=False)
    alerts: list[dict] = []
    lock = threading.Lock()
    t_start = time.monotonic()

    def on_alert(topic: str, payload: bytes) -> bool:
        try:
            a = json.loads(payload)
        except ValueError:
            return True
        with lock:
            alerts.append(a)
        k = fleet.index_of(a["ts"])
        fault = fleet.fault_for(a["stream"], k)
        truth = f"injected {fault.kind} at reading {fault.start}" if fault else "no fault injected here"
        ev = a["event"].upper()
        if a["event"] == "cleared":
            print(f"  {time.monotonic() - t_start:5.1f}s  {ev:8s} {a['alert_id']:<24s} at reading {k}")
        else:
            feat = a.get("top_feature") or next(iter(a["value"]))
            sig = (a.get("sigma") or {}).get(feat)
            band = f" ± {2 * sig:.3g}" if isinstance(sig, (int, float)) else ""
            print(f"  {time.monotonic() - t_start:5.1f}s  {ev:8s} {a['alert_id']:<24s} reading {k}: {feat}="
                  f"{a['value'][feat]:.4g}, expected {a['expected'][feat]:.4g}{band}, likelihood "
                  f"{a['likelihood']:.6f}  [{truth}]")
        return True

    watcher = MqttClient(cfg.mqtt.__class__(host="127.0.0.1", port=port, protocol=protocol, client_id="edgernn-demo-watch",
                                            clean_session=True))
    watcher.subscribe("edgernn/demo/alerts/#", 1, on_alert)
    watcher.start()
    publisher = MqttClient(cfg.mqtt.__class__(host="127.0.0.1", port=port, protocol=protocol,
                                              client_id="edgernn-demo-sensors", clean_session=True, publish_queue=100000))
    publisher.start()
    thread = threading.Thread(target=daemon.run, name="edgernn-daemon", daemon=True)
    thread.start()
    if not (watcher.connected.wait(10) and publisher.connected.wait(10) and daemon.mqtt.connected.wait(10)):
        print("edgernn demo: could not connect to the broker", file=sys.stderr)
        return 1
    time.sleep(0.3)  # let the subscriptions settle
    print("live alerts (edgernn/demo/alerts/#):")
    total = fleet.n * fleet.T
    sent = 0
    t0 = time.monotonic()
    for k, readings in fleet.steps():
        for topic, _stream, ts, value in readings:
            publisher.publish(topic, json.dumps({"ts": ts, "value": value}), qos=1)
            sent += 1
        lag = t0 + sent / args.rate - time.monotonic()
        if lag > 0:
            time.sleep(lag)
    deadline = time.monotonic() + 20
    while daemon.processed < total and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the last alerts in flight
    elapsed = time.monotonic() - t0
    daemon.request_stop()
    thread.join(10)
    publisher.stop()
    watcher.stop()
    _summary(fleet, alerts, daemon, total, elapsed)
    return 0


def _summary(fleet, alerts, daemon, total, elapsed) -> None:
    raised = [a for a in alerts if a["event"] == "raised"]
    fired = [a for a in alerts if a["event"] in ("raised", "update")]
    print()
    print(f"summary: {daemon.processed:,} of {total:,} readings scored in {elapsed:.1f} s "
          f"({daemon.processed / max(elapsed, 1e-9):,.0f}/s), {len(raised)} alert(s) raised")
    print(f"  {'fault':<7s} {'stream':<18s} {'readings':<12s} {'detected':<9s} delay")
    caught = 0
    for f in fleet.faults:
        hits = [fleet.index_of(a["ts"]) for a in fired
                if a["stream"] == f.stream and f.covers(fleet.index_of(a["ts"]), 20)]
        if hits:
            caught += 1
            print(f"  {f.kind:<7s} {f.stream:<18s} {f.start:>4d}-{f.end:<7d} {'yes':<9s} {hits[0] - f.start} reading(s)")
        else:
            print(f"  {f.kind:<7s} {f.stream:<18s} {f.start:>4d}-{f.end:<7d} {'no':<9s} -")
    false = [a for a in raised if fleet.fault_for(a["stream"], fleet.index_of(a["ts"])) is None]
    print(f"  caught {caught} of {len(fleet.faults)} faults; {len(false)} alert(s) where nothing was injected "
          f"({len(fleet.clean)} clean streams)")
    from ..models import example_config

    print(f"\nnext: edgernn serve -c {example_config()}   (the daemon; a broker on 127.0.0.1:1883; see deploy/README.md)")
