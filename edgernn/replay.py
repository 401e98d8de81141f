"""Run a recording through a Detector in arrival order, in batches (the same path as the daemon)."""

from __future__ import annotations

from .detector import Detector
from .drive import Feed, Output, drive
from .recording import Recording

ReplayOutput = Output  # per-row outputs aligned with the recording's rows; events' positions are rows


def replay(detector: Detector, rec: Recording, chunk: int = 256, progress: bool | None = None,
           label: str = "replay") -> ReplayOutput:
    """Every row of ``rec`` in file order, ``chunk`` rows per ``Detector.process`` call."""
    return drive(detector, Feed.in_arrival_order(rec.streams, rec.ts, rec.x, chunk), progress, label)
