"""The one timestamp parser: every accepted format, the day/month decision, clear refusals, and
every reader of time (recordings, MQTT payloads, label files) going through it."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from unit_helpers import PYTHON, REPO

from edgernn import decode, recording, timestamps
from edgernn.evaluate import events
from edgernn.timestamps import FORMATS_HINT, date_order, number_to_seconds, parse_column, parse_timestamp

T0 = 1706702400.0  # 2024-01-31T12:00:00Z


@pytest.mark.parametrize("text", [
    "2024-01-31T12:00:00Z", "2024-01-31T12:00:00z", "2024-01-31 12:00:00", "2024-01-31T13:00:00+01:00",
    "1706702400", "1706702400000", "1706702400000000", "1706702400000000000",  # s, ms, us, ns by magnitude
    "31.01.2024 12:00", "31.01.2024 12:00:00", "31.01.24 12:00", "31/01/2024 12:00", "31-01-2024 12:00",
    "1/31/2024 12:00:00 PM", " 31.01.2024 12:00 ",
])
def test_every_accepted_format_reads_the_same_instant(text):
    assert parse_timestamp(text) == T0


def test_fractions_and_midnight():
    assert parse_timestamp("31.01.2024 12:00:00,250") == T0 + 0.25
    assert parse_timestamp("31.01.2024") == T0 - 12 * 3600
    assert parse_timestamp("1/31/2024 12:00 AM") == T0 - 12 * 3600


def test_ambiguous_day_month_needs_an_order():
    with pytest.raises(ValueError, match="ambiguous"):
        parse_timestamp("03/04/2024 10:00")
    assert parse_timestamp("03/04/2024 10:00", dayfirst=True) == parse_timestamp("2024-04-03T10:00:00Z")
    assert parse_timestamp("03/04/2024 10:00", dayfirst=False) == parse_timestamp("2024-03-04T10:00:00Z")
    assert parse_timestamp("03.04.2024 10:00") == parse_timestamp("2024-04-03T10:00:00Z")  # dots: day-first


@pytest.mark.parametrize("texts, sep, dayfirst, why", [
    (["01.02.2024 10:00"], ",", True, "dd.mm.yyyy"),
    (["01/02/2024", "13/02/2024"], ",", True, "first field of 13"),
    (["01/02/2024", "01/13/2024"], ";", False, "second field of 13"),
    (["01/02/2024"], ";", True, "';' separator"),
    (["01/02/2024"], ",", False, "',' separator"),
    (["2024-01-31T12:00:00Z", "1706702400"], ",", None, ""),
])
def test_date_order_of_a_column(texts, sep, dayfirst, why):
    got, reason = date_order(texts, sep)
    assert got is dayfirst and why in reason


@pytest.mark.parametrize("bad", ["yesterday", "", "nan", "inf", "2024-13-45T00:00:00", "31.02.2024 10:00",
                                 "13/13/2024", "1/31/2024 13:00 PM", "x" * 10_000])
def test_refusals_are_value_errors_with_one_short_line(bad):
    with pytest.raises(ValueError) as info:
        parse_timestamp(bad)
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 300
    if bad not in ("nan", "inf"):
        assert FORMATS_HINT in msg


def test_units():
    assert number_to_seconds(1706702400123, "auto") == pytest.approx(T0 + 0.123)
    assert number_to_seconds(1706702400, "ms") == pytest.approx(1706702.4)
    assert number_to_seconds(5.0, "s") == 5.0 and number_to_seconds(5.0, "auto") == 5.0


def test_every_reader_of_time_uses_it():
    assert recording.parse_timestamp is parse_timestamp
    assert events.parse_time is parse_timestamp
    assert decode._to_seconds is timestamps.number_to_seconds


def test_decode_does_not_import_the_detector():
    code = "import sys, edgernn.decode; print(sorted(m for m in sys.modules if m.startswith('edgernn.')))"
    out = subprocess.run([PYTHON, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "edgernn.detector" not in out and "edgernn.readings" in out


def test_a_column_parses_as_its_values_do_one_by_one():
    numbers = ["1706702400", "1706702400000", "1706702400000000", "1706702400000000000", "5"]
    got, first = parse_column(numbers)
    assert first is None and got.tolist() == [parse_timestamp(t) for t in numbers]
    mixed = ["31/01/2024 12:00", "yesterday", "01/02/2024 12:00", "1706702400"]
    got, first = parse_column(mixed, dayfirst=True)
    assert got[0] == T0 and np.isnan(got[1]) and got[2] == T0 + 86400 and got[3] == T0
    assert first[0] == 1 and "'yesterday' is not a timestamp" in first[1]
    got, first = parse_column(["1", "inf"])  # non-finite numbers go through the one-by-one path
    assert got[0] == 1.0 and np.isnan(got[1]) and first[0] == 1


def test_iso_columns_take_a_fast_path_with_the_same_results():
    rng = np.random.default_rng(3)
    secs = rng.integers(0, 4_000_000_000, 500) + rng.integers(0, 10**6, 500) / 1e6
    from datetime import datetime, timezone

    texts = [datetime.fromtimestamp(s, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f") for s in secs]
    for column in (texts, [t.replace(" ", "T") + "Z" for t in texts]):
        fast, first = parse_column(column)
        assert first is None and fast.tolist() == [parse_timestamp(t) for t in column]
    assert parse_column(["2024-01-31Z"])[0].tolist() == [parse_timestamp("2024-01-31Z")]
    with_offset = texts[:3] + ["2024-01-31T13:00:00+01:00"]  # offsets: the exact path, same answer
    assert parse_column(with_offset)[0].tolist() == [parse_timestamp(t) for t in with_offset]
    got, first = parse_column(["2024-01-31 12:00:00", "NaT", "2024-02-30 00:00:00"])
    assert got[0] == T0 and np.isnan(got[1:]).all() and first[0] == 1
