"""Hostile numeric input through the Detector API and the shipped models' real backends: numbers
beyond float64, and one hostile stream in a batch of normal ones."""

from __future__ import annotations

import numpy as np
import pytest
from unit_helpers import REPO

from edgernn.backends import BackendUnavailable, create_backend
from edgernn.bundle import load_bundle
from edgernn.detector import Batch, Detector

UNIVARIATE = REPO / "firmware_models" / "univariate"
HUGE = 10**400  # a Python int beyond float64 (float(HUGE) raises OverflowError)


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(UNIVARIATE)


def _backend(name, bundle):
    try:
        return create_backend(name, bundle)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


def _normal(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 20.0 + 3.0 * np.sin(np.arange(n) / 8.0) + 0.2 * rng.standard_normal(n)


@pytest.mark.parametrize("backend", ["numpy", "onnx-int8", "tflite-int8"])
@pytest.mark.parametrize("where", ["value", "timestamp"])
def test_int_beyond_float64_is_rejected_not_raised(bundle, backend, where):
    """A Python int too large for float64 (as a value or a timestamp) is a non-finite reading:
    rejected on arrival, in a batch of one and in a batch, while the other readings are scored
    exactly as without it."""
    det = Detector(bundle, _backend(backend, bundle))
    ref = Detector(bundle, _backend(backend, bundle))
    x = _normal(300, 0)
    for lo in range(0, 300, 50):  # past the warm-up
        for d in (det, ref):
            d.process(Batch(["a", "b"] * 50, np.repeat(np.arange(lo, lo + 50.0), 2), np.repeat(x[lo : lo + 50], 2)[:, None]))
    value, ts = ([[HUGE]], [300.0]) if where == "value" else ([[x[0]]], [HUGE])
    one = det.process(Batch(["a"], ts, value))
    assert one.reject_reason == ["non_finite"] and not one.accepted[0]
    mixed = det.process(Batch(["a", "b"], ts + [301.0], value + [[x[1]]]))
    assert mixed.reject_reason == ["non_finite", None]
    clean = ref.process(Batch(["b"], [301.0], [[x[1]]]))
    np.testing.assert_array_equal(mixed.block[1], clean.block[0])
    assert det.stats()["rejects"] == {"non_finite": 2}


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8", "tflite-int8", "persistence"])
def test_hostile_stream_leaves_its_batch_peers_untouched(bundle, backend):
    """One stream of +-1e300, denormals and -0.0 in every batch: the normal streams' outputs are
    bit-identical to a run without it."""
    n, normal = 320, ["n0", "n1", "n2"]
    hostile = np.tile([1e300, -1e300, 5e-324, -0.0, 1e-300], n // 5)
    runs = []
    for streams in (normal, normal[:1] + ["evil"] + normal[1:]):
        det = Detector(bundle, _backend(backend, bundle))
        blocks = []
        for t in range(n):
            x = [hostile[t] if s == "evil" else _normal(n, int(s[1]))[t] for s in streams]
            res = det.process(Batch(streams, [float(t)] * len(streams), np.array(x)[:, None]))
            blocks.append(res.block[[streams.index(s) for s in normal]])
        runs.append(np.stack(blocks))
    np.testing.assert_array_equal(runs[0], runs[1])
