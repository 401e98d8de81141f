"""The persistence baseline: "the next reading equals this one", with the stream's own running
variance of one-step changes. No weights. Every quality figure of the GRU is compared with it.

It honours the Backend contract ``step(x: f32[B, F], h: f32[B, H]) -> (pred f32[B, 2F], h_next f32[B, H])``
in the detector's normalised space. Its per-stream memory lives in ``h`` (H >= 2F; the rest stays 0):

    h[:, :F]     last normalised reading x_{t-1}
    h[:, F:2F]   v: EW variance of the one-step changes x_t - x_{t-1}; 0 means "fresh" (the detector
                 resets h to zeros for a new stream or after a gap), and v never returns to 0 once
                 set (floored at exp(logvar_min))

Per reading (float64 inside, float32 out; elementwise only, so any batch size gives the same bits):

    fresh:  v' = FRESH_VAR                        (a wide guess: the stream's own variance is 1 here)
    else:   v' = (1 - a) v + a (x - x_prev)^2     (a = 1 / window readings)
    pred  = [x | clip(log v', logvar_min, logvar_max)]
    h'    = [x | max(v', exp(logvar_min)) | 0...]
"""

from __future__ import annotations

import numpy as np

from .base import BackendUnavailable

FRESH_VAR = 1.0  # normalised units: the first prediction's variance is the stream's whole variance
WINDOW = 32.0  # readings the variance of changes remembers


class Persistence:
    """Last value, running variance of changes. Holds no per-stream state (that is in ``h``)."""

    name = "persistence"

    def __init__(self, features: int, hidden: int, logvar_min: float = -9.0, logvar_max: float = 6.0,
                 window: float = WINDOW):
        if hidden < 2 * features:
            raise BackendUnavailable(f"the persistence baseline keeps 2 numbers per feature in the hidden state: "
                                     f"it needs hidden >= {2 * features}, the model has {hidden}")
        if window < 1.0 or not logvar_min < logvar_max:
            raise ValueError("persistence: window must be >= 1 and logvar_min < logvar_max")
        self.features, self.hidden = int(features), int(hidden)
        self.lvmin, self.lvmax = float(logvar_min), float(logvar_max)
        self.rate = 1.0 / float(window)
        self.var_floor = float(np.exp(logvar_min))

    @classmethod
    def from_bundle(cls, bundle) -> "Persistence":
        return cls(bundle.n_features, bundle.hidden, bundle.logvar_min, bundle.logvar_max)

    def step(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        F, a = self.features, self.rate
        x64 = np.asarray(x, np.float64)  # [B, F]
        last = np.asarray(h[:, :F], np.float64)  # [B, F]
        v = np.asarray(h[:, F : 2 * F], np.float64)  # [B, F]
        d2 = (x64 - last) ** 2  # [B, F] squared one-step change
        v_new = np.where(v > 0.0, (1.0 - a) * v + a * d2, FRESH_VAR)  # [B, F]
        v_new = np.maximum(v_new, self.var_floor)
        pred = np.empty((len(x64), 2 * F), np.float32)  # [B, 2F] = mean | logvar
        pred[:, :F] = x64
        pred[:, F:] = np.clip(np.log(v_new), self.lvmin, self.lvmax)
        h_next = np.zeros((len(x64), self.hidden), np.float32)  # [B, H]
        h_next[:, :F] = x64
        h_next[:, F : 2 * F] = v_new
        return pred, h_next
