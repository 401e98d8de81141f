"""Synthetic sensor signals and injected faults, for training, tests, the demo and benchmarks.

Normal signals are varied on purpose (periodic, multi-periodic, random walks, steps of regime,
quantised, plain noise) at random offsets and scales, because the general-purpose ``univariate``
model is trained on them and must work on any single sensor after per-stream normalisation.

Faults are injected relative to the clean signal's standard deviation ``sd`` and return labels
``(kind, start, end)`` (end exclusive):

    spike       one reading +-(5..9) sd               dip          3-8 readings -(4..7) sd
    level_shift +-(2..4) sd from start on            drift        ramp to +-(3..5) sd over 150-400
    stuck       value frozen for 40-200 readings     noise_burst  noise x(6..12) for 30-120
    lost_periodicity   the periodic part vanishes for 150-400 readings (periodic signals only)

Every generator takes a ``numpy.random.Generator`` and is deterministic given its seed.

The broad corpus (``python -m edgernn.synth corpus --mix broad``, ``broad_signal``) adds what a
general-purpose model meets on real sensors: hard on/off duty cycles of any period (6-800 readings),
duty (5-95 %) and noise model (additive, multiplicative, level-dependent); multi-level and bimodal
signals; Poisson counts and bursty event rates; intermittent pulses; ADC-quantised slow signals;
slow and fast seasonality; trends; regime changes of mean and noise; Gaussian and heavy-tailed
random walks; plus the nine kinds above. ``--mix classic`` (the default) writes today's corpus,
unchanged.
"""

from __future__ import annotations

import math

import numpy as np

FAULTS = ("spike", "dip", "level_shift", "drift", "stuck", "noise_burst", "lost_periodicity")
FAULT_AT = (0.4, 0.8)  # where a fault starts, as fractions of the recording (drawn uniformly between)
FAULT_AT_BOUNDS = (0.05, 0.95)  # --fault-at's range: history before the fault, room after it
KINDS = ("sine", "two_sines", "random_walk", "ar1", "square", "sawtooth", "daily", "noise", "quantised")


def normal_signal(rng: np.random.Generator, n: int, kind: str | None = None):
    """One clean signal of ``n`` readings. Returns (values float64[n], periodic_part float64[n])."""
    kind = kind or KINDS[rng.integers(len(KINDS))]
    t = np.arange(n, dtype=np.float64)
    period = float(rng.uniform(16, 300))
    phase = rng.uniform(0, 2 * np.pi)
    noise = rng.uniform(0.02, 0.3)
    periodic = np.zeros(n)
    if kind == "sine":
        periodic = np.sin(2 * np.pi * t / period + phase)
        base = periodic
    elif kind == "two_sines":
        periodic = np.sin(2 * np.pi * t / period + phase) + rng.uniform(0.2, 0.6) * np.sin(2 * np.pi * t / (period / rng.uniform(2.5, 6)))
        base = periodic
    elif kind == "random_walk":
        base = np.cumsum(rng.standard_normal(n)) * rng.uniform(0.02, 0.08)
        noise *= 0.5
    elif kind == "ar1":
        phi = rng.uniform(0.8, 0.99)
        e = rng.standard_normal(n)
        base = np.empty(n)
        acc = 0.0
        for i in range(n):
            acc = phi * acc + e[i] * np.sqrt(1 - phi * phi)
            base[i] = acc
        noise *= 0.3
    elif kind == "square":
        periodic = np.tanh(4 * np.sin(2 * np.pi * t / period + phase))
        base = periodic
    elif kind == "sawtooth":  # slow fill, quick (not instant) drain over ~8 % of the period
        frac = (t / period + phase) % 1.0
        periodic = np.where(frac < 0.92, 2 * frac / 0.92 - 1, 1 - 2 * (frac - 0.92) / 0.08)
        base = periodic
    elif kind == "daily":
        periodic = np.sin(2 * np.pi * t / period + phase) + 0.5 * np.sin(4 * np.pi * t / period) + 0.3 * np.maximum(0, np.sin(2 * np.pi * t / period)) ** 4
        base = periodic
    elif kind == "noise":
        base = np.zeros(n)
        noise = 1.0
    elif kind == "quantised":
        base = np.sin(2 * np.pi * t / period + phase) * rng.uniform(2, 6)
        noise = 0.5
    else:
        raise ValueError(f"unknown signal kind {kind!r}")
    values = base + noise * rng.standard_normal(n)
    if kind == "quantised":
        values = np.round(values)
    scale = 10 ** rng.uniform(-1, 2)
    offset = rng.uniform(-100, 1000)
    return values * scale + offset, periodic * scale


def inject(rng: np.random.Generator, values: np.ndarray, periodic: np.ndarray, kind: str, start: int, n_max: int | None = None,
           sd: float | None = None):
    """Inject fault ``kind`` at ``start`` into a copy of ``values``. Returns (values, (kind, start, end)).
    Sizes are in units of ``sd``: the clean signal's standard deviation unless given (a smooth sensor's
    faults are sized by its noise, not by its slow swing)."""
    v = values.copy()
    n = len(v) if n_max is None else min(len(v), n_max)
    sd = (float(np.std(values)) or 1.0) if sd is None else float(sd)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    if kind == "spike":
        end = start + 1
        v[start] += sign * rng.uniform(5, 9) * sd
    elif kind == "dip":
        end = start + int(rng.integers(3, 9))
        v[start:end] -= rng.uniform(4, 7) * sd
    elif kind == "level_shift":
        end = n
        v[start:] += sign * rng.uniform(2, 4) * sd
    elif kind == "drift":
        ramp = int(rng.integers(150, 400))
        end = n
        size = sign * rng.uniform(3, 5) * sd
        k = np.arange(len(v) - start, dtype=np.float64)
        v[start:] += size * np.minimum(k / ramp, 1.0)
    elif kind == "stuck":
        end = start + int(rng.integers(40, 200))
        v[start:end] = v[start - 1]
    elif kind == "noise_burst":
        end = start + int(rng.integers(30, 120))
        diff = np.diff(values)
        noise_sd = float(np.std(diff)) / np.sqrt(2) or sd * 0.1
        burst = rng.standard_normal(end - start) * noise_sd * rng.uniform(6, 12)
        v[start:end] += burst[: len(v[start:end])]  # (a burst past the recording's end: its first part)
    elif kind == "lost_periodicity":
        end = start + int(rng.integers(150, 400))
        v[start:end] -= periodic[start:end]
    else:
        raise ValueError(f"unknown fault {kind!r}")
    return v, (kind, start, min(end, len(v)))


def recording(rng: np.random.Generator, n: int, fault: str | None, kind: str | None = None, fault_at: float = 0.6):
    """A clean signal with at most one fault at ``fault_at`` of its length. Returns (values, labels)."""
    if fault == "lost_periodicity" and kind is None:
        kind = ("sine", "two_sines", "square", "daily")[rng.integers(4)]
    values, periodic = normal_signal(rng, n, kind)
    if fault is None:
        return values, []
    start = int(n * fault_at)
    values, label = inject(rng, values, periodic, fault, start)
    return values, [label]



# -- the broad corpus (the general-purpose model's training set) ---------------------------------
# Each generator returns (shape float64[n], periodic float64[n]) in unit-ish scale; broad_signal puts
# it at a random scale and offset. None of them is used by the test sets of benchmarks/ (those have
# their own generators and seeds): a model trained here is measured on signals it never saw.
def _noisy(rng, level: np.ndarray) -> np.ndarray:
    """level float64[n] plus noise of one of three models: additive (constant sd), multiplicative
    (sd proportional to the level) or level-dependent (sd proportional to sqrt(level), shot-noise-like)."""
    e = rng.standard_normal(len(level))
    span = float(np.ptp(level)) or 1.0
    c = 10 ** rng.uniform(-2.3, -0.9)  # 0.005 .. 0.13 of the span
    model = int(rng.integers(3))
    if model == 0:
        return level + c * span * e
    if model == 1:
        return level * (1.0 + c * e)
    return level + c * np.sqrt(np.abs(level) * span) * e


def _dwell(rng, n: int, mean_len: np.ndarray, jitter: float) -> np.ndarray:
    """int[n] state index of a cycle through len(mean_len) states; stretch k lasts about
    mean_len[k] readings (relative jitter ``jitter``, at least 1)."""
    state, i, k = np.empty(n, dtype=np.int64), 0, int(rng.integers(len(mean_len)))
    while i < n:
        m = mean_len[k]
        length = max(1, int(round(m * (1.0 + jitter * rng.uniform(-1, 1)))))
        state[i:i + length] = k
        i, k = i + length, (k + 1) % len(mean_len)
    return state


def _duty(rng, n, t):
    """Hard on/off: period 6-800 readings, duty 5-95 %, regular or irregular stretches."""
    period, duty = 10 ** rng.uniform(0.8, 2.9), rng.uniform(0.05, 0.95)
    state = _dwell(rng, n, np.array([period * (1 - duty), period * duty]), rng.choice([0.0, 0.2, 0.9]))
    low = rng.choice([0.0, rng.uniform(0.0, 1.0)])
    levels = np.array([low, low + rng.uniform(0.5, 10.0)])
    return _noisy(rng, levels[state]), np.zeros(n)


def _multilevel(rng, n, t):
    """3-5 levels visited in a Markov chain (any order), dwell 3-400 readings."""
    k = int(rng.integers(3, 6))
    levels = np.sort(rng.uniform(0, 10, k))
    state, i = np.empty(n, dtype=np.int64), 0
    dwell = 10 ** rng.uniform(0.5, 2.6)
    while i < n:
        length = max(1, int(rng.exponential(dwell)))
        state[i:i + length] = rng.integers(k)
        i += length
    return _noisy(rng, levels[state]), np.zeros(n)


def _bimodal(rng, n, t):
    """Two clusters, readings flip between them every 1-10 readings (no long dwell)."""
    stay = rng.uniform(0.0, 0.9)  # probability of keeping the cluster (1 - stay) / 2 of a flip per reading
    state = np.cumsum((rng.random(n) > stay) & (rng.random(n) < 0.5)) % 2  # int[n] in {0, 1}
    return _noisy(rng, np.array([0.0, rng.uniform(2.0, 8.0)])[state]), np.zeros(n)


def _counts(rng, n, t):
    """Poisson counts, rate 0.2-60, optionally with a daily-like modulation."""
    rate = 10 ** rng.uniform(-0.7, 1.8)
    periodic = np.zeros(n)
    if rng.random() < 0.5:
        periodic = rate * rng.uniform(0.2, 0.9) * np.sin(2 * np.pi * t / rng.uniform(50, 1500) + rng.uniform(0, 6.3))
    return rng.poisson(np.maximum(rate + periodic, 0.0)).astype(np.float64), periodic


def _bursty(rng, n, t):
    """An event rate that idles and bursts (Markov-modulated Poisson: bursts 5-20x, 5-200 readings)."""
    base = 10 ** rng.uniform(-0.5, 1.0)
    state = _dwell(rng, n, np.array([10 ** rng.uniform(1.5, 3.0), 10 ** rng.uniform(0.7, 2.3)]), 0.9)
    rate = np.where(state == 1, base * rng.uniform(5, 20), base)
    return rng.poisson(rate).astype(np.float64), np.zeros(n)


def _intermittent(rng, n, t):
    """Mostly at rest (0 or a floor with tiny noise), with pulses of random height lasting 1-60 readings."""
    rest = np.zeros(n)
    i = int(rng.integers(0, 200))
    while i < n:
        length = int(rng.integers(1, 61))
        rest[i:i + length] = rng.uniform(1, 10) * (1 + 0.1 * rng.standard_normal(min(length, n - i)))
        i += length + int(rng.exponential(10 ** rng.uniform(1.3, 2.7)))
    return rest + rng.uniform(0, 0.02) * rng.standard_normal(n), np.zeros(n)


def _quantised(rng, n, t):
    """A slow signal read by a coarse ADC: 2-40 distinct steps over its range."""
    shape, periodic = _season(rng, n, t) if rng.random() < 0.5 else (np.cumsum(rng.standard_normal(n)) * 0.05, np.zeros(n))
    steps = 10 ** rng.uniform(0.3, 1.6)
    q = (float(np.ptp(shape)) or 1.0) / steps
    return np.round(shape / q), periodic / q


def _season(rng, n, t):
    """Slow (period 300-5000) or fast (4-40 readings) seasonality with 1-3 harmonics."""
    period = rng.uniform(300, 5000) if rng.random() < 0.5 else rng.uniform(4, 40)
    phase = rng.uniform(0, 2 * np.pi)
    periodic = sum(rng.uniform(0.1, 1.0) / h * np.sin(2 * np.pi * h * t / period + phase * h)
                   for h in range(1, int(rng.integers(2, 5))))
    return periodic + rng.uniform(0.01, 0.3) * rng.standard_normal(n), periodic


def _trend(rng, n, t):
    """A linear or slowly curving trend over the recording (up to 5x the noise per 1,000), maybe seasonal."""
    slope = rng.uniform(-5, 5) / 1000
    curve = rng.uniform(-3, 3) / n ** 2 if rng.random() < 0.5 else 0.0
    periodic = rng.uniform(0, 1) * np.sin(2 * np.pi * t / rng.uniform(30, 1000)) if rng.random() < 0.5 else np.zeros(n)
    return slope * t + curve * (t - n / 2) ** 2 + periodic + rng.standard_normal(n), periodic


def _regime(rng, n, t):
    """Piecewise: mean and noise level change together every 300-2000 readings."""
    out = np.empty(n)
    i = 0
    while i < n:
        length = int(rng.integers(300, 2001))
        m = min(length, n - i)
        out[i:i + m] = rng.uniform(-3, 3) + 10 ** rng.uniform(-1.3, 0) * rng.standard_normal(m)
        i += length
    return out, np.zeros(n)


def _walk(rng, n, t):
    """A random walk with Gaussian or heavy-tailed (Student t, 3 dof) steps, plus reading noise."""
    steps = rng.standard_normal(n) if rng.random() < 0.5 else rng.standard_t(3, n) * 0.6
    return np.cumsum(steps) * rng.uniform(0.02, 0.1) + rng.uniform(0.01, 0.2) * rng.standard_normal(n), np.zeros(n)


BROAD = {"duty": _duty, "multilevel": _multilevel, "bimodal": _bimodal, "counts": _counts, "bursty": _bursty,
         "intermittent": _intermittent, "adc": _quantised, "season": _season, "trend": _trend,
         "regime": _regime, "walk": _walk}
BROAD_KINDS = tuple(BROAD) + KINDS  # today's kinds are part of the broad corpus too
BROAD_WEIGHTS = {"duty": 3, "multilevel": 2}  # draws per cycle; the kinds the Gaussian head could not model


def broad_signal(rng: np.random.Generator, n: int, kind: str):
    """One clean signal of the broad corpus at a random scale (0.1-100) and offset (-100..1000; counts
    and event rates keep their non-negative integers). Returns (values float64[n], periodic float64[n])."""
    if kind in KINDS:
        return normal_signal(rng, n, kind)
    if kind not in BROAD:
        raise ValueError(f"unknown signal kind {kind!r}; broad kinds: {', '.join(BROAD_KINDS)}")
    shape, periodic = BROAD[kind](rng, n, np.arange(n, dtype=np.float64))
    if kind in ("counts", "bursty"):
        return shape, periodic
    scale, offset = 10 ** rng.uniform(-1, 2), rng.uniform(-100, 1000)
    return shape * scale + offset, periodic * scale


def broad_plan(series: int) -> list[str]:
    """The kind of each series of the broad corpus: a fixed cycle, duty cycles and multi-level
    signals drawn more often (BROAD_WEIGHTS)."""
    cycle = [k for k in BROAD_KINDS for _ in range(BROAD_WEIGHTS.get(k, 1))]
    return [cycle[i % len(cycle)] for i in range(series)]


def write_corpus(out_dir, series: int, length: int, seed: int, mix: str = "classic") -> list:
    """Clean training recordings: ``series`` CSVs of ``length`` readings. ``mix`` "classic": today's
    nine KINDS cycling (unchanged output); "broad": the broad corpus (broad_plan, broad_signal)."""
    from pathlib import Path

    from .recording import write_recording

    if mix not in ("classic", "broad"):
        raise ValueError(f"unknown corpus mix {mix!r} (classic or broad)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    kinds = broad_plan(series) if mix == "broad" else [KINDS[i % len(KINDS)] for i in range(series)]
    for i, kind in enumerate(kinds):
        values, _ = broad_signal(rng, length, kind) if mix == "broad" else normal_signal(rng, length, kind)
        path = out / f"normal_{i:04d}_{kind}.csv"
        write_recording(path, values)
        paths.append(path)
    return paths


def parse_fault_at(text: str) -> tuple[float, float]:
    """``--fault-at FROM,TO`` -> (FROM, TO): where faults start, as fractions of the recording, within
    FAULT_AT_BOUNDS and FROM <= TO. ValueError with a one-line reason otherwise."""
    parts = [t.strip() for t in str(text).split(",")]
    try:
        lo, hi = (float(parts[0]), float(parts[-1])) if len(parts) in (1, 2) else (math.nan, math.nan)
    except ValueError:
        lo = hi = math.nan
    a, b = FAULT_AT_BOUNDS
    if not (a <= lo <= hi <= b):
        raise ValueError(f"--fault-at must be FROM,TO with {a} <= FROM <= TO <= {b}, fractions of --length "
                         f"(got {text!r}; e.g. 0.2,0.3: faults soon after a young stream's warm-up)")
    return lo, hi


def write_faults(out_dir, per_fault: int, clean: int, length: int, seed: int, fault_at=FAULT_AT) -> list:
    """Labelled test recordings: ``per_fault`` per fault kind plus ``clean`` fault-free ones, each
    fault starting at a fraction of the length drawn uniformly from ``fault_at`` (FROM, TO).

    Writes ``<name>.csv`` and ``labels.csv`` (stream,start,end,kind with ISO timestamps)."""
    import csv
    from datetime import datetime, timezone
    from pathlib import Path

    from .recording import write_recording

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    start, step = 1.7e9, 60.0
    iso = lambda i: datetime.fromtimestamp(start + i * step, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows, paths = [], []
    plan = [(f, k) for f in FAULTS for k in range(per_fault)] + [(None, k) for k in range(clean)]
    for fault, k in plan:
        values, labels = recording(rng, length, fault, fault_at=rng.uniform(*fault_at))
        name = f"{fault or 'clean'}_{k:03d}"
        write_recording(out / f"{name}.csv", values, start, step)
        paths.append(out / f"{name}.csv")
        rows += [(name, iso(a), iso(b - 1), kind) for kind, a, b in labels]
    with open(out / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["stream", "start", "end", "label"])
        w.writerows(rows)
    return paths


# bounds of the command line's counts: every series is held in memory while written (--length
# 99,999,999,999 was a MemoryError), and a faults recording needs room after its fault (its start
# at 40-80 % of the recording, a noise burst lasting up to 120 readings: --length 10 was a traceback)
MAX_SERIES = 100_000
MAX_LENGTH = 10_000_000
MIN_FAULTS_LENGTH = 600

EPILOG = """\
examples:
  python -m edgernn.synth corpus --out corpus --series 27 --length 6000
  python -m edgernn.synth faults --out faults --per-fault 2 --clean 4
  python -m edgernn.synth faults --out young --per-fault 2 --clean 4 --length 1500 --fault-at 0.2,0.3
"""


def _parser():
    import argparse

    p = argparse.ArgumentParser(prog="python -m edgernn.synth", description="write synthetic sensor recordings "
                                "(one CSV of timestamp,value per series, one reading a minute)",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("corpus", help="clean training recordings",
                       description="clean training recordings: normal_NNNN_KIND.csv, the kinds in turn")
    c.add_argument("--out", required=True, help="directory to write to (made when missing)")
    c.add_argument("--series", type=int, default=270, help=f"recordings (default: %(default)s; at most {MAX_SERIES:,})")
    c.add_argument("--length", type=int, default=6000,
                   help=f"readings per recording (default: %(default)s; at most {MAX_LENGTH:,})")
    c.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    c.add_argument("--mix", choices=("classic", "broad"), default="classic",
                   help="classic: the nine kinds the shipped univariate model was trained on; broad: "
                        "those plus hard duty cycles, multi-level, bimodal, counts, bursty rates, "
                        "intermittent, ADC-quantised, slow/fast seasons, trends, regimes, walks (default: classic)")
    f = sub.add_parser("faults", help="labelled recordings with injected faults, plus clean ones",
                       description="labelled recordings: KIND_NNN.csv with one injected fault each, clean_NNN.csv, "
                                   "and labels.csv (stream,start,end,label)")
    f.add_argument("--out", required=True, help="directory to write to (made when missing)")
    f.add_argument("--per-fault", type=int, default=20,
                   help=f"recordings per fault kind ({len(FAULTS)} kinds; default: %(default)s)")
    f.add_argument("--clean", type=int, default=40, help="fault-free recordings (default: %(default)s)")
    f.add_argument("--length", type=int, default=5000,
                   help=f"readings per recording (default: %(default)s; {MIN_FAULTS_LENGTH} to {MAX_LENGTH:,})")
    f.add_argument("--seed", type=int, default=1000, help="random seed (default: %(default)s)")
    f.add_argument("--fault-at", default=",".join(map(str, FAULT_AT)), metavar="FROM,TO",
                   help="each fault starts at a fraction of the recording drawn between FROM and TO "
                        "(default: %(default)s; 0.2,0.3 with --length 1500: 40-190 readings after the "
                        "univariate model's warm-up, where a young stream's statistics are youngest)")
    return p


def _problem(a) -> str | None:
    """One line naming the first option out of range (or an --out that cannot be a directory), or None."""
    from pathlib import Path

    from .commands.common import number_problem

    if a.what == "corpus":
        counts = [("--series", a.series, 1, MAX_SERIES), ("--length", a.length, 1, MAX_LENGTH)]
    else:
        counts = [("--per-fault", a.per_fault, 0, MAX_SERIES), ("--clean", a.clean, 0, MAX_SERIES),
                  ("--length", a.length, MIN_FAULTS_LENGTH, MAX_LENGTH)]
    problem = next(filter(None, (number_problem(flag, v, ge=lo, le=hi) for flag, v, lo, hi in counts)), None)
    problem = problem or number_problem("--seed", a.seed, ge=0)
    if problem is None and a.what == "faults":
        try:
            a.fault_at = parse_fault_at(a.fault_at)
        except ValueError as exc:
            problem = str(exc)
    if problem is None and a.what == "faults" and a.per_fault + a.clean == 0:
        problem = "--per-fault 0 and --clean 0: no recordings to write"
    if problem is None and not a.out:
        problem = "--out is empty: give a directory"  # ('' wrote into the working directory)
    if problem is None and Path(a.out).exists() and not Path(a.out).is_dir():
        problem = f"--out {a.out}: not a directory"
    return problem


def main(argv=None) -> int:
    import sys

    a = _parser().parse_args(argv)
    where = f"python -m edgernn.synth {a.what}"
    problem = _problem(a)
    if problem:
        print(f"{where}: {problem}", file=sys.stderr)
        return 2
    try:
        if a.what == "corpus":
            paths = write_corpus(a.out, a.series, a.length, a.seed, a.mix)
        else:
            paths = write_faults(a.out, a.per_fault, a.clean, a.length, a.seed, a.fault_at)
    except OSError as exc:  # a directory that cannot be made or written, a full disk
        print(f"{where}: --out {a.out}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:  # (a traceback when stdout was a full disk or a closed pipe: `... | true`)
        print(f"wrote {len(paths)} recordings to {a.out}", flush=True)
    except OSError as exc:
        from .cli import silence_stdout

        silence_stdout(sys.stdout)  # the exit's flush fails no more
        if isinstance(exc, BrokenPipeError):
            return 0
        print(f"{where}: cannot write to standard output: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def demo_recording(seed: int = 7, n: int = 5000):
    """The bundled demo: one daily-pattern sensor with a spike, a stuck period, a noise burst and
    a level shift. Returns (values, labels)."""
    rng = np.random.default_rng(seed)
    values, periodic = normal_signal(rng, n, "daily")
    labels = []
    for kind, at in (("spike", 1500), ("stuck", 2500), ("noise_burst", 3300), ("level_shift", 4200)):
        values, label = inject(rng, values, periodic, kind, at)
        labels.append(label)
    return values, labels
