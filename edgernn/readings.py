"""What flows into the detector (``Reading``, ``Batch``) and how its scores read to a person.

No detector, no I/O: ``decode`` and the offline tools import this without loading the detector.

    >>> one_in(surprise_from_likelihood(0.999))
    '1 in 1,000'
    >>> f"{surprise_from_likelihood(0.999999):.1f}"
    '6.0'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# The normal band every person-facing output draws and prints: expected ± BAND_SIGMAS x sigma.
BAND_SIGMAS = 2.0


@dataclass
class Batch:
    """Readings in arrival order: stream ids, epoch-second timestamps, raw values [B, F]."""

    streams: list[str]
    ts: np.ndarray  # float64[B]
    x: np.ndarray  # float64[B, F] in the model's feature order, raw units (NaN = missing)

    def __len__(self) -> int:
        return len(self.streams)


@dataclass(frozen=True)
class Reading:
    stream: str
    ts: float
    values: tuple[float, ...]


def batch_from_readings(readings: list[Reading], n_features: int) -> Batch:
    """A Batch of the readings; a Python int beyond float64 (10**400) becomes +-inf (rejected
    non_finite by the detector, as in a Batch) instead of raising OverflowError."""
    x = np.full((len(readings), n_features), np.nan)  # float64[B, F]; a reading of the wrong width stays NaN
    for i, r in enumerate(readings):
        if len(r.values) == n_features:
            x[i] = [_number(v) for v in r.values]
    return Batch([r.stream for r in readings], np.array([_number(r.ts) for r in readings], np.float64), x)


def _number(v):
    """v as it is, or +-inf for a Python int too large for a float64."""
    if isinstance(v, int):
        try:
            float(v)
        except OverflowError:
            return math.inf if v > 0 else -math.inf
    return v


def surprise_from_likelihood(likelihood):
    """-log10 of the tail probability 1 - likelihood (float or float64[N]; NaN stays NaN).

    float64 resolves 1 - L down to ~1.1e-16, so this saturates near 15.95 ("1 in 9e15"); the
    detector's own ``Event.surprise`` (when present) is computed from the tail directly.
    """
    tail = np.maximum(1.0 - np.asarray(likelihood, np.float64), 2.0 ** -53)
    out = -np.log10(tail)
    return float(out) if out.ndim == 0 else out


def event_surprise(event) -> float:
    """An Event's (or an alert message dict's) surprise, whichever form it carries."""
    get = event.get if isinstance(event, dict) else lambda k, d=None: getattr(event, k, d)
    s = get("surprise")
    return float(s) if isinstance(s, (int, float)) else surprise_from_likelihood(get("likelihood", math.nan))


def one_in(surprise: float) -> str:
    """Surprise (-log10 p) -> "1 in N" in words a person reads at a glance."""
    if not math.isfinite(surprise):
        return "unscored"
    n = 10.0 ** max(surprise, 0.0)
    if n < 1e6:
        return f"1 in {n:,.0f}"
    if n >= 1e15:
        return f"1 in 10^{surprise:.0f}"
    div, word = next((d, w) for d, w in ((1e12, "trillion"), (1e9, "billion"), (1e6, "million")) if n >= d)
    return f"1 in {n / div:.3g} {word}"


def describe_threshold(threshold: float) -> str:
    """A likelihood threshold as a person reads it: "surprise 4.7 (1 in 46,138)"."""
    s = surprise_from_likelihood(threshold)
    return f"surprise {s:.1f} ({one_in(s)})"
