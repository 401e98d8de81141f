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

from ..recording import read_recording


@dataclass
class Series:
    name: str
    raw: np.ndarray  # float64[T, F]
    split: int  # first held-out index (validation and calibration)
    ts: np.ndarray | None = None  # float64[T] epoch seconds, when the file has timestamps


def load_series(paths: list[Path], features: tuple[str, ...], columns: dict | None = None,
                holdout: float = 0.3) -> list[Series]:
    """One Series per stream per file; rows with missing values are dropped (counted by caller)."""
    out = []
    for path in paths:
        rec = read_recording(path, features, columns)
        streams = np.array(rec.streams)
        for sid in dict.fromkeys(rec.streams):
            x, ts = rec.x[streams == sid], rec.ts[streams == sid]
            ok = np.isfinite(x).all(axis=1)
            x, ts = x[ok], ts[ok]
            if len(x) < 50:
                continue
            out.append(Series(f"{Path(path).name}:{sid}", x, int(len(x) * (1 - holdout)),
                              ts if np.isfinite(ts).all() else None))
    return out


def stream_normalise(x: np.ndarray, warmup: int, adapt: float, min_std: float = 1e-6,
                     min_rel_std: float = 1e-3) -> np.ndarray:
    """x float64[T, F] -> normalised float64[T, F], as the detector normalises a new stream."""
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
