"""Alert state machine: its settings and event codes (the machine itself runs in kernel.alert).

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

NONE, RAISED, UPDATE, CLEARED = 0, 1, 2, 3
NEW_NORMAL = 4  # kernel code: cleared after max_duration readings (an event "cleared", reason "new_normal")
EVENT_NAMES = {RAISED: "raised", UPDATE: "update", CLEARED: "cleared", NEW_NORMAL: "cleared"}


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
    max_duration: int = 0  # readings after which an alert clears as "new_normal" and the stream relearns (0: off)

    def __post_init__(self):
        if not 1 <= self.k <= self.n <= 16:
            raise ValueError("alerts: need 1 <= k <= n <= 16")
        for name in ("clear_after", "min_duration", "cooldown", "update_gap"):
            if getattr(self, name) < 0:
                raise ValueError(f"alerts.{name} must be >= 0")
        if self.clear_factor < 1 or self.update_factor <= 1:
            raise ValueError("alerts: clear_factor must be >= 1 and update_factor > 1")
