"""Bad input found by fuzzing `edgernn replay`: a stray quote, a headerless one-column file. The
rule: bad input never crashes, never poisons, never vanishes -- every line of the file is a reading
or is counted (and named) in Recording.skipped / problems."""

from __future__ import annotations

import math

import numpy as np

from edgernn.recording import infer_features, read_recording

T0 = 1_700_000_000


def _lines(n: int, start: int = 0) -> list[str]:
    return [f"{T0 + 60 * i},{300 + math.sin(i / 5):.6f}" for i in range(start, start + n)]


def test_a_stray_quote_skips_its_line_and_reads_on(tmp_path):
    """A quote not closed on its line made csv read every line after it as one field: 300 readings
    vanished into one NaN value, 0 rows skipped. Now that line alone is an unreadable row, named."""
    rows = _lines(600)
    rows[300] = f'{T0 + 60 * 300},"5'  # line 302 of the file
    p = tmp_path / "stray.csv"
    p.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    rec = read_recording(p, ("value",))
    assert len(rec) == 599 and rec.skipped == {"unreadable_row": 1} and rec.non_numeric == 0
    assert rec.problems["unreadable_row"].startswith("line 302: a quote")
    assert 302 not in rec.line.tolist() and rec.line[-1] == 601
    assert np.isfinite(rec.x).all()


def test_a_second_stray_quote_closing_the_first_loses_no_line(tmp_path):
    """The quote on line 4 would be closed by the one on line 9: each line is a reading or counted."""
    rows = _lines(20)
    rows[2] = f'{T0 + 120},"301.5'
    rows[7] = f'{T0 + 420},301.5"'
    p = tmp_path / "pair.csv"
    p.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    rec = read_recording(p, ("value",))
    assert rec.skipped == {"unreadable_row": 1} and len(rec) == 19  # line 4 skipped, 19 readings
    assert rec.non_numeric == 1 and rec.problems["non_numeric"].startswith("line 9")  # '301.5"': NaN, counted
    assert len(rec) + sum(rec.skipped.values()) == 20


def test_a_stray_quote_over_csvs_field_limit_loses_only_its_line(tmp_path):
    """The run-on field outgrew csv's 128 KB field limit: the error skipped every line it had taken in."""
    rows = _lines(12_000)
    rows[5] = f'{T0 + 300},"5'
    p = tmp_path / "long.csv"
    p.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    rec = read_recording(p, ("value",))
    assert len(rec) == 11_999 and rec.skipped == {"unreadable_row": 1}
    assert rec.problems["unreadable_row"].startswith("line 7:")


def test_a_quoted_field_with_a_line_break_is_still_one_row(tmp_path):
    p = tmp_path / "note.csv"
    p.write_text(f'timestamp,value,note\n{T0},1.5,"door\nopen"\n{T0 + 60},2.5,ok\n')
    rec = read_recording(p, ("value",), {"value": "value"})
    assert len(rec) == 2 and not rec.skipped
    np.testing.assert_array_equal(rec.x[:, 0], [1.5, 2.5])
    assert rec.line.tolist() == [2, 4]


def test_a_note_whose_second_line_looks_like_a_row_is_still_one_row(tmp_path):
    # (a first version took the note's second line, which holds two commas, for a stray quote's run-on)
    p = tmp_path / "note.csv"
    p.write_text(f'timestamp,note,value\n{T0},"pump stopped, restarted\nby operator, see log",1.5\n{T0 + 60},ok,2.5\n')
    rec = read_recording(p, ("value",), {"value": "value"})
    assert len(rec) == 2 and not rec.skipped and not rec.problems
    np.testing.assert_array_equal(rec.x[:, 0], [1.5, 2.5])


def test_a_one_column_file_without_a_header_keeps_its_first_value(tmp_path):
    """A first line of numbers is data for one column as for several: the first value was taken
    as the column's name (599 of 600 readings, no warning)."""
    x = 300 + np.sin(np.arange(600) / 5)
    p = tmp_path / "raw.csv"
    p.write_text("".join(f"{float(v)!r}\n" for v in x))
    assert infer_features(p) == ("value",)
    rec = read_recording(p, infer_features(p))
    assert len(rec) == 600 and rec.dialect.no_header and rec.dialect.no_time and rec.line[0] == 1
    np.testing.assert_array_equal(rec.x[:, 0], x)
    assert "no header row" in rec.dialect.describe()


def test_an_only_column_of_increasing_numbers_is_values_not_time(tmp_path):
    """A meter reading (kWh, always rising) alone in a file is what is scored, not the clock."""
    for name, head in (("meter.csv", "kwh\n"), ("bare.csv", "")):
        p = tmp_path / name
        p.write_text(head + "".join(f"{1000 + 0.5 * i}\n" for i in range(50)))
        rec = read_recording(p, ("value",))
        assert len(rec) == 50 and rec.dialect.no_time and rec.x[0, 0] == 1000.0


def test_a_stray_quote_before_a_blank_line_near_the_end_loses_no_reading(tmp_path):
    rows = _lines(6)
    rows[1] = f'{T0 + 60},"5'
    p = tmp_path / "tail.csv"
    p.write_text("timestamp,value\n" + "\n".join([*rows[:2], "", *rows[2:]]) + "\n")
    rec = read_recording(p, ("value",))
    assert len(rec) == 5 and rec.skipped == {"unreadable_row": 1} and rec.line.tolist() == [2, 5, 6, 7, 8]
