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

import numpy as np

from .settings import AlertSettings  # declared once, with every other setting

NONE, RAISED, UPDATE, CLEARED = 0, 1, 2, 3
EVENT_NAMES = {RAISED: "raised", UPDATE: "update", CLEARED: "cleared"}
_POPCOUNT = np.array([bin(i).count("1") for i in range(1 << 16)], np.int64)


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
