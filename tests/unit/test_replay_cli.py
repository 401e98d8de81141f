"""`edgernn replay` through the real CLI (a subprocess): output layout, bad rows, and every user
error as exit 2 with one line on stderr and no traceback."""

from __future__ import annotations

import csv
import importlib.util
import shutil
import subprocess

import numpy as np
import pytest
from unit_helpers import PYTHON, REPO, sine_series

HEAD = ["timestamp", "stream", "score", "likelihood", "threshold", "alert", "event"]


def edgernn(*args, cwd=None):
    return subprocess.run([PYTHON, "-m", "edgernn", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=120)


def _write(path, rows, header="timestamp,value"):
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return path


@pytest.fixture
def recording(tmp_path):
    """120 readings of one stream with: a malformed row, a text value, a NaN and an empty value."""
    v = sine_series(120, seed=4)[:, 0]
    rows = [f"2024-01-31T12:{i // 60:02d}:{i % 60:02d}Z,{v[i]:.6f}" for i in range(120)]
    rows[50] = "2024-01-31T12:00:50Z"  # wrong field count -> skipped
    rows[60] = "2024-01-31T12:01:00Z,abc"  # text -> rejected
    rows[61] = "2024-01-31T12:01:01Z,NaN"  # not a number -> rejected
    rows[62] = "2024-01-31T12:01:02Z,"  # empty -> rejected
    return _write(tmp_path / "sensor.csv", rows)


def _assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and len(err.splitlines()) == 1, proc.stderr
    for needle in needles:
        assert needle in err, (needle, err)


def test_replay_writes_the_documented_csv_and_counts_bad_rows(tmp_path, steady_bundle, recording):
    out = tmp_path / "scored.csv"
    proc = edgernn("replay", recording, "--model", steady_bundle(F=1, warmup=16), "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert header[:7] == HEAD
    assert "value" in header[7:] and header[-1] == "reject"
    assert len(body) == 119  # the malformed row is skipped, everything else appears
    col = {name: i for i, name in enumerate(header)}
    by_ts = {r[col["timestamp"]]: r for r in body}
    assert "2024-01-31T12:00:50Z" not in by_ts
    for ts in ("2024-01-31T12:01:00Z", "2024-01-31T12:01:01Z", "2024-01-31T12:01:02Z"):
        row = by_ts[ts]
        assert row[col["score"]] == "" and row[col["reject"]] != ""
    scored = [r for r in body if r[col["score"]] != ""]
    assert len(scored) > 60
    for r in scored:
        assert r[col["reject"]] == ""
        assert 0.0 <= float(r[col["likelihood"]]) < 1.0
        assert r[col["stream"]] == "sensor" and r[col["alert"]] in ("0", "1")
    # the summary counts what was skipped and rejected
    assert "3 rejected" in proc.stdout and "1 row(s) skipped" in proc.stdout
    assert "wrong_field_count: 1" in proc.stdout


def test_replay_long_format_semicolons_and_plot(tmp_path, steady_bundle):
    pytest.importorskip("matplotlib")
    v = sine_series(100, seed=5, F=2)
    rows = [f"{1706702400 + 60 * i};{s};{v[i, 0]:.5f};{v[i, 1]:.5f}" for i in range(100) for s in ("p1", "p2")]
    path = _write(tmp_path / "plant.csv", rows, header="ts;device;temp;flow")
    out, png = tmp_path / "o.csv", tmp_path / "o.png"
    model = steady_bundle(F=2, warmup=16, features=("flow", "temp"))
    proc = edgernn("replay", path, "--model", model, "--out", out, "--plot", png, "--quiet")
    assert proc.returncode == 0, proc.stderr
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:7] == HEAD and rows[0][7:12] == ["onset", "surprise", "threshold_surprise", "flow", "temp"]
    assert {r[1] for r in rows[1:]} == {"p1", "p2"} and len(rows) == 201
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_columns_mapping(tmp_path, steady_bundle):
    v = sine_series(40, seed=6)[:, 0]
    path = _write(tmp_path / "boiler.csv", [f"{1706702400 + i},{v[i]:.5f},{i}" for i in range(40)],
                  header="timestamp,temperature,counter")
    out = tmp_path / "o.csv"
    proc = edgernn("replay", path, "--model", steady_bundle(F=1, warmup=16), "--columns", "value=temperature",
                   "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    np.testing.assert_allclose([float(r["value"]) for r in rows], v, rtol=1e-5)  # written with 6 digits


def test_missing_column_is_one_line(tmp_path, steady_bundle):
    path = _write(tmp_path / "pump.csv", ["1706702400,1.0", "1706702460,2.0"], header="timestamp,temp")
    proc = edgernn("replay", path, "--model", steady_bundle(F=2, warmup=16, features=("temp", "flow")))
    _assert_one_line_error(proc, "pump.csv", "flow")


def test_unknown_feature_in_columns_is_one_line(tmp_path, steady_bundle, recording):
    proc = edgernn("replay", recording, "--model", steady_bundle(F=1, warmup=16), "--columns", "pressure=value")
    _assert_one_line_error(proc, "pressure")


def test_corrupted_bundle_is_one_line(tmp_path, steady_bundle, recording):
    model = tmp_path / "model"
    shutil.copytree(steady_bundle(F=1, warmup=16), model)
    data = bytearray((model / "weights.npz").read_bytes())
    data[100] ^= 0x55
    (model / "weights.npz").write_bytes(bytes(data))
    proc = edgernn("replay", recording, "--model", model)
    _assert_one_line_error(proc, "weights.npz")


def test_missing_input_file_is_one_line(tmp_path, steady_bundle):
    proc = edgernn("replay", tmp_path / "nope.csv", "--model", steady_bundle(F=1, warmup=16))
    _assert_one_line_error(proc, "nope.csv")


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed")
def test_backend_without_artifact_is_one_line(steady_bundle, recording):
    proc = edgernn("replay", recording, "--model", steady_bundle(F=1, warmup=16), "--backend", "onnx")
    _assert_one_line_error(proc, "model.onnx")


def _excel_export(path, n=200, spike_at=None, encoding="utf-8-sig"):
    """A European Excel export: ';', decimal commas, dd.mm.yyyy HH:MM, CRLF (BOM when utf-8-sig)."""
    from datetime import datetime, timedelta

    v = 20 + sine_series(n, seed=9)[:, 0]
    if spike_at is not None:
        v[spike_at] += 40 * v.std()
    rows = ["Zeit;Temperatur °C"] + [
        (datetime(2024, 1, 31) + timedelta(minutes=5 * i)).strftime("%d.%m.%Y %H:%M") + ";" + f"{v[i]:.4f}".replace(".", ",")
        for i in range(n)]
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode(encoding))
    return path


def test_european_excel_export_replays_with_every_row_scored(tmp_path, steady_bundle):
    path = _excel_export(tmp_path / "export.csv")
    out = tmp_path / "o.csv"
    proc = edgernn("replay", path, "--model", steady_bundle(F=1, warmup=16), "--out", out, "--quiet")
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("read export.csv: separator ';', decimal comma, dates day-first"), first
    assert "UTF-8 with BOM" in first and "CRLF" in first
    assert "200 readings" in proc.stdout and "0 rejected, 0 row(s) skipped" in proc.stdout
    with open(out, newline="") as fh:
        body = list(csv.DictReader(fh))
    assert len(body) == 200 and all(r["reject"] == "" for r in body)
    assert sum(r["score"] != "" for r in body) > 150  # everything after the warm-up is scored
    assert "threshold surprise " in proc.stdout  # human units, not "threshold 0.999978"


def test_non_utf8_file_is_read_with_one_warning_line(tmp_path, steady_bundle):
    path = _excel_export(tmp_path / "ansi.csv", encoding="cp1252")
    proc = edgernn("replay", path, "--model", steady_bundle(F=1, warmup=16), "--quiet")
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warning) == 1 and "ansi.csv is not UTF-8" in warning[0] and "Windows-1252" in warning[0]
    assert "Traceback" not in proc.stderr


def test_every_row_rejected_exits_1_naming_column_and_line_and_still_plots(tmp_path, steady_bundle):
    pytest.importorskip("matplotlib")
    path = _write(tmp_path / "words.csv", [f"{1706702400 + 60 * i},high" for i in range(40)], header="ts,level")
    png = tmp_path / "w.png"
    proc = edgernn("replay", path, "--model", steady_bundle(F=1, warmup=16), "--plot", png)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and len(err.splitlines()) == 1
    assert "every reading of words.csv was rejected" in err and "line 2, column 'level'" in err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nothing_scored_within_the_warm_up_exits_1(tmp_path, steady_bundle):
    path = _write(tmp_path / "short.csv", [f"{1706702400 + 60 * i},{i % 3}" for i in range(10)])
    proc = edgernn("replay", path, "--model", steady_bundle(F=1, warmup=16))
    assert proc.returncode == 1 and "warm-up (16 readings per stream)" in proc.stderr


@pytest.mark.parametrize("data", [b"", b"timestamp,value\n", b"\x00\x01junk" * 50, bytes(range(1, 256)) * 8,
                                  b"timestamp,value\n" + b"x" * 3_000_000 + b"\n"])
def test_junk_input_files_are_one_line_and_exit_2(tmp_path, steady_bundle, data):
    path = tmp_path / "junk.csv"
    path.write_bytes(data)
    _assert_one_line_error(edgernn("replay", path, "--model", steady_bundle(F=1, warmup=16)), "junk.csv")


def test_nothing_scored_names_gap_resets_not_the_warm_up(tmp_path, steady_bundle):
    """--max-gap shorter than the readings' step: every reading resets the hidden state, so nothing
    is scored though the warm-up is long past; the message blamed the warm-up."""
    v = sine_series(60, seed=2)[:, 0]
    path = _write(tmp_path / "gappy.csv", [f"{1706702400 + 60 * i},{v[i]:.6f}" for i in range(60)])
    proc = edgernn("replay", path, "--model", steady_bundle(F=1, warmup=16), "--max-gap", "5", "--quiet")
    err = proc.stderr.strip()
    assert proc.returncode == 1 and len(err.splitlines()) == 1, (proc.stdout, proc.stderr)
    assert "60 accepted" in err and "gaps longer than --max-gap 5 s reset the hidden state 59 time(s)" in err, err
    assert "60 s apart" in err and "warm-up" not in err


def test_values_with_a_spread_beyond_float32_are_scored_and_a_step_on_them_alerts(tmp_path):
    """A stream at 3e22 +- 1e21 (a spread beyond float32's ~1.8e19): its raw-unit squares in the
    float32 slab overflowed, the stream was reset at every reading and never scored. They saturate
    now: every reading after the warm-up is scored, none is rejected, and a level step of 20
    spreads on it raises an alert with the shipped model."""
    rng = np.random.default_rng(3)
    n, at = 1200, 900
    v = 3e22 + 1e21 * np.sin(np.arange(n) / 40) + 1e20 * rng.standard_normal(n)
    v[at:] += 2e22
    path = _write(tmp_path / "huge.csv", [f"{1706702400 + 60 * i},{v[i]:.17g}" for i in range(n)])
    out = tmp_path / "out.csv"
    proc = edgernn("replay", path, "--quiet", "--out", out)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    assert not any(r["reject"] for r in rows), {r["reject"] for r in rows}
    scored = [i for i, r in enumerate(rows) if r["score"] not in ("", "nan")]
    assert len(scored) == n - 256 and scored[0] == 256  # the shipped model's warm-up, then every reading
    raised = [i for i, r in enumerate(rows) if r["event"] == "raised"]
    assert raised and at <= raised[0] <= at + 5 and all(i >= at for i in raised), raised


def test_nothing_scored_names_state_resets_from_values_too_large(tmp_path, steady_bundle):
    """Values with a spread beyond float64's reach (~1.3e154) overflow the warm-up's variance, the
    stream is reset again and again and never leaves its warm-up: the message said 'all within the
    warm-up' though more readings than the warm-up were accepted."""
    v = 1e300 * sine_series(80, seed=3)[:, 0]
    path = _write(tmp_path / "huge.csv", [f"{1706702400 + 60 * i},{v[i]:.17g}" for i in range(80)])
    proc = edgernn("replay", path, "--model", steady_bundle(F=1, warmup=16), "--quiet")
    err = proc.stderr.strip()
    assert proc.returncode == 1 and len(err.splitlines()) == 1, (proc.stdout, proc.stderr)
    assert "state was reset" in err and "values too large for the detector's statistics" in err, err
    assert "float64 variance holds a spread up to ~1.3e+154" in err, err
    assert "all within the model's warm-up" not in err and "state_reset" in proc.stdout


def test_nothing_scored_in_the_warm_up_says_the_longest_stream_and_the_rejects(tmp_path, steady_bundle):
    rows = [f"{1706702400 + 60 * (i // 4)},s{i % 4},{i % 3}" for i in range(40)] + ["1706000000,s0,1"]
    path = _write(tmp_path / "four.csv", rows, header="timestamp,stream,value")
    proc = edgernn("replay", path, "--model", steady_bundle(F=1, warmup=16), "--quiet")
    err = proc.stderr.strip()
    assert proc.returncode == 1 and "40 accepted, all within the model's warm-up (16 readings per stream; " \
                                    "the longest stream had 10); rejected: out_of_order 1" in err, err


def test_a_stream_above_1e157_has_a_finite_expected_value(tmp_path):
    """The std floor min_rel_std |mean| was squared (1e-3 x 1e160, squared: inf), so a stream above
    ~1.3e157 had expected = sigma = inf in every output row. Now finite. (Nothing on such a stream
    can alert: a change above the floor, 0.1 % of 1e160, is a spread beyond float64's variance.)"""
    n = 600
    rng = np.random.default_rng(5)
    v = 1e160 + 1e150 * rng.standard_normal(n)
    path = _write(tmp_path / "big.csv", [f"{1706702400 + 60 * i},{v[i]:.17g}" for i in range(n)])
    out = tmp_path / "out.csv"
    proc = edgernn("replay", path, "--quiet", "--out", out)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    scored = [r for r in rows if r["score"] not in ("", "nan")]
    assert len(scored) == n - 256 and all(np.isfinite(float(r["expected_value"])) and
                                          np.isfinite(float(r["sigma_value"])) for r in scored)
