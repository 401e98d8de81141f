"""`edgernn train` end to end on a tiny synthetic corpus (needs torch): a loadable, calibrated,
reproducible bundle whose normaliser is the detector's."""

from __future__ import annotations

import hashlib
from pathlib import Path
import subprocess

import numpy as np
import pytest
from unit_helpers import PYTHON, REPO

pytest.importorskip("torch")

from edgernn.backends.numpy_gru import NumpyGRU  # noqa: E402
from edgernn.bundle import load_bundle  # noqa: E402
from edgernn.detector import Batch, Detector, DetectorSettings  # noqa: E402
from edgernn.recording import read_recording  # noqa: E402
from edgernn.scoring import likelihood_from_log10p, threshold_for_rate  # noqa: E402
from edgernn.train.data import stream_normalise  # noqa: E402

TRAIN_ARGS = ["--epochs", "1", "--hidden", "8", "--segment", "128", "--seed", "5", "--threads", "1"]


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two identical training runs (in parallel: 2 cores) -> (bundle dirs, csv paths, processes)."""
    root = tmp_path_factory.mktemp("train")
    subprocess.run([PYTHON, "-m", "edgernn.synth", "corpus", "--out", root / "data", "--series", "3",
                    "--length", "1200"], check=True, capture_output=True, cwd=REPO, timeout=60)
    csvs = sorted((root / "data").glob("*.csv"))
    assert len(csvs) == 3
    procs = [subprocess.Popen([PYTHON, "-m", "edgernn", "train", *csvs, "--out", root / f"m{k}", *TRAIN_ARGS],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
             for k in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    return [root / "m0", root / "m1"], csvs, [(p.returncode, *o) for p, o in zip(procs, outs)]


def test_train_exits_cleanly_and_the_bundle_loads(trained):
    dirs, _, runs = trained
    for rc, out, err in runs:
        assert rc == 0, err
        assert "Traceback" not in err
    b = load_bundle(dirs[0])
    assert b.features == ("value",) and b.hidden == 8 and b.norm_mode == "stream"
    assert 0.0 < b.calibration.threshold < 1.0
    assert b.calibration.warmup > 0
    assert (dirs[0] / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_golden_parity_with_numpy(trained):
    b = load_bundle(trained[0][0])
    g = b.golden()
    tol = float(b.manifest["artifacts"]["golden.npz"].get("tolerance", 1e-5))
    cell = NumpyGRU(b.weights)
    h = g["h0"]
    T = g["x"].shape[0]
    assert T >= 16
    for t in range(T):
        pred, h = cell.step(g["x"][t], h)
        np.testing.assert_allclose(pred, g["pred"][t], atol=tol, rtol=0)
        np.testing.assert_allclose(h, g["h"][t], atol=tol, rtol=0)


def test_same_seed_same_weights(trained):
    dirs, _, _ = trained
    assert _sha(dirs[0] / "weights.npz") == _sha(dirs[1] / "weights.npz")
    assert load_bundle(dirs[0]).calibration.threshold == load_bundle(dirs[1]).calibration.threshold


def test_provenance_records_command_and_data(trained):
    dirs, csvs, _ = trained
    prov = load_bundle(dirs[0]).manifest["provenance"]
    assert prov["command"].startswith("edgernn train")
    for flag in ("--epochs 1", "--hidden 8", "--seed 5"):
        assert flag in prov["command"]
    by_name = {d["file"]: d for d in prov["data"]}
    assert set(by_name) == {p.name for p in csvs}
    for p in csvs:
        assert by_name[p.name]["sha256"] == _sha(p)
    assert prov["seed"] == 5


def test_training_normaliser_is_the_detectors(trained):
    """train/data.py::stream_normalise must normalise exactly as the Detector does at run time.

    After N readings the detector's per-stream (norm_mean, norm_var) is what it will normalise
    reading N+1 with; stream_normalise run over those N readings plus a probe value must give the
    probe the same normalised value. Two probes recover the trainer's mean and std."""
    b = load_bundle(trained[0][0])
    rec = read_recording(trained[1][0], b.features)
    x = rec.x[:, :1]
    W = b.calibration.warmup
    adapt = float(b.manifest["normalisation"].get("adapt", 0.0))
    assert adapt > 0  # the comparison covers the post-warm-up EW adaptation too
    # an unreachable threshold: no reading is ever 'high', so the detector adapts on every reading
    det = Detector(b, settings=DetectorSettings(threshold=threshold_for_rate(1e-300)))
    done = 0
    for N in (W // 2, W, W + 1, W + 300, len(x) - 1):
        det.process(Batch(["s"] * (N - done), np.arange(done, N, dtype=float), x[done:N]))
        done = N
        st = det.state.get("s")
        d_mean, d_std = st["norm_mean"][0], np.sqrt(st["norm_var"][0])
        if N < W:  # still warming up: the running statistics of what was seen so far
            np.testing.assert_allclose(d_mean, x[:N, 0].mean(), rtol=1e-9)
            np.testing.assert_allclose(d_std, x[:N, 0].std(), rtol=1e-9)
            continue
        p1, p2 = d_mean + 3 * d_std, d_mean - 2 * d_std
        z1 = stream_normalise(np.vstack([x[:N], [[p1]]]), W, adapt)[-1, 0]
        z2 = stream_normalise(np.vstack([x[:N], [[p2]]]), W, adapt)[-1, 0]
        t_std = (p1 - p2) / (z1 - z2)
        t_mean = p1 - z1 * t_std
        np.testing.assert_allclose([t_mean, t_std], [d_mean, d_std], rtol=1e-9, atol=1e-12 * abs(d_mean),
                                   err_msg=f"after {N} readings")


def test_calibration_is_held_out_and_in_surprise(trained):
    """The threshold is a surprise (-log10 p), chosen on the held-out part, whose
    readings and alerts are recorded with the rate achieved and whether the target was met."""
    dirs, _, runs = trained
    cal = load_bundle(dirs[0]).manifest["calibration"]
    s = cal["threshold_surprise"]
    assert s >= -np.log10(cal["target_false_alarm_rate"]) - 1e-9
    assert cal["threshold"] == pytest.approx(float(likelihood_from_log10p(np.array([-s]))[0]), abs=1e-15)
    # 3 series x 1200 rows, last 30 % each, run as new streams (warm-up on the readings before)
    assert cal["calibration_readings"] == 3 * 360
    assert cal["achieved_false_alarm_rate"] == cal["calibration_alerts"] / cal["calibration_readings"]
    assert cal["target_met"] is (cal["achieved_false_alarm_rate"] <= cal["target_false_alarm_rate"])
    assert cal["calibration_note"]  # 1,080 readings cannot show 1 per 10,000: said so
    out = runs[0][1]
    assert f"surprise {s:.2f}" in out and "1.000000" not in out
    assert "cannot show a rate" in out
    assert cal["learn_surprise"] == s and cal["learn_false_alarm_rate"] == cal["target_false_alarm_rate"]


def test_recalibrating_for_another_alert_rate_keeps_what_the_streams_learn_from(trained, tmp_path):
    """--target-far moves the alert threshold; the learning level stays the one --learn-far gives."""
    import shutil

    dirs, csvs, _ = trained
    shutil.copytree(dirs[0], tmp_path / "m")
    r = subprocess.run([PYTHON, "-m", "edgernn", "train", *csvs, "--out", tmp_path / "m", "--recalibrate",
                        "--target-far", "2e-2", "--learn-far", "1e-4"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    cal = load_bundle(tmp_path / "m").manifest["calibration"]
    assert cal["learn_false_alarm_rate"] == 1e-4 and cal["target_false_alarm_rate"] == 2e-2
    # (1,080 held-out readings cannot show 1e-4: the learning level is extrapolated, not compared)
    assert -np.log10(2e-2) <= cal["threshold_surprise"] < -np.log10(1e-4) <= cal["learn_surprise"]
    assert Detector(load_bundle(tmp_path / "m")).learn_surprise == cal["learn_surprise"]
    assert f"surprise {cal['learn_surprise']:.2f}" in (tmp_path / "m" / "README.md").read_text()  # the card says it


def test_model_card_describes_the_bundle(trained):
    dirs, csvs, runs = trained
    card = (dirs[0] / "README.md").read_text()
    b = load_bundle(dirs[0])
    assert card.startswith(f"# Model card: `{b.name}`")
    for p in csvs:
        assert _sha(p) in card  # every data file with its hash
    assert b.manifest["provenance"]["command"] in card
    assert f"surprise {b.manifest['calibration']['threshold_surprise']:.2f}" in card
    assert "| `value` |" in card and "continuous" in card  # the feature table with its kind
    assert "## Artifacts" in card and "`weights.npz`" in card
    assert b.manifest["feature_kinds"]["value"]["kind"] == "continuous"
    assert b.manifest["provenance"]["extent"]["rows"] == 3 * 1200


def test_bundle_is_world_readable_after_cp_r(trained, tmp_path):
    """0644 files and a 0755 directory, like the shipped bundles; a copy made with `cp -r` is
    readable by another user (really tried as `nobody` when this runs as root with setpriv)."""
    import os
    import shutil
    import stat
    import tempfile

    src = trained[0][0]
    for path in [src, *src.iterdir()]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), f"{path.name}: {oct(mode)}"
    parent = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        parent.chmod(0o755)
        subprocess.run(["cp", "-r", str(src), str(parent / "copy")], check=True)
        files = sorted((parent / "copy").iterdir())
        assert {f.name for f in files} >= {"manifest.yaml", "weights.npz", "golden.npz", "README.md"}
        for f in files:
            assert stat.S_IMODE(f.stat().st_mode) & 0o004, f"{f.name} not readable by others"
        setpriv = shutil.which("setpriv")
        if os.geteuid() != 0 or setpriv is None:
            pytest.skip("reading as another user needs root and setpriv")
        for f in files:
            r = subprocess.run([setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "cat", str(f)],
                               capture_output=True)
            assert r.returncode == 0, f"nobody cannot read {f.name}: {r.stderr.decode()}"
            assert r.stdout == f.read_bytes()
    finally:
        shutil.rmtree(parent)


@pytest.fixture(scope="module")
def unmeetable(tmp_path_factory):
    """`a` freezes (exact repeats) for 200 readings in the held-out part: no threshold up to
    --max-surprise 6 removes that alert, so the target cannot be met. `b` is 0 in training and
    jumps in the held-out part; `c` is a counter."""
    root = tmp_path_factory.mktemp("strict")
    rng = np.random.default_rng(3)
    n = 1600
    t = np.arange(n)
    a = np.sin(t / 15.0) + 0.05 * rng.standard_normal(n)
    b = np.zeros(n)
    a[1300:1500] = a[1300]  # frozen, in the held-out part (rows 1120 on)
    b[int(n * 0.9) :: 40] = 50.0  # in the held-out part only
    c = np.cumsum(rng.poisson(2.0, n))
    ts = np.datetime_as_string((1.7e9 + t).astype("datetime64[s]"), unit="s")
    path = root / "m.csv"
    path.write_text("timestamp,a,b,c\n" + "".join(f"{s}Z,{x:.5f},{y:g},{k}\n" for s, x, y, k in zip(ts, a, b, c)))
    r = subprocess.run([PYTHON, "-m", "edgernn", "train", path, "--out", root / "m", "--strict", "--max-surprise", "6",
                        *TRAIN_ARGS],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    return root / "m", r


def test_strict_exits_3_when_the_target_cannot_be_met(unmeetable):
    out_dir, r = unmeetable
    assert r.returncode == 3, r.stderr
    assert "TARGET NOT MET" in r.stdout
    assert r.stderr.count("\n") == 1 and "calibration target not met" in r.stderr and "Traceback" not in r.stderr
    m = load_bundle(out_dir).manifest
    assert m["calibration"]["target_met"] is False
    assert m["calibration"]["achieved_false_alarm_rate"] > m["calibration"]["target_false_alarm_rate"]
    assert m["feature_kinds"]["b"]["kind"] == "constant"
    assert m["normalisation"]["std"][1] == 1.0  # a constant 0 gets 1 unit, not 1e-6
    assert "did not meet its target" in (out_dir / "README.md").read_text()
    assert any("constant 0 in training but changes" in w for w in m["provenance"]["warnings"])


def test_counters_are_left_out_and_said_so(unmeetable):
    out_dir, r = unmeetable
    b = load_bundle(out_dir)
    assert b.features == ("a", "b")
    assert b.manifest["left_out_features"]["c"]["kind"] == "counter"
    assert "left out: c: counter" in r.stdout
    assert "**left out of the model**" in (out_dir / "README.md").read_text()
    assert set(b.manifest["provenance"]["extent"]["ranges"]) == {"a", "b", "c"}


def test_recalibrate_keeps_weights_and_refreshes_card(trained, tmp_path):
    import shutil

    dirs, csvs, _ = trained
    copy = tmp_path / "m"
    shutil.copytree(dirs[0], copy)
    (copy / "README.md").unlink()
    r = subprocess.run([PYTHON, "-m", "edgernn", "train", *csvs[:2], "--out", copy, "--recalibrate"],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    b = load_bundle(copy)
    assert _sha(copy / "weights.npz") == _sha(dirs[0] / "weights.npz")
    assert "--recalibrate" in b.manifest["provenance"]["calibration_command"]
    assert b.manifest["calibration"]["calibration_readings"] == 2 * 360  # two files now
    assert "--recalibrate" in (copy / "README.md").read_text()


def test_calibration_runs_with_the_bundle_detector_defaults(trained, tmp_path):
    """The threshold is chosen with the settings the bundle will run with (its detector_defaults
    over the schema's): a warm-up 100 readings longer scores 100 fewer held-out readings per file."""
    import shutil

    from edgernn.bundle import write_manifest

    dirs, csvs, _ = trained
    shutil.copytree(dirs[0], tmp_path / "m")
    m = dict(load_bundle(tmp_path / "m").manifest)
    m["detector_defaults"] = {"warmup": int(m["calibration"]["warmup"]) + 100}
    write_manifest(tmp_path / "m", m)
    r = subprocess.run([PYTHON, "-m", "edgernn", "train", *csvs, "--out", tmp_path / "m", "--recalibrate"],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    assert load_bundle(tmp_path / "m").manifest["calibration"]["calibration_readings"] == 3 * (360 - 100)


@pytest.mark.parametrize("extra, needle", [
    (["--holdout", "0.95"], "--holdout"),
    (["--target-far", "2"], "--target-far"),
    (["--logvar-max", "9"], "--logvar-max"),
])
def test_bad_settings_are_one_line_exit_2(trained, tmp_path, extra, needle):
    _, csvs, _ = trained
    r = subprocess.run([PYTHON, "-m", "edgernn", "train", csvs[0], "--out", tmp_path / "m", *extra],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr
    assert not (tmp_path / "m").exists()


def test_logvar_max_caps_the_head_in_training_and_in_the_manifest(trained, tmp_path):
    """--logvar-max: the fit clamps at it and the manifest's head.logvar_max carries it to the
    detector's clamp; recorded in the provenance."""
    _, csvs, _ = trained
    r = subprocess.run([PYTHON, "-m", "edgernn", "train", *csvs, "--out", tmp_path / "m", *TRAIN_ARGS,
                        "--components", "2", "--logvar-max", "-1"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    b = load_bundle(tmp_path / "m")
    assert b.logvar_max == -1.0 and b.manifest["provenance"]["fit"]["logvar_max"] == -1.0
    assert Detector(b)._params()["lvmax"] == -1.0


def test_missing_file_is_one_line_exit_2(tmp_path):
    r = subprocess.run([PYTHON, "-m", "edgernn", "train", tmp_path / "nope.csv", "--out", tmp_path / "m"],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == f"edgernn train: {tmp_path / 'nope.csv'}: not found"


def test_a_directory_without_csv_files_is_one_line_exit_2(tmp_path):
    (tmp_path / "empty").mkdir()  # (it crashed with an IndexError: no file to infer the features from)
    for extra in ([], ["--recalibrate"]):
        r = subprocess.run([PYTHON, "-m", "edgernn", "train", tmp_path / "empty", "--out", tmp_path / "m", *extra],
                           capture_output=True, text=True, cwd=REPO, timeout=120)
        assert r.returncode == 2 and r.stderr.strip() == f"edgernn train: {tmp_path / 'empty'}: no .csv files in this directory"


@pytest.mark.parametrize("option, value, says", [("--epochs", "0", "--epochs must be at least 1"),
                                                  ("--segment", "0", "--segment must be at least 2"),
                                                  ("--chunk", "-1", "--chunk must be at least 1"),
                                                  ("--hidden", "0", "--hidden must be at least 1"),
                                                  ("--warmup", "-5", "--warmup must be at least 0"),
                                                  ("--lr", "-1", "--lr must be above 0"),
                                                  ("--average", "1", "--average must be in [0, 1)"),
                                                  ("--average", "-0.5", "--average must be in [0, 1)")])
def test_fit_options_out_of_range_are_one_line_exit_2(tmp_path, option, value, says):
    # (each crashed with a traceback, or for --chunk -1 wrote a bundle that was never trained)
    r = subprocess.run([PYTHON, "-m", "edgernn", "train", REPO / "edgernn" / "data" / "demo_sensor.csv", "--out",
                        tmp_path / "m", option, value], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == f"edgernn train: {says} (got {float(value) if option in ('--lr', '--average') else value})"
    assert not (tmp_path / "m").exists()


def _sine_segments():
    """A noisy sine cut into segments float32[60, 100, 1]: 48 to train on, 12 to validate."""
    rng = np.random.default_rng(3)
    t = np.arange(3 * 2000)
    x = (np.sin(t / 9.0) + 0.1 * rng.standard_normal(len(t))).astype(np.float32).reshape(-1, 100, 1)
    return x[:48], x[48:]


def test_weight_average_keeps_the_validated_average_and_leaves_the_steps_alone():
    """--average: the optimiser's steps are the plain fit's (the same training losses, epoch by epoch,
    for as long as the learning-rate schedule, which follows the kept weights' validation NLL, has
    not acted: 3 epochs), and the weights kept are the ones validated (their NLL recomputed is the
    recorded best), not the plain fit's."""
    import torch

    from edgernn.train.fit import FitConfig, _run, fit

    tr, va = _sine_segments()
    cfg = dict(hidden=8, epochs=3, patience=10, segment=100, chunk=25, seed=4)
    plain = fit(tr, va, 1, FitConfig(**cfg), progress=False, log=lambda *_: None)
    averaged = fit(tr, va, 1, FitConfig(**cfg, average=0.9), progress=False, log=lambda *_: None)
    assert averaged.train_loss == plain.train_loss
    with torch.no_grad():
        again = _run(averaged.model.eval(), torch.from_numpy(va), FitConfig(**cfg))
    assert again == pytest.approx(averaged.val_loss[averaged.best_epoch - 1], abs=1e-6)
    kept, last = averaged.model.state_dict(), plain.model.state_dict()
    assert any(not torch.equal(kept[k], last[k]) for k in kept)


def test_weight_average_of_a_short_fit_is_of_its_late_steps():
    """A fit of 120 steps with --average 0.995 (a memory of ~200 steps): the average's decay warms
    up, so it is not still mostly the first step's weights (without the warm-up its validation NLL
    was +0.59 against the plain fit's -0.39)."""
    from edgernn.train.fit import FitConfig, fit

    tr, va = _sine_segments()
    cfg = dict(hidden=8, epochs=30, patience=30, segment=100, chunk=25, seed=4)
    plain = fit(tr, va, 1, FitConfig(**cfg), progress=False, log=lambda *_: None)
    averaged = fit(tr, va, 1, FitConfig(**cfg, average=0.995), progress=False, log=lambda *_: None)
    assert min(averaged.val_loss) < min(plain.val_loss) + 0.05


def test_help_teaches():
    r = subprocess.run([PYTHON, "-m", "edgernn", "train", "--help"], capture_output=True, text=True, cwd=REPO, timeout=60)
    for needle in ("held out", "--strict exits 3", "exit codes", "examples:", "model card", "0644", "counters",
                   "surprise"):
        assert needle in r.stdout, needle
