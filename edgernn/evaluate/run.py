"""Per-recording traces of the daemon's ``Detector`` (run by ``edgernn.drive``), causally.

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
    reject: list | None = None  # str | None per row: why the detector did not score it (drive.Output.reject)

    @property
    def scored_likelihood(self) -> np.ndarray:
        """Likelihood where the reading was scored, NaN during warm-up / settling / rejection."""
        return np.where(np.isnan(self.score), np.nan, self.likelihood)

    def rejects(self) -> dict:
        """{reason: readings} the detector rejected (not scored), most frequent first."""
        from collections import Counter

        return dict(Counter(r for r in self.reject or () if r is not None).most_common())

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
    """Feed ``[(stream, ts float64[n], x float64[n, F]), ...]`` through ``detector`` (``drive``:
    batch k holds rows [k*chunk, (k+1)*chunk) of every recording, in row order per stream) and
    cut the outputs back into one ``Trace`` per recording. ``progress``: as for ``drive``."""
    from ..drive import Feed, drive

    recordings = [(s, ts, np.asarray(x, np.float64).reshape(len(ts), detector.F)) for s, ts, x in recordings]
    feed = Feed.from_recordings(recordings, chunk)
    out = drive(detector, feed, progress if progress is not None else False, "run")
    traces = []
    for (stream, ts, x), rows in zip(recordings, feed.rows_of):
        looks = None if out.looks is None else {k: v[rows] for k, v in out.looks.items()}
        traces.append(Trace(stream, np.asarray(ts, np.float64), x, out.score[rows], out.likelihood[rows],
                            out.onset[rows], out.alert[rows], out.event[rows], detector.threshold, looks,
                            [out.reject[i] for i in rows]))
    return traces
