"""Hostile recordings and big ones: absurd epoch numbers, a row far ahead of its stream, the
memory a long read takes and the bar it shows. The rule: every row is read correctly or refused /
counted with its file and line; a long read holds the columns it keeps, not every row's texts."""

from __future__ import annotations

import io
import math
import subprocess
import tracemalloc

import numpy as np
import pytest
from unit_helpers import PYTHON, REPO

from edgernn.recording import read_recording
from edgernn.timestamps import parse_column, parse_timestamp

T0 = 1_700_000_000


def _write(path, rows, header="timestamp,value"):
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return path


@pytest.mark.parametrize("stamp", ["1e308", "-1e308", "99999999999999999999999"])
def test_an_epoch_number_past_the_year_9999_is_a_bad_timestamp(tmp_path, stamp):
    """'1e308' read as nanoseconds was still 1e299 s: the row was kept, and its stream's clock jumped
    so far ahead that replay rejected every later row as out_of_order (1999 of 3000, no line named)."""
    rows = [f"{T0 + 60 * i},{i % 10}" for i in range(3000)]
    rows[1000] = f"{stamp},5"  # line 1002
    rec = read_recording(_write(tmp_path / "absurd.csv", rows), ("value",))
    assert len(rec) == 2999 and rec.skipped == {"bad_timestamp": 1}
    assert rec.problems["bad_timestamp"].startswith("line 1002, column 'timestamp': ")
    assert "years 1 to 9999" in rec.problems["bad_timestamp"]
    assert (np.diff(rec.ts) > 0).all() and 1002 not in rec.line.tolist()
    with pytest.raises(ValueError, match="out of range"):
        parse_timestamp(stamp)


def test_epoch_numbers_within_the_years_1_to_9999_still_read_in_every_unit():
    ts, first = parse_column([str(T0), str(T0 * 1000), str(T0 * 10**6), str(T0 * 10**9), "-1700000000"])
    assert first is None and ts.tolist() == [T0, T0, T0, T0, -T0]


def test_the_year_0_is_refused_whatever_the_rows_around_it():
    """numpy's one-pass ISO path took '0000-01-01' (datetime cannot: year 0 does not exist), so the
    same text was a time in an all-ISO column and a bad timestamp next to a spreadsheet date."""
    alone, first = parse_column(["0000-01-01T00:00:00Z", "2024-01-31T12:00:00Z"])
    assert first is not None and first[0] == 0 and math.isnan(alone[0]) and alone[1] == 1706702400.0


def test_replay_names_the_row_a_stream_is_stuck_behind(tmp_path, steady_bundle):
    """A valid far-future date (replay takes times as they are) locks its stream out: the summary
    said 'out_of_order: 1999' and nothing else; now it names the first late line and the row ahead."""
    rows = [f"{T0 + 60 * i},{math.sin(i / 7):.4f}" for i in range(3000)]
    rows[1000] = "9999-12-31T23:00:00Z,0.5"  # line 1002
    path = _write(tmp_path / "ahead.csv", rows)
    proc = subprocess.run([PYTHON, "-m", "edgernn", "replay", str(path), "--model", str(steady_bundle(F=1, warmup=16)),
                           "--quiet"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert ("out_of_order: 1999  (first: line 1003, '1700060060' is not after line 1002's "
            "'9999-12-31T23:00:00Z' in stream 'ahead')") in proc.stdout


def _long_file(path, n):
    path.write_text("timestamp,stream,value\n" + "".join(
        f"2024-01-{1 + i // 86400:02d}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z,sensor-{i % 4},"
        f"{math.sin(i / 9):.4f}\n" for i in range(n)))
    return path


def test_a_long_read_holds_its_columns_not_every_rows_texts(tmp_path):
    """Reading kept every line as a string, every row as a list of strings and every value's text
    at once: 12x the file's size at its peak (~550 MB for a 40 MB file). Now ~6x."""
    path = _long_file(tmp_path / "long.csv", 100_000)
    tracemalloc.start()
    try:
        rec = read_recording(path, ("value",))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(rec) == 100_000 and rec.streams[5] == "sensor-1" and rec.x[5, 0] == round(math.sin(5 / 9), 4)
    assert peak < 8 * path.stat().st_size


def test_the_read_shows_a_bar_when_asked_and_is_silent_by_default(tmp_path, monkeypatch):
    """replay showed no progress while a big file was read (its own bar only came after)."""
    path = _long_file(tmp_path / "bar.csv", 1000)
    for progress, shown in ((True, True), (False, False), (None, False)):  # None: only on a terminal
        err = io.StringIO()
        monkeypatch.setattr("sys.stderr", err)
        read_recording(path, ("value",), progress=progress)
        assert ("read bar.csv [" in err.getvalue()) is shown and ("100.0%" in err.getvalue()) is shown


def test_a_bad_value_is_named_from_the_first_row_kept(tmp_path):
    """(The value texts are no longer kept: the first bad one is read again from its line.) A row whose
    timestamp is bad is skipped, so its text value is not the example; a quoted value spans lines
    (csv joins its lines without the line break, as before)."""
    rows = [f"{T0 + 60 * i},{i}" for i in range(50)]
    rows[3] = "never,abc"  # skipped: bad timestamp
    rows[7] = f'{T0 + 420},"x\ny"'  # lines 9-10: one row, a value that is not a number
    rows[20] = f"{T0 + 1200},zzz"
    rec = read_recording(_write(tmp_path / "bad.csv", rows), ("value",))
    assert rec.skipped == {"bad_timestamp": 1} and rec.non_numeric == 2
    assert rec.problems["non_numeric"] == "line 9, column 'value': 'xy' is not a number (expected 21.5)"
