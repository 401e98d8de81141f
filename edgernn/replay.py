"""Run a recording through a Detector in arrival order, in batches (the same path as the daemon)."""

from __future__ import annotations

from dataclasses import replace

from .detector import Detector
from .drive import Feed, Output, drive
from .recording import Recording

ReplayOutput = Output  # per-row outputs aligned with the recording's rows; events' positions are rows


def replay(detector: Detector, rec: Recording, chunk: int = 256, progress: bool | None = None,
           label: str = "replay") -> ReplayOutput:
    """Every row of ``rec`` in file order, ``chunk`` rows per ``Detector.process`` call."""
    return drive(detector, Feed.in_arrival_order(rec.streams, rec.ts, rec.x, chunk), progress, label)


def room_for(detector: Detector, n_streams: int) -> Detector:
    """``detector``, or (when a file has more streams than its ``max_streams``) a fresh one with the
    same bundle, backend and settings and room for ``n_streams``: offline, every stream of a file
    keeps its state (the daemon's LRU eviction would make streams silently start over, warm-up and
    all, or fail when one batch holds more streams than the store)."""
    if n_streams <= detector.settings.max_streams:
        return detector
    fresh = Detector(detector.bundle, detector.backend, replace(detector.settings, max_streams=n_streams))
    fresh.record_looks = detector.record_looks
    return fresh


def roomier(detector: Detector, n_streams: int, what: str) -> Detector:
    """``room_for``, saying on stderr when it made room (one line: offline every stream is kept,
    where the daemon with these settings would evict the least recently seen)."""
    fresh = room_for(detector, n_streams)
    if fresh is not detector:
        import sys

        print(f"note: {what} has {n_streams:,} streams, more than max_streams {detector.settings.max_streams:,}: "
              "every stream keeps its state here (the daemon would evict the least recently seen)", file=sys.stderr)
    return fresh


def unnamed_warning(rec: Recording) -> str:
    """One line when rows of a long-format file have an empty stream name (``""`` or blanks: the
    reader strips them, so such rows of different sensors become one stream ``''``), else ''."""
    empty = [i for i, s in enumerate(rec.streams) if not s]
    if not empty:
        return ""
    return (f"{rec.path.name}: {len(empty)} row(s) have an empty stream name (first: line "
            f"{int(rec.line[empty[0]])}); they are scored together as one stream named ''")
