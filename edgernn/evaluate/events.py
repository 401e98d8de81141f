"""Event-wise metrics for your own labelled incidents, and the labels file format.

Labels file: CSV, one incident per line, ``#`` starts a comment, an optional header line
``stream,start,end,label``::

    # stream,start,end[,label]
    pump-1,2024-03-01T10:00:00Z,2024-03-01T10:30:00Z,bearing wear
    pump-2,1709290800,1709291100,valve stuck
    *,2024-03-02 08:00:00,2024-03-02 08:05:00

* ``stream``: the stream id as in the recording; ``*`` (or empty) means every stream.
* ``start``, ``end``: epoch seconds (a plain number) or ISO-8601 (``T`` or space between date and
  time; ``Z`` / ``+hh:mm`` offsets honoured; no offset means UTC). ``end >= start``; a point
  incident has ``end == start``.
* ``label``: free text (optional), used to break recall down by kind of incident.

Metrics (per stream, summed over streams), with alerts as intervals [raised, cleared] (an alert
still open at the end of the recording ends there):

* an incident is detected when an alert interval overlaps [start - early, end + late]
  (``early`` / ``late`` tolerances, default 0 s);
* recall    = detected incidents / incidents;
* precision = alerts overlapping some tolerance-widened incident / alerts;
* F1        = 2 P R / (P + R);
* delay of a detected incident = max(0, first overlapping alert's raise time - start), in
  seconds (0 when an alert was already open when it started); reported as mean / median / max.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..timestamps import parse_timestamp

ANY_STREAM = "*"


@dataclass(frozen=True)
class Incident:
    stream: str  # "*" = every stream
    start: float  # epoch seconds
    end: float
    label: str = ""


@dataclass(frozen=True)
class AlertSpan:
    stream: str
    start: float  # raised at
    end: float  # cleared at (or the end of the recording)


parse_time = parse_timestamp  # the one timestamp parser (edgernn/timestamps.py)


def chance_catches(rate: float, windows) -> float:
    """Events an alert would land in by chance alone: the sum over the events' windows (w scored
    readings in which an alert counts for the event) of 1 - exp(-rate w), rate the false alerts
    (or detections) per reading where no event is (benchmarks/quality_synthetic.py: per clean
    scored reading, pooled over a set; the NAB scorer, nab.score_detections: per scored row outside
    every window, per file). False alerts as a Poisson process at that rate: a guide to how much of
    a recall the false alerts alone would give (a long window at a high false-alert rate is caught
    whatever the detector sees), not a test."""
    return float(sum(-np.expm1(-rate * w) for w in windows))


def read_labels(path: str | Path) -> list[Incident]:
    """Parse a labels file (format above). Raises ValueError naming the file and line."""
    out = []
    lines = _lines(path)
    reader = csv.reader(lines, delimiter=_separator(lines))
    end_line = 0  # the line the previous row ended on (a quoted field may span lines)
    try:
        for row in reader:
            lineno, end_line = end_line + 1, reader.line_num
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            if row[0].strip().lower() == "stream" and not out:  # the header (after comments, if any)
                continue
            if len(row) < 3:
                raise ValueError(f"{path}:{lineno}: expected stream,start,end[,label]")
            try:
                start, end = parse_time(row[1]), parse_time(row[2])
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: {exc}") from None
            if end < start:
                raise ValueError(f"{path}:{lineno}: end is before start")
            stream = row[0].strip() or ANY_STREAM
            label = ",".join(row[3:]).strip() if len(row) > 3 else ""
            out.append(Incident(stream, start, end, label))
    except csv.Error as exc:
        raise ValueError(f"{path}:{end_line + 1}: {exc}") from None
    return out


def _lines(path) -> list[str]:
    """The labels file's lines, whatever their line ends (a UTF-8 BOM, as Excel writes it, dropped);
    ValueError naming the file and line when it is not UTF-8 text."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                         "save the labels as 'CSV UTF-8'") from None
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _separator(lines: list[str]) -> str:
    """',' or, for a spreadsheet export without a comma on its first line, ';' or tab."""
    first = next((line for line in lines if line.strip() and not line.lstrip().startswith("#")), "")
    if "," in first or not (";" in first or "\t" in first):
        return ","
    return ";" if first.count(";") >= first.count("\t") else "\t"


def alert_spans(stream: str, ts: np.ndarray, raised: np.ndarray, cleared: np.ndarray) -> list[AlertSpan]:
    """Alert intervals of one stream from per-row raised / cleared flags (bool[n])."""
    spans, open_at = [], None
    for i in np.flatnonzero(np.asarray(raised) | np.asarray(cleared)):
        if raised[i] and open_at is None:
            open_at = float(ts[i])
        elif cleared[i] and open_at is not None:
            spans.append(AlertSpan(stream, open_at, float(ts[i])))
            open_at = None
    if open_at is not None:
        spans.append(AlertSpan(stream, open_at, float(ts[-1])))
    return spans


def evaluate(incidents: list[Incident], alerts: list[AlertSpan], streams: list[str],
             early: float = 0.0, late: float = 0.0) -> dict:
    """Event-wise precision / recall / F1 / delay over ``streams`` (those in the recording).

    An incident labelled ``*`` is expanded to one incident per stream.
    """
    per_label: dict[str, list[int]] = {}
    delays, n_inc, n_det = [], 0, 0
    n_alerts, n_true_alerts = 0, 0
    own: dict[str, list[int]] = {}  # stream -> indices of its incidents (one pass: no scan per stream)
    for k, i in enumerate(incidents):
        own.setdefault(i.stream, []).append(k)
    spans_of: dict[str, list[AlertSpan]] = {}
    for a in alerts:
        spans_of.setdefault(a.stream, []).append(a)
    for stream in streams:
        mine = sorted({*own.get(ANY_STREAM, ()), *own.get(stream, ())})  # its own and the ``*`` ones, in file order
        incs = sorted((incidents[k] for k in mine), key=lambda i: i.start)
        spans = spans_of.get(stream, [])
        for inc in incs:
            lo, hi = inc.start - early, inc.end + late
            hits = [a for a in spans if a.start <= hi and a.end >= lo]
            n_inc += 1
            stats = per_label.setdefault(inc.label, [0, 0])
            stats[1] += 1
            if hits:
                n_det += 1
                stats[0] += 1
                delays.append(max(0.0, min(a.start for a in hits) - inc.start))
        for a in spans:
            n_alerts += 1
            if any(a.start <= i.end + late and a.end >= i.start - early for i in incs):
                n_true_alerts += 1

    def div(a, b):
        return a / b if b else float("nan")

    precision, recall = div(n_true_alerts, n_alerts), div(n_det, n_inc)
    if n_det and n_true_alerts:
        f1 = 2 * precision * recall / (precision + recall)
    else:  # nothing detected: 0 when there was something to detect
        f1 = 0.0 if n_inc else float("nan")
    return {
        "incidents": n_inc, "detected": n_det, "alerts": n_alerts, "true_alerts": n_true_alerts,
        "false_alerts": n_alerts - n_true_alerts,
        "precision": precision, "recall": recall, "f1": f1,
        "delay_mean_s": float(np.mean(delays)) if delays else float("nan"),
        "delay_median_s": float(np.median(delays)) if delays else float("nan"),
        "delay_max_s": float(np.max(delays)) if delays else float("nan"),
        "recall_by_label": {k or "(none)": div(v[0], v[1]) for k, v in sorted(per_label.items())},
    }
