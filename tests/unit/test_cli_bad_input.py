"""Bad input on the command line: every case is one line on stderr naming the option, exit 2, before
any work is done (for an output path: before the run starts) and nothing written. Each of these was a
traceback, a silent success or a MemoryError / OOM before (see the comments). Through the real CLI (a
subprocess), as a user meets it."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from unit_helpers import PYTHON, REPO

DEMO_CSV = REPO / "edgernn" / "data" / "demo_sensor.csv"  # timestamp,value; 5,000 rows
SHIPPED = REPO / "firmware_models" / "univariate"
FAST = ["--epochs", "1", "--hidden", "4", "--segment", "128", "--threads", "1"]
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="training needs torch")
needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="--plot needs matplotlib")
needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")


def edgernn(*args, script: str | None = None):
    head = [PYTHON, "-c", script] if script else [PYTHON, "-m", "edgernn"]
    return subprocess.run([*head, *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=300)


def refused(r, line: str) -> None:
    """Exit 2 and exactly ``line`` on stderr."""
    assert (r.returncode, r.stderr) == (2, line + "\n"), (r.returncode, r.stdout[-2000:], r.stderr[-2000:])


def files(d) -> dict:
    """{name: sha256} of the files of directory ``d`` ({} when it does not exist)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())} if d.exists() else {}


# -- train --------------------------------------------------------------------------------------

@pytest.mark.parametrize("option, value, says", [
    ("--lr", "inf", "--lr must be a finite number (got inf)"),  # traceback after training
    ("--lr", "1e300", "--lr must be at most 1e+06 (got 1e+300)"),  # torch: cannot be converted to float
    ("--weight-decay", "nan", "--weight-decay must be a finite number (got nan)"),  # torch's ValueError
    ("--max-surprise", "nan", "--max-surprise must be a finite number (got nan)"),  # traceback in calibration
    ("--max-surprise", "2", "--max-surprise must be at least -log10(--target-far) = 4 (got 2.0)"),
    ("--seed", "-1", "--seed must be at least 0 (got -1)"),  # numpy's ValueError
    ("--seed", "4294967296", "--seed must be at most 4294967295 (got 4294967296)"),
    ("--adapt", "nan", "--adapt: nan is out of range: must be in [0, 1)"),  # traceback in calibration
    ("--adapt", "1", "--adapt: 1.0 is out of range: must be in [0, 1)"),  # written to the bundle
    ("--adapt", "-1", "--adapt: -1.0 is out of range: must be in [0, 1)"),  # written to the bundle
    ("--target-far", "nan", "--target-far must be a finite number (got nan)"),
    ("--target-far", "1", "--target-far must be in (0, 1) (got 1.0)"),
    ("--learn-far", "0", "--learn-far must be in (0, 1) (got 0.0)"),
    ("--learn-far", "nan", "--learn-far must be a finite number (got nan)"),
    ("--holdout", "1", "--holdout must be between 0.05 and 0.8 (got 1.0)"),
    ("--holdout", "nan", "--holdout must be a finite number (got nan)"),
    ("--hidden", "100000", "--hidden must be at most 1024 (got 100000)"),  # ran out of memory
    ("--logvar-max", "nan", "--logvar-max must be a finite number (got nan)"),
])
def test_train_option_out_of_range_is_one_line_before_anything_is_read(tmp_path, option, value, says):
    r = edgernn("train", DEMO_CSV, "--out", tmp_path / "m", *FAST, option, value)
    refused(r, f"edgernn train: {says}")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("option, value, says", [
    ("--target-far", "nan", "--target-far must be a finite number (got nan)"),
    ("--max-surprise", "inf", "--max-surprise must be a finite number (got inf)"),
])
def test_recalibrate_option_out_of_range_leaves_the_bundle_alone(tmp_path, option, value, says):
    shutil.copytree(SHIPPED, tmp_path / "m")
    before = files(tmp_path / "m")
    refused(edgernn("train", DEMO_CSV, "--out", tmp_path / "m", "--recalibrate", option, value),
            f"edgernn train: {says}")
    assert files(tmp_path / "m") == before


def test_recalibrating_on_data_within_the_warm_up_is_one_line(tmp_path):
    shutil.copytree(SHIPPED, tmp_path / "m")  # warm-up 256
    before = files(tmp_path / "m")
    short = tmp_path / "short.csv"
    short.write_text("".join(DEMO_CSV.read_text().splitlines(keepends=True)[:301]))  # 300 readings
    refused(edgernn("train", short, "--out", tmp_path / "m", "--recalibrate"),
            "edgernn train: the model's warm-up (256 readings) leaves 44 held-out readings to calibrate on (at least "
            "100 needed): give a larger --holdout or more data")
    assert files(tmp_path / "m") == before


def test_train_out_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "m").write_text("not a bundle")  # (a FileExistsError traceback after the whole fit)
    refused(edgernn("train", DEMO_CSV, "--out", tmp_path / "m", *FAST),
            f"edgernn train: --out {tmp_path / 'm'}: exists and is not a directory")
    assert (tmp_path / "m").read_text() == "not a bundle"


@needs_torch
@pytest.mark.parametrize("extra, says", [
    # "need at least 100 calibration values, got 0" after the fit
    (["--warmup", "100000"], "--warmup 100000: the warm-up leaves no held-out readings to calibrate on (at least "
                             "100 needed): give a shorter --warmup, a larger --holdout or more data"),
    # trained on nothing: the stream normalisation skips the warm-up, longer than the training part
    (["--warmup", "4000"], "--warmup 4000: the warm-up leaves no training readings in demo_sensor.csv:demo_sensor "
                           "(its first 3500 train): give a shorter --warmup, a smaller --holdout or more data"),
    # BundleError traceback: duplicate feature names
    (["--features", "value,value"], "--features 'value,value': 'value' named more than once"),
    (["--features", "value,"], "--features 'value,': an empty feature name"),
    # trained on `value` under the name `nope`, without a word
    (["--features", "nope"], f"{DEMO_CSV}: no column 'nope'; its columns are "
                             "['timestamp', 'value']"),
])
def test_train_data_that_cannot_give_a_model_is_one_line_before_the_fit(tmp_path, extra, says):
    r = edgernn("train", DEMO_CSV, "--out", tmp_path / "m", *FAST, *extra)
    refused(r, f"edgernn train: {says}")
    assert not (tmp_path / "m").exists() and "epoch" not in r.stdout


# a calibration that writes half a manifest, then fails (as a NaN or a too-long warm-up did)
BROKEN_CALIBRATION = """
import sys
import edgernn.train.calibrate as cal
from edgernn.bundle import load_bundle, write_manifest

def broken(bundle_dir, *args, **kwargs):
    manifest = dict(load_bundle(bundle_dir).manifest)
    manifest["description"] = "half calibrated"
    write_manifest(bundle_dir, manifest)
    raise RuntimeError("injected calibration failure")

cal.calibrate = broken
from edgernn.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _failed(r) -> None:
    assert r.returncode == 1 and "injected calibration failure" in r.stderr, (r.returncode, r.stderr[-2000:])


@needs_torch
def test_a_failed_training_leaves_no_bundle(tmp_path):
    # (the bundle was left in --out with its placeholder threshold, and loaded)
    _failed(edgernn("train", DEMO_CSV, "--out", tmp_path / "new" / "m", *FAST, script=BROKEN_CALIBRATION))
    assert [p.name for p in (tmp_path / "new").iterdir()] == []  # not even a temporary directory


@needs_torch
def test_a_failed_training_or_recalibration_leaves_the_previous_bundle_intact_and_a_good_one_replaces_it(tmp_path):
    from edgernn.bundle import load_bundle

    shutil.copytree(SHIPPED, tmp_path / "m")
    before = files(tmp_path / "m")
    _failed(edgernn("train", DEMO_CSV, "--out", tmp_path / "m", *FAST, script=BROKEN_CALIBRATION))
    assert files(tmp_path / "m") == before
    _failed(edgernn("train", DEMO_CSV, "--out", tmp_path / "m", "--recalibrate", script=BROKEN_CALIBRATION))
    assert files(tmp_path / "m") == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
    r = edgernn("train", DEMO_CSV, "--out", tmp_path / "m", *FAST)  # into the existing directory
    assert r.returncode == 0, r.stderr
    b = load_bundle(tmp_path / "m")
    assert b.hidden == 4 and b.name == "m" and b.manifest["calibration"]["calibration_readings"] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


@needs_torch
def test_training_into_an_existing_directory_through_a_symlink_keeps_its_other_files_and_makes_it_readable(tmp_path):
    # (a symlinked --out on another filesystem: the moves crossed filesystems, a traceback after the fit;
    # an existing 0700 directory stayed 0700, unreadable by a daemon running as another user)
    import tempfile

    from edgernn.bundle import load_bundle

    other = Path(tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    try:
        target = other / "m"
        shutil.copytree(SHIPPED, target)
        (target / "notes.txt").write_text("mine")
        (target / "plots").mkdir()
        target.chmod(0o700)
        (tmp_path / "link").symlink_to(target)
        r = edgernn("train", DEMO_CSV, "--out", tmp_path / "link", *FAST)
        assert r.returncode == 0, r.stderr[-2000:]
        assert load_bundle(target).hidden == 4 and (target / "notes.txt").read_text() == "mine"
        assert (target / "plots").is_dir() and target.stat().st_mode & 0o777 == 0o755
        assert [p.name for p in other.iterdir()] == ["m"]  # no temporary directory left beside it
    finally:
        shutil.rmtree(other, ignore_errors=True)


DIVERGED_FIT = """
import sys
import numpy as np
import edgernn.train.model as model

export = model.export_weights
model.export_weights = lambda m: {k: np.full_like(w, np.nan) for k, w in export(m).items()}
from edgernn.cli import main
sys.exit(main(sys.argv[1:]))
"""


@needs_torch
def test_a_fit_that_diverges_is_one_line_and_leaves_no_bundle(tmp_path):
    # (a ValueError traceback 'weight gru.W_ir contains NaN or inf' as the bundle was written)
    r = edgernn("train", DEMO_CSV, "--out", tmp_path / "m", *FAST, script=DIVERGED_FIT)
    refused(r, "edgernn train: the fit diverged (weights NaN or inf at --lr 0.003): use a smaller --lr")
    assert list(tmp_path.iterdir()) == []


# -- replay -------------------------------------------------------------------------------------

@pytest.mark.parametrize("option, path, says", [
    ("--out", "/nonexistent/x.csv", "--out /nonexistent/x.csv: /nonexistent does not exist"),
    ("--out", "{tmp}", "--out {tmp}: is a directory (give a file name)"),
    ("--plot", "/nonexistent/x.png", "--plot /nonexistent/x.png: /nonexistent does not exist"),
    ("--plot", "{tmp}", "--plot {tmp}: is a directory (give a file name)"),
    ("--plot", "{tmp}/x.xyz", "--plot {tmp}/x.xyz: cannot write .xyz images (use .png, .svg or .pdf)"),
])
def test_replay_output_that_cannot_be_written_is_one_line_before_the_run(tmp_path, option, path, says):
    if option == "--plot" and importlib.util.find_spec("matplotlib") is None:
        pytest.skip("--plot needs matplotlib")
    r = edgernn("replay", DEMO_CSV, "--model", "univariate", "--quiet", option, path.format(tmp=tmp_path))
    refused(r, "edgernn replay: " + says.format(tmp=tmp_path))
    assert r.stdout == "" and list(tmp_path.iterdir()) == []  # (a traceback after the whole replay)


@needs_dev_full
def test_replay_write_error_is_one_line():
    r = edgernn("replay", DEMO_CSV, "--model", "univariate", "--quiet", "--out", "/dev/full")
    refused(r, "edgernn replay: --out /dev/full: cannot write: No space left on device")


@needs_matplotlib
def test_replay_plot_without_extension_says_the_file_it_wrote(tmp_path):
    r = edgernn("replay", DEMO_CSV, "--model", "univariate", "--quiet", "--plot", tmp_path / "plot")
    assert r.returncode == 0, r.stderr
    assert f"wrote {tmp_path / 'plot.png'}\n" in r.stdout  # (it said "wrote .../plot")
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]


# -- bench --------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, says", [
    (["--seconds", "nan"], "--seconds must be a finite number (got nan)"),  # traceback
    (["--seconds", "inf"], "--seconds must be a finite number (got inf)"),
    (["--batch", "100000000000"], "--batch '100000000000': each must be at most 100,000"),  # MemoryError
    (["--streams", "1000001"], "--streams '1000001': each must be at most 1,000,000"),
    (["--json", "/nonexistent/b.json"], "--json /nonexistent/b.json: /nonexistent does not exist"),
    (["--json", "{tmp}"], "--json {tmp}: is a directory (give a file name)"),
])
def test_bench_bad_input_is_one_line_before_timing(tmp_path, extra, says):
    r = edgernn("bench", *(e.format(tmp=tmp_path) for e in extra))
    refused(r, "edgernn bench: " + says.format(tmp=tmp_path))
    assert list(tmp_path.iterdir()) == []


@needs_dev_full
def test_bench_json_write_error_is_one_line():
    r = edgernn("bench", "--json", "/dev/full", "--seconds", "0.05", "--rounds", "1", "--batch", "1", "--no-peers")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.splitlines()[-1] == "edgernn bench: --json /dev/full: cannot write: No space left on device"


# -- eval ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["events", DEMO_CSV, "--labels", "{tmp}/labels.csv", "--early", "nan"],
     "eval events: --early must be a finite number (got nan)"),
    (["events", DEMO_CSV, "--labels", "{tmp}/labels.csv", "--late", "-1"], "eval events: --late must be at least 0 (got -1.0)"),
    (["events", DEMO_CSV, "--labels", "{tmp}/labels.csv", "--early", "-5"],
     "eval events: --early must be at least 0 (got -5.0)"),
    (["skab", "--data-dir", "{tmp}", "--factor", "nan"], "eval skab: --factor must be a finite number (got nan)"),
    (["skab", "--data-dir", "{tmp}", "--factor", "-1"], "eval skab: --factor must be above 0 (got -1.0)"),
    (["skab", "--data-dir", "{tmp}", "--factor", "0"], "eval skab: --factor must be above 0 (got 0.0)"),
    (["skab", "--data-dir", "{tmp}", "--train-rows", "0"], "eval skab: --train-rows must be at least 1 (got 0)"),
    (["nab", "--data-dir", "{tmp}", "--bootstrap", "-1"], "eval nab: --bootstrap must be at least 0 (got -1)"),
])
def test_eval_option_out_of_range_is_one_line(tmp_path, args, says):
    # (NaN and negative windows, factors and bootstrap counts were taken; --train-rows 0 was a traceback)
    refused(edgernn("eval", *(str(a).format(tmp=tmp_path) for a in args)), f"edgernn {says}")


def test_eval_skab_train_rows_within_the_warm_up_is_one_line(tmp_path):
    # (a traceback: no scored rows in the training part)
    r = edgernn("eval", "skab", "--data-dir", tmp_path, "--train-rows", "1")
    refused(r, "edgernn eval skab: --train-rows must be above 64 (got 1): the threshold comes from the training "
               "rows scored after the model's warm-up (64 readings)")


# -- demo and export ----------------------------------------------------------------------------

@pytest.mark.parametrize("option, value, says", [
    ("--rate", "1e-300", "--rate must be between 0.001 and 1e+09 (got 1e-300)"),  # OverflowError in time.sleep
    ("--rate", "inf", "--rate must be a finite number (got inf)"),
    ("--seed", "-1", "--seed must be between 0 and 4294967295 (got -1)"),  # ValueError
    ("--readings", "10000001", "--readings must be at most 10000000 (got 10000001)"),  # 100,000,000: OOM at 24 GB
    ("--readings", "1000000", "--sensors 12 x --readings 1000000 = 12,000,000 readings: at most 10,000,000 in all"),
])
def test_demo_option_out_of_range_is_one_line_before_the_broker_starts(option, value, says):
    r = edgernn("demo", option, value)
    refused(r, f"edgernn demo: {says}")
    assert r.stdout == ""


@pytest.mark.parametrize("formats", ["", ",", " , "])
def test_export_without_a_format_is_one_line(tmp_path, formats):
    shutil.copytree(SHIPPED, tmp_path / "m")  # (it exported nothing and returned 0)
    before = files(tmp_path / "m")
    refused(edgernn("export", tmp_path / "m", "--formats", formats, "--quiet"),
            f"edgernn export: --formats {formats!r}: no format named; choose from onnx, onnx-int8, tflite, "
            "tflite-int8, tflm")
    assert files(tmp_path / "m") == before
