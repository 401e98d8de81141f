"""`edgernn train` end to end on a tiny synthetic corpus (needs torch): a loadable, calibrated,
reproducible bundle whose normaliser is the detector's."""

from __future__ import annotations

import hashlib
import subprocess

import numpy as np
import pytest
from unit_helpers import PYTHON, REPO

pytest.importorskip("torch")

from edgernn.backends.numpy_gru import NumpyGRU  # noqa: E402
from edgernn.bundle import load_bundle  # noqa: E402
from edgernn.detector import Batch, Detector, DetectorSettings  # noqa: E402
from edgernn.recording import read_recording  # noqa: E402
from edgernn.scoring import threshold_for_rate  # noqa: E402
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
