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
from collections import Counter
from pathlib import Path

from ..readings import BAND_SIGMAS, event_surprise, one_in
from ..sim import FAULT_ROOM, GRACE, Fleet

DEFAULT_MODEL = "univariate"
# bounds of the options: the fleet holds every reading in memory (--readings 100,000,000 was killed at 24 GB);
# a rate below one reading in ~17 minutes is no demo (1e-300: time.sleep's OverflowError)
MAX_SENSORS = 10_000
MAX_READINGS = 10_000_000  # per sensor, and in all
MIN_RATE, MAX_RATE = 1e-3, 1e9


def add_arguments(parser) -> None:
    parser.add_argument("--model", help=f"model bundle (default: {DEFAULT_MODEL})")
    parser.add_argument("--sensors", type=int, default=12, help=f"simulated sensors (default 12, at most {MAX_SENSORS:,})")
    parser.add_argument("--readings", type=int, default=600,
                        help=f"readings per sensor (default 600; at least the model's warm-up + 141; at most "
                             f"{MAX_READINGS:,} in all)")
    parser.add_argument("--rate", type=float, default=800.0,
                        help=f"readings/s sent to the broker (default 800; {MIN_RATE:g} to {MAX_RATE:g})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated fleet (default 0)")
    parser.add_argument("--broker", choices=("auto", "mosquitto", "embedded"), default="auto",
                        help="auto: mosquitto when it is installed and starts, else the embedded broker; "
                             "the broker listens on a free port of 127.0.0.1 (default: auto)")


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
    """Returns (port, protocol, description, stop). ``auto``: mosquitto when it is installed and
    starts, else the embedded broker (a note on stderr says why mosquitto was not used)."""
    binary = _mosquitto() if kind in ("auto", "mosquitto") else None
    if binary:
        try:
            return _start_mosquitto(binary, work)
        except RuntimeError as exc:
            if kind == "mosquitto":
                raise RuntimeError(f"{exc} (or run with --broker embedded)") from None
            print(f"edgernn demo: {exc}; using the embedded broker", file=sys.stderr)
    if kind == "mosquitto":
        raise RuntimeError("mosquitto not found: sudo apt-get install mosquitto (or run with --broker embedded)")
    from ..minibroker import MiniBroker

    port = _free_port()
    broker = MiniBroker("127.0.0.1", port).start()
    return port, "3.1.1", "embedded pure-Python broker (MQTT 3.1.1; install mosquitto for the real thing)", broker.stop


def _start_mosquitto(binary: str, work: Path):
    """mosquitto on a free port (never 1883: the kernel's choice, see _free_port), or RuntimeError
    with mosquitto's own last words (e.g. ``Error: Invalid user 'x'.`` when $USER does not exist)."""
    port = _free_port()
    conf, log = work / "mosquitto.conf", work / "mosquitto.log"
    user = f"user {os.environ.get('USER') or 'root'}\n" if os.geteuid() == 0 else ""
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n{user}")
    with open(log, "wb") as err:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err)
    for _ in range(250):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None:
            said = [line.split(": ", 1)[-1].strip() for line in log.read_text(errors="replace").splitlines()]
            raise RuntimeError("mosquitto exited at start" + (f": {said[-1]}" if said and said[-1] else ""))
        time.sleep(0.02)
    else:  # (was taken silently: the demo then failed after 10 s with "could not connect")
        proc.terminate()
        proc.wait(5)
        raise RuntimeError(f"mosquitto did not open port {port} within 5 s")

    def stop():
        proc.terminate()
        proc.wait(5)

    return port, "5", f"mosquitto ({binary})", stop


def run(args) -> int:
    import logging

    problem = _option_problem(args)
    if problem:
        print(f"edgernn demo: {problem}", file=sys.stderr)
        return 2
    from ..models import ModelNotFound

    try:
        model = find_model(args.model)
    except ModelNotFound as exc:
        print(f"edgernn demo: {exc}", file=sys.stderr)
        return 2
    problem = _model_problem(model, args.readings)
    if problem:
        print(f"edgernn demo: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="  [%(levelname)s %(name)s] %(message)s")
    work = Path(tempfile.mkdtemp(prefix="edgernn-demo-"))
    try:
        port, protocol, desc, stop_broker = start_broker(args.broker, work)
    except RuntimeError as exc:
        shutil.rmtree(work, ignore_errors=True)  # (was left in the temp directory)
        print(f"edgernn demo: {exc}", file=sys.stderr)
        return 2
    except BaseException:  # (an OSError binding the broker, Ctrl-C: the temp directory goes too)
        shutil.rmtree(work, ignore_errors=True)
        raise
    try:  # (the print was before it: `edgernn demo > /dev/full` left mosquitto running for good)
        print(f"broker:  {desc} on 127.0.0.1:{port}")
        return _run(args, model, port, protocol, work)
    finally:
        stop_broker()
        shutil.rmtree(work, ignore_errors=True)


def _option_problem(args) -> str | None:
    """One line naming the first option out of range, or None (--readings' minimum depends on the model)."""
    from .common import number_problem

    problem = (number_problem("--sensors", args.sensors, ge=1, le=MAX_SENSORS)
               or number_problem("--rate", args.rate, ge=MIN_RATE, le=MAX_RATE)
               or number_problem("--seed", args.seed, ge=0, le=2**32 - 1)
               or number_problem("--readings", args.readings, le=MAX_READINGS))
    if problem is None and args.sensors * args.readings > MAX_READINGS:
        problem = (f"--sensors {args.sensors} x --readings {args.readings} = {args.sensors * args.readings:,} readings: "
                   f"at most {MAX_READINGS:,} in all")
    return problem


def _config(model, port: int, protocol: str, work: Path):
    from ..config import parse_config

    return parse_config(json.dumps({
        "node": "demo",
        "mqtt": {"host": "127.0.0.1", "port": port, "protocol": protocol, "client_id": "edgernn-demo"},
        "state": {"dir": str(work / "state"), "snapshot_interval_s": 0},
        "stats": {"interval_s": 1},
        "log": {"level": "warning"},
        "pipelines": [{"name": "plant", "subscribe": "plant/+/+", "stream": "{1}/{2}",
                       "payload": {"format": "json", "value": "value", "timestamp": "ts"}, "model": str(model)}],
    }), "<demo>")


def min_readings(warmup: int) -> int:
    """Readings per sensor the demo needs: the model's warm-up, 60 settled readings, then room for faults."""
    return warmup + 60 + FAULT_ROOM


def _model_problem(model: Path, readings: int) -> str:
    """'' when the model loads and ``readings`` per sensor are enough for it, else the one-line reason
    (for too few readings, with the minimum)."""
    from ..bundle import BundleError, load_bundle

    try:
        b = load_bundle(model)
    except (BundleError, OSError) as exc:
        return str(exc)  # names the file
    if len(b.features) != 1:
        return (f"the demo simulates one-value sensors; model {b.name} has {len(b.features)} features "
                f"({', '.join(b.features)}): score a recording of them with edgernn replay")
    need = min_readings(b.calibration.warmup)
    if readings >= need:
        return ""
    return (f"--readings {readings} is too few for model {b.name}: it warms up for {b.calibration.warmup} readings "
            f"per sensor and the faults need {need - b.calibration.warmup} more; use --readings {need} or more")


def _alert_line(fleet, a: dict, elapsed: float) -> str:
    """One live line for an alert message: what was seen, how surprising, and what was injected there."""
    k = fleet.index_of(a["ts"])
    ev = a["event"].upper()
    if a["event"] == "cleared":
        return f"  {elapsed:5.1f}s  {ev:8s} {a['alert_id']:<24s} at reading {k}"
    feat = a.get("top_feature") or next(iter(a["value"]))
    sig = (a.get("sigma") or {}).get(feat)
    band = f" ± {BAND_SIGMAS * sig:.3g}" if isinstance(sig, (int, float)) else ""
    surprise = event_surprise(a)
    verdict = fleet.judge(a["stream"], k).describe(fleet.period_s) if a["event"] == "raised" else "still active"
    return (f"  {elapsed:5.1f}s  {ev:8s} {a['alert_id']:<24s} reading {k}: {feat}={a['value'][feat]:.4g}, "
            f"expected {a['expected'][feat]:.4g}{band}, surprise {surprise:.1f} ({one_in(surprise)})  [{verdict}]")


def _run(args, model, port, protocol, work) -> int:
    from ..daemon import Daemon, PipelineError, build_pipeline
    from ..mqtt import MqttClient

    cfg = _config(model, port, protocol, work)
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
    print(f"a fault counts as caught only by an alert raised between its first and last reading "
          f"(a spike: up to {GRACE} readings after it); every other alert is a false alert\n")

    daemon = Daemon(cfg, pipelines=pipes, install_signals=False)
    alerts: list[dict] = []
    lock = threading.Lock()
    gone = threading.Event()  # stdout cannot be written (`edgernn demo | head`): stop early
    t_start = time.monotonic()

    def on_alert(topic: str, payload: bytes) -> bool:
        try:
            a = json.loads(payload)
        except ValueError:
            return True
        with lock:
            alerts.append(a)
        try:
            print(_alert_line(fleet, a, time.monotonic() - t_start))
        except OSError:  # (was a traceback per alert, and the demo ran on): the summary's print says it
            gone.set()
        return True

    def client(client_id: str, **extra):
        return MqttClient(cfg.mqtt.__class__(host="127.0.0.1", port=port, protocol=protocol, client_id=client_id,
                                             clean_session=True, **extra))

    watcher = client("edgernn-demo-watch")
    watcher.subscribe("edgernn/demo/alerts/#", 1, on_alert)
    watcher.start()
    publisher = client("edgernn-demo-sensors", publish_queue=100000)
    publisher.start()
    thread = threading.Thread(target=daemon.run, name="edgernn-daemon", daemon=True)
    thread.start()
    if not (watcher.connected.wait(10) and publisher.connected.wait(10) and daemon.mqtt.connected.wait(10)):
        print("edgernn demo: could not connect to the broker", file=sys.stderr)
        return 1
    time.sleep(0.3)  # let the subscriptions settle
    print("live alerts (edgernn/demo/alerts/#):")
    elapsed = _publish(fleet, publisher, daemon, args.rate, gone)
    daemon.request_stop()
    thread.join(10)
    publisher.stop()
    watcher.stop()
    with lock:
        _summary(fleet, list(alerts), daemon, fleet.n * fleet.T, elapsed, model)
    return 0


STALL_S = 20.0  # give up once the broker took no reading (or the daemon scored none) for this long


def _publish(fleet, publisher, daemon, rate: float, gone: threading.Event | None = None) -> float:
    """Send every reading at up to ``rate`` per second, wait until the daemon scored them; seconds
    taken (less when ``gone`` is set: no one reads the output any more). A reading the publisher
    refuses (its queue full: --rate above what the broker and daemon take) is sent again, not lost."""
    total, sent = fleet.n * fleet.T, 0
    t0 = time.monotonic()
    stopped = gone.is_set if gone is not None else (lambda: False)
    for _k, readings in fleet.steps():
        if stopped():
            return time.monotonic() - t0
        for topic, _stream, ts, value in readings:
            if not _send(publisher, topic, json.dumps({"ts": ts, "value": value}), stopped):
                return time.monotonic() - t0  # the broker took nothing for STALL_S: the summary says how many
            sent += 1
        lag = t0 + sent / rate - time.monotonic()
        if lag > 0:
            time.sleep(lag)
    last, progress = -1, time.monotonic()
    while daemon.processed < total and time.monotonic() - progress < STALL_S and not stopped():
        if daemon.processed != last:  # (a fixed 20 s left a fast --rate's backlog unscored)
            last, progress = daemon.processed, time.monotonic()
        time.sleep(0.05)
    time.sleep(0.5)  # the last alerts in flight
    return time.monotonic() - t0


def _send(publisher, topic: str, payload: str, stopped) -> bool:
    """Publish one reading, again while the publisher refuses it (its queue full); False when it
    refused for STALL_S on end (the broker gone) or ``stopped()``. (A refused reading was dropped:
    --rate 1e9, 100 x 1,000 readings: 27,711 never sent, the faults judged on readings never seen.)"""
    since = time.monotonic()
    while not publisher.publish(topic, payload, qos=1):
        if stopped() or time.monotonic() - since > STALL_S:
            return False
        time.sleep(0.005)
    return True


def _summary(fleet, alerts, daemon, total, elapsed, model) -> None:
    raised = [a for a in alerts if a["event"] == "raised"]
    verdicts = [fleet.judge(a["stream"], fleet.index_of(a["ts"])) for a in raised]
    print()
    print(f"summary: {daemon.processed:,} of {total:,} readings scored in {elapsed:.1f} s "
          f"({daemon.processed / max(elapsed, 1e-9):,.0f}/s), {len(raised)} alert(s) raised")
    print(f"  {'fault':<7s} {'stream':<18s} {'readings':<12s} {'caught':<7s} delay from the fault's start")
    caught = 0
    for f in fleet.faults:
        delays = sorted(v.delay for v in verdicts if v.kind == "caught" and v.fault == f)
        if delays:
            caught += 1
            when = f"{delays[0]} reading(s), {delays[0] * fleet.period_s:g} s"
        print(f"  {f.kind:<7s} {f.stream:<18s} {f.start:>4d}-{f.end:<7d} {'yes' if delays else 'no':<7s} "
              f"{when if delays else '-'}")
    false = Counter(v.kind for v in verdicts if v.false)
    print(f"  caught {caught} of {len(fleet.faults)} faults; {sum(false.values())} false alert(s): "
          f"{false['clean']} on the {len(fleet.clean)} clean streams, {false['before']} before a stream's fault, "
          f"{false['after']} after one ended")
    csv_path = Path(__file__).resolve().parents[1] / "data" / "demo_sensor.csv"
    if csv_path.is_file():
        import importlib.util

        plot = importlib.util.find_spec("matplotlib") is not None  # --plot needs the plot extra
        print(f"\nnext: edgernn replay {csv_path} --model {Path(model).resolve()}" + (" --plot demo.png" if plot else "")
              + "\n      (the same model on a recording; then on your own CSV"
              + ("" if plot else "; pip install 'edgernn[plot]' for --plot") + ")")
    from ..models import example_config

    print(f"      edgernn serve -c {example_config()}   (the daemon; a broker on 127.0.0.1:1883; deploy/README.md)")
