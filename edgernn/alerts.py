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

from .settings import AlertSettings  # declared once, with every other setting  # noqa: F401

NONE, RAISED, UPDATE, CLEARED = 0, 1, 2, 3
NEW_NORMAL = 4  # kernel code: cleared after max_duration readings (an event "cleared", reason "new_normal")
EVENT_NAMES = {RAISED: "raised", UPDATE: "update", CLEARED: "cleared", NEW_NORMAL: "cleared"}


