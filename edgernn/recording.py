"""CSV recordings -> arrays, for replay, training and evaluation.

Accepted layouts (header row required; ``,`` or ``;`` separated, detected from the header):

    timestamp,value                         one stream, one feature
    timestamp,<feature>,<feature>,...       one stream, several features
    timestamp,stream,<feature>,...          long format: many streams interleaved in time order

The timestamp column is the first column whose name is ``timestamp``, ``datetime``, ``time`` or
``ts`` (or the first column). Timestamps are ISO-8601 (``2024-01-31T12:00:00Z``,
``2024-01-31 12:00:00``) or epoch seconds. ``columns`` maps model features to file columns
(``{"value": "temperature"}``). A single-feature model reads ``value`` or the only numeric column.

Bad rows never stop a recording: a row with the wrong number of fields or an unreadable timestamp
is skipped and counted; a value that is empty or not a number becomes NaN (the detector rejects
that reading and counts it). A missing column is an error naming the file and the column.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

TIME_COLUMNS = ("timestamp", "datetime", "time", "ts", "date")
STREAM_COLUMNS = ("stream", "sensor", "device", "id")


class RecordingError(ValueError):
    """The file cannot be read as a recording (one line, naming the file)."""


@dataclass
class Recording:
    path: Path
    features: tuple[str, ...]
    timestamps: list[str]  # as written in the file
    ts: np.ndarray  # float64[N] epoch seconds
    streams: list[str]  # per row
    x: np.ndarray  # float64[N, F], NaN where a value was missing or not a number
    line: np.ndarray  # int[N] line number in the file (1 = header)
    skipped: Counter = field(default_factory=Counter)  # reason -> rows skipped
    non_numeric: int = 0  # values that were not numbers (became NaN)

    def __len__(self) -> int:
        return len(self.streams)


def parse_timestamp(text: str) -> float:
    """ISO-8601 or epoch seconds -> epoch seconds (naive ISO times are taken as UTC)."""
    text = text.strip()
    try:
        value = float(text)
        if math.isfinite(value):
            return value
    except ValueError:
        pass
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def parse_columns(spec: str | None) -> dict[str, str]:
    """``"value=temp,b=pressure"`` -> {"value": "temp", "b": "pressure"}."""
    if not spec:
        return {}
    out = {}
    for part in spec.split(","):
        if "=" not in part:
            raise RecordingError(f"--columns: {part!r} is not FEATURE=COLUMN")
        feat, col = (p.strip() for p in part.split("=", 1))
        out[feat] = col
    return out


def read_recording(path: str | Path, features: tuple[str, ...], columns: dict[str, str] | None = None,
                   stream: str | None = None) -> Recording:
    path = Path(path)
    columns = dict(columns or {})
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise RecordingError(f"{path}: cannot open: {exc.strerror}") from None
    with fh:
        header_line = fh.readline()
        if not header_line.strip():
            raise RecordingError(f"{path}: empty file (a header row is required)")
        delim = ";" if header_line.count(";") > header_line.count(",") else ","
        header = [h.strip() for h in next(csv.reader([header_line], delimiter=delim))]
        lower = [h.lower() for h in header]
        t_col = next((lower.index(c) for c in TIME_COLUMNS if c in lower), 0)
        s_col = next((lower.index(c) for c in STREAM_COLUMNS if c in lower), None)
        used = {t_col} | ({s_col} if s_col is not None else set())
        f_cols = []
        for feat in features:
            col = columns.get(feat, feat)
            if col in header:
                f_cols.append(header.index(col))
            elif len(features) == 1 and feat not in columns:
                rest = [i for i in range(len(header)) if i not in used]
                if len(rest) != 1:
                    raise RecordingError(
                        f"{path}: model feature {feat!r} not found; columns are {header}; "
                        f"choose one with --columns {feat}=COLUMN")
                f_cols.append(rest[0])
            else:
                raise RecordingError(f"{path}: column {col!r} (model feature {feat!r}) not found; columns are {header}")
        unknown = sorted(set(columns) - set(features))
        if unknown:
            raise RecordingError(f"--columns names unknown feature(s) {unknown}; the model's features are {list(features)}")

        name = stream or path.stem
        stamps, ts, streams, rows, lines = [], [], [], [], []
        skipped: Counter = Counter()
        bad_numbers = 0
        for lineno, row in enumerate(csv.reader(fh, delimiter=delim), start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                skipped["wrong_field_count"] += 1
                continue
            try:
                t = parse_timestamp(row[t_col])
            except ValueError:
                skipped["bad_timestamp"] += 1
                continue
            vals = []
            for c in f_cols:
                try:
                    vals.append(float(row[c]))
                except ValueError:
                    vals.append(math.nan)
                    bad_numbers += 1
            stamps.append(row[t_col])
            ts.append(t)
            streams.append(row[s_col].strip() if s_col is not None else name)
            rows.append(vals)
            lines.append(lineno)
    if not rows:
        raise RecordingError(f"{path}: no readable rows")
    return Recording(path, tuple(features), stamps, np.array(ts, np.float64), streams,
                     np.array(rows, np.float64).reshape(len(rows), len(features)),
                     np.array(lines), skipped, bad_numbers)


def write_recording(path: str | Path, values: np.ndarray, start: float = 1.7e9, step: float = 60.0,
                    features: tuple[str, ...] = ("value",)) -> None:
    """Write a one-stream recording with ISO timestamps (used for demo data and tests)."""
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", *features])
        for i, row in enumerate(values):
            stamp = datetime.fromtimestamp(start + i * step, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            w.writerow([stamp, *(f"{v:.8g}" for v in row)])
