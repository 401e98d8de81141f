"""The numpy reference cell: equal to torch.nn.GRU + the Gaussian residual head, stateless, pure."""

from __future__ import annotations

import numpy as np
import pytest
from unit_helpers import random_weights

from edgernn.backends.numpy_gru import NumpyGRU


def _torch_model(K: int, tied: bool = False):
    torch = pytest.importorskip("torch")
    from edgernn.train.model import GaussianGRU

    torch.manual_seed(3)
    F, H = 3, 16
    # wide logvar bounds: the numpy cell leaves clamping to the scorer, so compare unclamped
    model = GaussianGRU(F, H, logvar_min=-1e6, logvar_max=1e6, components=K, tied_variance=tied)
    with torch.no_grad():  # the mean head starts at zero in training; randomise it so it is tested
        model.mean.weight.normal_(0.0, 0.5)
        model.mean.bias.normal_(0.0, 0.5)
        model.logvar.bias.normal_(0.0, 0.5)
        if K > 1:
            model.logit.weight.normal_(0.0, 0.5)
            model.logit.bias.normal_(0.0, 0.5)
    model.eval()
    return model


@pytest.fixture(scope="module")
def torch_model():
    return _torch_model(1)


@pytest.mark.parametrize("batch,K,tied", [(1, 1, False), (4, 1, False), (33, 1, False), (1, 3, False), (5, 3, False),
                                          (5, 3, True)])
def test_matches_torch_over_a_rollout(batch, K, tied):
    import torch

    from edgernn.train.model import export_weights

    F, H, T = 3, 16, 40
    torch_model = _torch_model(K, tied)
    weights = export_weights(torch_model)
    if tied:  # one log-variance per feature, exported as the same rows for every component
        np.testing.assert_array_equal(weights["head.W_logvar"][:F], weights["head.W_logvar"][2 * F :])
    cell = NumpyGRU(weights)
    assert (cell.features, cell.hidden, cell.components) == (F, H, K)
    rng = np.random.default_rng(batch)
    x = (2.0 * rng.standard_normal((batch, T, F))).astype(np.float32)
    h0 = np.tanh(rng.standard_normal((batch, H))).astype(np.float32)
    with torch.no_grad():
        mean, logvar, logit, h_last = torch_model(torch.from_numpy(x), torch.from_numpy(h0)[None])
        h_seq = torch_model.gru(torch.from_numpy(x), torch.from_numpy(h0)[None])[0]  # [B, T, H]
    h = h0.copy()
    for t in range(T):
        pred, h = cell.step(x[:, t], h)
        assert pred.shape == (batch, 2 * F if K == 1 else 3 * K * F) and h.shape == (batch, H)
        assert pred.dtype == np.float32 and h.dtype == np.float32
        np.testing.assert_allclose(h, h_seq[:, t].numpy(), atol=1e-5, rtol=0)
        np.testing.assert_allclose(pred[:, : K * F], mean[:, t].numpy(), atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(pred[:, K * F : 2 * K * F], logvar[:, t].numpy(), atol=1e-5, rtol=1e-5)
        if K > 1:
            np.testing.assert_allclose(pred[:, 2 * K * F :], logit[:, t].numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(h, h_last[0].numpy(), atol=1e-5, rtol=0)


def test_gate_order_is_pytorch_rzn(torch_model):
    """Swapping the r and z weights must change the result (the comparison above is not vacuous)."""
    from edgernn.train.model import export_weights

    w = export_weights(torch_model)
    swapped = dict(w)
    for a, b in (("W_ir", "W_iz"), ("W_hr", "W_hz"), ("b_ir", "b_iz"), ("b_hr", "b_hz")):
        swapped[f"gru.{a}"], swapped[f"gru.{b}"] = w[f"gru.{b}"], w[f"gru.{a}"]
    x = np.ones((2, 3), np.float32)
    h = np.full((2, 16), 0.5, np.float32)
    assert not np.allclose(NumpyGRU(w).step(x, h)[1], NumpyGRU(swapped).step(x, h)[1], atol=1e-4)


def test_residual_head_predicts_the_change():
    """mean = x + W_mean h' + b_mean: with a zero mean head the prediction is the input itself."""
    w = random_weights(2, 8, seed=1)
    w["head.W_mean"][:] = 0.0
    w["head.b_mean"][:] = 0.0
    x = np.array([[1.5, -2.0]], np.float32)
    pred, _ = NumpyGRU(w).step(x, np.zeros((1, 8), np.float32))
    np.testing.assert_array_equal(pred[:, :2], x)


def test_stateless_interleaved_equals_separate():
    cell = NumpyGRU(random_weights(2, 8, seed=2))
    rng = np.random.default_rng(0)
    xa, xb = rng.standard_normal((2, 20, 1, 2)).astype(np.float32)

    def run(xs, order):
        hs = {k: np.zeros((1, 8), np.float32) for k in xs}
        preds = {k: [] for k in xs}
        for k, t in order:
            p, hs[k] = cell.step(xs[k][t], hs[k])
            preds[k].append(p)
        return {k: np.concatenate(v) for k, v in preds.items()}, hs

    xs = {"a": xa, "b": xb}
    sep = run(xs, [("a", t) for t in range(20)] + [("b", t) for t in range(20)])
    inter = run(xs, [(k, t) for t in range(20) for k in ("b", "a")])
    for k in xs:
        np.testing.assert_array_equal(sep[0][k], inter[0][k])
        np.testing.assert_array_equal(sep[1][k], inter[1][k])


def test_rows_of_a_batch_are_independent():
    cell = NumpyGRU(random_weights(3, 16, seed=4))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 3)).astype(np.float32)
    h = np.tanh(rng.standard_normal((7, 16))).astype(np.float32)
    pred, h1 = cell.step(x, h)
    for i in range(7):
        p_i, h_i = cell.step(x[i : i + 1], h[i : i + 1])
        np.testing.assert_allclose(p_i, pred[i : i + 1], atol=1e-6, rtol=0)
        np.testing.assert_allclose(h_i, h1[i : i + 1], atol=1e-6, rtol=0)


def test_inputs_are_not_mutated_and_outputs_are_fresh():
    cell = NumpyGRU(random_weights(2, 8, seed=5))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 2)).astype(np.float32)
    h = np.tanh(rng.standard_normal((5, 8))).astype(np.float32)
    x0, h0 = x.copy(), h.copy()
    pred, h1 = cell.step(x, h)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(h, h0)
    assert not np.shares_memory(pred, x) and not np.shares_memory(h1, h)
    pred2, h2 = cell.step(x, h)  # same inputs, same outputs (no hidden state inside the cell)
    np.testing.assert_array_equal(pred, pred2)
    np.testing.assert_array_equal(h1, h2)


def test_weights_are_copied_not_referenced():
    w = random_weights(1, 8, seed=6)
    cell = NumpyGRU(w)
    x, h = np.ones((1, 1), np.float32), np.zeros((1, 8), np.float32)
    before = cell.step(x, h)
    for v in w.values():
        v[...] = 0.0
    after = cell.step(x, h)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])


def test_bad_weights_are_refused_with_the_key():
    w = random_weights(1, 8, seed=7)
    del w["gru.W_hn"]
    with pytest.raises(ValueError, match="gru.W_hn"):
        NumpyGRU(w)
    w = random_weights(1, 8, seed=7)
    w["head.b_logvar"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="head.b_logvar"):
        NumpyGRU(w)
