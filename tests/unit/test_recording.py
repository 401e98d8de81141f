"""CSV recordings: every accepted layout, timestamp formats, column mapping, and bad rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from unit_helpers import sine_series

from edgernn.bundle import load_bundle
from edgernn.detector import Batch, Detector, DetectorSettings
from edgernn.recording import RecordingError, parse_columns, parse_timestamp, read_recording, write_recording
from edgernn.replay import replay
from edgernn.scoring import threshold_for_rate

T0 = 1706702400.0  # 2024-01-31T12:00:00Z


def _csv(tmp_path, text, name="rec.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("stamp", ["2024-01-31T12:00:00Z", "2024-01-31 12:00:00", "2024-01-31T12:00:00",
                                   "2024-01-31T13:00:00+01:00", "1706702400", "1706702400.0"])
def test_timestamp_formats(stamp):
    assert parse_timestamp(stamp) == T0


def test_epoch_fractions_and_bad_stamps():
    assert parse_timestamp(" 1706702400.25 ") == T0 + 0.25
    for bad in ("yesterday", "", "nan", "2024-13-45T00:00:00"):
        with pytest.raises(ValueError):
            parse_timestamp(bad)


def test_timestamp_value(tmp_path):
    p = _csv(tmp_path, "timestamp,value\n2024-01-31T12:00:00Z,1.5\n2024-01-31T12:01:00Z,2.5\n")
    rec = read_recording(p, ("value",))
    assert len(rec) == 2 and rec.features == ("value",)
    np.testing.assert_array_equal(rec.ts, [T0, T0 + 60])
    np.testing.assert_array_equal(rec.x, [[1.5], [2.5]])
    assert rec.streams == ["rec", "rec"]  # the file's stem names the stream
    assert rec.timestamps == ["2024-01-31T12:00:00Z", "2024-01-31T12:01:00Z"]
    assert not rec.skipped and rec.non_numeric == 0
    assert read_recording(p, ("value",), stream="boiler-1").streams == ["boiler-1"] * 2


def test_multi_feature_in_model_order(tmp_path):
    p = _csv(tmp_path, "timestamp,flow,temp,pressure\n1706702400,1,20,3\n1706702460,2,21,4\n")
    rec = read_recording(p, ("temp", "pressure", "flow"))
    np.testing.assert_array_equal(rec.x, [[20, 3, 1], [21, 4, 2]])


def test_long_format_with_stream_column(tmp_path):
    p = _csv(tmp_path, "timestamp,stream,value\n"
                       "2024-01-31T12:00:00Z,a,1\n2024-01-31T12:00:00Z,b,10\n2024-01-31T12:01:00Z,a,2\n")
    rec = read_recording(p, ("value",))
    assert rec.streams == ["a", "b", "a"]
    np.testing.assert_array_equal(rec.x[:, 0], [1, 10, 2])
    np.testing.assert_array_equal(rec.ts, [T0, T0, T0 + 60])


def test_semicolon_separator(tmp_path):
    p = _csv(tmp_path, "timestamp;sensor;temp;flow\n2024-01-31 12:00:00;s1;20.5;3\n2024-01-31 12:01:00;s1;21;4\n")
    rec = read_recording(p, ("temp", "flow"))
    assert rec.streams == ["s1", "s1"]
    np.testing.assert_array_equal(rec.x, [[20.5, 3], [21, 4]])
    np.testing.assert_array_equal(rec.ts, [T0, T0 + 60])


def test_mixed_timestamp_formats_in_one_file(tmp_path):
    p = _csv(tmp_path, "time,value\n2024-01-31T12:00:00Z,1\n2024-01-31 12:01:00,2\n1706702520,3\n")
    np.testing.assert_array_equal(read_recording(p, ("value",)).ts, [T0, T0 + 60, T0 + 120])


def test_byte_order_mark_and_header_spaces(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes("\ufefftimestamp, value\n1706702400, 4\n".encode("utf-8"))
    rec = read_recording(p, ("value",))
    np.testing.assert_array_equal(rec.x, [[4.0]])


def test_single_feature_model_reads_the_only_value_column(tmp_path):
    p = _csv(tmp_path, "datetime,temperature\n1706702400,20\n")
    np.testing.assert_array_equal(read_recording(p, ("value",)).x, [[20.0]])


def test_columns_mapping(tmp_path):
    p = _csv(tmp_path, "timestamp,temperature,humidity\n1706702400,20,55\n1706702460,21,56\n")
    with pytest.raises(RecordingError) as info:  # ambiguous without a mapping
        read_recording(p, ("value",))
    assert "rec.csv" in str(info.value) and "--columns" in str(info.value)
    rec = read_recording(p, ("value",), parse_columns("value=humidity"))
    np.testing.assert_array_equal(rec.x[:, 0], [55, 56])
    rec = read_recording(p, ("a", "b"), parse_columns("a=humidity, b=temperature"))
    np.testing.assert_array_equal(rec.x, [[55, 20], [56, 21]])


def test_parse_columns_rejects_bad_spec():
    assert parse_columns(None) == {} and parse_columns("") == {}
    with pytest.raises(RecordingError):
        parse_columns("value")


def test_missing_column_names_file_and_column(tmp_path):
    p = _csv(tmp_path, "timestamp,temp\n1706702400,20\n")
    with pytest.raises(RecordingError) as info:
        read_recording(p, ("temp", "flow"))
    msg = str(info.value)
    assert "rec.csv" in msg and "flow" in msg and "\n" not in msg
    with pytest.raises(RecordingError) as info:
        read_recording(p, ("value",), {"value": "pressure"})
    assert "rec.csv" in str(info.value) and "pressure" in str(info.value)


def test_unknown_feature_in_columns(tmp_path):
    p = _csv(tmp_path, "timestamp,value\n1706702400,20\n")
    with pytest.raises(RecordingError) as info:
        read_recording(p, ("value",), {"value": "value", "bogus": "value"})
    assert "bogus" in str(info.value) and "\n" not in str(info.value)


def test_bad_rows_are_skipped_or_become_nan_and_are_counted(tmp_path):
    p = _csv(tmp_path, "timestamp,a,b\n"
                       "1706702400,1,2\n"
                       "1706702460,1\n"              # wrong field count -> skipped
                       "1706702520,1,2,3\n"          # wrong field count -> skipped
                       "not-a-time,1,2\n"            # bad timestamp -> skipped
                       "1706702580,abc,2\n"          # text -> NaN, counted
                       "1706702640,,2\n"             # empty -> NaN, counted
                       "1706702700,NaN,inf\n"        # non-finite numbers: kept for the detector to reject
                       "\n"                          # blank line: ignored
                       "1706702760,5,6\n")
    rec = read_recording(p, ("a", "b"))
    assert rec.skipped == {"wrong_field_count": 2, "bad_timestamp": 1}
    assert rec.non_numeric == 2
    assert len(rec) == 5
    assert rec.line.tolist() == [2, 6, 7, 8, 10]
    assert math.isnan(rec.x[1, 0]) and math.isnan(rec.x[2, 0]) and math.isnan(rec.x[3, 0])
    assert math.isinf(rec.x[3, 1])
    np.testing.assert_array_equal(rec.x[4], [5, 6])


def test_empty_or_headless_file(tmp_path):
    with pytest.raises(RecordingError, match="empty.csv"):
        read_recording(_csv(tmp_path, "", "empty.csv"), ("value",))
    with pytest.raises(RecordingError, match="header.csv"):
        read_recording(_csv(tmp_path, "timestamp,value\n", "header.csv"), ("value",))
    with pytest.raises(RecordingError, match="missing.csv"):
        read_recording(tmp_path / "missing.csv", ("value",))


def test_write_recording_round_trip(tmp_path):
    v = sine_series(50, F=2)
    write_recording(tmp_path / "w.csv", v, start=T0, step=30.0, features=("a", "b"))
    rec = read_recording(tmp_path / "w.csv", ("a", "b"))
    np.testing.assert_allclose(rec.x, v, rtol=1e-5)
    np.testing.assert_array_equal(rec.ts, T0 + 30.0 * np.arange(50))


def test_replay_equals_direct_processing_on_a_long_format_file(tmp_path, steady_bundle):
    """replay() over a multi-stream file gives what feeding the same readings to a Detector gives."""
    bundle = load_bundle(steady_bundle(F=1, warmup=160))
    per = {s: sine_series(260, seed=k) for k, s in enumerate("abc")}
    per["b"][230] += 30 * per["b"].std()
    lines = ["timestamp,stream,value"]
    for i in range(260):
        for s in "abc":
            lines.append(f"{T0 + 60 * i:.0f},{s},{float(per[s][i, 0])!r}")
    p = _csv(tmp_path, "\n".join(lines) + "\n")
    rec = read_recording(p, bundle.features)
    assert rec.non_numeric == 0 and not rec.skipped
    settings = DetectorSettings(threshold=threshold_for_rate(1e-60))  # only the spike counts (see test_detector)
    out = replay(Detector(bundle, settings=settings), rec, chunk=37, progress=False)
    direct = Detector(bundle, settings=settings).process(Batch(rec.streams, rec.ts, rec.x))
    np.testing.assert_array_equal(out.score, direct.score)
    np.testing.assert_array_equal(out.likelihood, direct.likelihood)
    np.testing.assert_array_equal(out.alert, direct.alert)
    assert [(e.kind, e.alert_id, e.position) for e in out.events] == \
        [(e.kind, e.alert_id, e.position) for e in direct.events]
    assert any(e.stream == "b" and e.kind == "raised" for e in out.events)
    for e in out.events:  # positions index the recording's rows
        assert rec.streams[e.position] == e.stream and rec.ts[e.position] == e.ts


# -- spreadsheet exports -------------------------------------------------------------------------

def _excel(n=30, sep=";", decimal=",", fmt="%d.%m.%Y %H:%M", header="Zeit;Temperatur"):
    """An export as Excel writes it: rows every 5 minutes from 2024-01-31 12:00, CRLF line ends."""
    from datetime import datetime, timedelta

    rows = [header]
    for i in range(n):
        t = (datetime(2024, 1, 31, 12, 0) + timedelta(minutes=5 * i)).strftime(fmt)
        rows.append(f"{t}{sep}" + f"{20 + i / 4:.2f}".replace(".", decimal))
    return "\r\n".join(rows) + "\r\n"


def test_european_excel_export_reads_every_row(tmp_path):
    p = tmp_path / "export.csv"
    p.write_bytes(b"\xef\xbb\xbf" + (_excel() + ";\r\n;\r\n").encode("utf-8"))  # Excel's empty trailing rows
    rec = read_recording(p, ("value",))
    assert len(rec) == 30 and not rec.skipped and rec.non_numeric == 0
    np.testing.assert_array_equal(rec.ts, T0 + 300 * np.arange(30))
    np.testing.assert_allclose(rec.x[:, 0], 20 + np.arange(30) / 4)
    d = rec.dialect
    assert (d.separator, d.decimal_comma, d.encoding, d.line_ends) == (";", True, "UTF-8 with BOM", "CRLF")
    assert "day-first" in d.date_order and not d.warnings
    said = d.describe()
    assert "';'" in said and "decimal comma" in said and "day-first" in said and "UTC" in said


def test_windows_1252_export_is_read_with_a_warning(tmp_path):
    p = tmp_path / "ansi.csv"
    p.write_bytes(_excel(header="Zeit;Temperatur °C").encode("cp1252"))
    rec = read_recording(p, ("value",), {"value": "Temperatur °C"})
    assert len(rec) == 30 and rec.dialect.encoding.startswith("Windows-1252")
    assert len(rec.dialect.warnings) == 1 and "0xb0 on line 1" in rec.dialect.warnings[0]


def test_utf16_tab_export_and_sep_hint_line(tmp_path):
    p = tmp_path / "unicode.txt"
    p.write_bytes(_excel(sep="\t", header="Zeit\tWert").encode("utf-16"))
    rec = read_recording(p, ("value",))
    assert len(rec) == 30 and rec.dialect.separator == "\t" and rec.dialect.decimal_comma
    p = tmp_path / "hint.csv"
    p.write_text("sep=|\n" + _excel(sep="|", decimal=".", fmt="%Y-%m-%d %H:%M", header="time|value").replace("\r", ""))
    rec = read_recording(p, ("value",))
    assert len(rec) == 30 and rec.dialect.separator == "|" and not rec.dialect.decimal_comma


def test_month_first_and_thousands(tmp_path):
    p = _csv(tmp_path, "time,value\n1/31/2024 12:00 PM,1\n2/1/2024 12:00 PM,2\n")
    rec = read_recording(p, ("value",))
    np.testing.assert_array_equal(rec.ts, [T0, T0 + 86400])
    assert "month-first" in rec.dialect.date_order
    p = _csv(tmp_path, 'time;value\n31.01.2024 12:00;"1.234,5"\n31.01.2024 12:01;-0,5\n', "eu.csv")
    np.testing.assert_array_equal(read_recording(p, ("value",)).x[:, 0], [1234.5, -0.5])


def test_problems_name_line_column_and_format(tmp_path):
    p = _csv(tmp_path, "Zeit;Wert\n31.01.2024 12:00;1,5\n31.02.2024 12:05;2,5\n31.01.2024 12:10;hoch\n")
    rec = read_recording(p, ("value",))
    assert rec.skipped == {"bad_timestamp": 1} and rec.non_numeric == 1
    bad = rec.problems["bad_timestamp"]
    assert "line 3" in bad and "'Zeit'" in bad and "31.02.2024 12:05" in bad and "dd.mm.yyyy" in bad
    assert rec.problems["non_numeric"].startswith("line 4, column 'Wert': 'hoch' is not a number (expected 21,5)")


def test_nothing_readable_says_why_in_one_line(tmp_path):
    p = _csv(tmp_path, "time,value\n" + "".join(f"32.01.2024 12:{i:02d},1\n" for i in range(5)))
    with pytest.raises(RecordingError) as info:
        read_recording(p, ("value",))
    msg = str(info.value)
    assert "bad_timestamp 5" in msg and "line 2" in msg and "'time'" in msg and "\n" not in msg


@pytest.mark.parametrize("data", [
    b"", b"\n\n\n", b"\x00\x01\x02" * 100, bytes(range(1, 256)) * 40, b"timestamp,value\r\n",
    b"\xff\xfe", b'"' * 70_000 + b"\n1,2\n", b"timestamp,value\n" + b"9" * 2_000_000 + b",1\n",
])
def test_junk_files_are_one_line_errors(tmp_path, data):
    p = tmp_path / "junk.csv"
    p.write_bytes(data)
    with pytest.raises(RecordingError) as info:
        read_recording(p, ("value",))
    assert "junk.csv" in str(info.value) and "\n" not in str(info.value)


def test_fuzzed_files_never_raise_anything_else(tmp_path):
    """Random cuts, byte flips and insertions in a valid export: a Recording or a RecordingError."""
    rng = np.random.default_rng(7)
    base = bytearray(b"\xef\xbb\xbf" + _excel(n=40).encode())
    p = tmp_path / "fuzz.csv"
    outcomes = set()
    for _ in range(300):
        data = bytearray(base)
        for _ in range(int(rng.integers(1, 8))):
            i = int(rng.integers(0, len(data)))
            op = rng.integers(0, 3)
            if op == 0:
                data[i] = int(rng.integers(0, 256))
            elif op == 1:
                data[i:i] = bytes(rng.choice(list(b';,."\r\n\t0123456789'), int(rng.integers(1, 20))).tolist())
            else:
                del data[i:i + int(rng.integers(1, 50))]
        p.write_bytes(bytes(data))
        try:
            rec = read_recording(p, ("value",))
            assert rec.x.shape == (len(rec), 1) and len(rec.ts) == len(rec) == len(rec.line)
            outcomes.add("read")
        except RecordingError as exc:
            assert "\n" not in str(exc)
            outcomes.add("refused")
    assert "read" in outcomes


def test_date_and_time_of_day_in_two_columns(tmp_path):
    p = _csv(tmp_path, "Datum;Uhrzeit;Wert\n31.01.2024;12:00;1,5\n31.01.2024;12:05:30;2,5\n")
    rec = read_recording(p, ("value",))
    np.testing.assert_array_equal(rec.ts, [T0, T0 + 330])
    np.testing.assert_array_equal(rec.x[:, 0], [1.5, 2.5])
    assert "'Datum + Uhrzeit'" in rec.dialect.describe() and rec.timestamps[0] == "31.01.2024 12:00"
    p = _csv(tmp_path, "date,time,value\n2024-01-31,12:00:00,1\n2024-01-31,xx,2\n", "us.csv")
    rec = read_recording(p, ("value",))
    assert len(rec) == 1 and "column 'date + time'" in rec.problems["bad_timestamp"]


def test_a_file_of_metrics_only_has_no_time_column(tmp_path):
    """No column named like time and a first column that is a metric (not timestamps in order):
    every column is a feature, the rows are 1 s apart in file order, and the reader says so;
    `edgernn train`'s default features are all of them (labels left out)."""
    from edgernn.recording import infer_features

    p = tmp_path / "metrics.csv"
    x = np.random.default_rng(3).random((300, 3))
    p.write_text("cpu,mem,net,label\n" + "".join(f"{a},{b},{c},0\n" for a, b, c in x))
    rec = read_recording(p, ("cpu", "mem", "net"))
    assert len(rec) == 300 and rec.dialect.no_time
    np.testing.assert_array_equal(rec.ts, np.arange(300.0))
    np.testing.assert_allclose(rec.x, x)
    assert "no time column" in rec.dialect.describe() and "UTC" not in rec.dialect.describe()
    assert infer_features(p) == ("cpu", "mem", "net")


@pytest.mark.parametrize("first, is_time", [
    (lambda i: f"{1.7e9 + 60 * i:.0f}", True),          # epoch seconds, unnamed column
    (lambda i: f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}", True),  # ISO dates
    (lambda i: str(i * 0.5), True),                      # seconds since a start, strictly increasing
    (lambda i: str(i // 2), False),                      # a counter that repeats: a metric
    (lambda i: f"{math.sin(i):.4f}", False),             # a metric
])
def test_an_unnamed_first_column_is_time_only_when_it_reads_as_time(tmp_path, first, is_time):
    from edgernn.recording import infer_features

    p = tmp_path / "f.csv"
    p.write_text("t,a,b\n" + "".join(f"{first(i)},{i % 7},{i % 5}\n" for i in range(200)))
    rec = read_recording(p, ("a", "b"))
    assert rec.dialect.no_time == (not is_time) and len(rec) == 200
    assert infer_features(p) == (("a", "b") if is_time else ("t", "a", "b"))


def test_infer_features_and_read_recording_agree_on_the_time_column_past_blank_lines(tmp_path):
    """Regression: infer_features looked at the first lines of the file, read_recording at its first
    rows; past 60 blank lines only read_recording saw the step back that makes `a` a metric, and
    `edgernn train` silently dropped feature `a`."""
    from edgernn.recording import infer_features

    p = tmp_path / "gappy.csv"
    p.write_text("a,b,c\n" + "\n" * 60 + "".join(f"{i},{i % 7},{i % 5}\n" for i in range(190)) + "3,1,2\n")
    assert infer_features(p) == ("a", "b", "c")
    rec = read_recording(p, infer_features(p))
    assert rec.dialect.no_time and len(rec) == 191
    np.testing.assert_array_equal(rec.x[:, 0], [*range(190), 3])


def test_a_file_without_a_header_row_names_its_columns(tmp_path):
    """A first line of numbers only is data: the columns are col1, col2, ... (train and replay name
    them alike), no row is lost, and with no time column the rows are 1 s apart."""
    from edgernn.recording import infer_features

    p = tmp_path / "raw.csv"
    x = np.random.default_rng(4).random((50, 3))
    p.write_text("".join(f"{a},{b},{c}\n" for a, b, c in x))
    assert infer_features(p) == ("col1", "col2", "col3")
    rec = read_recording(p, ("col1", "col2", "col3"))
    assert len(rec) == 50 and rec.dialect.no_header and rec.dialect.no_time
    np.testing.assert_allclose(rec.x, x)
    assert "no header row" in rec.dialect.describe()
    assert rec.line[0] == 1  # the first line is a reading
