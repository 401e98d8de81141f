"""Jump inputs (backends/base.py): the detector's kernel feeds the GRU the j training computed.

A model with jump inputs reads x = [c | j]. Training computes j from the raw series
(train.pipeline.normalise: base.jump_rates, base.jump_input); at run time the kernel computes it
reading by reading from the stream's own rows. These tests run a real Detector (compiled and
plain-Python kernel) on real series and compare the x its GRU is given with training's."""

from __future__ import annotations

import numpy as np
import pytest
from unit_helpers import plain_kernel_module, random_weights

from edgernn import detector as detector_module
from edgernn.backends.base import JUMP_DEFAULT, check_weights
from edgernn.backends.numpy_gru import NumpyGRU
from edgernn.bundle import load_bundle, write_bundle
from edgernn.detector import Detector
from edgernn.readings import Batch
from edgernn.train.data import Series
from edgernn.train.pipeline import normalise

H = 8


def _jump_weights(seed: int = 0) -> dict[str, np.ndarray]:
    w = random_weights(1, H, seed=seed, K=3)
    rng = np.random.default_rng(seed + 1)
    for g in "rzn":
        w[f"gru.W_j{g}"] = rng.standard_normal((H, 1)).astype(np.float32)
    w["in.jump"] = np.array(JUMP_DEFAULT, np.float32)
    return w


class _Recording:
    """The numpy cell, recording every x it is given (float32[B, 2F] per call)."""

    def __init__(self, weights):
        self.cell = NumpyGRU(weights)
        self.name, self.features, self.hidden = "numpy", self.cell.features, self.cell.hidden
        self.components, self.jump, self.h_bound = self.cell.components, self.cell.jump, self.cell.h_bound
        self.seen: list[np.ndarray] = []

    def step(self, x, h):
        self.seen.append(np.array(x, np.float64))
        return self.cell.step(x, h)


def _duty(n: int, seed: int) -> np.ndarray:
    """float64[n, 1]: an on/off duty cycle with noise, then a quieter stretch (the rate must fall)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    on = ((t // 37) % 2 == 0) & (t < n * 2 // 3)
    return (20.0 + 15.0 * on + 0.4 * rng.standard_normal(n))[:, None]


@pytest.fixture(params=["compiled", "plain"])
def kernel_kind(request, monkeypatch):
    if request.param == "plain":
        monkeypatch.setattr(detector_module, "kernel", plain_kernel_module())
    return request.param


@pytest.mark.parametrize("streams", [1, 3])
def test_the_gru_is_given_the_j_training_computed(tmp_path, kernel_kind, streams):
    bundle = load_bundle(write_bundle(tmp_path / "b", name="j", version="1", features=["v"], weights=_jump_weights()))
    assert bundle.jump and bundle.input_width == 2
    rec = _Recording(bundle.weights)
    det = Detector(bundle, backend=rec)
    n = 1200
    xs = [_duty(n, seed) for seed in range(streams)]  # one series per stream, stepped together (waves)
    for t in range(n):
        det.process(Batch([f"s{i}" for i in range(streams)], np.array([float(t)] * streams),
                          np.array([x[t] for x in xs])))
    seen = np.stack(rec.seen)  # [n, streams, 2]
    assert seen.shape == (n, streams, 2)
    for i, x in enumerate(xs):
        series = [Series(f"s{i}", x, n)]
        [want] = normalise(series, "stream", det.warmup, det.adapt, {}, ("v",), JUMP_DEFAULT)[0]  # [n, 2]
        np.testing.assert_allclose(seen[:, i, 1], want[:, 1], atol=1e-5)  # j: every reading
        # (c itself is not compared: the kernel winsorises the warm-up statistics, training does not)
    j = seen[:, 0, 1]
    assert j[0] == 0.0 and j[n // 2] > 0.4 and j[-1] < j[2 * n // 3]  # no jumps yet; a jumpy stream; the rate falls


def test_fixed_normalisation_j_uses_the_detectors_std_floor(tmp_path, kernel_kind):
    """A fixed-normalised jump model whose std is below the detector's floor (min_rel_std |mean|):
    training's j tests jumps against the floored std, as the kernel does (not the raw std)."""
    w = _jump_weights()
    bundle = load_bundle(write_bundle(tmp_path / "b", name="j", version="1", features=["v"], weights=w,
                                      norm_mode="fixed", norm_mean=[1000.4], norm_std=[0.5]))
    x = np.where(np.arange(600) % 2 == 0, 1000.0, 1000.8)[:, None]  # changes of 0.8: > 0.5, < the floor 1.0004
    rec = _Recording(bundle.weights)
    det = Detector(bundle, backend=rec)
    for t in range(len(x)):
        det.process(Batch(["s"], np.array([float(t)]), x[t : t + 1]))
    seen = np.concatenate(rec.seen)[:, 1]  # [600] j
    series = [Series("s", x, len(x) // 2)]
    normed, mean, std, _ = normalise(series, "fixed", det.warmup, 0.0, {"v": {"kind": "continuous"}}, ("v",), JUMP_DEFAULT)
    np.testing.assert_allclose(seen, normed[0][:, 1], atol=1e-5)
    assert seen.max() == 0.0  # no jump: 0.8 is under the floored std


def test_j_is_at_most_1():
    from edgernn.backends.base import jump_input

    assert jump_input(np.array([0.0, 1.0]), 1e-3).tolist() == [0.0, 1.0]


def test_a_backend_that_does_not_say_is_refused_for_a_jump_model(tmp_path):
    bundle = load_bundle(write_bundle(tmp_path / "b", name="j", version="1", features=["v"], weights=_jump_weights()))

    class Mute:  # a caller's own backend without the jump attribute
        name, features, hidden, components, h_bound = "mute", 1, H, 3, 1.0

        def step(self, x, h):
            raise AssertionError("not reached")

    with pytest.raises(ValueError, match="jump inputs.*'mute'"):
        Detector(bundle, backend=Mute())
    Mute.jump = False  # a GRU backend without jump inputs (another model's) for this one
    with pytest.raises(ValueError, match="'mute' does not take them"):
        Detector(bundle, backend=Mute())
    plain = load_bundle(write_bundle(tmp_path / "p", name="p", version="1", features=["v"],
                                     weights=random_weights(1, H, K=3)))
    with pytest.raises(ValueError, match="'numpy' takes jump inputs, but the bundle's weights define none"):
        Detector(plain, backend=NumpyGRU(bundle.weights))
    from edgernn.backends import create_backend

    assert Detector(bundle, backend=create_backend("persistence", bundle)).n_in == 1  # a baseline reads c alone


def test_a_plain_model_is_given_c_alone(tmp_path):
    w = random_weights(1, H, K=3)
    bundle = load_bundle(write_bundle(tmp_path / "b", name="p", version="1", features=["v"], weights=w))
    rec = _Recording(bundle.weights)
    det = Detector(bundle, backend=rec)
    det.process(Batch(["a"], np.array([0.0]), np.array([[1.0]])))
    assert not bundle.jump and rec.seen[0].shape == (1, 1)
    assert "jrate" not in [c[0] for c in det.state.layout.columns]  # the plain model's rows are as they were


@pytest.mark.parametrize("value, message", [
    ([0.0, 200.0, 1e-3], "threshold > 0"), ([1.0, 0.5, 1e-3], "memory >= 1"), ([1.0, 200.0, 0.5], "0 < floor <= 0.01")])
def test_a_broken_jump_definition_is_refused_in_one_line(value, message):
    w = _jump_weights()
    w["in.jump"] = np.array(value, np.float32)
    with pytest.raises(ValueError, match="in.jump") as err:
        check_weights(w)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_jump_weights_without_their_definition_are_refused():
    w = _jump_weights()
    del w["in.jump"]
    with pytest.raises(ValueError, match="missing weight.*in.jump"):
        check_weights(w)


def _scores(det, xs, t0, t1):
    """Step streams s0.. through readings t0..t1 of xs; the scores, float64[t1 - t0, streams]."""
    out = []
    for t in range(t0, t1):
        res = det.process(Batch([f"s{i}" for i in range(len(xs))], np.array([float(t)] * len(xs)),
                                np.array([x[t] for x in xs])))
        out.append(np.array(res.score, np.float64))
    return np.array(out)


def test_a_snapshot_carries_the_jump_rate(tmp_path):
    """Stopped and restored halfway (a daemon restart), the streams go on exactly as without the stop."""
    bundle = load_bundle(write_bundle(tmp_path / "b", name="j", version="1", features=["v"], weights=_jump_weights()))
    xs = [_duty(900, seed) for seed in range(2)]
    whole = _scores(Detector(bundle), xs, 0, 900)
    first = Detector(bundle)
    _scores(first, xs, 0, 450)
    first.state.snapshot(tmp_path / "s.npz", bundle.sha256)
    assert (first.state.num4[:2, first.state.layout.jrate] > 0.01).all()  # the rate is in the snapshot
    second = Detector(bundle)
    assert second.state.restore(tmp_path / "s.npz", bundle.sha256, resettle=False)[0]
    np.testing.assert_array_equal(_scores(second, xs, 450, 900), whole[450:])


def test_a_snapshot_with_an_impossible_jump_rate_is_refused(tmp_path):
    bundle = load_bundle(write_bundle(tmp_path / "b", name="j", version="1", features=["v"], weights=_jump_weights()))
    det = Detector(bundle)
    _scores(det, [_duty(300, 0)], 0, 300)
    det.state.num4[det.state.ids["s0"], det.state.layout.jrate] = 2.0  # tampered: two jumps per reading
    det.state.snapshot(tmp_path / "s.npz", bundle.sha256)
    restored, why = Detector(bundle).state.restore(tmp_path / "s.npz", bundle.sha256)
    assert not restored and "jrate = 2" in why and "\n" not in why


def test_train_with_jump_inputs_end_to_end(tmp_path):
    """`edgernn train --jump-inputs`: a bundle whose weights define j, whose golden and
    representative inputs are [c | j] with j in [0, 1], calibrated through the detector."""
    pytest.importorskip("torch")
    import subprocess

    from unit_helpers import PYTHON, REPO

    subprocess.run([PYTHON, "-m", "edgernn.synth", "corpus", "--out", tmp_path / "data", "--series", "3",
                    "--length", "1200"], check=True, capture_output=True, cwd=REPO, timeout=60)
    csvs = sorted((tmp_path / "data").glob("*.csv"))
    r = subprocess.run([PYTHON, "-m", "edgernn", "train", *csvs, "--out", tmp_path / "m", "--jump-inputs", "--epochs", "1",
                        "--hidden", "8", "--segment", "128", "--components", "2", "--seed", "5", "--threads", "1"],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode in (0, 3), r.stderr  # (3: a calibration target a tiny corpus cannot show)
    b = load_bundle(tmp_path / "m")
    assert b.jump and b.input_width == 2 and b.manifest["provenance"]["fit"]["jump"] == list(JUMP_DEFAULT)
    g = b.golden()["x"]  # [T, B, 2]
    rep = np.load(tmp_path / "m" / "representative.npz")["x"]
    for x in (g, rep):
        assert x.shape[2] == 2 and 0.0 <= x[..., 1].min() and x[..., 1].max() <= 1.001
    assert "rate of jumps" in (tmp_path / "m" / "README.md").read_text()
    shown = subprocess.run([PYTHON, "-m", "edgernn", "inspect", tmp_path / "m"], capture_output=True, text=True,
                           cwd=REPO, timeout=60).stdout
    assert "rate of jumps" in shown
