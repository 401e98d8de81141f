"""The Backend protocol and the weight-name contract shared by every runtime.

A backend maps ``(x: float32[B, F], h: float32[B, H])`` to ``(pred: float32[B, 2F],
h_next: float32[B, H])`` for any batch size B >= 1. It holds weights only, never per-stream state.
``pred[:, :F]`` is the predicted mean of the next (normalised) reading and ``pred[:, F:]`` its
log-variance.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Backend(Protocol):
    name: str
    features: int  # F
    hidden: int  # H

    def step(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class BackendUnavailable(RuntimeError):
    """The runtime a backend needs is not installed (the message names the pip extra)."""


# name -> shape in terms of F (features) and H (hidden). Weights are stored by these names.
GRU_WEIGHT_SHAPES: dict[str, tuple[str, ...]] = {
    "gru.W_ir": ("H", "F"), "gru.W_iz": ("H", "F"), "gru.W_in": ("H", "F"),
    "gru.W_hr": ("H", "H"), "gru.W_hz": ("H", "H"), "gru.W_hn": ("H", "H"),
    "gru.b_ir": ("H",), "gru.b_iz": ("H",), "gru.b_in": ("H",),
    "gru.b_hr": ("H",), "gru.b_hz": ("H",), "gru.b_hn": ("H",),
    "head.W_mean": ("F", "H"), "head.b_mean": ("F",),
    "head.W_logvar": ("F", "H"), "head.b_logvar": ("F",),
}


def check_weights(weights: dict[str, np.ndarray]) -> tuple[int, int]:
    """Validate names and shapes; return (F, H). Raises ValueError naming the offending key."""
    missing = sorted(set(GRU_WEIGHT_SHAPES) - set(weights))
    if missing:
        raise ValueError(f"missing weight(s): {', '.join(missing)}")
    extra = sorted(set(weights) - set(GRU_WEIGHT_SHAPES))
    if extra:
        raise ValueError(f"unexpected weight(s): {', '.join(extra)}")
    H, F = np.shape(weights["gru.W_ir"])
    dims = {"H": H, "F": F}
    for key, spec in GRU_WEIGHT_SHAPES.items():
        want = tuple(dims[d] for d in spec)
        got = tuple(np.shape(weights[key]))
        if got != want:
            raise ValueError(f"weight {key} has shape {got}, expected {want}")
        if not np.all(np.isfinite(weights[key])):
            raise ValueError(f"weight {key} contains NaN or inf")
    return F, H
