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


def mixture_z(c: float, pred: np.ndarray, F: int, f: int, lvmin: float, lvmax: float) -> float:
    """The equivalent z of normalised reading c of feature f under a mixture prediction pred
    (float[3KF] = means | logvars | logits, component-major): p = sum_k w_k P(|N(0,1)| >= |c -
    mu_k| / s_k), z = the |N(0,1)| quantile of p (scipy, straight from the definition)."""
    from scipy.special import log_softmax
    from scipy.stats import norm

    K = len(pred) // (3 * F)
    mu, lv, logit = (np.asarray(pred[i * K * F : (i + 1) * K * F], np.float64)[f::F] for i in range(3))
    s = np.exp(0.5 * np.clip(lv, lvmin, lvmax))
    p = float(np.sum(np.exp(log_softmax(logit)) * 2.0 * norm.sf(np.abs(c - mu) / s)))
    return float(norm.isf(p / 2.0))
