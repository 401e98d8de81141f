"""Detection quality of a model on synthetic recordings it never saw, beside the persistence
baseline (last value, running variance) in the same run.

Two labelled sets (CSV recordings + labels.csv: stream,start,end,label):

    python -m edgernn.synth faults --out /tmp/faults           soft signals (sines, walks, tanh squares...)
    python benchmarks/quality_synthetic.py duty --out /tmp/duty
        hard on/off duty cycles (compressor, pump, heater: two levels, hard edges every 30-240
        readings, additive or multiplicative noise), clean and with injected faults
    python benchmarks/quality_synthetic.py duty7 --out /tmp/duty7
        the same with all seven faults of edgernn.synth: lost periodicity takes the on/off part away,
        so the signal sits at the middle of its two levels (a third level) for 150-400 readings
    python benchmarks/quality_synthetic.py duty0 --out /tmp/duty0
        the duty set's signals with an off level that reads an exact 0 (a meter that reads 0 W when the
        load is off: each off stretch a run of exact repeats) and multiplicative noise when on
    python benchmarks/quality_synthetic.py counts --out /tmp/counts
        counts and server-metric-like streams (Poisson counts, bursty rates, random walks,
        intermittent pulses), clean and with spikes, dips, level shifts, noise bursts
    python benchmarks/quality_synthetic.py quantised --out /tmp/quant
        slow sensors quantised to their resolution (a room temperature in 0.1 degree steps: one value
        for tens to thousands of readings, then a tick), clean and with the duty set's six faults
    python benchmarks/quality_synthetic.py smooth --out /tmp/smooth
        smooth sensors whose slow swing (a daily cycle and weather) is 10-100x their noise, with faults
        sized by the noise (spikes of 10-18 noise sd) that stay inside the swing
    python benchmarks/quality_synthetic.py sensors --out /tmp/sensors
        pressure-, temperature- and humidity-like sensors at their usual values, a daily swing large
        beside the noise; spikes and dips sized by the noise
    python benchmarks/quality_synthetic.py iot --out /tmp/iot
        the same sensors with all seven faults of edgernn.synth (lost periodicity: the daily swing
        vanishes), sized as that module sizes them, by the clean recording's sd
    (each: --length 1500 --fault-at 0.2,0.3 puts the faults 40-190 readings after the univariate
    model's warm-up, where what a young stream has learned is youngest; default 0.4,0.8)

    python benchmarks/quality_synthetic.py run /tmp/faults /tmp/duty --model firmware_models/univariate \\
        --json quality.json          ("run" may be left out: python benchmarks/quality_synthetic.py /tmp/faults)
    python benchmarks/quality_synthetic.py run /tmp/faults --backend numpy,onnx-int8,tflite-int8 --json art.json
        artifacts against the first backend: raised alerts with no counterpart within 3 readings

An injected event counts as detected when an alert is raised between its start and its end plus
``--grace`` readings (level shifts and drifts last to the end: anywhere after the start). A false
alert is one raised on a clean recording, or before the fault starts on a faulty one; the rate is
per 10,000 scored clean readings. "... by chance" is how many events alerts raised at that false
rate alone would be expected to land in (chance_catches): a recall near it is no detection. Every
recording is its own stream of one detector run (``edgernn.drive``: the same outputs as a fresh
detector per file, batched).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from edgernn.backends import BASELINE, create_backend
from edgernn.bundle import load_bundle
from edgernn.detector import Detector
from edgernn.settings import resolve
from edgernn.drive import Feed, drive
from edgernn.evaluate.events import chance_catches
from edgernn.recording import parse_timestamp, read_recording
from edgernn.synth import FAULT_AT, FAULTS, inject, parse_fault_at

DUTY_FAULTS = ("spike", "dip", "level_shift", "drift", "stuck", "noise_burst")
COUNT_FAULTS = ("spike", "dip", "level_shift", "noise_burst")
COUNT_KINDS = ("counts", "bursty", "walk", "intermittent")  # edgernn.synth.BROAD kinds
QUANT_FAULTS = SMOOTH_FAULTS = DUTY_FAULTS  # the quantised and smooth sets: the duty set's six
SENSOR_FAULTS = ("spike", "dip")  # the sensors set: single readings off a smooth sensor
IOT_FAULTS = DUTY7_FAULTS = FAULTS  # the iot and duty7 sets: edgernn.synth's seven, lost periodicity included
QUANT_KINDS = ("sine", "walk", "daily")


# -- hard on/off duty cycles ------------------------------------------------------------------------
def duty_parts(rng: np.random.Generator, n: int, noise_model: str,
               off_zero: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(float64[n] readings, float64[n] noise-free level): two levels with hard edges, each on / off
    stretch 30-240 readings long.

    additive: level + c * (high - low) * N(0, 1); multiplicative: level * (1 + c * N(0, 1)) (a
    power draw whose noise grows with the load), c in [0.01, 0.08]. ``off_zero``: the off level is 0
    (the same draws), so with multiplicative noise it reads an exact 0 (a meter that reads 0 W when
    the load is off)."""
    low = 10 ** rng.uniform(-0.5, 2.0)  # idle draw
    high = low * rng.uniform(2.0, 12.0)  # running draw
    off = 0.0 if off_zero else low
    level = np.empty(n)
    on, i = bool(rng.integers(2)), 0
    while i < n:
        k = int(rng.integers(30, 241))
        level[i:i + k] = high if on else off
        i, on = i + k, not on
    c = rng.uniform(0.01, 0.08)
    e = rng.standard_normal(n)
    if noise_model == "multiplicative":
        return level * (1.0 + c * e), level
    return level + c * (high - low) * e, level


def duty_signal(rng: np.random.Generator, n: int, noise_model: str) -> np.ndarray:
    """float64[n]: duty_parts' readings."""
    return duty_parts(rng, n, noise_model)[0]


def write_duty(out_dir: Path, per_fault: int = 20, clean: int = 40, length: int = 5000, seed: int = 2000,
               fault_at=FAULT_AT) -> int:
    """Write ``clean`` fault-free and ``per_fault`` faulty duty-cycle recordings per fault kind,
    noise models alternating, and labels.csv. Returns the number of recordings."""
    return write_set(out_dir, lambda rng, j: (f"duty_{('additive', 'multiplicative')[j % 2][:4]}",
                                              duty_signal(rng, length, ("additive", "multiplicative")[j % 2])),
                     DUTY_FAULTS, per_fault, clean, length, seed, fault_at)


def write_duty7(out_dir: Path, per_fault: int = 20, clean: int = 40, length: int = 5000, seed: int = 2100,
                fault_at=FAULT_AT) -> int:
    """The duty-cycle set with all seven faults of edgernn.synth (DUTY7_FAULTS): lost periodicity takes
    the on/off part away (the level about its middle), so the signal sits at a third level, the
    middle of its two, for 150-400 readings (on a multiplicative stream its noise still follows the
    hidden cycle). ``length`` at least 500. Returns the number of recordings."""
    if length < 500:
        raise ValueError(f"--length {length} is too short; at least 500 readings, so that every "
                         "signal switches (an on / off stretch is up to 240 readings)")

    def signal(rng, j):
        model = ("additive", "multiplicative")[j % 2]
        x, level = duty_parts(rng, length, model)
        return f"duty_{model[:4]}", x, None, level - (level.max() + level.min()) / 2

    return write_set(out_dir, signal, DUTY7_FAULTS, per_fault, clean, length, seed, fault_at)


def write_duty0(out_dir: Path, per_fault: int = 20, clean: int = 40, length: int = 5000, seed: int = 2200,
                fault_at=FAULT_AT) -> int:
    """The duty-cycle set's signals with an off level that reads an exact 0 (duty_parts' off_zero) and
    multiplicative noise on the on level: each off stretch is a run of 30-240 exact repeats, which is
    normal for such a meter. The duty set's six faults. Returns the number of recordings."""
    return write_set(out_dir, lambda rng, j: ("duty_zero", duty_parts(rng, length, "multiplicative", off_zero=True)[0]),
                     DUTY_FAULTS, per_fault, clean, length, seed, fault_at)


def write_counts(out_dir: Path, per_fault: int = 20, clean: int = 40, length: int = 5000, seed: int = 3000,
                 fault_at=FAULT_AT) -> int:
    """The same for counts-like and server-metric-like streams (edgernn.synth's broad kinds, cycling:
    Poisson counts, bursty event rates, random walks, intermittent pulses; NAB's tweet counts and
    server metrics are of these shapes), faults COUNT_FAULTS. Returns the number of recordings."""
    from edgernn.synth import broad_signal

    return write_set(out_dir, lambda rng, j: (COUNT_KINDS[j % 4], broad_signal(rng, length, COUNT_KINDS[j % 4])[0]),
                     COUNT_FAULTS, per_fault, clean, length, seed, fault_at)


# -- slow sensors quantised to their resolution ----------------------------------------------------
def quantised_signal(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """float64[n]: a slow signal read by a sensor with a resolution (a room temperature in 0.1 degree
    steps, a humidity in 1 % steps, a pressure in 0.1 hPa): it sits on one value for tens to
    thousands of readings, then ticks. A slow sine (period 1,500-8,000 readings), a smoothed random
    walk, or a daily cycle (1,440 readings), 1-8 resolutions tall, at an offset of 5-1,000
    resolutions, plus noise of 0.1-0.4 resolution, rounded to the resolution (10^-3..1)."""
    res = 10 ** rng.uniform(-3.0, 0.0)
    amp = rng.uniform(1.0, 8.0) * res
    t = np.arange(n)
    if kind == "sine":
        slow = np.sin(2 * np.pi * t / rng.uniform(1500, 8000) + rng.uniform(0, 2 * np.pi))
    elif kind == "walk":
        w = np.cumsum(rng.standard_normal(n))
        w = np.convolve(w, np.ones(200) / 200, mode="same")
        slow = (w - w.mean()) / (np.ptp(w) / 2 or 1.0)
    else:
        slow = np.sin(2 * np.pi * t / 1440.0 + rng.uniform(0, 2 * np.pi))
    x = 10 ** rng.uniform(0.7, 3.0) * res + amp * slow + rng.uniform(0.1, 0.4) * res * rng.standard_normal(n)
    return np.round(x / res) * res


def write_quantised(out_dir: Path, per_fault: int = 20, clean: int = 40, length: int = 5000, seed: int = 4000,
                    fault_at=FAULT_AT) -> int:
    """The same for slow quantised sensors (quantised_signal, kinds cycling), faults QUANT_FAULTS.
    Returns the number of recordings."""
    return write_set(out_dir, lambda rng, j: (f"quant_{QUANT_KINDS[j % 3]}", quantised_signal(rng, length, QUANT_KINDS[j % 3])),
                     QUANT_FAULTS, per_fault, clean, length, seed, fault_at)


# -- smooth sensors with a large slow swing ----------------------------------------------------------
def _weather(rng: np.random.Generator, n: int) -> np.ndarray:
    """float64[n]: a random walk smoothed over 300 readings, to zero mean and unit sd (the weather's
    slow drift under a smooth sensor's daily cycle)."""
    walk = np.convolve(np.cumsum(rng.standard_normal(n)), np.ones(300) / 300, mode="same")
    return (walk - walk.mean()) / (np.std(walk) or 1.0)


def smooth_signal(rng: np.random.Generator, n: int) -> tuple[np.ndarray, float]:
    """(float64[n], fault scale): a sensor whose slow swing is 10-100x its noise (a pressure or a
    temperature with a daily cycle and a slow drift of the weather), at an offset of 1-100 swings.
    The fault scale is twice the noise sd: spikes of 10-18 noise sd, dips of 8-14, level shifts
    of 4-8 (edgernn.synth.inject's sizes), all inside the slow swing."""
    noise = 10 ** rng.uniform(-2.0, 0.0)
    swing = noise * 10 ** rng.uniform(1.0, 2.0)
    t = np.arange(n)
    walk = _weather(rng, n)
    slow = np.sin(2 * np.pi * t / 1440.0 + rng.uniform(0, 2 * np.pi)) + 0.5 * walk
    x = swing * 10 ** rng.uniform(0.0, 2.0) + swing * slow + noise * rng.standard_normal(n)
    return x, 2.0 * noise


def write_smooth(out_dir: Path, per_fault: int = 20, clean: int = 40, length: int = 5000, seed: int = 5000,
                 fault_at=FAULT_AT) -> int:
    """The same for smooth sensors with a large slow swing (smooth_signal), faults SMOOTH_FAULTS sized
    by the noise. Returns the number of recordings."""
    return write_set(out_dir, lambda rng, j: ("smooth", *smooth_signal(rng, length)), SMOOTH_FAULTS, per_fault, clean,
                     length, seed, fault_at)


def sensor_parts(rng: np.random.Generator, j: int, n: int) -> tuple[str, np.ndarray, float, np.ndarray]:
    """(kind, float64[n], noise sd, daily part float64[n]) of the j-th pressure / temperature /
    humidity recording (sensor_signal's, whose draws these are)."""
    t = np.arange(n)
    day = np.sin(2 * np.pi * t / 1440.0 + rng.uniform(0, 2 * np.pi))
    if j % 3 == 0:
        kind, noise = "pressure", 10 ** rng.uniform(-2.0, -0.7)
        base = 1013 + rng.uniform(-15, 15)
        day = rng.uniform(0.5, 3) * day
        x = base + day
    elif j % 3 == 1:
        kind, noise = "temperature", 10 ** rng.uniform(-2.3, -1.0)
        base, day, walk_sd = rng.uniform(15, 25), rng.uniform(1, 5) * day, rng.uniform(0.3, 2)
        x = base + day + walk_sd * _weather(rng, n)
    else:
        kind, noise = "humidity", 10 ** rng.uniform(-1.3, -0.3)
        base, day = rng.uniform(40, 70), rng.uniform(3, 15) * day
        x = base + day
    return kind, x + noise * rng.standard_normal(n), noise, day


def sensor_signal(rng: np.random.Generator, j: int, n: int) -> tuple[str, np.ndarray, float]:
    """(kind, float64[n], fault scale) of the sensors set's j-th recording, its kind by j % 3: a
    pressure (1013 +- 15 hPa, a daily swing of 0.5-3, noise 10^U(-2, -0.7)), a temperature (15-25, a
    daily swing of 1-5 and a smoothed walk of 0.3-2, noise 10^U(-2.3, -1)) or a humidity (40-70 %, a
    daily swing of 3-15, noise 10^U(-1.3, -0.3)); readings a minute apart, so a day is 1,440. The
    fault scale is twice the noise sd (spikes of 10-18 noise sd, dips of 8-14: inside the swing)."""
    kind, x, noise, _ = sensor_parts(rng, j, n)
    return kind, x, 2.0 * noise


def write_sensors(out_dir: Path, per_fault: int = 20, clean: int = 40, length: int = 5000, seed: int = 6000,
                  fault_at=FAULT_AT) -> int:
    """The same for pressure-, temperature- and humidity-like sensors (sensor_signal), spikes and dips
    sized by the noise (SENSOR_FAULTS). Returns the number of recordings."""
    return write_set(out_dir, lambda rng, j: sensor_signal(rng, j, length), SENSOR_FAULTS, per_fault, clean,
                     length, seed, fault_at)


def write_iot(out_dir: Path, per_fault: int = 20, clean: int = 40, length: int = 5000, seed: int = 8000,
              fault_at=FAULT_AT) -> int:
    """The same pressure / temperature / humidity sensors with every fault of edgernn.synth (IOT_FAULTS,
    lost periodicity: the daily swing vanishes), sized as that module sizes them: by the clean
    recording's sd, swing included. Returns the number of recordings."""
    def signal(rng, j):
        kind, x, _, day = sensor_parts(rng, j, length)
        return kind, x, None, day

    return write_set(out_dir, signal, IOT_FAULTS, per_fault, clean, length, seed, fault_at)


def write_set(out_dir: Path, signal, faults, per_fault: int, clean: int, length: int, seed: int,
              fault_at=FAULT_AT) -> int:
    """``clean`` fault-free and ``per_fault`` faulty recordings per fault of ``faults`` (signal(rng, j)
    -> (name prefix, float64[length][, fault scale or None[, periodic part float64[length]]]) for the
    j-th recording: faults sized by that scale, else by the clean signal's sd; lost periodicity takes
    the periodic part away; each fault starting at a fraction of the length drawn from
    ``fault_at``), readings every 60 s, and labels.csv."""
    from datetime import datetime, timezone

    from edgernn.recording import write_recording

    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t0, step = 1.7e9, 60.0
    iso = lambda i: datetime.fromtimestamp(t0 + i * step, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    rows, plan = [], [(f, k) for f in faults for k in range(per_fault)] + [(None, k) for k in range(clean)]
    for j, (fault, k) in enumerate(plan):
        prefix, values, *extra = signal(rng, j)
        name = f"{prefix}_{fault or 'clean'}_{k:03d}"
        if fault is not None:
            periodic = extra[1] if len(extra) > 1 else np.zeros(length)
            values, (kind, a, b) = inject(rng, values, periodic, fault, int(length * rng.uniform(*fault_at)),
                                          sd=extra[0] if extra else None)
            rows.append((name, iso(a), iso(b - 1), kind))
        write_recording(out_dir / f"{name}.csv", values, t0, step)
    with open(out_dir / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["stream", "start", "end", "label"])
        w.writerows(rows)
    return len(plan)


# -- scoring ----------------------------------------------------------------------------------------
def load_set(data_dir: Path, features) -> tuple[list, dict]:
    """([(stream, ts, x), ...], {stream: [(label, start_ts, end_ts)]}) of a labelled directory."""
    labels = defaultdict(list)
    with open(data_dir / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            labels[row["stream"]].append((row["label"], parse_timestamp(row["start"]), parse_timestamp(row["end"])))
    recs = []
    for path in sorted(data_dir.glob("*.csv")):
        if path.name != "labels.csv":
            rec = read_recording(path, features)
            recs.append((path.stem, rec.ts, rec.x))
    return recs, dict(labels)


def evaluate(recs: list, labels: dict, bundle, backend: str, grace: int = 50, threshold=None, settings=None) -> dict:
    """Recall per fault kind and false alerts of one backend on a labelled set (``settings``: detector
    settings over the bundle's); "false" lists each false alert as (stream, reading index, look)."""
    settings = {**(settings or {}), "max_streams": max(len(recs), 1), **({} if threshold is None else {"threshold": threshold})}
    det = Detector(bundle, create_backend(backend, bundle), resolve(bundle, settings))  # with the model's detector_defaults
    feed = Feed.from_recordings(recs, chunk=256)
    out = drive(det, feed, progress=None, label=f"{backend}")
    per_kind = defaultdict(lambda: [0, 0])  # kind -> [detected, total]
    delays, windows = defaultdict(list), defaultdict(list)  # kind -> delays; scored readings an alert counts in
    raised_by, raised_at, looks = defaultdict(list), defaultdict(list), defaultdict(list)  # stream -> timestamps, feed rows, looks
    for e in out.events:
        if e.kind == "raised":
            raised_by[e.stream].append(e.ts)
            raised_at[e.stream].append(e.position)
            looks[e.stream].append(e.reason)
    clean_readings = readings = 0
    false = []  # (stream, reading index, look) of each false alert
    for (stream, ts, _), rows in zip(recs, feed.rows_of):
        labs = labels.get(stream, [])
        first = min((a for _, a, _ in labs), default=np.inf)
        scored = np.isfinite(out.score[rows])
        step = ts[1] - ts[0]
        readings += int(scored.sum())
        clean_readings += int((scored & (ts < first)).sum())
        false += [(stream, int(np.searchsorted(ts, t)), look) for t, look in zip(raised_by[stream], looks[stream]) if t < first]
        for kind, a, b in labs:
            hits = [t for t in raised_by[stream] if a <= t <= b + grace * step]
            windows[kind].append(int((scored & (ts >= a) & (ts <= b + grace * step)).sum()))
            per_kind[kind][1] += 1
            if hits:
                per_kind[kind][0] += 1
                delays[kind].append((hits[0] - a) / step)
    hit, total = sum(v[0] for v in per_kind.values()), sum(v[1] for v in per_kind.values())
    rate = len(false) / max(clean_readings, 1)  # false alerts per clean scored reading
    return {"backend": backend, "threshold": det.threshold,
            "per_kind": {k: {"detected": v[0], "events": v[1], "recall": v[0] / v[1],
                             "median_delay_readings": float(np.median(delays[k])) if delays[k] else None,
                             "by_chance": chance_catches(rate, windows[k])}
                         for k, v in sorted(per_kind.items())},
            "by_chance": chance_catches(rate, [w for k in windows for w in windows[k]]),
            "recall": hit / max(total, 1), "events": total, "detected": hit, "false_alerts": len(false),
            "clean_readings": clean_readings, "readings": readings,
            "false_alerts_per_10k": len(false) / max(clean_readings, 1) * 1e4,
            "raised_at": {k: sorted(v) for k, v in raised_at.items()}, "false": false}


def alert_difference(a: dict, b: dict, slack: int = 3) -> int:
    """Raised alerts in one run with no raised alert within +-slack readings in the other."""
    diff = 0
    for name in set(a) | set(b):
        pa, pb = np.array(a.get(name, [])), np.array(b.get(name, []))
        for p, q in ((pa, pb), (pb, pa)):
            diff += sum(1 for v in p if not (q.size and np.min(np.abs(q - v)) <= slack))
    return diff


def artifact_rows(runs: list[dict]) -> list[dict]:
    """Per backend: recall, false alerts, alerts raised and how many differ from the first backend's."""
    rows = []
    for r in runs:
        diff = alert_difference(runs[0]["raised_at"], r["raised_at"])
        rows.append({"backend": r["backend"], "recall": r["recall"], "false_alerts_per_10k": r["false_alerts_per_10k"],
                     "alerts": sum(len(v) for v in r["raised_at"].values()), "differ_from_reference": diff,
                     "differ_per_10k": diff / max(r["readings"], 1) * 1e4})
    return rows


def render(name: str, runs: list[dict]) -> str:
    """One table per set: recall per fault kind and false alerts, one column pair per backend."""
    head = f"{name}: " + ", ".join(f"{r['backend']}" for r in runs)
    lines = [head, f"{'fault':18s}" + "".join(f" {r['backend'][:12]:>12s} {'recall':>7s}" for r in runs)]
    for k in runs[0]["per_kind"]:
        cells = "".join(f" {r['per_kind'][k]['detected']:>5d}/{r['per_kind'][k]['events']:<6d} "
                        f"{r['per_kind'][k]['recall']:7.0%}" for r in runs)
        lines.append(f"{k:18s}{cells}")
    lines.append(f"{'all events':18s}" + "".join(f" {r['detected']:>5d}/{r['events']:<6d} {r['recall']:7.0%}"
                                                 for r in runs))
    lines.append(f"{'... by chance':18s}" + "".join(f" {r['by_chance']:>12.1f} {r['by_chance'] / max(r['events'], 1):7.0%}"
                                                    for r in runs))
    lines.append(f"{'false / 10k clean':18s}" + "".join(f" {r['false_alerts']:>12d} {r['false_alerts_per_10k']:7.2f}"
                                                        for r in runs))
    if len(runs) == 2:
        g, b = runs
        lines.append(f"margin {g['backend']} - {b['backend']}: recall {100 * (g['recall'] - b['recall']):+.1f} points, "
                     f"false alerts {g['false_alerts_per_10k'] - b['false_alerts_per_10k']:+.2f} per 10k "
                     f"(clean readings: {g['clean_readings']:,})")
    return "\n".join(lines)


# the sets this script writes: command -> (writer, what it is, default seed)
WRITERS = {"duty": (write_duty, "the on/off duty-cycle set", 2000),
           "duty7": (write_duty7, "the on/off duty-cycle set with all seven faults (lost periodicity: a third level)", 2100),
           "duty0": (write_duty0, "the on/off duty-cycle set with an off level that reads an exact 0", 2200),
           "counts": (write_counts, "the counts / server-metric-like set", 3000),
           "quantised": (write_quantised, "the slow quantised sensors set", 4000),
           "smooth": (write_smooth, "the smooth sensors set (faults inside a large slow swing)", 5000),
           "sensors": (write_sensors, "the pressure / temperature / humidity set (spikes and dips sized by the noise)",
                       6000),
           "iot": (write_iot, "the pressure / temperature / humidity set with all seven faults sized by the signal's sd", 8000)}


def _fault_at(text: str) -> tuple[float, float]:
    """argparse type of --fault-at (edgernn.synth.parse_fault_at; its message on a bad value)."""
    try:
        return parse_fault_at(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    for name, (_, what, seed) in WRITERS.items():
        w = sub.add_parser(name, help=f"write {what}")
        w.add_argument("--out", type=Path, required=True)
        w.add_argument("--per-fault", type=int, default=20)
        w.add_argument("--clean", type=int, default=40)
        w.add_argument("--length", type=int, default=5000)
        w.add_argument("--seed", type=int, default=seed)
        w.add_argument("--fault-at", type=_fault_at, default=FAULT_AT, metavar="FROM,TO",
                       help="each fault starts at a fraction of the recording drawn between FROM and TO "
                            "(default: 0.4,0.8; edgernn.synth faults --help)")
    r = sub.add_parser("run", help="score labelled sets with a backend and the persistence baseline")
    r.add_argument("data", type=Path, nargs="+", help="directories with recordings and labels.csv")
    r.add_argument("--model", default="firmware_models/univariate")
    r.add_argument("--backend", default="numpy")
    r.add_argument("--no-baseline", action="store_true", help="skip the persistence baseline")
    r.add_argument("--grace", type=int, default=50)
    r.add_argument("--threshold", type=float)
    r.add_argument("--json", type=Path)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in (*WRITERS, "run", "-h", "--help"):
        argv.insert(0, "run")  # the older form: quality_synthetic.py DATA [options]
    a = p.parse_args(argv)
    if a.what in WRITERS:
        write = WRITERS[a.what][0]
        try:
            print(f"wrote {write(a.out, a.per_fault, a.clean, a.length, a.seed, a.fault_at)} recordings to {a.out}")
        except ValueError as exc:
            print(f"quality_synthetic.py {a.what}: {exc}", file=sys.stderr)
            return 2
        return 0
    bundle = load_bundle(a.model)
    given = [b.strip() for b in a.backend.split(",") if b.strip()]
    backends = given + ([] if a.no_baseline or BASELINE in given else [BASELINE])
    sets = {}
    for data in a.data:
        if not (data / "labels.csv").is_file():
            print(f"{data}: no labels.csv (make one with: python -m edgernn.synth faults --out {data})", file=sys.stderr)
            return 2
        recs, labels = load_set(data, bundle.features)
        runs = [evaluate(recs, labels, bundle, b, a.grace, a.threshold) for b in backends]
        sets[str(data)] = runs
        shown = [runs[0], runs[-1]] if len(runs) > 2 else runs  # the model and the baseline
        print(render(f"{data} ({len(recs)} recordings, model {bundle.name})", shown))
        if len(given) > 1:
            print(f"{'backend':12s} {'recall':>7s} {'false/10k':>10s} {'alerts':>7s} {'differ':>7s} {'differ/10k':>11s}")
            for row in artifact_rows(runs[:len(given)]):
                print(f"{row['backend']:12s} {row['recall']:7.1%} {row['false_alerts_per_10k']:10.2f} {row['alerts']:7d} "
                      f"{row['differ_from_reference']:7d} {row['differ_per_10k']:11.2f}")
        print()
    if a.json:
        _write_json(a.json, a.model, given, sets)
    return 0


def _write_json(path: Path, model: str, given: list, sets: dict) -> None:
    """Top level: the first set's run of the first backend (what benchmarks/model_card.py reads),
    its baseline and artifact rows; "sets": every set and backend."""
    strip = lambda r: {k: v for k, v in r.items() if k not in ("raised_at", "false")}  # noqa: E731
    runs = next(iter(sets.values()))
    doc = {**strip(runs[0]), "model": model, "reference": given[0],
           "rows": artifact_rows(runs[:len(given)]) if len(given) > 1 else [],
           "baseline": strip(runs[-1]) if runs[-1]["backend"] == BASELINE and len(runs) > 1 else None,
           "sets": {k: [strip(r) for r in v] for k, v in sets.items()}}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
