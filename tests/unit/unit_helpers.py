"""Plain helpers shared by the unit tests (fixtures live in conftest.py). A uniquely named
module, so that `from unit_helpers import ...` cannot pick up another folder's conftest."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edgernn.backends.base import GRU_WEIGHT_SHAPES

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[2]


def random_weights(F: int, H: int, seed: int = 0, gain: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    dims = {"F": F, "H": H}
    return {k: (gain / np.sqrt(H) * rng.standard_normal([dims[d] for d in spec])).astype(np.float32)
            for k, spec in GRU_WEIGHT_SHAPES.items()}


def steady_weights(F: int, H: int, sigma: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Small random GRU, head that ignores h: mean = x_t, logvar = log(sigma^2) (normalised units)."""
    w = random_weights(F, H, seed, gain=0.3)
    w["head.W_mean"] = np.zeros((F, H), np.float32)
    w["head.b_mean"] = np.zeros(F, np.float32)
    w["head.W_logvar"] = np.zeros((F, H), np.float32)
    w["head.b_logvar"] = np.full(F, 2.0 * np.log(sigma), np.float32)
    return w


def sine_series(n: int, seed: int = 0, F: int = 1, period: float = 80.0, noise: float = 0.02) -> np.ndarray:
    """float64[n, F]: smooth sines (one per feature, own phase, offset and scale) + small noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)[:, None]
    phase = rng.uniform(0, 2 * np.pi, F)
    scale = rng.uniform(1.0, 5.0, F)
    offset = rng.uniform(-50, 50, F)
    x = np.sin(2 * np.pi * t / period + phase) + noise * rng.standard_normal((n, F))
    return offset + scale * x
