"""Naive reference formulas: the oracle the detector checks compare the kernel's outputs with."""

from __future__ import annotations

import numpy as np


def score_from_outputs(x: np.ndarray, expected: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """The instant score of readings x[N, F] from the detector's own expected and sigma (raw
    units): the mean over features of the squared standardised residual, float64[N]."""
    z = (x - expected) / sigma
    return np.mean(np.minimum(z * z, 1e12), axis=1)


def warmup_statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population variance of the warm-up readings x[n, F] (what Welford converges to)."""
    return x.mean(axis=0), x.var(axis=0)
