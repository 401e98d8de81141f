"""Measure microseconds per reading of the whole detector hot path, per backend and batch size.

What is timed is ``Detector.process`` -- normalise, score against the stored prediction, the looks,
the alert machine, the GRU step and the state gather/scatter -- on realistic readings: one smooth
sine + noise per stream (own period, scale and offset), every call carrying one reading from each
of ``batch`` distinct streams, after every stream has finished its warm-up (so the scoring path is
what is measured). Next to it, in the same run: the bare ``backend.step`` per call at each batch
(the GRU's share), and River's HalfSpaceTrees on the same values (``score_one`` + ``learn_one`` per
reading, with and without the ``MinMaxScaler`` River's docs put in front of it) when river is
installed.

The machine is shared and noisy, so configurations are timed round-robin: each round runs one
block of every configuration, and a figure is the median over rounds. onnxruntime runs its first
~3,000 calls after session creation ~2x slower: every backend is warmed up first. The garbage
collector is paused inside timed blocks (as timeit does). Progress goes to stderr.

examples:
  edgernn bench --model firmware_models/univariate
  edgernn bench --model my_model --backend all --batch 1,16,64,256 --json bench.json
  edgernn bench --model my_model --backend onnx --batch 64 --streams 10000 --seconds 3
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .common import fail, resolve_model

ONNX_WARMUP_CALLS = 3000  # onnxruntime's slow start (DESIGN.md)
OTHER_WARMUP_CALLS = 300
CYCLE = 4096  # readings per stream before the synthetic values repeat (every period divides it)
PERIODS = (64, 128, 256, 512, 1024)


def add_arguments(p) -> None:
    from ..backends import BACKEND_NAMES

    p.add_argument("--model", default="univariate", help="model bundle directory, or a shipped model's name (default: %(default)s)")
    p.add_argument("--backend", default="numpy", choices=(*BACKEND_NAMES, "all"),
                   help="backend to time; 'all' = every backend the bundle has artifacts for (default: numpy)")
    p.add_argument("--batch", default="1,16,64,256", help="comma-separated batch sizes (default: %(default)s)")
    p.add_argument("--streams", type=int, default=None,
                   help="distinct streams per configuration (default: the batch size; more = a bigger state slab)")
    p.add_argument("--seconds", type=float, default=1.0,
                   help="timing per configuration, split over the rounds (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=5, help="round-robin rounds; figures are medians (default: 5)")
    p.add_argument("--no-peers", action="store_true", help="skip the River HalfSpaceTrees comparison")
    p.add_argument("--json", type=Path, help="also write the results as JSON to this file")


def _log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# -- synthetic readings -----------------------------------------------------------------------------
def stream_values(n_streams: int, n_features: int, seed: int = 0) -> np.ndarray:
    """float64[n_streams, CYCLE, F]: per stream and feature a sine (period dividing CYCLE, so the
    cycle wraps seamlessly) + 5 % noise, at its own scale and offset."""
    rng = np.random.default_rng(seed)
    t = np.arange(CYCLE, dtype=np.float64)
    out = np.empty((n_streams, CYCLE, n_features))
    for s in range(n_streams):
        for f in range(n_features):
            period = PERIODS[rng.integers(len(PERIODS))]
            wave = np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
            noise = 0.05 * rng.standard_normal(CYCLE)
            noise -= np.linspace(0, 1, CYCLE) * (noise[-1] - noise[0])  # no jump at the wrap
            out[s, :, f] = rng.uniform(-50, 500) + 10 ** rng.uniform(-1, 2) * (wave + noise)
    return out


@dataclass
class Feeder:
    """Calls ``Detector.process`` with one reading from each of ``batch`` distinct streams."""

    detector: object
    batch: int
    values: np.ndarray  # [N, CYCLE, F]
    names: list = field(default_factory=list)
    calls: int = 0
    events: int = 0
    rejects: int = 0

    def __post_init__(self):
        from ..detector import Batch

        self._Batch = Batch
        n = len(self.values)
        self.slices = n // self.batch  # stream groups, visited in turn
        self.groups = [[f"s{g * self.batch + j}" for j in range(self.batch)] for g in range(self.slices)]
        self.vals = [self.values[g * self.batch : (g + 1) * self.batch] for g in range(self.slices)]  # [B, CYCLE, F]

    def run(self, calls: int) -> None:
        process, Batch, B = self.detector.process, self._Batch, self.batch
        groups, vals, slices = self.groups, self.vals, self.slices
        i = self.calls
        events = 0
        for _ in range(calls):
            g, t = i % slices, i // slices  # t: readings each stream of group g has had so far
            res = process(Batch(groups[g], np.full(B, 1.7e9 + t), vals[g][:, t % CYCLE]))
            events += len(res.events)
            i += 1
        self.calls = i
        self.events += events


class StepFeeder:
    """Calls ``backend.step`` alone at one batch size (inputs like the detector's: x ~ N(0,1), |h| < 1)."""

    def __init__(self, backend, batch: int):
        rng = np.random.default_rng(batch)
        self.step = backend.step
        self.x = rng.standard_normal((batch, backend.features)).astype(np.float32)
        self.h = np.tanh(rng.standard_normal((batch, backend.hidden))).astype(np.float32)

    def run(self, calls: int) -> None:
        step, x, h = self.step, self.x, self.h
        for _ in range(calls):
            step(x, h)


class RiverFeeder:
    """River HalfSpaceTrees per reading on the same values, one model per stream (score, then learn)."""

    def __init__(self, values: np.ndarray, features: tuple[str, ...], scaler: bool, n_models: int = 8):
        from river import anomaly, preprocessing

        self.n_models = min(n_models, len(values))
        self.models = [anomaly.HalfSpaceTrees(seed=k) for k in range(self.n_models)]
        self.scalers = [preprocessing.MinMaxScaler() for _ in range(self.n_models)] if scaler else None
        v = values[: self.n_models]
        self.rows = [[dict(zip(features, map(float, v[s, t]))) for t in range(CYCLE)] for s in range(self.n_models)]
        self.calls = 0

    def run(self, calls: int) -> None:
        models, scalers, rows, n = self.models, self.scalers, self.rows, self.n_models
        i = self.calls
        for _ in range(calls):
            s, t = i % n, (i // n) % CYCLE
            x = rows[s][t]
            if scalers is not None:
                sc = scalers[s]
                sc.learn_one(x)
                x = sc.transform_one(x)
            m = models[s]
            m.score_one(x)
            m.learn_one(x)
            i += 1
        self.calls = i


@dataclass
class Config:
    kind: str  # process | step | peer
    label: str
    feeder: object
    readings_per_call: int
    backend: str = ""
    batch: int = 0
    calls_per_block: int = 1
    samples: list = field(default_factory=list)  # µs per call, one per round

    def time_block(self) -> None:
        gc_was = gc.isenabled()
        gc.disable()
        try:
            t0 = time.perf_counter()
            self.feeder.run(self.calls_per_block)
            dt = time.perf_counter() - t0
        finally:
            if gc_was:
                gc.enable()
        self.samples.append(dt / self.calls_per_block * 1e6)

    @property
    def us_per_call(self) -> float:
        return float(statistics.median(self.samples))

    @property
    def spread(self) -> float:
        """Relative half-range of the middle samples: how noisy the figure is."""
        s = sorted(self.samples)
        if len(s) < 3:
            return 0.0
        lo, hi = s[len(s) // 4], s[(3 * len(s)) // 4]
        return (hi - lo) / 2 / max(self.us_per_call, 1e-12)


def _calibrate_block(cfg: Config, block_s: float) -> None:
    """Pick calls per block so one block lasts about ``block_s`` seconds."""
    calls, elapsed = 1, 0.0
    while True:
        t0 = time.perf_counter()
        cfg.feeder.run(calls)
        elapsed = time.perf_counter() - t0
        if elapsed > 0.02 or calls >= 1 << 16:
            break
        calls *= 4
    per_call = elapsed / calls
    cfg.calls_per_block = max(1, int(block_s / max(per_call, 1e-9)))


def machine_info() -> dict:
    info = {"platform": platform.platform(), "machine": platform.machine(), "python": platform.python_version(),
            "numpy": np.__version__, "cpu_count": os.cpu_count()}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name") or line.startswith("Model"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        info["loadavg"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    from .. import scalar

    info["scalar_path"] = "compiled" if scalar.COMPILED else "plain Python"
    info["blas_threads_env"] = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                           "MKL_NUM_THREADS") if k in os.environ}
    for mod in ("onnxruntime", "ai_edge_litert", "river"):
        m = sys.modules.get(mod)
        if m is not None and getattr(m, "__version__", None):
            info[mod] = m.__version__
    return info


def _parse_batches(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        value = int(part)
        if value < 1:
            raise ValueError
        out.append(value)
    if not out:
        raise ValueError
    return out


def run(args) -> int:
    from ..backends import BackendUnavailable, available_backends, create_backend
    from ..bundle import BundleError, load_bundle
    from ..detector import Detector, DetectorSettings

    try:
        batches = _parse_batches(args.batch)
    except ValueError:
        return fail("bench", f"--batch {args.batch!r}: expected positive integers separated by commas")
    if args.seconds <= 0 or args.rounds < 1:
        return fail("bench", "--seconds must be > 0 and --rounds >= 1")
    if args.streams is not None and args.streams < max(batches):
        return fail("bench", f"--streams {args.streams} is smaller than the largest batch ({max(batches)}): "
                             "every call needs distinct streams")
    try:
        bundle = load_bundle(resolve_model(args.model))
    except BundleError as exc:
        return fail("bench", exc)
    names = available_backends(bundle) if args.backend == "all" else [args.backend]
    backends = {}
    for name in names:
        try:
            backends[name] = create_backend(name, bundle)
        except (BackendUnavailable, ValueError) as exc:
            return fail("bench", exc)
    F = bundle.n_features
    warmup = bundle.calibration.warmup
    settle = DetectorSettings().settle
    _log(f"model {bundle.name} (F={F}, H={bundle.hidden}, warm-up {warmup}); backends {', '.join(backends)}; "
         f"batches {', '.join(map(str, batches))}")

    # 1. backends: past onnxruntime's slow start (and any lazy allocation) at every batch size
    for name, be in backends.items():
        n = ONNX_WARMUP_CALLS if name.startswith("onnx") else OTHER_WARMUP_CALLS
        _log(f"warming {name}: {n} step calls")
        for b in batches:
            StepFeeder(be, b).run(max(1, n // len(batches)))

    # 2. configurations: detectors warmed past each stream's warm-up so the scoring path is timed
    configs: list[Config] = []
    values_cache: dict[int, np.ndarray] = {}
    for name, be in backends.items():
        for b in batches:
            n_streams = args.streams or b
            n_streams -= n_streams % b  # whole groups of distinct streams
            if n_streams not in values_cache:
                values_cache[n_streams] = stream_values(n_streams, F)
            det = Detector(bundle, be, DetectorSettings(max_streams=n_streams))
            feeder = Feeder(det, b, values_cache[n_streams])
            calls = (warmup + settle + 16) * feeder.slices
            _log(f"warming detector {name} batch {b}: {calls:,} calls ({n_streams:,} streams past warm-up)")
            feeder.run(calls)
            feeder.events = 0
            configs.append(Config("process", f"{name} B={b}", feeder, b, backend=name, batch=b))
            configs.append(Config("step", f"{name} step B={b}", StepFeeder(be, b), b, backend=name, batch=b))
    peers_wanted = not args.no_peers
    if peers_wanted:
        try:
            import river  # noqa: F401
        except ImportError:
            _log("river is not installed: no HalfSpaceTrees comparison (pip install river)")
            peers_wanted = False
    if peers_wanted:
        vals = values_cache.get(min(values_cache)) if values_cache else stream_values(1, F)
        for scaler in (True, False):
            label = "river HalfSpaceTrees + MinMaxScaler" if scaler else "river HalfSpaceTrees (no scaler)"
            feeder = RiverFeeder(vals, bundle.features, scaler)
            feeder.run(2000)  # past HST's first window (reference mass not built yet is a cheaper path)
            configs.append(Config("peer", label, feeder, 1))

    # 3. round-robin timing
    block_s = args.seconds / args.rounds
    for cfg in configs:
        _calibrate_block(cfg, block_s)
    total = len(configs) * args.rounds * block_s
    _log(f"timing {len(configs)} configurations x {args.rounds} rounds (~{total:.0f} s)")
    for r in range(args.rounds):
        order = configs if r % 2 == 0 else configs[::-1]  # alternate direction: no fixed neighbour
        for cfg in order:
            cfg.time_block()
        _log(f"round {r + 1}/{args.rounds} done")

    # 4. report
    results, peers = [], []
    steps = {(c.backend, c.batch): c for c in configs if c.kind == "step"}
    for cfg in configs:
        if cfg.kind == "process":
            step = steps[(cfg.backend, cfg.batch)]
            per_reading = cfg.us_per_call / cfg.batch
            results.append({
                "backend": cfg.backend, "batch": cfg.batch, "us_per_reading": round(per_reading, 3),
                "us_per_step_call": round(step.us_per_call, 3),
                "gru_share": round(step.us_per_call / cfg.us_per_call, 3),
                "readings_per_s": round(1e6 / per_reading),
                "streams": len(cfg.feeder.values), "spread": round(cfg.spread, 3),
                "events_during_timing": cfg.feeder.events,
                "readings_timed": cfg.calls_per_block * len(cfg.samples) * cfg.batch,
            })
        elif cfg.kind == "peer":
            peers.append({"name": cfg.label, "us_per_reading": round(cfg.us_per_call, 3), "spread": round(cfg.spread, 3)})
    print(render(results, peers, bundle))
    note = blas_note(results)
    if note:
        print(note)
    if args.json:
        doc = {"model": {"name": bundle.name, "path": str(bundle.path), "features": F, "hidden": bundle.hidden,
                         "sha256": bundle.sha256},
               "settings": {"rounds": args.rounds, "seconds_per_config": args.seconds, "batches": batches},
               "results": results, "peers": peers, "machine": machine_info()}
        args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


def blas_note(results: list[dict]) -> str:
    """A hint when numpy's step per reading gets much worse at a larger batch: OpenBLAS threads
    fighting over a small or shared CPU (seen here: 8 ms instead of 70 µs per call at batch 256)."""
    rows = sorted((r for r in results if r["backend"] == "numpy"), key=lambda r: r["batch"])
    per = [r["us_per_step_call"] / r["batch"] for r in rows]
    bad = [rows[i]["batch"] for i in range(1, len(rows)) if per[i] > 3 * min(per[:i])]
    if not bad or "OPENBLAS_NUM_THREADS" in os.environ or "OMP_NUM_THREADS" in os.environ:
        return ""
    return (f"\nnote: numpy's GEMM is much slower per reading at batch {', '.join(map(str, bad))}: OpenBLAS threads "
            f"are contending for {os.cpu_count()} core(s). Run with OPENBLAS_NUM_THREADS=1 (set it before "
            "numpy is imported, e.g. Environment= in the systemd unit).")


def render(results: list[dict], peers: list[dict], bundle) -> str:
    from .. import scalar

    lines = [f"Detector.process, {bundle.name} (F={bundle.n_features}, H={bundle.hidden}): median of rounds; "
             f"scalar path {'compiled' if scalar.COMPILED else 'plain Python (no C compiler at install)'}",
             "",
             f"{'backend':12s} {'batch':>5s} {'µs/reading':>11s} {'readings/s':>11s} {'step µs/call':>13s} "
             f"{'GRU share':>9s} {'±':>5s} {'alerts':>6s}"]
    for r in results:
        lines.append(f"{r['backend']:12s} {r['batch']:5d} {r['us_per_reading']:11.2f} {r['readings_per_s']:11,d} "
                     f"{r['us_per_step_call']:13.2f} {100 * r['gru_share']:8.0f}% {100 * r['spread']:4.0f}% "
                     f"{r['events_during_timing']:6d}")
    if peers:
        lines += ["", "peers (same values, one reading at a time):"]
        for p in peers:
            lines.append(f"  {p['name']:40s} {p['us_per_reading']:8.2f} µs/reading  ±{100 * p['spread']:.0f}%")
    lines += ["", "µs/reading = Detector.process per call / batch (normalise, score, looks, alerts, GRU step, "
                  "state gather/scatter);",
              "step µs/call = backend.step alone at that batch; ± = quartile half-range over rounds; alerts = "
              "events while timing"]
    return "\n".join(lines)
