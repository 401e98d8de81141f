"""Hostile or odd training data given to `edgernn train`: one line on stderr naming the file (and the
line / column), exit 2, before the fit; or rows left out, counted and said. Each case was a traceback
after the fit, a misleading message, or a model trained on the wrong data without a word (see the
comments)."""

from __future__ import annotations

import gzip
import importlib.util
import os
import shutil

import numpy as np
import pytest
from unit_helpers import REPO

from edgernn.cli import main

SHIPPED = REPO / "firmware_models" / "univariate"
FAST = ["--epochs", "1", "--hidden", "4", "--segment", "128", "--threads", "1"]
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="training needs torch")
T0 = 1_700_000_000


def csv(path, header: str, rows) -> str:
    path.write_text(header + "\n" + "".join(f"{r}\n" for r in rows))
    return str(path)


def wave(n: int = 600) -> np.ndarray:
    return np.sin(np.arange(n) / 10.0) + 0.1 * np.random.default_rng(0).standard_normal(n)


def refused(capsys, argv, line: str) -> None:
    """Exit 2, exactly ``line`` on stderr, and no fit started."""
    code = main(["train", *map(str, argv)])
    out, err = capsys.readouterr()
    assert (code, err) == (2, f"edgernn train: {line}\n"), (code, out[-2000:], err[-2000:])
    assert "epoch" not in out


@needs_torch
def test_a_duplicated_header_name_is_one_line_before_the_fit(tmp_path, capsys):
    # (a BundleError traceback after the whole fit: "features: duplicate feature names")
    v = wave()
    f = csv(tmp_path / "d.csv", "timestamp,a,a", (f"{T0 + 60 * i},{x},{-x}" for i, x in enumerate(v)))
    refused(capsys, [f, "--out", tmp_path / "m", *FAST],
            f"{f}: column 'a' appears 2 times in the header (columns 2, 3); rename them apart")
    assert not (tmp_path / "m").exists()


@needs_torch
@pytest.mark.parametrize("scale, line, value, span", [
    (1e300, 240, "-1.28243e+300", "[-1.28243e+300, 1.23196e+300]"),  # overflow warnings, then "use a smaller --lr"
    (None, 2, "1e+307", "[1e+307, 1e+307]"),  # a constant 1e307: its fixed mean overflowed, the same
])
def test_values_that_overflow_the_statistics_are_one_line_naming_the_line(tmp_path, capsys, scale, line, value, span):
    v = wave()
    if scale:
        f = csv(tmp_path / "big.csv", "timestamp,value", (f"{T0 + 60 * i},{x * scale}" for i, x in enumerate(v)))
        feature = "value"
    else:
        f = csv(tmp_path / "big.csv", "timestamp,a,b", (f"{T0 + 60 * i},1e307,{x}" for i, x in enumerate(v)))
        feature = "a"
    refused(capsys, [f, "--out", tmp_path / "m", *FAST],
            f"{f}: line {line}, feature {feature!r}: {value} - values this large or this far apart (the feature "
            f"spans {span}) overflow the statistics (more than 1e+150 apart, or sums beyond float64); rescale the "
            "column or drop such rows")


@needs_torch
@pytest.mark.parametrize("text, why", [
    ("nan", "a value missing, not a number, NaN or inf 600 (e.g. line 2, feature 'value': nan)"),
    ("inf", "a value missing, not a number, NaN or inf 600 (e.g. line 2, feature 'value': inf)"),
    ("", "a value missing, not a number, NaN or inf 600 (e.g. line 2, column 'value': '' is not a number "
         "(expected 21.5))"),
    ("true", "a value missing, not a number, NaN or inf 600 (e.g. line 2, column 'value': 'true' is not a number "
             "(expected 21.5))"),
])
def test_a_column_with_no_usable_value_names_the_file_and_why(tmp_path, capsys, text, why):
    # (it said "no usable series (each needs >= 50 complete rows)": no file, no reason)
    f = csv(tmp_path / "x.csv", "timestamp,value", (f"{T0 + 60 * i},{text}" for i in range(600)))
    refused(capsys, [f, "--out", tmp_path / "m", *FAST],
            f"no usable series (each needs >= 50 complete rows): {f}: 600 of 600 rows left out: {why}; too short "
            "(fewer than 50 complete rows): 'x' has 0")


@needs_torch
def test_many_short_files_say_how_short(tmp_path, capsys):
    for k in range(200):
        csv(tmp_path / f"f{k:03d}.csv", "timestamp,value", (f"{T0 + 60 * i},{(i * k) % 7}" for i in range(10)))
    refused(capsys, [tmp_path, "--out", tmp_path / "m", *FAST],
            f"no usable series (each needs >= 50 complete rows): {tmp_path / 'f000.csv'}: 10 of 10 rows left out: "
            "too short (fewer than 50 complete rows): 'f000' has 10 (and 199 more file(s) like it)")


@needs_torch
def test_timestamps_going_backwards_are_not_trained_in_reverse(tmp_path, capsys):
    # (a file newest first was trained in reverse time order without a word: exit 0)
    v = wave()
    f = csv(tmp_path / "rev.csv", "timestamp,value", (f"{T0 + 60 * (600 - i)},{x}" for i, x in enumerate(v)))
    refused(capsys, [f, "--out", tmp_path / "m", *FAST],
            f"no usable series (each needs >= 50 complete rows): {f}: 600 of 600 rows left out: out_of_order 599 "
            f"(first: line 3, '{T0 + 60 * 599}' is before an earlier row's time; training reads the file in time "
            "order: sort it oldest first); too short (fewer than 50 complete rows): 'rev' has 1")


def test_rows_left_out_are_counted_per_cause_and_valid_rows_kept_in_order(tmp_path):
    # (rows with an unreadable timestamp, a NaN or out of time order were dropped without a word)
    from edgernn.train.data import load_series

    v = wave(200)
    rows = [f"{'garbage' if i == 5 else T0 + 60 * i},{'nan' if i == 7 else x}" for i, x in enumerate(v)]
    rows.insert(100, f"{T0},99")  # back in time
    f = csv(tmp_path / "x.csv", "timestamp,value", rows)
    notes: list[str] = []
    (s,) = load_series([tmp_path / "x.csv"], ("value",), None, 0.3, notes)
    keep = [i for i in range(200) if i not in (5, 7)]
    assert np.array_equal(s.raw[:, 0], v[keep]) and s.split == int(len(keep) * 0.7)
    assert notes == [f"{f}: 3 of 201 rows left out: bad_timestamp 1 (first: line 7, column 'timestamp': 'garbage' is "
                     "not a timestamp; expected epoch seconds, ISO-8601 (2024-01-31T12:00:00Z) or dd.mm.yyyy "
                     "HH:MM[:SS]); a value missing, not a number, NaN or inf 1 (e.g. line 9, feature 'value': nan); "
                     f"out_of_order 1 (first: line 102, '{T0}' is before an earlier row's time; training reads the "
                     "file in time order: sort it oldest first)"]


@needs_torch
def test_a_fifo_or_a_gzip_file_is_named_for_what_it_is(tmp_path, capsys):
    # (a FIFO was "not found"; a gzip'd CSV "not a text file (a NUL byte at offset 8)")
    fifo = tmp_path / "live.csv"
    os.mkfifo(fifo)
    refused(capsys, [fifo, "--out", tmp_path / "m", *FAST],
            f"{fifo}: not a regular file (a directory, FIFO or device): give a CSV file")
    gz = tmp_path / "x.csv"
    gz.write_bytes(gzip.compress(b"timestamp,value\n1700000000,1\n"))
    refused(capsys, [gz, "--out", tmp_path / "m", *FAST], f"{gz}: gzip-compressed; decompress it first (gunzip -k x.csv)")


def test_recalibrate_on_a_column_with_no_usable_value_names_the_file(tmp_path, capsys):
    shutil.copytree(SHIPPED, tmp_path / "m")
    f = csv(tmp_path / "x.csv", "timestamp,value", (f"{T0 + 60 * i},nan" for i in range(600)))
    refused(capsys, [f, "--out", tmp_path / "m", "--recalibrate"],
            f"no usable series (each needs >= 50 complete rows): {f}: 600 of 600 rows left out: a value missing, not "
            "a number, NaN or inf 600 (e.g. line 2, feature 'value': nan); too short (fewer than 50 complete rows): "
            "'x' has 0")
