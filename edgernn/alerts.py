"""Alert state machine, vectorised over the readings of one wave (one row per stream).

Per stream:  idle --(k of the last n readings over the threshold, no cooldown)--> active (raised)
             active --(score climbs update_factor x above the last event's, update_gap apart)--> update
             active --(clear_after readings in a row below the clear level, min_duration met)--> idle
             (cleared), then ``cooldown`` readings during which no new alert is raised.
The clear level sits below the raise threshold (hysteresis): its tail probability is
``clear_factor`` times larger. Alert ids are ``<stream>#<seq>``, seq counting per stream; the
state lives in the StateStore slab, so ids stay stable across snapshots and restarts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NONE, RAISED, UPDATE, CLEARED = 0, 1, 2, 3
EVENT_NAMES = {RAISED: "raised", UPDATE: "update", CLEARED: "cleared"}
_POPCOUNT = np.array([bin(i).count("1") for i in range(1 << 16)], np.int64)


@dataclass(frozen=True)
class AlertSettings:
    k: int = 1  # raise when k of the last n readings are over the threshold ...
    n: int = 1  # ... (1 of 1: a single extreme reading raises; n <= 16)
    clear_after: int = 16  # readings in a row below the clear level that end an alert
    clear_factor: float = 100.0  # clear level = tail probability clear_factor x the threshold's
    min_duration: int = 1  # an alert stays active for at least this many readings before it clears
    cooldown: int = 32  # readings after a clear before the same stream can raise again
    update_factor: float = 4.0  # 'update' when the score exceeds the last event's by this factor
    update_gap: int = 16  # at least this many readings between two events of one alert

    def __post_init__(self):
        if not 1 <= self.k <= self.n <= 16:
            raise ValueError("alerts: need 1 <= k <= n <= 16")
        for name in ("clear_after", "min_duration", "cooldown", "update_gap"):
            if getattr(self, name) < 0:
                raise ValueError(f"alerts.{name} must be >= 0")
        if self.clear_factor < 1 or self.update_factor <= 1:
            raise ValueError("alerts: clear_factor must be >= 1 and update_factor > 1")


def step(S: np.ndarray, L, cfg: AlertSettings, over: np.ndarray, high: np.ndarray,
         score: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Advance the machine for one wave, in place on the gathered slab rows ``S[b, K]``.

    over: bool[b]  reading is over the raise threshold (and scored at all)
    high: bool[b]  reading is still above the clear level
    Returns int8[b] event codes (NONE / RAISED / UPDATE / CLEARED).
    """
    active = S[:, L.active] > 0
    hist = ((S[:, L.hist].astype(np.int64) << 1) | over) & ((1 << cfg.n) - 1)
    cooling = S[:, L.cooldown] > 0

    raised = ~active & ~cooling & (_POPCOUNT[hist] >= cfg.k)
    below = np.where(active & ~high, S[:, L.below] + 1, 0)
    # readings the alert has been active before this one; this reading may end it
    cleared = active & (below >= cfg.clear_after) & (S[:, L.duration] >= cfg.min_duration)
    duration = np.where(active, S[:, L.duration] + 1, 0)
    since = np.where(active, S[:, L.since_event] + 1, 0)
    update = active & ~cleared & (score > cfg.update_factor * S[:, L.peak]) & (since >= cfg.update_gap)

    fired = raised | update
    now_active = (active & ~cleared) | raised
    S[:, L.active] = now_active
    S[:, L.hist] = np.where(cleared, 0, hist)
    S[:, L.below] = np.where(now_active, below, 0)
    S[:, L.duration] = np.where(raised, 1, np.where(now_active, duration, 0))
    S[:, L.cooldown] = np.where(cleared, cfg.cooldown, np.maximum(S[:, L.cooldown] - 1, 0))
    S[:, L.seq] += raised
    S[:, L.peak] = np.where(fired, score, S[:, L.peak])
    S[:, L.since_event] = np.where(fired | ~now_active, 0, since)  # 0 for idle streams
    S[:, L.start_ts] = np.where(raised, ts, S[:, L.start_ts])

    codes = np.zeros(len(score), np.int8)
    codes[update] = UPDATE
    codes[raised] = RAISED
    codes[cleared] = CLEARED
    return codes
