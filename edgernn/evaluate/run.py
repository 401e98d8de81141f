"""Drive the daemon's ``Detector`` over recordings, causally, and keep every per-row output.

Each recording is one stream: a reading is scored against the prediction made from the readings
before it, then stepped, exactly as in ``edgernn serve``. Several recordings are fed together,
``chunk`` rows of each per batch; the detector splits a batch into waves (one reading per stream
per wave), so streams never see each other and the results are identical to running every
recording alone, one reading at a time, only faster (one GRU step per wave for all streams).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Trace:
    """Per-row detector outputs for one recording (arrays aligned with its rows)."""

    stream: str
    ts: np.ndarray  # float64[n]
    x: np.ndarray  # float64[n, F] raw values fed
    score: np.ndarray  # float64[n] (NaN while warming up / rejected)
    likelihood: np.ndarray  # float64[n] (0 while warming up, NaN if rejected)
    onset: np.ndarray  # float64[n] onset likelihood (see Detector): high where the surprise rises
    alert: np.ndarray  # bool[n] an alert is active after this row
    event: np.ndarray  # int8[n] alerts.NONE / RAISED / UPDATE / CLEARED
    threshold: float  # the detector's alert threshold on likelihood
    looks: dict | None = None  # look name -> float64[n], when the detector records its looks

    @property
    def scored_likelihood(self) -> np.ndarray:
        """Likelihood where the reading was scored, NaN during warm-up / settling / rejection."""
        return np.where(np.isnan(self.score), np.nan, self.likelihood)

    @property
    def raised(self) -> np.ndarray:
        from ..alerts import RAISED

        return self.event == RAISED

    @property
    def cleared(self) -> np.ndarray:
        from ..alerts import CLEARED

        return self.event == CLEARED


def run_recordings(detector, recordings: list[tuple[str, np.ndarray, np.ndarray]], chunk: int = 256,
                   progress=None) -> list[Trace]:
    """Feed ``[(stream, ts float64[n], x float64[n, F]), ...]`` through ``detector``.

    Batch k holds rows [k*chunk, (k+1)*chunk) of every recording, in row order per stream.
    ``progress``: an ``edgernn.progress.Progress`` (or None), advanced by readings.
    """
    from ..detector import Batch

    F = detector.F
    traces = []
    for stream, ts, x in recordings:
        x = np.asarray(x, dtype=np.float64).reshape(len(ts), F)
        n = len(ts)
        traces.append(Trace(stream, np.asarray(ts, np.float64), x, np.full(n, np.nan), np.full(n, np.nan),
                            np.full(n, np.nan), np.zeros(n, bool), np.zeros(n, np.int8), detector.threshold))
    longest = max((len(t.ts) for t in traces), default=0)
    for start in range(0, longest, chunk):
        parts = [(t, slice(start, min(start + chunk, len(t.ts)))) for t in traces if start < len(t.ts)]
        streams = [t.stream for t, sl in parts for _ in range(sl.stop - sl.start)]
        ts = np.concatenate([t.ts[sl] for t, sl in parts])
        x = np.concatenate([t.x[sl] for t, sl in parts])
        res = detector.process(Batch(streams=streams, ts=ts, x=x))
        pos = 0
        for t, sl in parts:
            m = sl.stop - sl.start
            if res.looks is not None:
                if t.looks is None:
                    t.looks = {k: np.full(len(t.ts), np.nan) for k in res.looks}
                for k, v in res.looks.items():
                    t.looks[k][sl] = v[pos:pos + m]
            t.score[sl] = res.score[pos:pos + m]
            t.likelihood[sl] = res.likelihood[pos:pos + m]
            t.onset[sl] = res.onset[pos:pos + m]
            t.alert[sl] = res.alert[pos:pos + m]
            t.event[sl] = res.event[pos:pos + m]
            pos += m
        if progress is not None:
            progress.update(len(streams))
    return traces
