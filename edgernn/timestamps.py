"""The one timestamp parser: every place that reads time (CSV recordings, MQTT payloads, label
files) turns text or numbers into epoch seconds here.

Accepted:

- epoch numbers: seconds, or (``unit="auto"``, the default for text) milliseconds / microseconds /
  nanoseconds told apart by magnitude (above 1e11 is ms, above 1e14 us, above 1e17 ns)
- ISO-8601: ``2024-01-31T12:00:00Z``, ``2024-01-31 12:00:00``, ``2024-01-31T13:00:00+01:00``
- spreadsheet dates: ``31.01.2024 12:00`` (dots: always day-first), ``31/01/2024 12:00:05``,
  ``1/31/2024 1:00 PM``, two-digit years (``31.01.24``) as 20yy. With ``/`` or ``-`` the order is
  ambiguous: pass ``dayfirst`` (``read_recording`` decides once per column with
  :func:`date_order`); without it a date whose day and month are both <= 12 is refused.

Policy: a time without an offset is UTC (replay's ``--day-offset`` shifts the time of day).

    >>> parse_timestamp("2024-01-31T12:00:00Z")
    1706702400.0
    >>> parse_timestamp("31.01.2024 12:00")
    1706702400.0
    >>> parse_timestamp("1706702400000")  # milliseconds, by magnitude
    1706702400.0
"""

from __future__ import annotations

import math
import re
import warnings
from datetime import datetime, timezone

import numpy as np

UNITS = ("auto", "s", "ms", "us", "ns")
_UNIT_DIVISOR = {"ms": 1e3, "us": 1e6, "ns": 1e9}

# d.m.y / d/m/y / d-m-y with an optional time of day (seconds, fractions, AM/PM optional)
_SHEET = re.compile(r"\s*(\d{1,2})([./-])(\d{1,2})\2(\d{4}|\d{2})"
                    r"(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?\s*([AaPp][Mm])?)?\s*")
_CHUNK = 65_536  # texts turned into times at a time
# epoch seconds a date can have (years 1 to 9999, as ISO-8601 text): an epoch number beyond them is no
# time (1e308 read as nanoseconds is still 1e299 s, and one such row would put every later one out of order)
_FIRST_S, _LAST_S = -62_135_596_800.0, 253_402_300_800.0
FORMATS_HINT = "epoch seconds, ISO-8601 (2024-01-31T12:00:00Z) or dd.mm.yyyy HH:MM[:SS]"


def number_to_seconds(t: float, unit: str = "auto") -> float:
    """A finite epoch number in ``unit`` (auto | s | ms | us | ns) -> epoch seconds; ``auto`` goes
    by magnitude (seconds up to 1e11 = year 5138, then ms, us, ns)."""
    if unit == "auto":
        a = abs(t)
        return t / 1e9 if a > 1e17 else t / 1e6 if a > 1e14 else t / 1e3 if a > 1e11 else t
    div = _UNIT_DIVISOR.get(unit)
    return t / div if div else t


def parse_iso(text: str) -> float:
    """ISO-8601 text -> epoch seconds (no offset = UTC). Raises ValueError."""
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def date_order(texts, sep_hint: str = ",") -> tuple[bool | None, str]:
    """Decide day-first or month-first for a column of spreadsheet dates.

    Returns (dayfirst, why): dots are always day-first; a first field above 12 anywhere means
    day-first, a second field above 12 month-first; otherwise a ``;``-separated file follows the
    European convention (day-first) and a ``,``-separated one the US convention (month-first).
    (None, "") when the column holds no spreadsheet dates (none among its first 200 values).
    """
    seen, misses = False, 0
    for text in texts:
        m = _SHEET.fullmatch(text)
        if m is None:
            misses += 1
            if misses >= 200 and not seen:
                break
            continue
        seen = True
        first, sep, second = m.group(1, 2, 3)
        if sep == ".":
            return True, "day-first (dd.mm.yyyy)"
        if int(first) > 12:
            return True, f"day-first (a first field of {int(first)})"
        if int(second) > 12:
            return False, f"month-first (a second field of {int(second)})"
    if not seen:
        return None, ""
    if sep_hint == ";":
        return True, "day-first (assumed from the ';' separator; no day above 12 to tell)"
    return False, "month-first (assumed from the ',' separator; no day above 12 to tell)"


_DAYS: dict = {}  # (year, month, day) -> epoch seconds of its midnight UTC (a recording has few days)


def _midnight(year: int, month: int, day: int) -> float:
    t = _DAYS.get((year, month, day))
    if t is None:
        t = datetime(year, month, day, tzinfo=timezone.utc).timestamp()  # ValueError when out of range
        if len(_DAYS) < 100_000:
            _DAYS[(year, month, day)] = t
    return t


def _sheet(m: re.Match, dayfirst: bool | None) -> float:
    a, sep, b, year, hour, minute, sec, frac, ampm = m.groups()
    a, b, year = int(a), int(b), int(year)
    if dayfirst is None:
        if sep == "." or a > 12:
            dayfirst = True
        elif b > 12:
            dayfirst = False
        else:
            raise ValueError("day and month order is ambiguous: both fields are 12 or less")
    day, month = (a, b) if dayfirst else (b, a)
    hour, minute, sec = int(hour or 0), int(minute or 0), int(sec or 0)
    if ampm:
        if not 1 <= hour <= 12:
            raise ValueError(f"hour {hour} with {ampm.upper()}")
        hour = hour % 12 + (12 if ampm.lower() == "pm" else 0)
    if hour > 23 or minute > 59 or sec > 59:
        raise ValueError(f"time of day {hour}:{minute:02d}:{sec:02d} is out of range")
    t = _midnight(year + 2000 if year < 100 else year, month, day) + 3600 * hour + 60 * minute + sec
    return t + float("0." + frac) if frac else t


def parse_timestamp(text: str, dayfirst: bool | None = None, unit: str = "auto") -> float:
    """Epoch number, ISO-8601 or spreadsheet date text -> epoch seconds.

    Raises ValueError with a one-line message saying what was expected.
    """
    s = text.strip()
    try:
        value = float(s)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise ValueError(f"{text[:40]!r} is not a finite time")
        t = number_to_seconds(value, unit)
        if not _FIRST_S <= t < _LAST_S:
            raise ValueError(f"{text[:40]!r} is out of range: {t:.3g} s from 1970 is not in the years 1 to 9999")
        return t
    m = _SHEET.fullmatch(s)
    try:
        return _sheet(m, dayfirst) if m else parse_iso(s)
    except (ValueError, OverflowError) as exc:
        detail = f" ({exc})" if m else ""
        raise ValueError(f"{text[:40]!r} is not a timestamp{detail}; expected {FORMATS_HINT}") from None


def _iso_column(texts: list[str]) -> np.ndarray | None:
    """float64[N] epoch seconds when every text is a plain ISO-8601 date-time, naive or ``Z`` (numpy
    parses those in one C pass, to the same microsecond as fromisoformat); None for anything else."""
    if not texts or not all(t[4:5] == "-" and (t[-1:].isdigit() or (t[-1:] in "Zz" and len(t) > 16)) for t in texts):
        return None
    d = np.empty(len(texts), "datetime64[us]")  # datetime64[us][N]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy only warns about a time-zone offset: take the exact path
            for a in range(0, len(texts), _CHUNK):  # (not a stripped copy of every text at once)
                d[a:a + _CHUNK] = np.array([t.rstrip("Zz") for t in texts[a:a + _CHUNK]], dtype="datetime64[us]")
    except (ValueError, TypeError, OverflowError, Warning):
        return None
    if np.isnat(d).any() or (d < np.datetime64("0001-01-01")).any():  # (year 0: numpy takes it, datetime not)
        return None
    return d.astype(np.int64) / 1e6


def parse_column(texts: list[str], dayfirst: bool | None = None, unit: str = "auto"):
    """A column of timestamps -> (float64[N] epoch seconds, NaN where a text is not a timestamp,
    first error as (index, message) or None). Numbers-only columns take one vectorised pass."""
    try:
        t = np.fromiter((float(s) for s in texts), np.float64, len(texts))  # float64[N] (no list of floats)
    except ValueError:
        t = None
    if t is None:
        t = _iso_column(texts)
        if t is not None:
            return t, None
    elif np.isfinite(t).all():
        if unit == "auto":  # the same divisions as number_to_seconds, element by element
            a = np.abs(t)
            t = np.where(a > 1e17, t / 1e9, np.where(a > 1e14, t / 1e6, np.where(a > 1e11, t / 1e3, t)))
        elif unit in _UNIT_DIVISOR:
            t = t / _UNIT_DIVISOR[unit]
        if ((t >= _FIRST_S) & (t < _LAST_S)).all():
            return t, None  # (else each text again below, to name the first one out of range)
    out, first = np.empty(len(texts)), None  # float64[N]
    for i, text in enumerate(texts):
        try:
            out[i] = parse_timestamp(text, dayfirst, unit)
        except ValueError as exc:
            out[i] = math.nan
            first = first or (i, str(exc))
    return out, first


def duration_text(seconds: float) -> str:
    """A duration for people: 42 s, 12 min, 5.2 h, 3.1 days (negative: 0 s)."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 172800 else f"{seconds / 86400:.1f} days"


def utc_text(t: float) -> str:
    """Epoch seconds as 'YYYY-MM-DD HH:MM:SS UTC' (beyond the calendar: '1e+300 s since 1970')."""
    try:
        return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, ValueError, OSError):
        return f"{t:.3g} s since 1970"
