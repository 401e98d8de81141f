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
"""

from __future__ import annotations

import numpy as np

FAULTS = ("spike", "dip", "level_shift", "drift", "stuck", "noise_burst", "lost_periodicity")
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


def inject(rng: np.random.Generator, values: np.ndarray, periodic: np.ndarray, kind: str, start: int, n_max: int | None = None):
    """Inject fault ``kind`` at ``start`` into a copy of ``values``. Returns (values, (kind, start, end))."""
    v = values.copy()
    n = len(v) if n_max is None else min(len(v), n_max)
    sd = float(np.std(values)) or 1.0
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
        v[start:end] += rng.standard_normal(end - start) * noise_sd * rng.uniform(6, 12)
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


def write_corpus(out_dir, series: int, length: int, seed: int) -> list:
    """Clean training recordings: ``series`` CSVs of ``length`` readings, kinds cycling."""
    from pathlib import Path

    from .recording import write_recording

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(series):
        kind = KINDS[i % len(KINDS)]
        values, _ = normal_signal(rng, length, kind)
        path = out / f"normal_{i:04d}_{kind}.csv"
        write_recording(path, values)
        paths.append(path)
    return paths


def write_faults(out_dir, per_fault: int, clean: int, length: int, seed: int) -> list:
    """Labelled test recordings: ``per_fault`` per fault kind plus ``clean`` fault-free ones.

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
        values, labels = recording(rng, length, fault, fault_at=rng.uniform(0.4, 0.8))
        name = f"{fault or 'clean'}_{k:03d}"
        write_recording(out / f"{name}.csv", values, start, step)
        paths.append(out / f"{name}.csv")
        rows += [(name, iso(a), iso(b - 1), kind) for kind, a, b in labels]
    with open(out / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["stream", "start", "end", "label"])
        w.writerows(rows)
    return paths


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m edgernn.synth", description="write synthetic sensor recordings")
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("corpus", help="clean training recordings")
    c.add_argument("--out", required=True)
    c.add_argument("--series", type=int, default=270)
    c.add_argument("--length", type=int, default=6000)
    c.add_argument("--seed", type=int, default=1)
    f = sub.add_parser("faults", help="labelled recordings with injected faults, plus clean ones")
    f.add_argument("--out", required=True)
    f.add_argument("--per-fault", type=int, default=20)
    f.add_argument("--clean", type=int, default=40)
    f.add_argument("--length", type=int, default=5000)
    f.add_argument("--seed", type=int, default=1000)
    a = p.parse_args(argv)
    if a.what == "corpus":
        paths = write_corpus(a.out, a.series, a.length, a.seed)
    else:
        paths = write_faults(a.out, a.per_fault, a.clean, a.length, a.seed)
    print(f"wrote {len(paths)} recordings to {a.out}")
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
