"""The persistence baseline: "the next reading equals this one", with the stream's own running
variance of one-step changes. No weights. Every quality figure of the GRU is compared with it.

It honours the Backend contract ``step(x: f32[B, F], h: f32[B, H]) -> (pred f32[B, 2F], h_next f32[B, H])``
in the detector's normalised space. Its per-stream memory lives in ``h``, of width max(the model's H,
2F + 1) (``hidden``: the detector sizes each stream's h by the backend's; the rest stays 0):

    h[:, :F]     last normalised reading x_{t-1}
    h[:, F:2F]   v: variance of the one-step changes x_t - x_{t-1}
    h[:, 2F]     c: 1 + the changes seen so far, capped at WINDOW + 1; 0 means "fresh" (the detector
                 resets h to zeros for a new stream or after a gap)

Per reading (float64 inside, float32 out; elementwise only, so any batch size gives the same bits):

    fresh:  v' = FRESH_VAR, c' = 1                (a wide guess: the stream's own variance is 1 here)
    else:   k = min(c, WINDOW)                    (changes seen, this one included)
            v' = (1 - 1/k) v + (x - x_prev)^2 / k (the mean of the squared changes so far, then an
                 c' = k + 1                        EW mean over WINDOW readings)
    pred  = [x | clip(log v', logvar_min, logvar_max)]
    h'    = [x | max(v', exp(logvar_min)) | c' | 0 ...]

WINDOW is the detector's default ``repeat_memory`` (1,000 readings: what a stream's own statistics
remember), so the variance includes the stream's usual jumps (an on/off edge is then as surprising
as it is usual), not only the last few dozen quiet readings.

For a bundle with jump inputs (backends/base.py) step also accepts the GRU's x [B, 2F] = [c | j]
and reads c alone (the first F columns); ``jump`` is False: the detector feeds it x [B, F].
"""

from __future__ import annotations

import numpy as np

FRESH_VAR = 1.0  # normalised units: the first prediction's variance is the stream's whole variance
WINDOW = 1000.0  # readings the variance of changes remembers (the detector's repeat_memory)
LOGVAR_MAX = 6.0  # its own cap: a trained head's lower head.logvar_max (a mixture's narrow components) is not the baseline's


class Persistence:
    """Last value, running variance of changes. Holds no per-stream state (that is in ``h``)."""

    name = "persistence"
    h_bound = None  # h holds a value, a variance and a count (unbounded): the store keeps it float32
    components = 1  # a single Gaussian, whatever the bundle's head
    jump = False  # reads the normalised readings only (x [B, F]; [B, 2F] = [c | j]: c)

    def __init__(self, features: int, hidden: int, logvar_min: float = -9.0, logvar_max: float = 6.0,
                 window: float = WINDOW):
        if window < 1.0 or not logvar_min < logvar_max:
            raise ValueError("persistence: window must be >= 1 and logvar_min < logvar_max")
        # 2 numbers per feature and a count: a model whose H is smaller (35 features, H 32) gets the room
        self.features, self.hidden = int(features), max(int(hidden), 2 * int(features) + 1)
        self.lvmin, self.lvmax = float(logvar_min), float(logvar_max)
        self.window = float(window)
        self.var_floor = float(np.exp(logvar_min))

    @classmethod
    def from_bundle(cls, bundle) -> "Persistence":
        return cls(bundle.n_features, bundle.hidden, bundle.logvar_min, max(bundle.logvar_max, LOGVAR_MAX))

    @property
    def logvar_range(self) -> tuple[float, float]:
        """(min, max) the detector clamps this backend's log-variances to (instead of the bundle's head range)."""
        return self.lvmin, self.lvmax

    def step(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        F = self.features
        x64 = np.asarray(x[:, :F], np.float64)  # [B, F] (of [B, F], or [B, 2F] = [c | j])
        last = np.asarray(h[:, :F], np.float64)  # [B, F]
        v = np.asarray(h[:, F : 2 * F], np.float64)  # [B, F]
        c = np.asarray(h[:, 2 * F : 2 * F + 1], np.float64)  # [B, 1] 1 + changes seen (0: fresh)
        fresh = c == 0.0  # [B, 1]
        k = np.minimum(c, self.window)  # [B, 1] changes seen including this one, capped
        a = 1.0 / np.maximum(k, 1.0)  # [B, 1] weight of this change
        v_new = np.where(fresh, FRESH_VAR, (1.0 - a) * v + a * (x64 - last) ** 2)  # [B, F]
        v_new = np.maximum(v_new, self.var_floor)
        pred = np.empty((len(x64), 2 * F), np.float32)  # [B, 2F] = mean | logvar
        pred[:, :F] = x64
        pred[:, F:] = np.clip(np.log(v_new), self.lvmin, self.lvmax)
        h_next = np.zeros((len(x64), self.hidden), np.float32)  # [B, H]
        h_next[:, :F] = x64
        h_next[:, F : 2 * F] = v_new
        h_next[:, 2 * F] = k[:, 0] + 1.0  # c' (fresh: 0 + 1)
        return pred, h_next
