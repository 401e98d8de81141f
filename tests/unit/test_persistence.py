"""The persistence baseline: formulas against a naive loop, the fresh-stream rule, the registry, and
a real detector run where a spike on a random walk is caught with it."""

from __future__ import annotations

import numpy as np
import pytest

from edgernn.backends import BASELINE, BASELINES, GRU_BACKENDS, backend_artifact, create_backend
from edgernn.backends.persistence import FRESH_VAR, WINDOW, Persistence
from edgernn.bundle import load_bundle
from edgernn.detector import Batch, Detector, DetectorSettings


def naive(xs: np.ndarray, lvmin: float = -9.0, lvmax: float = 6.0, window: float = WINDOW):
    """One stream, one feature, read literally: the mean of the squared changes seen so far, then an
    EW mean over ``window`` readings. Returns (mean[T], logvar[T])."""
    v, last, seen, means, logvars = None, 0.0, 0, [], []
    for x in xs:
        if v is None:
            v = FRESH_VAR
        else:
            seen += 1
            k = min(seen, window)
            v = (1 - 1 / k) * v + (x - last) ** 2 / k
        v = float(np.float32(max(v, float(np.float32(np.exp(lvmin))))))  # h is float32 between steps
        last = float(np.float32(x))
        means.append(x)
        logvars.append(min(max(np.log(v), lvmin), lvmax))
    return np.array(means), np.array(logvars)


def test_matches_naive_formulas_one_reading_at_a_time():
    rng = np.random.default_rng(0)
    xs = np.cumsum(rng.standard_normal(200)).astype(np.float32)
    be = Persistence(1, 4, window=50.0)
    h = np.zeros((1, 4), np.float32)
    got = []
    for x in xs:  # 200 readings: past the window, so both phases are checked
        pred, h = be.step(np.array([[x]], np.float32), h)
        got.append(pred[0])
    want_mean, want_lv = naive(xs.astype(np.float64), window=50.0)
    got = np.array(got)
    np.testing.assert_allclose(got[:, 0], want_mean, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got[:, 1], want_lv, rtol=1e-5, atol=1e-5)
    assert got[0, 1] == pytest.approx(np.log(FRESH_VAR))  # fresh: wide
    assert h[0, 2] == 51.0 and h[0, 3] == 0  # the count is capped; the rest of h is untouched


def test_batch_equals_single_and_h_reset_means_fresh():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 3)).astype(np.float32)
    h = np.zeros((50, 8), np.float32)
    h[:, 3:6] = rng.uniform(0.1, 2.0, (50, 3))  # half warm, half fresh
    h[:, 6] = rng.integers(1, 2000, 50)
    h[25:] = 0.0
    be = Persistence(3, 8)
    pred, h_next = be.step(x, h)
    for i in (0, 24, 25, 49):
        p1, h1 = be.step(x[i:i + 1], h[i:i + 1])
        np.testing.assert_array_equal(p1[0], pred[i])
        np.testing.assert_array_equal(h1[0], h_next[i])
    np.testing.assert_allclose(pred[25:, 3:], np.log(FRESH_VAR))
    assert np.all(h_next[:, 6] >= 1)  # never 0 again once set: not mistaken for fresh


def test_logvar_clipped_to_the_bundle_range():
    be = Persistence(1, 3, logvar_min=-2.0, logvar_max=1.0)
    h = np.array([[0.0, 1.0, 5.0]], np.float32)
    pred, _ = be.step(np.array([[1e3]], np.float32), h)  # huge change -> logvar above the range
    assert pred[0, 1] == pytest.approx(1.0)
    h = np.array([[5.0, 1e-6, 5.0]], np.float32)
    pred, _ = be.step(np.array([[5.0]], np.float32), h)  # no change -> floor
    assert pred[0, 1] == pytest.approx(-2.0)


def test_takes_the_room_it_needs_in_h(tiny_bundle):
    """2 numbers per feature and a count: with a model's H < 2F + 1 the baseline's h is 2F + 1 wide,
    and the detector sizes every stream's h by the backend's (a 3-feature model with H = 4)."""
    assert Persistence(3, 6).hidden == 7 and Persistence(3, 16).hidden == 16
    bundle = load_bundle(tiny_bundle(F=3, H=4))
    det = Detector(bundle, create_backend(BASELINE, bundle))
    assert det.state.hidden == 7
    x = np.sin(np.arange(300.0) / 9.0)[:, None] * [1.0, 2.0, 3.0] + 0.1 * np.random.default_rng(2).standard_normal((300, 3))
    r = det.process(Batch(["s"] * 300, np.arange(300.0), x))
    np.testing.assert_allclose(r.expected[201:], x[200:-1], rtol=1e-5, atol=1e-4)  # the last value


def test_registry(tiny_bundle):
    bundle = load_bundle(tiny_bundle(F=2, H=8))
    be = create_backend(BASELINE, bundle)
    assert (be.name, be.features, be.hidden) == ("persistence", 2, 8)
    assert BASELINE in BASELINES and BASELINE not in GRU_BACKENDS and "numpy" in GRU_BACKENDS
    assert backend_artifact(BASELINE) is None


def test_detector_with_persistence_catches_a_spike_on_a_random_walk(tiny_bundle):
    bundle = load_bundle(tiny_bundle(F=1, H=8, warmup=16))
    rng = np.random.default_rng(2)
    n = 600
    x = 20.0 + np.cumsum(0.1 * rng.standard_normal(n))
    x[450] += 15.0  # ~150 sigma of the one-step change
    det = Detector(bundle, create_backend(BASELINE, bundle), DetectorSettings())
    res = det.process(Batch(["s"] * n, np.arange(n, dtype=np.float64), x[:, None]))
    raised = [e.position for e in res.events if e.kind == "raised"]
    assert any(450 <= p <= 452 for p in raised), raised
    assert np.isfinite(res.score[100:]).all()
