"""Run a recording through a Detector in arrival order, in chunks (the same path as the daemon)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .detector import Batch, Detector, Event
from .progress import Progress
from .recording import Recording


@dataclass
class ReplayOutput:
    score: np.ndarray  # float64[N]
    likelihood: np.ndarray  # float64[N]
    onset: np.ndarray  # float64[N]
    alert: np.ndarray  # bool[N]
    event: np.ndarray  # int8[N]
    expected: np.ndarray  # float64[N, F]
    sigma: np.ndarray  # float64[N, F]
    reject: list  # str | None per row
    events: list[Event]
    threshold: float


def replay(detector: Detector, rec: Recording, chunk: int = 256, progress: bool | None = None,
           label: str = "replay") -> ReplayOutput:
    N, F = rec.x.shape
    out = ReplayOutput(np.full(N, np.nan), np.full(N, np.nan), np.full(N, np.nan), np.zeros(N, bool), np.zeros(N, np.int8),
                       np.full((N, F), np.nan), np.full((N, F), np.nan), [None] * N, [], detector.threshold)
    with Progress(N, label, enabled=progress) as bar:
        for lo in range(0, N, chunk):
            hi = min(lo + chunk, N)
            res = detector.process(Batch(rec.streams[lo:hi], rec.ts[lo:hi], rec.x[lo:hi]))
            out.score[lo:hi] = res.score
            out.likelihood[lo:hi] = res.likelihood
            out.onset[lo:hi] = res.onset
            out.alert[lo:hi] = res.alert
            out.event[lo:hi] = res.event
            out.expected[lo:hi] = res.expected
            out.sigma[lo:hi] = res.sigma
            out.reject[lo:hi] = res.reject_reason
            for e in res.events:
                e.position += lo
            out.events.extend(res.events)
            bar.update(hi - lo)
    return out
