"""Training data: CSV series -> normalised arrays exactly as the detector will see them.

``stream`` normalisation mirrors edgernn/detector.py step for step: Welford statistics over the
first ``warmup`` readings, then an EW update at rate ``adapt`` (tests check the two agree).
Each series is split in time (never shuffled across time): the first ``1 - holdout`` trains;
the last ``holdout`` is held out from training: it stops training (validation NLL), and the
calibration fits the score tables and sets the alert threshold there, reporting the false-alarm
rate it achieves there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..recording import read_recording, rows_by_stream
from ..settings import BY_KEY


MIN_ROWS = 50  # complete rows a series needs to be trained on
# a spread of raw values beyond which the statistics overflow (a variance of the raw values holds at
# most ~1.8e308: a spread of ~1.3e154): train refuses such a feature, replay blames such readings
# for a stream that never scored (commands/replay.py)
HUGE_SPREAD = 1e150


@dataclass
class Series:
    name: str
    raw: np.ndarray  # float64[T, F]
    split: int  # first held-out index (validation and calibration)
    ts: np.ndarray | None = None  # float64[T] epoch seconds, when the file has timestamps
    lines: np.ndarray | None = None  # int[T] line of each reading in its file (for messages)
    path: Path | None = None  # the file


def load_series(paths: list[Path], features: tuple[str, ...], columns: dict | None = None,
                holdout: float = 0.3, notes: list | None = None) -> list[Series]:
    """One Series per stream per file, of its complete rows in time order: rows with a value missing
    or not finite and rows older than the stream's latest (the detector rejects them: out_of_order)
    are dropped, streams with fewer than MIN_ROWS rows left are left out; ``notes`` gets one line per
    file that lost rows (the reader's skipped rows too) or has a reading warning."""
    out = []
    for path in paths:
        rec = read_recording(path, features, columns, progress=None)  # (a bar on a terminal)
        got, note = _file_series(rec, holdout)
        out += got
        if notes is not None:
            notes += [w for w in rec.dialect.warnings] + ([note] if note else [])
    return out


def _file_series(rec, holdout: float) -> tuple[list[Series], str]:
    """The Series of one Recording, and what was left out of it (one line, or "")."""
    finite = np.isfinite(rec.x).all(axis=1)  # [N]
    out, late, short = [], np.zeros(len(rec), bool), []
    for sid, rows in rows_by_stream(rec.streams):
        rows = rows[finite[rows]]
        ts = rec.ts[rows]
        old = ts < np.maximum.accumulate(ts)  # out of time order
        late[rows[old]] = True
        rows = rows[~old]
        if len(rows) < MIN_ROWS:
            short.append((sid, len(rows)))
            continue
        ts = rec.ts[rows]
        out.append(Series(f"{Path(rec.path).name}:{sid}", rec.x[rows], int(len(rows) * (1 - holdout)),
                          ts if np.isfinite(ts).all() else None, rec.line[rows], Path(rec.path)))
    return out, _left_out(rec, finite, late, short)


def _left_out(rec, finite: np.ndarray, late: np.ndarray, short: list) -> str:
    """'FILE: left out 540 of 600 rows: ...' naming each cause and its first line, or ""."""
    parts = [f"{reason} {n:,} (first: {rec.problems[reason]})" for reason, n in sorted(rec.skipped.items())]
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        j = int(np.flatnonzero(~np.isfinite(rec.x[i]))[0])
        example = rec.problems.get("non_numeric") or f"line {rec.line[i]}, feature {rec.features[j]!r}: {rec.x[i, j]}"
        parts.append(f"a value missing, not a number, NaN or inf {int((~finite).sum()):,} (e.g. {example})")
    if late.any():
        i = int(np.flatnonzero(late)[0])
        parts.append(f"out_of_order {int(late.sum()):,} (first: line {rec.line[i]}, {rec.timestamps[i]!r} is "
                     "before an earlier row's time; training reads the file in time order: sort it oldest first)")
    if short:
        names = ", ".join(f"{sid!r} has {n}" for sid, n in short[:3]) + (f", {len(short) - 3} more" if len(short) > 3 else "")
        parts.append(f"too short (fewer than {MIN_ROWS} complete rows): {names}")
    if not parts:
        return ""
    total = len(rec) + sum(rec.skipped.values())
    kept = len(rec) - int((~finite | late).sum()) - sum(n for _, n in short)
    return f"{rec.path}: {total - kept:,} of {total:,} rows left out: " + "; ".join(parts)


def huge_spread(series: list[Series], names) -> str | None:
    """One line naming the file, line and feature of the largest value of a feature whose values
    span more than HUGE_SPREAD or whose mean or std over every row overflows (the statistics of the
    training and of the detector would not be finite: NaN weights), or None."""
    rows = np.concatenate([s.raw for s in series])  # [N, F]
    lo, hi = rows.min(axis=0), rows.max(axis=0)
    with np.errstate(over="ignore", invalid="ignore"):
        bad = (hi - lo > HUGE_SPREAD) | ~np.isfinite(rows.mean(axis=0)) | ~np.isfinite(rows.std(axis=0))
    if not bad.any():
        return None
    j = int(np.flatnonzero(bad)[0])
    v = hi[j] if abs(hi[j]) >= abs(lo[j]) else lo[j]
    s = next(s for s in series if (s.raw[:, j] == v).any())
    i = int(np.flatnonzero(s.raw[:, j] == v)[0])
    where = f"{s.path}: line {s.lines[i]}" if s.lines is not None else s.name
    return (f"{where}, feature {names[j]!r}: {v:g} - values this large or this far apart (the feature spans "
            f"[{lo[j]:g}, {hi[j]:g}]) overflow the statistics (more than {HUGE_SPREAD:g} apart, or sums beyond "
            "float64); rescale the column or drop such rows")


MIN_STD, MIN_REL_STD = BY_KEY["min_std"].default, BY_KEY["min_rel_std"].default  # the detector's default std floors


def stream_normalise(x: np.ndarray, warmup: int, adapt: float, min_std: float = MIN_STD,
                     min_rel_std: float = MIN_REL_STD, stds: np.ndarray | None = None) -> np.ndarray:
    """x float64[T, F] -> normalised float64[T, F], as the detector normalises a new stream; with
    ``stds`` (float64[T, F]) also the std each reading was normalised with, written there."""
    T, F = x.shape
    out = np.empty_like(x)
    mean = np.zeros(F)
    var = np.zeros(F)
    for t in range(T):
        n = t + 1
        if n <= warmup:
            d = x[t] - mean
            new_mean = mean + d / n
            var = var + (d * (x[t] - new_mean) - var) / n
            mean = new_mean
        std = np.sqrt(np.maximum(var, np.maximum(min_std, min_rel_std * np.abs(mean)) ** 2))
        out[t] = (x[t] - mean) / std
        if stds is not None:
            stds[t] = std
        if n > warmup and adapt > 0:
            d = x[t] - mean
            mean = mean + adapt * d
            var = var + adapt * (d * d - var)
    return out


def fixed_normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (x - mean) / std


def segments(arrays: list[np.ndarray], length: int, stride: int | None = None) -> np.ndarray:
    """Cut [T, F] arrays into windows float32[N, length, F] (contiguous in time, no padding)."""
    stride = stride or length
    out = [a[i : i + length] for a in arrays for i in range(0, len(a) - length + 1, stride)]
    if not out:
        raise ValueError(f"no series is longer than the window ({length} readings)")
    return np.stack(out).astype(np.float32)
