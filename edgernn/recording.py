"""CSV recordings -> arrays, for replay, training and evaluation.

Accepted layouts (``,``, ``;`` or tab separated, detected from the first line; a first line of
numbers only is data, not a header, and the columns are then named ``col1``, ``col2``, ...):

    timestamp,value                         one stream, one feature
    timestamp,<feature>,<feature>,...       one stream, several features
    timestamp,stream,<feature>,...          long format: many streams interleaved in time order

The timestamp column is the first column whose name is one of ``TIME_COLUMNS``, else the first
column if its values read as timestamps in order (epoch-sized numbers or dates) and it is not the
only column, else there is none and the rows are taken 1 s apart in file order (a file of metrics
only, or one column of values); a date column and a time-of-day column (``Datum;Uhrzeit;Wert``)
are joined. Timestamps: see edgernn/timestamps.py (epoch numbers, ISO-8601, ``31.01.2024 12:00``;
a time without an offset is UTC). ``columns`` maps model features to file columns (``{"value":
"temperature"}``). A single-feature model reads ``value`` or the only other column.

Spreadsheet exports are read as they come: a UTF-8 BOM, CRLF line ends, Excel's ``sep=;`` first
line, decimal commas (``21,5`` in a ``;`` or tab separated file, detected from the values) and
day-first dates (decided once per file, see ``timestamps.date_order``). A file that is not UTF-8
is read as Windows-1252 (Excel's "CSV" export on Western European Windows) with a warning; a
file with NUL bytes is refused as not text. ``Recording.dialect.describe()`` says what was found.

Bad rows never stop a recording: a row with the wrong number of fields or an unreadable timestamp
is skipped and counted (a quote not closed on its line: that line, and reading goes on with the
next); a value that is empty or not a number becomes NaN (the detector rejects that reading and
counts it). ``Recording.problems`` keeps the first example of each kind (line, column, text,
expected format). A missing column is an error naming the file and the column.
"""

from __future__ import annotations

import array
import csv
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import chain, islice
from pathlib import Path

import numpy as np

from .progress import Progress
from .timestamps import date_order, parse_column, parse_timestamp  # noqa: F401 (parse_timestamp: public here too)

TIME_COLUMNS = ("timestamp", "datetime", "time", "ts", "date", "zeitstempel", "datum", "zeit")
# a spreadsheet that splits the date and the time of day into two columns ("Datum;Uhrzeit;Wert")
DATE_COLUMNS = ("date", "datum", "fecha")
CLOCK_COLUMNS = ("time", "uhrzeit", "zeit", "heure", "hora")
STREAM_COLUMNS = ("stream", "sensor", "device", "id")
LABEL_COLUMNS = ("anomaly", "changepoint", "label", "labels", "is_anomaly")  # never a feature
EPOCH_MIN = 1e8  # plain numbers in an unnamed first column are time only if epoch-sized (after 1973)
SEPARATORS = (",", ";", "\t")
_DECIMAL_COMMA = re.compile(r"\s*[+-]?\d*,\d+(?:[eE][+-]?\d+)?\s*")
_DECIMAL_DOT = re.compile(r"\s*[+-]?\d*\.\d+(?:[eE][+-]?\d+)?\s*")
_SAMPLE_ROWS = 200  # rows looked at to detect decimal commas and an unnamed time column
_ROW_LINES = 10  # the most lines one quoted field may span (a note with line breaks); more: a stray quote
_BLOCK = 65_536  # rows whose values are turned into numbers at a time (their texts are not all kept)
_NAMES = 100_000  # stream names shared between the rows that carry them (a million unique ones: not kept)


class RecordingError(ValueError):
    """The file cannot be read as a recording (one line, naming the file)."""


@dataclass
class Dialect:
    """What the reader found in the file, said back to the user."""

    encoding: str = "UTF-8"
    separator: str = ","
    decimal_comma: bool = False
    date_order: str = ""  # "" when the file has no spreadsheet dates
    time_columns: str = ""  # "Datum + Uhrzeit" when the date and the time of day are two columns
    no_time: bool = False  # no time column: the rows are taken 1 s apart, in file order
    no_header: bool = False  # the first line was numbers: the columns are named col1, col2, ...
    line_ends: str = "LF"
    warnings: list = field(default_factory=list)  # one line each, for stderr

    def describe(self) -> str:
        sep = "tab" if self.separator == "\t" else repr(self.separator)
        parts = [f"separator {sep}", "decimal comma" if self.decimal_comma else "decimal point"]
        if self.time_columns:
            parts.append(f"timestamps from {self.time_columns!r}")
        if self.no_header:
            parts.append("no header row: columns named col1, col2, ...")
        if self.no_time:
            parts.append("no time column: rows taken 1 s apart in file order")
        if self.date_order:
            parts.append(f"dates {self.date_order}")
        parts += [self.encoding, f"{self.line_ends} line ends"] + ([] if self.no_time else ["times without an offset taken as UTC"])
        return ", ".join(parts)


@dataclass
class Recording:
    path: Path
    features: tuple[str, ...]
    timestamps: list[str]  # as written in the file
    ts: np.ndarray  # float64[N] epoch seconds
    streams: list[str]  # per row
    x: np.ndarray  # float64[N, F], NaN where a value was missing or not a number
    line: np.ndarray  # int[N] line number in the file, from 1 (line 1 is the header, when the file has one)
    skipped: Counter = field(default_factory=Counter)  # reason -> rows skipped
    non_numeric: int = 0  # values that were not numbers (became NaN)
    dialect: Dialect = field(default_factory=Dialect)
    problems: dict = field(default_factory=dict)  # reason -> first example: "line 7, column 'Zeit': ..."

    def __len__(self) -> int:
        return len(self.streams)


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


def _read_text(path: Path) -> tuple[str, Dialect]:
    """The file's text and what its bytes said (encoding, line ends). Refuses binary files."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RecordingError(f"{path}: cannot open: {exc.strerror or exc}") from None
    dialect = Dialect()
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # Excel's "Unicode text" export
        text, dialect.encoding = data.decode("utf-16", errors="replace"), "UTF-16"
    elif data[:2] == b"\x1f\x8b":
        raise RecordingError(f"{path}: gzip-compressed; decompress it first (gunzip -k {path.name})")
    elif b"\x00" in data:
        raise RecordingError(f"{path}: not a text file (a NUL byte at offset {data.index(0)}); "
                             "expected a CSV recording")
    else:
        try:
            text = data.decode("utf-8-sig")
            dialect.encoding = "UTF-8 with BOM" if data[:3] == b"\xef\xbb\xbf" else "UTF-8"
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:  # bytes cp1252 leaves undefined: latin-1 takes every byte
                text = data.decode("latin-1")
            dialect.encoding = "Windows-1252 (not UTF-8)"
            dialect.warnings.append(f"{path.name} is not UTF-8 (byte 0x{data[exc.start]:02x} on line {line}): "
                                    "read as Windows-1252; save it as 'CSV UTF-8' to be sure of its text")
    head = text[:4096]
    controls = sum(c < " " and c not in "\t\r\n" for c in head)
    if controls > 0.02 * len(head):
        raise RecordingError(f"{path}: not a text file ({controls} control characters in its first "
                             f"{len(head)}); expected a CSV recording")
    dialect.line_ends = "CRLF" if "\r\n" in text else "CR" if "\r" in text else "LF"
    return text, dialect


def _header(lines: list[str], path: Path, dialect: Dialect) -> tuple[list[str], int]:
    """(column names, index of the first data line); sets the dialect's separator."""
    first = next((i for i, line in enumerate(lines) if line.strip()), len(lines))  # leading blank lines
    hinted = first < len(lines) and re.fullmatch(r"\s*sep=(.)\s*", lines[first], re.IGNORECASE)
    if hinted:
        dialect.separator, first = hinted.group(1), first + 1  # Excel's "sep=;" hint line
    if first >= len(lines) or not lines[first].strip():
        raise RecordingError(f"{path}: empty file")
    line = lines[first]
    if not hinted:
        dialect.separator = max(SEPARATORS, key=lambda c: (line.count(c), c == ","))
    try:
        header = [h.strip().strip("\ufeff") for h in next(csv.reader([line], delimiter=dialect.separator))]
    except csv.Error as exc:
        raise RecordingError(f"{path}:{first + 1}: unreadable header ({exc})") from None
    if all(_is_number(h, False) for h in header):  # no header row: numbers from line 1 (one column too)
        dialect.no_header = True
        return [f"col{i + 1}" for i in range(len(header))], first
    return header, first + 1


def rows_by_stream(streams) -> list[tuple[str, np.ndarray]]:
    """``[(stream, rows int[n_s]), ...]`` of a recording's stream ids (one per row): the streams in
    order of first appearance, each one's rows in file order; one pass (no scan per stream)."""
    names, first, inv = np.unique(np.asarray(streams, dtype=object), return_index=True, return_inverse=True)
    rows = np.split(np.argsort(inv, kind="stable"), np.cumsum(np.bincount(inv, minlength=len(names)))[:-1])
    return [(names[k], rows[k]) for k in np.argsort(first)]


def _feature_columns(path, header, features, columns, used) -> list[int]:
    """Model feature -> file column index, or a RecordingError naming the file and the column."""
    f_cols = []
    for feat in features:
        col = columns.get(feat, feat)
        if header.count(col) > 1:  # (which one? the model would be trained or run on either)
            where = ", ".join(str(i + 1) for i, h in enumerate(header) if h == col)
            raise RecordingError(f"{path}: column {col!r} appears {header.count(col)} times in the header "
                                 f"(columns {where}); rename them apart")
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
            mapped = f" (model feature {feat!r})" if col != feat else ""
            raise RecordingError(f"{path}: no column {col!r}{mapped}; its columns are {header}")
    unknown = sorted(set(columns) - set(features))
    if unknown:
        raise RecordingError(f"--columns names unknown feature(s) {unknown}; the model's features are {list(features)}")
    return f_cols


def _decimal_comma(rows: list[list[str]], f_cols: list[int], sep: str) -> bool:
    """True when the values of the first rows are written with a decimal comma (never with ',' as separator)."""
    if sep == ",":
        return False
    fields = [r[c] for r in rows[:_SAMPLE_ROWS] for c in f_cols if c < len(r)]
    commas = sum(_DECIMAL_COMMA.fullmatch(v) is not None for v in fields)
    return commas > 0 and commas >= sum(_DECIMAL_DOT.fullmatch(v) is not None for v in fields)


def _number(text: str, decimal_comma: bool) -> float:
    """A value field -> float. Raises ValueError. Decimal comma: ``1.234,5`` and ``1 234,5`` are 1234.5."""
    if decimal_comma and "," in text:
        text = text.replace(".", "").replace("\u00a0", "").replace("\u202f", "").replace(" ", "").replace(",", ".")
    return float(text)


def read_recording(path: str | Path, features: tuple[str, ...], columns: dict[str, str] | None = None,
                   stream: str | None = None, progress: bool | None = False) -> Recording:
    """``progress``: a bar on stderr while the rows are read (None: on a terminal only)."""
    path = Path(path)
    rec, header, lines, sample, more, (t_col, clock, s_col) = _table(path, tuple(features))
    dialect = rec.dialect
    used = {c for c in (t_col, clock, s_col) if c is not None}
    f_cols = _feature_columns(path, header, features, dict(columns or {}), used)
    if clock is not None:  # one timestamp text from the date and the time of day
        for r, _ in sample:
            _join_clock(r, t_col, clock)
        more = ((_join_clock(r, t_col, clock), n) for r, n in more)
        header = header[:t_col] + [f"{header[t_col]} + {header[clock]}"] + header[t_col + 1:]
        dialect.time_columns = header[t_col]
    dialect.decimal_comma = _decimal_comma([r for r, _ in sample], f_cols, dialect.separator)
    dialect.no_time = t_col is None
    with Progress(len(lines), f"read {path.name}", enabled=progress) as bar:
        table = _columns(rec, chain(sample, more), (t_col, s_col, f_cols), bar)
    dayfirst = False
    if t_col is not None:
        dayfirst, dialect.date_order = date_order(iter(table.times), dialect.separator)
    _parse_rows(rec, table, lines, header, (t_col, f_cols), dayfirst, stream or path.stem)
    if not len(rec):
        raise RecordingError(f"{path}: no readable rows" + _why_nothing(rec))
    return rec


def _join_clock(row: list[str], t_col: int, clock: int) -> list[str]:
    row[t_col] = f"{row[t_col].strip()} {row[clock].strip()}"
    return row


@dataclass
class _Table:
    """The columns read_recording keeps of the rows of the header's width (the rest of each row,
    and the value texts once they are numbers, are let go: a list of row lists of texts took
    ~270 bytes a row)."""

    times: list  # str[N] the time column's texts (date + time of day joined), [] without one
    streams: list  # str[N] stream names, [] without a stream column
    x: np.ndarray  # float64[N, F] NaN where a value is not a number
    not_number: np.ndarray  # bool[N, F] the value's text is not a number (not "nan": that one is)
    line: np.ndarray  # int64[N] line number in the file


def _columns(rec: Recording, rows, cols, bar: Progress) -> _Table:
    """The rows ((row, line number), ...) into columns, values turned into numbers a block at a time."""
    t_col, s_col, f_cols = cols
    times, streams, names, line = [], [], {}, array.array("q")
    texts = [[] for _ in f_cols]  # str per feature, this block's
    xs, bad = [], []  # float64[b, F] and bool[b, F] per block
    for n, (row, lineno) in enumerate(rows, 1):
        if t_col is not None:
            times.append(row[t_col])
        if s_col is not None:
            s = row[s_col].strip()  # (one str per name, not per row, up to _NAMES names)
            streams.append(names.setdefault(s, s) if len(names) < _NAMES else names.get(s, s))
        for j, c in enumerate(f_cols):
            texts[j].append(row[c])
        line.append(lineno)
        if n % _BLOCK == 0:
            _numbers(texts, _BLOCK, rec.dialect.decimal_comma, xs, bad)
            bar.update(lineno - bar.done)
    _numbers(texts, len(line) % _BLOCK, rec.dialect.decimal_comma, xs, bad)
    bar.update(bar.total - bar.done)
    F = len(f_cols)
    return _Table(times, streams, np.concatenate(xs) if xs else np.empty((0, F)),
                  np.concatenate(bad) if bad else np.zeros((0, F), bool), np.array(line, np.int64))


def _numbers(texts: list[list[str]], b: int, decimal_comma: bool, xs: list, bad: list) -> None:
    """One block of ``b`` rows' value texts (per feature) -> float64[b, F] onto ``xs`` and its bool[b, F]
    not-a-number mask onto ``bad``; empties the texts."""
    if not b:
        return
    x = np.empty((b, len(texts)))  # float64[b, F]
    no = np.zeros(x.shape, bool)  # bool[b, F]
    for j, block in enumerate(texts):
        x[:, j] = _values(block, decimal_comma)
        for i in np.flatnonzero(np.isnan(x[:, j])):
            no[i, j] = not _is_number(block[i], decimal_comma)
        block.clear()
    xs.append(x)
    bad.append(no)


def _table(path: Path, features: tuple[str, ...]) -> tuple[Recording, list[str], "_Lines", list, object, tuple]:
    """The file read into rows, as read_recording and infer_features both see it: (an empty
    Recording holding the dialect and the rows skipped, the header, the file's lines, the first
    _SAMPLE_ROWS rows of the header's width as (row, line number), an iterator of the rows after
    them, (time column, time-of-day column, stream column) as _layout_columns decides them from
    the first rows)."""
    text, dialect = _read_text(path)
    lines = _Lines(text)
    del text  # (the lines hold the file's text once, as UTF-8 bytes)
    header, body = _header(lines, path, dialect)
    rec = Recording(path, features, [], np.empty(0), [], np.empty((0, len(features))), np.empty(0, int),
                    dialect=dialect)
    more = _rows(rec, lines, body, len(header))
    sample = list(islice(more, _SAMPLE_ROWS))
    return rec, header, lines, sample, more, _layout_columns(header, [r for r, _ in sample], dialect.separator)


class _Lines:
    """The file's lines, whatever its line ends (not splitlines: it also splits at \\x1c, \\x85),
    each decoded when asked for: the text as UTF-8 bytes and one offset per line (a list of a
    million line strings took ~90 MB more)."""

    def __init__(self, text: str):
        self.data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
        ends = np.flatnonzero(np.frombuffer(self.data, np.uint8) == 10)  # int64[L - 1] each "\n"
        self.starts = np.concatenate(([0], ends + 1, [len(self.data) + 1]))  # int64[L + 1]

    def __len__(self) -> int:
        return len(self.starts) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return list(self.iter_from(*i.indices(len(self))[:2]))
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        return self.data[self.starts[i]:self.starts[i + 1] - 1].decode("utf-8")

    def __iter__(self):
        return self.iter_from(0)

    def iter_from(self, start: int, stop: int | None = None):
        """The lines [start, stop) one by one."""
        stop = len(self) if stop is None else stop
        for a in range(start, stop, _BLOCK):
            starts = self.starts[a:min(a + _BLOCK, stop) + 1].tolist()
            for lo, hi in zip(starts[:-1], starts[1:]):
                yield self.data[lo:hi - 1].decode("utf-8")


def _layout_columns(header: list[str], rows: list[list[str]], sep: str) -> tuple[int | None, int | None, int | None]:
    """(time column or None, separate time-of-day column or None, stream column or None). An only
    column is never the time: it holds the values (there would be nothing to score)."""
    lower = [h.lower() for h in header]
    t_col, clock = _time_columns(lower)
    if t_col is None and len(header) > 1 and rows and _reads_as_time([r[0] for r in rows[:_SAMPLE_ROWS]], sep):
        t_col = 0
    s_col = next((lower.index(c) for c in STREAM_COLUMNS if c in lower), None)
    return t_col, clock, s_col


def _reads_as_time(texts: list[str], sep: str) -> bool:
    """An unnamed first column is time when its first values all parse as timestamps in order:
    dates or epoch-sized numbers (>= EPOCH_MIN) with at most 1 % of steps back (interleaved
    streams), smaller numbers only when strictly increasing (seconds since a start). A metric in
    the first column of a file without a time column is a feature, not a clock."""
    dayfirst, _ = date_order(iter(texts), sep)
    ts, bad = parse_column(texts, dayfirst)
    if bad is not None or not len(ts):  # (bad None: every value parsed, to a finite time)
        return False
    steps = np.diff(ts)  # [n - 1]
    if any(_is_number(text, False) for text in texts) and ts.min() < EPOCH_MIN:
        return bool((steps > 0).all())
    return float(np.mean(steps < 0)) <= 0.01 if len(steps) else True


def infer_features(path: str | Path) -> tuple[str, ...]:
    """The feature columns of a recording as `edgernn train` takes them by default: every column
    but the time (named, or an unnamed first column that reads as time), stream and label ones;
    ("value",) when fewer than two remain."""
    _, header, _, _, _, (t_col, clock, _) = _table(Path(path), ())
    skip = set(TIME_COLUMNS) | set(STREAM_COLUMNS) | set(LABEL_COLUMNS)
    feats = [c for i, c in enumerate(header) if i not in (t_col, clock) and c.lower() not in skip]
    return tuple(feats) if len(feats) > 1 else ("value",)


def _time_columns(lower: list[str]) -> tuple[int | None, int | None]:
    """(named timestamp column or None, separate time-of-day column or None) from the lower-case header."""
    whole = [c for c in ("timestamp", "datetime", "ts", "zeitstempel") if c in lower]
    date = next((lower.index(c) for c in DATE_COLUMNS if c in lower), None)
    clock = next((lower.index(c) for c in CLOCK_COLUMNS if c in lower), None)
    if not whole and date is not None and clock is not None:
        return date, clock
    return next((lower.index(c) for c in TIME_COLUMNS if c in lower), None), None


def _rows(rec: Recording, lines: _Lines, body: int, width: int):
    """Split the data lines (from ``lines[body]`` on) into rows of ``width`` fields: yields (row, line
    number in the file); unreadable rows and rows of another width are skipped and counted. A quote
    not closed on its line (csv would take every line after it, up to the next quote or the end of
    the file, as one field: _runs_on) makes that line an unreadable row and reading goes on from the
    next line, so no line vanishes uncounted."""
    sep, start = rec.dialect.separator, body  # the line the reader starts at (again after an unreadable row)
    while start < len(lines):
        reader = csv.reader(lines.iter_from(start), delimiter=sep)
        done = start  # lines consumed so far (a quoted field may span several)
        try:
            for row in reader:
                first, done = done, start + reader.line_num  # this row: lines[first:done]
                lineno = first + 1
                if done - first > 1 and _runs_on(lines, first, done, width, sep):
                    _skip(rec, "unreadable_row", f"line {lineno}: a quote (\") not closed on its line would take "
                                                 f"the next {done - first - 1} line(s) into one field; read on from "
                                                 f"line {lineno + 1}")
                    start = first + 1
                    break
                if not "".join(row).strip():  # blank lines and Excel's ";;;" rows are not rows
                    continue
                if len(row) == width:
                    yield row, lineno
                else:
                    _skip(rec, "wrong_field_count", f"line {lineno}: {len(row)} field(s), the header has {width}")
            else:
                return
        except csv.Error as exc:  # a field over csv's size limit (a stray quote's run-on too): skip its first line
            _skip(rec, "unreadable_row", f"line {done + 1}: {exc}")
            start = done + 1


def _runs_on(lines: _Lines, first: int, end: int, width: int, sep: str) -> bool:
    """True when a row csv read from several lines, lines[first:end] (a quoted field with line
    breaks), is a stray quote's run-on instead: more than _ROW_LINES lines, or two or more of the
    lines it took in are rows of the header's width by themselves (readings; one such line can be a
    note's second line that happens to hold as many separators)."""
    if end - first > _ROW_LINES:
        return True
    try:
        return sum(len(row) == width for row in csv.reader(lines[first + 1:end], delimiter=sep)) >= 2
    except csv.Error:
        return False


def _skip(rec: Recording, reason: str, example: str) -> None:
    rec.skipped[reason] += 1
    rec.problems.setdefault(reason, example)


def _is_number(text: str, decimal_comma: bool) -> bool:
    try:
        _number(text, decimal_comma)
        return True
    except ValueError:
        return False


def _values(texts: list[str], decimal_comma: bool) -> np.ndarray:
    """float64[N] values of one column, NaN where a text is not a number."""
    try:
        if not decimal_comma:
            return np.array([float(v) for v in texts], np.float64)  # the common case, one pass
    except ValueError:
        pass
    out = np.empty(len(texts))  # float64[N]
    for i, v in enumerate(texts):
        try:
            out[i] = _number(v, decimal_comma)
        except ValueError:
            out[i] = math.nan
    return out


def _parse_rows(rec: Recording, table: _Table, lines: _Lines, header, cols, dayfirst, name: str) -> None:
    """Fill rec's arrays from the table's columns: timestamps parsed (bad ones skipped), values as
    floats (NaN where not a number, counted)."""
    t_col, f_cols = cols
    n = len(table.line)
    if t_col is None:  # no time column: the rows 1 s apart in file order
        ts, first = np.arange(n, dtype=np.float64), None
    else:
        ts, first = parse_column(table.times, dayfirst)  # float64[N], NaN = unreadable
    keep = np.flatnonzero(~np.isnan(ts))  # int[K] rows kept
    if first is not None:
        rec.skipped["bad_timestamp"] += n - len(keep)
        rec.problems["bad_timestamp"] = f"line {table.line[first[0]]}, column {header[t_col]!r}: {first[1]}"
    not_number = table.not_number[keep]  # bool[K, F]
    rec.non_numeric += int(not_number.sum())
    for j, c in enumerate(f_cols):
        if not_number[:, j].any() and "non_numeric" not in rec.problems:
            i = keep[np.argmax(not_number[:, j])]
            text = table.times[i] if c == t_col else _field(lines, int(table.line[i]), c, rec.dialect.separator)
            rec.problems["non_numeric"] = (f"line {table.line[i]}, column {header[c]!r}: {text[:40]!r} is not "
                                           f"a number (expected {'21,5' if rec.dialect.decimal_comma else '21.5'})")
    every = len(keep) == n  # (no copy of the columns then)
    if t_col is not None:
        rec.timestamps = table.times if every else [table.times[i] for i in keep]
    else:
        rec.timestamps = [str(int(t)) for t in ts[keep]]
    if table.streams:
        rec.streams = table.streams if every else [table.streams[i] for i in keep]
    else:
        rec.streams = [name] * len(keep)
    rec.ts, rec.x = (ts, table.x) if every else (ts[keep], table.x[keep])
    rec.line = table.line if every else table.line[keep]  # int64[K]


def _field(lines: _Lines, lineno: int, c: int, sep: str) -> str:
    """Column ``c`` of the row that starts on line ``lineno`` (read again: its text was not kept)."""
    return next(csv.reader(lines.iter_from(lineno - 1), delimiter=sep))[c]


def _why_nothing(rec: Recording) -> str:
    """' (bad_timestamp 2; first: line 2, column ...)' or ' (the file has a header only)'."""
    if not rec.skipped:
        return " (the file has a header only)"
    counts = ", ".join(f"{reason} {n}" for reason, n in sorted(rec.skipped.items()))
    first = rec.problems[max(rec.skipped, key=rec.skipped.get)]
    return f" ({counts}; first: {first})"


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
