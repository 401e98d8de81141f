"""Hostile benchmark data and options given to `edgernn eval` (nab, skab, events): small synthetic
copies of the NAB / SKAB layouts in tmp directories, broken one way at a time. Each case was a
traceback, a message that named neither file nor line, or readings / files that silently vanished
from the figures before (see the comments); through the real CLI (a subprocess), as a user meets it."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from unit_helpers import PYTHON, REPO

SKAB_HEAD = ("datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;Voltage;"
             "Volume Flow RateRMS;anomaly;changepoint")


def edgernn(*args):
    return subprocess.run([PYTHON, "-m", "edgernn", "eval", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=300)


def refused(r, line: str) -> None:
    """Exit 2 and exactly ``line`` as the last line on stderr, no traceback."""
    assert r.returncode == 2 and "Traceback" not in r.stderr, (r.returncode, r.stderr[-2000:])
    assert r.stderr.splitlines()[-1] == line, r.stderr[-2000:]


def ran(r):
    assert r.returncode == 0 and "Traceback" not in r.stderr, (r.returncode, r.stderr[-2000:])
    return r


def _stamp(t0: np.datetime64, seconds: int) -> str:
    return str(t0 + np.timedelta64(seconds, "s")).replace("T", " ")


def nab_dir(root, n: int = 400, names=("realKnownCause/a.csv", "artificialWithAnomaly/b.csv")):
    """data/<category>/<file>.csv (timestamp,value; 5-minute rows, a spike at 70 %) and
    labels/combined_windows.json (one window around the spike per file)."""
    t0 = np.datetime64("2020-01-01T00:00:00")
    labels = {}
    for k, name in enumerate(names):
        v = np.sin(np.arange(n) / 10) + 0.05 * np.random.default_rng(k).standard_normal(n)  # float64[n]
        v[int(0.7 * n)] += 8
        p = root / "data" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("timestamp,value\n" + "".join(f"{_stamp(t0, 300 * i)},{v[i]:.5f}\n" for i in range(n)))
        labels[name] = [[_stamp(t0, 300 * int(0.65 * n)), _stamp(t0, 300 * int(0.75 * n))]]
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "combined_windows.json").write_text(json.dumps(labels))
    return root


def skab_dir(root, n: int = 600, names=("valve1/0.csv", "other/1.csv")):
    """<folder>/<n>.csv, ';'-separated, 8 sensors at 1 Hz, anomaly on rows [0.8 n, 0.9 n)."""
    t0 = np.datetime64("2020-03-09T10:14:33")
    for k, name in enumerate(names):
        x = 0.1 * np.random.default_rng(k).standard_normal((n, 8)) + np.arange(1, 9)  # float64[n, 8]
        an = np.zeros(n)
        an[int(0.8 * n):int(0.9 * n)] = 1
        x[an == 1] += 3
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(SKAB_HEAD + "\n" + "".join(
            f"{_stamp(t0, i)};" + ";".join(f"{v:.5f}" for v in x[i]) + f";{an[i]};0.0\n" for i in range(n)))
    return root


def edit_line(path, lineno: int, new: str) -> None:
    lines = path.read_text().splitlines()
    lines[lineno - 1] = new
    path.write_text("\n".join(lines) + "\n")


# -- NAB data and labels ------------------------------------------------------------------------

@pytest.mark.parametrize("line, says", [
    ("2020-01-01 04:05:00,abc", "50: value 'abc' is not a number"),  # before: no file, no line
    ("2020-01-01 04:05:00", "50: expected timestamp,value"),  # before: "not enough values to unpack ..."
    ("garbage,1.0", "50: 'garbage' is not a timestamp; expected epoch seconds, ISO-8601 (2024-01-31T12:00:00Z) "
                    "or dd.mm.yyyy HH:MM[:SS]"),  # before: no file, no line
])
def test_nab_bad_row_names_the_file_and_line(tmp_path, line, says):
    root = nab_dir(tmp_path / "nab")
    data = root / "data" / "realKnownCause" / "a.csv"
    edit_line(data, 50, line)
    refused(edgernn("nab", "--data-dir", root, "--no-baseline"), f"edgernn eval nab: {data}:{says}")


def test_nab_file_with_a_bom_and_crlf_is_read(tmp_path):
    # before: "expected a 'timestamp,value' header, got ['\ufefftimestamp', 'value']"
    root = nab_dir(tmp_path / "nab")
    data = root / "data" / "realKnownCause" / "a.csv"
    plain = ran(edgernn("nab", "--data-dir", root, "--no-baseline", "--bootstrap", "0")).stdout
    data.write_bytes(b"\xef\xbb\xbf" + data.read_bytes().replace(b"\n", b"\r\n"))
    assert ran(edgernn("nab", "--data-dir", root, "--no-baseline", "--bootstrap", "0")).stdout == plain


@pytest.mark.parametrize("labels, says", [
    ("[1, 2]", ': expected an object {"<category>/<file>.csv": [[start, end], ...]}, got list'),  # AttributeError
    ('{"realKnownCause/a.csv": 5}',
     ": 'realKnownCause/a.csv': expected a list of [start, end] timestamp pairs, got 5"),  # TypeError traceback
    ('{"realKnownCause/a.csv": [["2020-01-01 01:00:00"]]}',  # before: "not enough values to unpack"
     """: 'realKnownCause/a.csv': expected a list of [start, end] timestamp pairs, got [["2020-01-01 01:00:00"]]"""),
    ('{"realKnownCause/a.csv": [["2020-01-01 20:00:00", "2020-01-01 10:00:00"]]}',  # before: dropped, silently
     ": 'realKnownCause/a.csv': window [2020-01-01 20:00:00, 2020-01-01 10:00:00] ends before it starts"),
    ("{bad", ":1: not valid JSON: Expecting property name enclosed in double quotes"),  # before: no file named
])
def test_nab_malformed_labels_name_the_labels_file(tmp_path, labels, says):
    root = nab_dir(tmp_path / "nab")
    path = root / "labels" / "combined_windows.json"
    path.write_text(labels)
    refused(edgernn("nab", "--data-dir", root, "--no-baseline"), f"edgernn eval nab: {path}{says}")


def test_nab_labelled_file_that_is_not_a_file_is_named(tmp_path):
    # before: a directory, a symlink loop or a missing file in place of a labelled file left the run
    # without that file and said nothing
    root = nab_dir(tmp_path / "nab")
    data = root / "data" / "realKnownCause" / "a.csv"
    data.unlink()
    data.symlink_to(data)
    r = ran(edgernn("nab", "--data-dir", root, "--no-baseline", "--bootstrap", "0"))
    assert (f"edgernn eval nab: warning: 1 file(s) named in the labels are not files in {root / 'data'}, "
            "not scored: realKnownCause/a.csv") in r.stderr.splitlines()
    assert r.stdout.startswith("NAB (1 files)")


def test_nab_rejected_readings_are_counted(tmp_path):
    # before: a NaN reading and a file in reverse time order (399 readings rejected out_of_order, its
    # window silently lost) gave figures without a word
    root = nab_dir(tmp_path / "nab")
    edit_line(root / "data" / "realKnownCause" / "a.csv", 50, "2020-01-01 04:05:00,nan")
    b = root / "data" / "artificialWithAnomaly" / "b.csv"
    lines = b.read_text().splitlines()
    b.write_text("\n".join(lines[:1] + lines[:0:-1]) + "\n")
    r = ran(edgernn("nab", "--data-dir", root, "--no-baseline", "--bootstrap", "0", "--json", tmp_path / "r.json"))
    assert "edgernn eval nab: warning: realKnownCause/a.csv: 1 of 400 readings not scored (rejected: " \
           "missing_value 1)" in r.stderr.splitlines()
    assert "edgernn eval nab: warning: artificialWithAnomaly/b.csv: 399 of 400 readings not scored (rejected: " \
           "out_of_order 399)" in r.stderr.splitlines()
    assert json.loads((tmp_path / "r.json").read_text())["rejected"] == {
        "artificialWithAnomaly/b.csv": {"out_of_order": 399}, "realKnownCause/a.csv": {"missing_value": 1}}


def test_nab_one_tiny_file_runs(tmp_path):
    root = nab_dir(tmp_path / "nab", n=10, names=("realKnownCause/a.csv",))
    r = ran(edgernn("nab", "--data-dir", root, "--bootstrap", "0"))
    assert r.stdout.startswith("NAB (1 files)") and "rejected" not in r.stderr


# -- SKAB data ----------------------------------------------------------------------------------

@pytest.mark.parametrize("line, says", [
    (None, ": no data rows (the file has a header only)"),  # before: IndexError traceback
    ("2020-03-09 10:15:21;1;2;3;4;5;6;7;8;0.0", ":50: 10 ';'-separated fields, the header has 11"),  # IndexError
    ("2020-03-09 10:15:21;1;2;3;4;5;6;7;8;0.0;0.0;9", ":50: 12 ';'-separated fields, the header has 11"),
    ("2020-03-09 10:15:21;1;xyz;3;4;5;6;7;8;0.0;0.0", ":50: column 'Accelerometer2RMS': 'xyz' is not a number"),
    ("2020-03-09 10:15:21;1;2;3;4;5;6;7;8;7;0.0", ":50: column 'anomaly': '7' is not 0 or 1"),  # taken as 1
    ("2020-03-09 10:15:21;1;2;3;4;5;6;7;8;nan;0.0", ":50: column 'anomaly': 'nan' is not 0 or 1"),  # int8 garbage
])
def test_skab_bad_file_names_the_file_and_line(tmp_path, line, says):
    root = skab_dir(tmp_path / "skab")
    data = root / "valve1" / "0.csv"
    if line is None:
        data.write_text(SKAB_HEAD + "\n")
    else:
        edit_line(data, 50, line)
    refused(edgernn("skab", "--data-dir", root, "--no-baseline"), f"edgernn eval skab: {data}{says}")


def test_skab_file_with_a_bom_is_read(tmp_path):
    # before: "expected a ';'-separated file starting with 'datetime'"
    root = skab_dir(tmp_path / "skab")
    plain = ran(edgernn("skab", "--data-dir", root, "--no-baseline")).stdout
    data = root / "valve1" / "0.csv"
    data.write_bytes(b"\xef\xbb\xbf" + data.read_bytes())
    assert ran(edgernn("skab", "--data-dir", root, "--no-baseline")).stdout == plain


def test_skab_one_inf_reading_does_not_poison_its_file(tmp_path):
    # before: the per-file renormalisation took the inf into the training mean, every reading of the
    # file became non-finite, and the run ended in a ValueError traceback (no scored training rows)
    root = skab_dir(tmp_path / "skab")
    edit_line(root / "valve1" / "0.csv", 50, "2020-03-09 10:15:21;inf;1.1;2;3;4;5;6;7;0.0;0.0")
    r = ran(edgernn("skab", "--data-dir", root, "--no-baseline"))
    assert "edgernn eval skab: warning: valve1/0.csv: 1 of 600 readings not scored (rejected: non_finite 1)" \
        in r.stderr.splitlines()


def test_skab_file_in_reverse_time_order_is_one_line(tmp_path):
    # before: ValueError traceback "no scored rows in the training part"
    root = skab_dir(tmp_path / "skab")
    data = root / "valve1" / "0.csv"
    lines = data.read_text().splitlines()
    data.write_text("\n".join(lines[:1] + lines[:0:-1]) + "\n")
    r = edgernn("skab", "--data-dir", root, "--no-baseline")
    refused(r, "edgernn eval skab: valve1/0.csv: no scored rows in the training part (every reading rejected, or a "
               "warm-up longer than it)")
    assert "edgernn eval skab: warning: valve1/0.csv: 599 of 600 readings not scored (rejected: out_of_order 599)" \
        in r.stderr.splitlines()


def test_skab_file_without_test_rows_is_named_and_left_out(tmp_path):
    # before: counted as a file of the run, with nothing tested, without a word
    root = skab_dir(tmp_path / "skab")
    skab_dir(root, n=100, names=("valve1/0.csv",))
    r = ran(edgernn("skab", "--data-dir", root, "--no-baseline"))
    assert r.stderr.splitlines()[0] == ("edgernn eval skab: warning: 1 file(s) with no rows after the 400 training "
                                        "rows, not scored: valve1/0.csv (100 rows)")
    assert r.stdout.startswith("SKAB (1 files")


def test_skab_train_rows_beyond_every_file_is_one_line(tmp_path):
    # before: exit 0 and a table of dashes
    root = skab_dir(tmp_path / "skab")
    refused(edgernn("skab", "--data-dir", root, "--no-baseline", "--train-rows", "600"),
            "edgernn eval skab: --train-rows 600: no file has rows after its training rows (the longest has 600 rows)")


@pytest.mark.parametrize("rule", ["q", "qnan", "q500", "q-5", "mean"])
def test_skab_bad_rule_names_the_option(tmp_path, rule):
    # before: "could not convert string to float: ''" / "Quantiles must be in the range [0, 1]"
    refused(edgernn("skab", "--data-dir", skab_dir(tmp_path / "skab"), "--rule", rule),
            f"edgernn eval skab: --rule {rule!r}: use 'max' or 'q<percentile>' with a percentile from 0 to 100, "
            "like q99")


# -- options and outputs ------------------------------------------------------------------------

@pytest.mark.parametrize("suite", ["nab", "skab"])
def test_chunk_below_one_is_one_line(tmp_path, suite):
    # before: taken as 1, silently
    refused(edgernn(suite, "--data-dir", tmp_path, "--chunk", "0"),
            f"edgernn eval {suite}: --chunk must be at least 1 (got 0)")


def test_plot_at_a_file_is_one_line_before_the_run(tmp_path):
    # before: FileExistsError traceback after the whole run
    rec = tmp_path / "r.csv"
    rec.write_text("timestamp,value\n" + "".join(f"{1700000000 + 60 * i},{np.sin(i / 10):.5f}\n" for i in range(200)))
    labels = tmp_path / "l.csv"
    labels.write_text("stream,start,end\nr,1700006000,1700006600\n")
    refused(edgernn("events", rec, "--labels", labels, "--plot", rec),
            f"edgernn eval events: --plot {rec}: not a directory")
    refused(edgernn("nab", "--data-dir", tmp_path, "--plot", rec), f"edgernn eval nab: --plot {rec}: not a directory")


def test_json_under_a_file_is_one_line_before_the_run(tmp_path):
    # before: "edgernn eval: --json .../r.csv/x.json: cannot write: File exists", after the run
    rec = tmp_path / "r.csv"
    rec.write_text("timestamp,value\n" + "".join(f"{1700000000 + 60 * i},{np.sin(i / 10):.5f}\n" for i in range(200)))
    labels = tmp_path / "l.csv"
    labels.write_text("stream,start,end\nr,1700006000,1700006600\n")
    refused(edgernn("events", rec, "--labels", labels, "--json", rec / "x.json"),
            f"edgernn eval events: --json {rec / 'x.json'}: {rec} is not a directory")


def test_nab_header_only_file_is_one_line(tmp_path):
    # before: a file of 0 rows ran as part of the corpus, its windows silently gone
    root = nab_dir(tmp_path / "nab")
    data = root / "data" / "realKnownCause" / "a.csv"
    data.write_text("timestamp,value\n")
    refused(edgernn("nab", "--data-dir", root, "--no-baseline"),
            f"edgernn eval nab: {data}: no data rows (the file has a header only)")


def test_nab_unknown_category_is_one_line(tmp_path):
    # before: a misspelt category was left out silently (and the run went on with the others)
    root = nab_dir(tmp_path / "nab")
    refused(edgernn("nab", "--data-dir", root, "--no-baseline", "--categories", "realKnownCause,realKnownCuase"),
            f"edgernn eval nab: --categories realKnownCuase: not in {root / 'labels' / 'combined_windows.json'} "
            "(its categories: artificialWithAnomaly, realKnownCause)")


def test_nab_bootstrap_beyond_reason_is_one_line(tmp_path):
    # before: --bootstrap 1000000000 ran for days and kept a float per resample (8 GB)
    refused(edgernn("nab", "--data-dir", tmp_path, "--bootstrap", "1000000000"),
            "edgernn eval nab: --bootstrap must be at most 1000000 (got 1000000000)")


@pytest.mark.parametrize("model", ["skab-pump", "univariate"])
def test_skab_files_with_other_columns_are_one_line(tmp_path, model):
    # before: columns were taken by position from the first file: two sensors swapped in one file
    # were silently fed as each other; a missing one was "--calibrate train: cannot reshape ..." or
    # an IndexError traceback
    root = skab_dir(tmp_path / "skab")
    data = root / "valve1" / "0.csv"
    lines = data.read_text().splitlines()
    lines[0] = lines[0].replace("Accelerometer1RMS;Accelerometer2RMS", "Accelerometer2RMS;Accelerometer1RMS")
    data.write_text("\n".join(lines) + "\n")
    refused(edgernn("skab", "--data-dir", root, "--no-baseline", "--model", model),
            "edgernn eval skab: valve1/0.csv: sensor column 1 is 'Accelerometer2RMS', 'Accelerometer1RMS' in "
            "other/1.csv (every file needs the same columns, in the same order)")


def test_events_skipped_rows_and_rejected_readings_are_counted(tmp_path):
    # before: a row with a bad timestamp (skipped by the reader) and a non-numeric value (rejected by
    # the detector) left the figures without a word
    rows = [f"{1700000000 + 60 * i},{np.sin(i / 10):.5f}" for i in range(200)]
    rows[100], rows[120] = "garbage,1.0", f"{1700000000 + 60 * 120},abc"
    rec = tmp_path / "r.csv"
    rec.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    labels = tmp_path / "l.csv"
    labels.write_text("stream,start,end\nr,1700006000,1700006600\n")
    r = ran(edgernn("events", rec, "--labels", labels, "--no-baseline", "--json", tmp_path / "r.json"))
    assert (f"edgernn eval events: warning: {rec}: 1 row(s) skipped (bad_timestamp 1; first: line 102, column "
            "'timestamp': 'garbage' is not a timestamp; expected epoch seconds, ISO-8601 (2024-01-31T12:00:00Z) or "
            "dd.mm.yyyy HH:MM[:SS])") in r.stderr.splitlines()
    assert "edgernn eval events: warning: r: 1 of 199 readings not scored (rejected: missing_value 1)" \
        in r.stderr.splitlines()
    assert json.loads((tmp_path / "r.json").read_text())["rejected"] == {"r": {"missing_value": 1}}


def test_nab_data_file_without_labels_is_named(tmp_path):
    # before: a CSV under data/ that the labels do not list was left out without a word
    root = nab_dir(tmp_path / "nab")
    extra = root / "data" / "realKnownCause" / "extra.csv"
    extra.write_text((root / "data" / "realKnownCause" / "a.csv").read_text())
    r = ran(edgernn("nab", "--data-dir", root, "--no-baseline", "--bootstrap", "0"))
    assert (f"edgernn eval nab: warning: 1 file(s) not in the labels, in {root / 'data'}, not scored: "
            "realKnownCause/extra.csv") in r.stderr.splitlines()


def test_skab_sensor_without_a_number_is_counted_without_numpy_warnings(tmp_path):
    # before: numpy's "Mean of empty slice" / "Degrees of freedom <= 0" warnings (four lines with
    # source) and then a ValueError traceback; a 1e308 reading printed an overflow warning
    root = skab_dir(tmp_path / "skab")
    data = root / "valve1" / "0.csv"
    lines = data.read_text().splitlines()
    data.write_text("\n".join(lines[:1] + [f"{ln.split(';')[0]};nan;{ln.split(';', 2)[2]}" for ln in lines[1:]]) + "\n")
    r = edgernn("skab", "--data-dir", root, "--no-baseline")
    refused(r, "edgernn eval skab: valve1/0.csv: no scored rows in the training part (every reading rejected, or a "
               "warm-up longer than it)")
    assert r.stderr.splitlines()[0] == ("edgernn eval skab: warning: valve1/0.csv: 600 of 600 readings not scored "
                                        "(rejected: missing_value 600)") and "Warning" not in r.stderr
    skab_dir(root)
    edit_line(data, 50, "2020-03-09 10:15:21;1e308;1.1;2;3;4;5;6;7;0.0;0.0")
    assert "Warning" not in ran(edgernn("skab", "--data-dir", root, "--no-baseline")).stderr


def test_skab_fifo_in_place_of_a_file_is_one_line(tmp_path):
    # before: the run blocked forever reading the FIFO (a device like /dev/zero: until memory ran out)
    root = skab_dir(tmp_path / "skab")
    data = root / "valve1" / "0.csv"
    data.unlink()
    os.mkfifo(data)
    refused(edgernn("skab", "--data-dir", root, "--no-baseline"), f"edgernn eval skab: {data}: not a regular file")


def test_nab_window_outside_the_data_is_named(tmp_path):
    # before: a window that covers no row (labels of another file, or in another time zone) was
    # dropped without a word, and the file scored as if it had no anomaly
    root = nab_dir(tmp_path / "nab")
    (root / "labels" / "combined_windows.json").write_text(json.dumps({
        "realKnownCause/a.csv": [["2030-01-01 01:00:00", "2030-01-02 00:00:00"]], "artificialWithAnomaly/b.csv": []}))
    r = ran(edgernn("nab", "--data-dir", root, "--no-baseline", "--bootstrap", "0"))
    assert ("edgernn eval nab: warning: realKnownCause/a.csv: 1 labelled window(s) cover no row of the file "
            "(2020-01-01 00:00:00 UTC to 2020-01-02 09:15:00 UTC), not scored") in r.stderr.splitlines()
