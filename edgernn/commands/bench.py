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
  edgernn bench --model univariate --backend all --batch 1,16,64,256 --json bench.json
  edgernn bench --model univariate --backend onnx --batch 64 --streams 10000 --seconds 3
  edgernn bench --backend numpy,tflite --batch 1,64 --streams 1000,100000 --json bench.json

With --streams N[,N...] every (backend, batch) is timed with each number of live streams
(readings round-robin over all of them, every stream past its warm-up first), and the table
"scale" adds the resident bytes per stream: the state store's arrays (slab + hidden state) per
stream, with the process's RSS growth per stream beside it as a cross-check. BLAS runs one
thread in this process (edgernn/threads.py).

--backend all times every backend the bundle has an artifact for; one it lists but that cannot be
loaded (a corrupt file, its runtime not installed) is left out with one line on stderr, named again
under the table ("missing: ...") and in the JSON ("missing_backends"), and the others run (exit 0).
A backend named by itself that cannot be loaded is an error (one line, exit 2).
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..backends.base import with_random_jumps
from .common import fail, number_problem, output_problem, resolve_model, write_problem

ONNX_WARMUP_CALLS = 3000  # onnxruntime's slow start (DESIGN.md)
OTHER_WARMUP_CALLS = 300
CYCLE = 4096  # readings per stream before the synthetic values repeat (every period divides it)
PERIODS = (64, 128, 256, 512, 1024)
# the largest batch and number of live streams (--batch 1e11 ran out of memory making its readings)
MAX_BATCH = 100_000
MAX_STREAMS = 1_000_000
MAX_SECONDS = 3600  # timing per configuration
MAX_ROUNDS = 1000  # every round times at least one call of every configuration and keeps a sample of each


def add_arguments(p) -> None:
    from ..backends import BACKEND_NAMES

    p.add_argument("--model", default="univariate", help="model bundle directory, or a shipped model's name (default: %(default)s)")
    p.add_argument("--backend", default="numpy", metavar="NAME[,NAME...]",
                   help=f"backend(s) to time, comma-separated, of: {', '.join(BACKEND_NAMES)}; 'all' = every "
                        "backend the bundle has artifacts for (default: numpy)")
    p.add_argument("--batch", default="1,16,64,256",
                   help=f"comma-separated batch sizes, each at most {MAX_BATCH:,} (default: %(default)s)")
    p.add_argument("--streams", default=None, metavar="N[,N...]",
                   help="live streams per configuration, comma-separated: each (backend, batch) is timed with "
                        f"each number, and the JSON gains 'scale' (default: the batch size; at most {MAX_STREAMS:,})")
    p.add_argument("--seconds", type=float, default=1.0,
                   help=f"timing per configuration, split over the rounds (default: %(default)s; at most {MAX_SECONDS:g})")
    p.add_argument("--rounds", type=int, default=5,
                   help=f"round-robin rounds; figures are medians (default: 5; at most {MAX_ROUNDS:,})")
    p.add_argument("--no-peers", action="store_true", help="skip the River HalfSpaceTrees comparison")
    p.add_argument("--json", type=Path, help="also write the results as JSON to this file")


def _log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# -- synthetic readings -----------------------------------------------------------------------------
def cycle_for(n_streams: int, n_features: int, budget: int = 1 << 25) -> int:
    """Readings per stream before the values repeat: CYCLE, halved until the values of every
    stream fit in ``budget`` floats (256 MB), at least 128 (100,000 univariate streams: 256)."""
    c = CYCLE
    while c > 128 and n_streams * n_features * c > budget:
        c //= 2
    return c


def stream_values(n_streams: int, n_features: int, seed: int = 0, cycle: int = CYCLE) -> np.ndarray:
    """float64[n_streams, cycle, F]: per stream and feature a sine (period dividing the cycle, so
    it wraps seamlessly) + 5 % noise, at its own scale and offset."""
    rng = np.random.default_rng(seed)
    t = np.arange(cycle, dtype=np.float64)
    periods = np.array([p for p in PERIODS if cycle % p == 0] or [cycle])
    shape = (n_streams, 1, n_features)
    period = periods[rng.integers(len(periods), size=shape)]
    wave = np.sin(2 * np.pi * t[None, :, None] / period + rng.uniform(0, 2 * np.pi, shape))
    noise = 0.05 * rng.standard_normal((n_streams, cycle, n_features))
    noise -= np.linspace(0, 1, cycle)[None, :, None] * (noise[:, -1:] - noise[:, :1])  # no jump at the wrap
    wave += noise
    wave *= 10 ** rng.uniform(-1, 2, shape)
    wave += rng.uniform(-50, 500, shape)
    return wave


@dataclass
class Feeder:
    """Calls ``Detector.process`` with one reading from each of ``batch`` distinct streams, visiting
    the groups of streams in turn (the last group may be smaller); ``t0``: readings every stream
    had before this feeder (a warm-up by another feeder), so timestamps keep increasing."""

    detector: object
    batch: int
    values: np.ndarray  # [N, cycle, F]
    t0: int = 0
    calls: int = 0
    events: int = 0

    def __post_init__(self):
        from ..detector import Batch

        self._Batch = Batch
        n, B = len(self.values), self.batch
        self.slices = -(-n // B)  # stream groups, visited in turn
        self.groups = [[f"s{j}" for j in range(g * B, min((g + 1) * B, n))] for g in range(self.slices)]
        self.vals = [self.values[g * B : (g + 1) * B] for g in range(self.slices)]  # [B, cycle, F]
        self.cycle = self.values.shape[1]

    def run(self, calls: int) -> None:
        process, Batch = self.detector.process, self._Batch
        groups, vals, slices, cycle = self.groups, self.vals, self.slices, self.cycle
        i = self.calls
        events = 0
        for _ in range(calls):
            g, t = i % slices, self.t0 + i // slices  # t: readings each stream of group g has had so far
            res = process(Batch(groups[g], np.full(len(groups[g]), 1.7e9 + t), vals[g][:, t % cycle]))
            events += len(res.events)
            i += 1
        self.calls = i
        self.events += events


class StepFeeder:
    """Calls ``backend.step`` alone at one batch size (inputs like the detector's: x ~ N(0,1), j in [0, 1], |h| < 1)."""

    def __init__(self, backend, batch: int):
        rng = np.random.default_rng(batch)
        self.step = backend.step
        self.x = rng.standard_normal((batch, backend.features)).astype(np.float32)
        self.h = np.tanh(rng.standard_normal((batch, backend.hidden))).astype(np.float32)
        if getattr(backend, "jump", False):  # and the jump inputs j in [0, 1]: x is [c | j]
            self.x = with_random_jumps(self.x, rng)

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
        self.rows = [[dict(zip(features, map(float, v[s, t]))) for t in range(v.shape[1])] for s in range(self.n_models)]
        self.calls = 0

    def run(self, calls: int) -> None:
        models, scalers, rows, n = self.models, self.scalers, self.rows, self.n_models
        i = self.calls
        for _ in range(calls):
            s, t = i % n, (i // n) % len(rows[0])
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
    samples: list = field(default_factory=list)  # µs per call, one per round (wall clock)
    cpu_samples: list = field(default_factory=list)  # µs of this thread's CPU time per call, one per round
    streams: int = 0  # live streams in the detector (process configurations)
    bytes_per_stream: float = 0.0  # state store arrays / streams
    rss_per_stream: float = 0.0  # process RSS growth while the detector was made and warmed / streams

    def time_block(self) -> None:
        gc_was = gc.isenabled()
        gc.disable()
        try:
            c0, t0 = time.thread_time(), time.perf_counter()
            self.feeder.run(self.calls_per_block)
            dt, cpu = time.perf_counter() - t0, time.thread_time() - c0
        finally:
            if gc_was:
                gc.enable()
        self.samples.append(dt / self.calls_per_block * 1e6)
        self.cpu_samples.append(cpu / self.calls_per_block * 1e6)

    @property
    def us_per_call(self) -> float:
        return float(statistics.median(self.samples))

    @property
    def cpu_us_per_call(self) -> float:
        """The median CPU time of this thread per call: on a shared machine, the time spent waiting
        for a core is left out (cache and memory contention stay in)."""
        return float(statistics.median(self.cpu_samples))

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
    from .. import kernel

    info["kernel"] = "compiled" if kernel.COMPILED else "plain Python"
    info["blas_threads_env"] = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                           "MKL_NUM_THREADS") if k in os.environ}
    from ..threads import blas_threads

    info["blas_pools"] = blas_threads()  # live pools (threadpoolctl), after pinning
    for mod in ("onnxruntime", "ai_edge_litert", "river"):
        m = sys.modules.get(mod)
        if m is not None and getattr(m, "__version__", None):
            info[mod] = m.__version__
    return info


def _parse_counts(text: str, flag: str, most: int) -> list[int]:
    """Positive integers up to ``most`` separated by commas; ValueError with the flag's one-line complaint."""
    try:
        out = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        out = []
    if not out or min(out) < 1:
        raise ValueError(f"{flag} {text!r}: expected positive integers separated by commas")
    if max(out) > most:
        raise ValueError(f"{flag} {text!r}: each must be at most {most:,}")
    return out


def _backend_names(text: str, bundle) -> list[str]:
    """The backends --backend names ('all': every one the bundle lists an artifact for, or needs none)."""
    from ..backends import BACKEND_NAMES, backend_artifact

    if text == "all":
        return [n for n in BACKEND_NAMES if backend_artifact(n) is None or bundle.artifact_path(backend_artifact(n))]
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKEND_NAMES]
    if unknown or not names:
        raise ValueError(f"--backend {text!r}: unknown {', '.join(unknown) or 'name'}; choose from "
                         f"{', '.join(BACKEND_NAMES)} or all")
    return list(dict.fromkeys(names))


def _create_backends(text: str, bundle) -> tuple[dict, dict]:
    """({name: backend}, {name: why it cannot be loaded}). A backend named on its own that cannot be
    loaded raises (one line, exit 2); with 'all', one the bundle lists but that cannot be loaded (a
    corrupt artifact, its runtime not installed) is left out and said (one line each on stderr),
    the others run. ValueError / BackendUnavailable."""
    from ..backends import BackendUnavailable, create_backend

    backends, missing = {}, {}
    for name in _backend_names(text, bundle):
        try:
            backends[name] = create_backend(name, bundle)
        except (BackendUnavailable, ValueError) as exc:
            if text != "all":
                raise
            missing[name] = str(exc)
            print(f"edgernn bench: backend {name} left out: {exc}", file=sys.stderr, flush=True)
    if not backends:
        raise BackendUnavailable(f"no backend of model {bundle.name!r} can be loaded: "
                                 + "; ".join(f"{n}: {why}" for n, why in missing.items()))
    return backends, missing


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def state_bytes(store) -> float:
    """Bytes of every array the state store holds (slabs, hidden state, LRU ticks): its capacity x
    ``StateStore.bytes_per_stream``, the one definition."""
    return store.bytes_per_stream() * store.capacity


def warm_readings(det) -> int:
    """Readings per stream before the bench times it: past warm-up and settling, and past the
    level_settle wait of the level and spread looks (their statistics learn from warm-up / 2 on), so
    every look the detector runs is scored while it is timed; 16 more."""
    s = det.settings
    return int(max(det.warmup + s.settle, det.warmup // 2 + math.ceil(s.level_settle * s.fast_window))) + 16


def _detector_config(bundle, name: str, be, b: int, n_streams: int, values: np.ndarray) -> Config:
    """A Detector with ``n_streams`` live streams, every one past its warm-up (warmed in batches of
    up to 256 distinct streams: the same state as one at a time, faster), then a feeder at ``b``."""
    from ..detector import Detector
    from ..settings import resolve

    rss0 = rss_bytes()
    det = Detector(bundle, be, resolve(bundle, {"max_streams": n_streams}))  # the bundle's detector_defaults
    warm = warm_readings(det)  # readings per stream
    warm_batch = max(b, min(256, n_streams))
    _log(f"warming detector {name} batch {b}: {n_streams:,} streams x {warm} readings (batches of {warm_batch})")
    w = Feeder(det, warm_batch, values)
    w.run(warm * w.slices)
    grown = max(rss_bytes() - rss0, 0)
    cfg = Config("process", f"{name} B={b} N={n_streams}", Feeder(det, b, values, t0=warm), b, backend=name, batch=b)
    cfg.streams = n_streams
    cfg.bytes_per_stream = state_bytes(det.state) / n_streams
    cfg.rss_per_stream = grown / n_streams
    return cfg


def _build_configs(bundle, backends: dict, batches: list[int], stream_counts: list[int] | None) -> list[Config]:
    configs: list[Config] = []
    values_cache: dict[int, np.ndarray] = {}
    F = bundle.n_features
    for name, be in backends.items():
        for b in batches:
            for n in stream_counts or [b]:
                n -= n % b  # whole groups of distinct streams
                if n not in values_cache:
                    values_cache[n] = stream_values(n, F, cycle=cycle_for(n, F))
                configs.append(_detector_config(bundle, name, be, b, n, values_cache[n]))
            configs.append(Config("step", f"{name} step B={b}", StepFeeder(be, b), b, backend=name, batch=b))
    return configs


def _peer_configs(bundle, values: np.ndarray) -> list[Config]:
    try:
        import river  # noqa: F401
    except ImportError:
        _log("river is not installed: no HalfSpaceTrees comparison (pip install river)")
        return []
    out = []
    for scaler in (True, False):
        label = "river HalfSpaceTrees + MinMaxScaler" if scaler else "river HalfSpaceTrees (no scaler)"
        feeder = RiverFeeder(values, bundle.features, scaler)
        feeder.run(2000)  # past HST's first window (reference mass not built yet is a cheaper path)
        out.append(Config("peer", label, feeder, 1))
    return out


def _time_round_robin(configs: list[Config], seconds: float, rounds: int) -> None:
    block_s = seconds / rounds
    for cfg in configs:
        _calibrate_block(cfg, block_s)
    _log(f"timing {len(configs)} configurations x {rounds} rounds (~{len(configs) * rounds * block_s:.0f} s)")
    for r in range(rounds):
        order = configs if r % 2 == 0 else configs[::-1]  # alternate direction: no fixed neighbour
        for cfg in order:
            cfg.time_block()
        _log(f"round {r + 1}/{rounds} done")


def _tables(configs: list[Config]) -> tuple[list[dict], list[dict], list[dict]]:
    """(results, peers, scale) rows from the timed configurations."""
    results, peers, scale = [], [], []
    steps = {(c.backend, c.batch): c for c in configs if c.kind == "step"}
    for cfg in configs:
        if cfg.kind == "process":
            step = steps[(cfg.backend, cfg.batch)]
            per_reading = cfg.us_per_call / cfg.batch
            results.append({
                "backend": cfg.backend, "batch": cfg.batch, "us_per_reading": round(per_reading, 3),
                "cpu_us_per_reading": round(cfg.cpu_us_per_call / cfg.batch, 3),
                "us_per_step_call": round(step.us_per_call, 3),
                "gru_share": round(step.us_per_call / cfg.us_per_call, 3),
                "readings_per_s": round(1e6 / per_reading),
                "streams": cfg.streams, "spread": round(cfg.spread, 3),
                "events_during_timing": cfg.feeder.events,
                "readings_timed": cfg.calls_per_block * len(cfg.samples) * cfg.batch,
            })
            scale.append({"backend": cfg.backend, "batch": cfg.batch, "streams": cfg.streams,
                          "us_per_reading": round(per_reading, 3),
                          "cpu_us_per_reading": round(cfg.cpu_us_per_call / cfg.batch, 3),
                          "bytes_per_stream": round(cfg.bytes_per_stream, 1),
                          "rss_growth_per_stream": round(cfg.rss_per_stream, 1)})
        elif cfg.kind == "peer":
            peers.append({"name": cfg.label, "us_per_reading": round(cfg.us_per_call, 3),
                          "cpu_us_per_reading": round(cfg.cpu_us_per_call, 3), "spread": round(cfg.spread, 3)})
    return results, peers, scale


def run(args) -> int:
    from ..backends import BackendUnavailable
    from ..bundle import BundleError, load_bundle
    from ..threads import pin_blas

    blas = pin_blas()
    try:
        batches = _parse_counts(args.batch, "--batch", MAX_BATCH)
        stream_counts = _parse_counts(args.streams, "--streams", MAX_STREAMS) if args.streams is not None else None
    except ValueError as exc:
        return fail("bench", exc)
    problem = (number_problem("--seconds", args.seconds, gt=0, le=MAX_SECONDS)
               or number_problem("--rounds", args.rounds, ge=1, le=MAX_ROUNDS)
               or (args.json and output_problem("--json", args.json)))
    if problem:
        return fail("bench", problem)
    if stream_counts and min(stream_counts) < max(batches):
        return fail("bench", f"--streams {min(stream_counts)} is smaller than the largest batch ({max(batches)}): "
                             "every call needs distinct streams")
    try:
        bundle = load_bundle(resolve_model(args.model))
        backends, missing = _create_backends(args.backend, bundle)
    except (BundleError, BackendUnavailable, ValueError) as exc:
        return fail("bench", exc)
    _log(f"model {bundle.name} (F={bundle.n_features}, H={bundle.hidden}, warm-up {bundle.calibration.warmup}); "
         f"backends {', '.join(backends)}; batches {', '.join(map(str, batches))}"
         + (f"; streams {', '.join(f'{n:,}' for n in stream_counts)}" if stream_counts else "") + f"; BLAS: {blas}")

    # 1. backends: past onnxruntime's slow start (and any lazy allocation) at every batch size
    for name, be in backends.items():
        n = ONNX_WARMUP_CALLS if name.startswith("onnx") else OTHER_WARMUP_CALLS
        _log(f"warming {name}: {n} step calls")
        for b in batches:
            StepFeeder(be, b).run(max(1, n // len(batches)))
    # 2. configurations: detectors warmed past each stream's warm-up so the scoring path is timed
    configs = _build_configs(bundle, backends, batches, stream_counts)
    if not args.no_peers:
        smallest = min((c.feeder.values for c in configs if c.kind == "process"), key=len)
        configs += _peer_configs(bundle, smallest)
    # 3. round-robin timing, 4. report
    _time_round_robin(configs, args.seconds, args.rounds)
    results, peers, scale = _tables(configs)
    print(render(results, peers, bundle))
    if stream_counts:
        print()
        print(render_scale(scale))
    note = blas_note(results)
    if note:
        print(note)
    if missing:  # said on stderr when it was found; the table's reader is told here too
        print()
        for name, why in missing.items():
            print(f"missing: no {name} rows: the bundle lists it but it cannot be loaded: {why}")
    if args.json:
        info = {**machine_info(), "blas_pinning": blas}
        doc = {"model": {"name": bundle.name, "path": str(bundle.path), "features": bundle.n_features,
                         "hidden": bundle.hidden, "sha256": bundle.sha256},
               "settings": {"rounds": args.rounds, "seconds_per_config": args.seconds, "batches": batches,
                            "streams": stream_counts},
               "results": results, "peers": peers, "scale": scale, "missing_backends": missing, "machine": info}
        try:
            args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            return fail("bench", write_problem("--json", args.json, exc))
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


def render_scale(scale: list[dict]) -> str:
    lines = ["scale: the whole hot path with that many live streams (readings round-robin over all of them)", "",
             f"{'backend':12s} {'batch':>5s} {'streams':>9s} {'µs/reading':>11s} {'CPU µs/reading':>15s} "
             f"{'bytes/stream':>13s} {'RSS growth/stream':>18s}"]
    for r in scale:
        lines.append(f"{r['backend']:12s} {r['batch']:5d} {r['streams']:9,d} {r['us_per_reading']:11.2f} "
                     f"{r['cpu_us_per_reading']:15.2f} {r['bytes_per_stream']:13,.0f} {r['rss_growth_per_stream']:18,.0f}")
    lines += ["", "µs/reading = wall clock; CPU µs/reading = this thread's CPU time (leaves out waiting for a core on "
                  "a shared machine); medians of rounds",
              "bytes/stream = the state store's arrays (slabs + hidden state + LRU ticks) / streams; RSS growth = "
              "the process's resident memory gained while the detector was made and warmed / streams (also the "
              "stream-id dict and names)"]
    return "\n".join(lines)


def render(results: list[dict], peers: list[dict], bundle) -> str:
    from .. import kernel

    lines = [f"Detector.process, {bundle.name} (F={bundle.n_features}, H={bundle.hidden}): median of rounds; "
             f"kernel {'compiled' if kernel.COMPILED else 'plain Python (no C compiler at install)'}",
             "",
             f"{'backend':12s} {'batch':>5s} {'streams':>8s} {'µs/reading':>11s} {'readings/s':>11s} {'step µs/call':>13s} "
             f"{'GRU share':>9s} {'±':>5s} {'alerts':>6s}"]
    for r in results:
        lines.append(f"{r['backend']:12s} {r['batch']:5d} {r['streams']:8,d} {r['us_per_reading']:11.2f} {r['readings_per_s']:11,d} "
                     f"{r['us_per_step_call']:13.2f} {100 * r['gru_share']:8.0f}% {100 * r['spread']:4.0f}% "
                     f"{r['events_during_timing']:6d}")
    if peers:
        lines += ["", "peers (same values, one reading at a time):"]
        for p in peers:
            lines.append(f"  {p['name']:40s} {p['us_per_reading']:8.2f} µs/reading  ±{100 * p['spread']:.0f}%  "
                         f"(CPU {p['cpu_us_per_reading']:.2f})")
    lines += ["", "µs/reading = Detector.process per call / batch (normalise, score, looks, alerts, GRU step, "
                  "state gather/scatter);",
              "step µs/call = backend.step alone at that batch; ± = quartile half-range over rounds; alerts = "
              "events while timing"]
    return "\n".join(lines)
