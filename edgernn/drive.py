"""The one offline driver: run recorded readings through a Detector in batches, exactly as the
daemon would see them, and keep every per-reading output. ``edgernn replay``, ``edgernn eval``
(NAB, SKAB, your own incidents), calibration (``train.calibrate``) and the quality benchmarks all
call ``drive``; none of them has a loop of its own over ``Detector.process``.

A ``Feed`` is the readings in the order they are fed (``streams``, ``ts``, ``x``) and where the
batches start (``cuts``). Two ways to make one:

  Feed.in_arrival_order(streams, ts, x, chunk)   a recording as it arrived (several streams
                                                 interleaved): batches of ``chunk`` rows
  Feed.from_recordings([(stream, ts, x), ...], chunk)
                                                 one recording per stream: batch k holds rows
                                                 [k*chunk, (k+1)*chunk) of every recording, so one
                                                 GRU step per wave serves every stream at once

Streams never see each other and a stream's readings stay in their order, so the outputs are
the same as running each stream alone, one reading at a time (the detector's own guarantee).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .detector import Batch, Detector
from .progress import Progress


@dataclass
class Feed:
    streams: list  # str[N] stream id per reading, in feed order
    ts: np.ndarray  # float64[N] epoch seconds (or any increasing number per stream)
    x: np.ndarray  # float64[N, F] raw values
    cuts: list  # int: where each batch starts (ascending, first 0)
    rows_of: list = field(default_factory=list)  # from_recordings: int[n_r] feed rows of recording r

    @classmethod
    def in_arrival_order(cls, streams, ts, x, chunk: int = 256) -> "Feed":
        n = len(ts)
        return cls(list(streams), np.asarray(ts, np.float64), np.asarray(x, np.float64).reshape(n, -1),
                   list(range(0, n, max(int(chunk), 1))))

    @classmethod
    def from_recordings(cls, recordings, chunk: int = 256) -> "Feed":
        """``recordings``: ``[(stream, ts float64[n], x float64[n, F]), ...]``, one stream each."""
        chunk = max(int(chunk), 1)
        lengths = np.array([len(ts) for _, ts, _ in recordings], dtype=np.int64)
        order, cuts, rows_of = [], [], [[] for _ in recordings]
        pos = 0
        for start in range(0, int(lengths.max(initial=0)), chunk):  # one batch per round
            cuts.append(pos)
            for r in np.flatnonzero(lengths > start):
                stop = min(start + chunk, int(lengths[r]))
                order.append((r, start, stop))
                rows_of[r].append(np.arange(pos, pos + stop - start))
                pos += stop - start
        streams = [recordings[r][0] for r, a, b in order for _ in range(b - a)]
        ts = np.concatenate([np.asarray(recordings[r][1], np.float64)[a:b] for r, a, b in order] or [np.zeros(0)])
        F = np.asarray(recordings[0][2]).reshape(len(recordings[0][1]), -1).shape[1] if recordings else 1
        x = np.concatenate([np.asarray(recordings[r][2], np.float64).reshape(-1, F)[a:b] for r, a, b in order]
                           or [np.zeros((0, F))])
        rows = [np.concatenate(rs) if rs else np.zeros(0, np.int64) for rs in rows_of]
        return cls(streams, ts, x, cuts, rows)

    def __len__(self) -> int:
        return len(self.ts)


@dataclass
class Output:
    """Per-reading outputs aligned with the feed's rows (NaN where a reading was not scored)."""

    score: np.ndarray  # float64[N]
    likelihood: np.ndarray  # float64[N]
    onset: np.ndarray  # float64[N]
    alert: np.ndarray  # bool[N] an alert is active after this reading
    event: np.ndarray  # int8[N] alerts.NONE / RAISED / UPDATE / CLEARED
    expected: np.ndarray  # float64[N, F] predicted value, raw units
    sigma: np.ndarray  # float64[N, F] predicted std, raw units
    reject: list  # str | None per reading
    events: list  # Event, ``position`` = feed row
    threshold: float
    looks: dict | None = None  # look name -> float64[N], when the detector records its looks
    surprise: np.ndarray | None = None  # float64[N] -log10 of the combined tail probability (what alerts threshold)
    threshold_surprise: float = float("nan")

    @classmethod
    def blank(cls, N: int, F: int, threshold: float) -> "Output":
        return cls(np.full(N, np.nan), np.full(N, np.nan), np.full(N, np.nan), np.zeros(N, bool),
                   np.zeros(N, np.int8), np.full((N, F), np.nan), np.full((N, F), np.nan), [None] * N, [], threshold)


def drive(detector: Detector, feed: Feed, progress: Progress | bool | None = None, label: str = "run") -> Output:
    """Run ``feed`` through ``detector`` batch by batch; return every output.

    ``progress``: a ``Progress`` to advance (by readings), or True / False / None (None: a bar of
    its own, shown on a terminal) for a bar labelled ``label``."""
    N = len(feed)
    out = Output.blank(N, detector.F, detector.threshold)
    out.surprise, out.threshold_surprise = np.full(N, np.nan), float(getattr(detector, "threshold_surprise", np.nan))
    bar = progress if isinstance(progress, Progress) else Progress(N, label, enabled=progress)
    bounds = [*feed.cuts, N]
    try:
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            if hi <= lo:
                continue
            res = detector.process(Batch(feed.streams[lo:hi], feed.ts[lo:hi], feed.x[lo:hi]))
            _keep(out, res, lo, hi)
            bar.update(hi - lo)
    finally:
        if bar is not progress:
            bar.close()
    return out


def _keep(out: Output, res, lo: int, hi: int) -> None:
    """Copy one batch's ``Result`` into rows [lo, hi) of ``out``."""
    out.score[lo:hi] = res.score
    out.likelihood[lo:hi] = res.likelihood
    if out.surprise is not None:
        out.surprise[lo:hi] = res.surprise
    out.onset[lo:hi] = res.onset
    out.alert[lo:hi] = res.alert
    out.event[lo:hi] = res.event
    out.expected[lo:hi] = res.expected
    out.sigma[lo:hi] = res.sigma
    out.reject[lo:hi] = res.reject_reason
    if res.looks is not None:
        if out.looks is None:
            out.looks = {k: np.full(len(out.score), np.nan) for k in res.looks}
        for k, v in res.looks.items():
            out.looks[k][lo:hi] = v
    for e in res.events:
        e.position += lo
    out.events.extend(res.events)


__all__ = ["Feed", "Output", "drive"]
