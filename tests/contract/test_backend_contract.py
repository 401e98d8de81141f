"""Every check below runs on every backend of every model (see conftest.py for the matrix)."""

from __future__ import annotations

import numpy as np

import pytest

from edgernn.backends import BASELINES, backend_artifact
from edgernn.backends.base import pred_width
from edgernn.export.parity import measure, tolerances

from contract_helpers import in_distribution_inputs

# Row i of a batch vs the same row alone. Float kernels may block rows differently by batch size;
# int8 kernels are integer arithmetic and must agree to the float rounding of DEQUANTIZE.
SAME_ROW_ATOL = 1e-6
SAME_ROW_RTOL = 1e-6  # a few float32 ulps: runtimes may pick other kernels (summation orders) per batch size


def _fresh(x, h):
    return x.copy(), h.copy()


def test_shapes_and_dtypes(backend, bundle):
    F, H = bundle.n_features, bundle.hidden
    assert (backend.features, backend.hidden) == (F, H)
    assert isinstance(backend.name, str) and backend.name
    for B in (1, 3, 64):
        x, h = in_distribution_inputs(bundle, B)
        pred, h_next = backend.step(x, h)
        K = backend.components  # the head's Gaussians per feature: the bundle's (a baseline: 1)
        assert K == (1 if backend.name in BASELINES else bundle.components)
        assert pred.shape == (B, pred_width(F, K)) and h_next.shape == (B, H)
        assert pred.dtype == np.float32 and h_next.dtype == np.float32
        assert np.isfinite(pred).all() and np.isfinite(h_next).all()


def test_deterministic(backend, bundle):
    x, h = in_distribution_inputs(bundle, 17, seed=1)
    p1, h1 = backend.step(*_fresh(x, h))
    backend.step(*in_distribution_inputs(bundle, 5, seed=2))  # something else in between
    p2, h2 = backend.step(*_fresh(x, h))
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(h1, h2)


def test_inputs_not_mutated_and_outputs_owned(backend, bundle):
    x, h = in_distribution_inputs(bundle, 8, seed=3)
    x0, h0 = x.copy(), h.copy()
    pred, h_next = backend.step(x, h)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(h, h0)
    assert not np.shares_memory(pred, x) and not np.shares_memory(h_next, h)
    kept = pred.copy(), h_next.copy()
    backend.step(*in_distribution_inputs(bundle, 8, seed=4))  # same batch size: same buffers inside
    np.testing.assert_array_equal(pred, kept[0])
    np.testing.assert_array_equal(h_next, kept[1])


def test_batch_equals_single(backend, bundle):
    # 300 is above any bucket or pre-bound size a runtime keeps (LiteRT: 256); 5 gets padded.
    for B in (5, 300):
        x, h = in_distribution_inputs(bundle, B, seed=B)
        pred, h_next = backend.step(x, h)
        for i in range(B):
            p1, h1 = backend.step(x[i : i + 1], h[i : i + 1])
            np.testing.assert_allclose(pred[i], p1[0], rtol=SAME_ROW_RTOL, atol=SAME_ROW_ATOL, err_msg=f"B={B} row {i}")
            np.testing.assert_allclose(h_next[i], h1[0], rtol=SAME_ROW_RTOL, atol=SAME_ROW_ATOL, err_msg=f"B={B} row {i}")


def test_interleaved_streams_equal_separate(backend, bundle):
    """Backends hold no state: two streams stepped alternately == each stepped alone == batched."""
    g = bundle.golden()
    xa, xb = g["x"][:40, 0], g["x"][:40, 1]  # [T, F] two streams
    H = bundle.hidden

    def alone(xs):
        h, out = np.zeros((1, H), np.float32), []
        for t in range(len(xs)):
            p, h = backend.step(xs[t : t + 1], h)
            out.append((p[0], h[0]))
        return out

    sep_a, sep_b = alone(xa), alone(xb)
    ha = hb = np.zeros((1, H), np.float32)
    hab = np.zeros((2, H), np.float32)
    for t in range(len(xa)):
        pa, ha = backend.step(xa[t : t + 1], ha)  # interleaved one at a time
        pb, hb = backend.step(xb[t : t + 1], hb)
        pab, hab = backend.step(np.stack([xa[t], xb[t]]), hab)  # both in one batch
        for got, want in ((pa[0], sep_a[t][0]), (ha[0], sep_a[t][1]), (pb[0], sep_b[t][0]), (hb[0], sep_b[t][1])):
            np.testing.assert_array_equal(got, want)
        for got, want in ((pab[0], sep_a[t][0]), (hab[0], sep_a[t][1]), (pab[1], sep_b[t][0]), (hab[1], sep_b[t][1])):
            np.testing.assert_allclose(got, want, rtol=SAME_ROW_RTOL, atol=SAME_ROW_ATOL)


def test_golden_parity_within_manifest_tolerance(backend, backend_name, bundle):
    if backend_name in BASELINES:
        pytest.skip("a baseline runs no GRU: golden.npz is the GRU's")
    artifact = backend_artifact(backend_name)
    tol_step, tol_roll = tolerances(bundle, artifact)
    if artifact is not None:  # the manifest must state it: a default would hide a missing field
        assert "tolerance" in bundle.manifest["artifacts"][artifact], f"{artifact} has no tolerance"
    err = measure(backend, bundle.golden())
    assert err["step"] <= tol_step, f"one-step error {err['step']:.3g} > tolerance {tol_step}"
    assert err["rollout"] <= tol_roll, f"{err['rollout_steps']}-step rollout error {err['rollout']:.3g} > {tol_roll}"


def test_long_rollout_finite_and_bounded(backend, backend_name, bundle):
    if backend_name in BASELINES:
        pytest.skip("a baseline's h holds readings and variances, not a GRU's |h| <= 1 (see test_persistence.py)")
    g = bundle.golden()
    xs = g["x"]  # [T, B, F], replayed cyclically
    B = xs.shape[1]
    h = np.zeros((B, bundle.hidden), np.float32)
    bound = 10.0 * max(float(np.abs(g["pred"]).max()), 1.0)  # generous: catches blow-ups only
    for t in range(10_000):
        pred, h = backend.step(xs[t % len(xs)], h)
        if t % 500 == 0 or t == 9_999:
            assert np.isfinite(pred).all() and np.isfinite(h).all(), f"non-finite at step {t}"
            assert np.abs(h).max() <= 1.0 + 1e-2, f"|h| = {np.abs(h).max()} > 1 at step {t}"
            assert np.abs(pred).max() <= bound, f"|pred| = {np.abs(pred).max()} at step {t}"
