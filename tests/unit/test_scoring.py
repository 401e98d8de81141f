"""Scoring maths: tail tables, the likelihood map (monotone, never 1.0), the kernel's one-value
versions of them against naive numpy references (unit_helpers)."""

from __future__ import annotations

import numpy as np
import pytest

from edgernn import scoring
from edgernn.scoring import fit_table, likelihood_from_log10p, threshold_for_rate
from unit_helpers import naive_gauss_tail_log10, naive_tail_log10 as tail_log10


def test_likelihood_strictly_increasing_from_p_1e_minus_1_to_1e_minus_300():
    # s = -log10 p, increasing; 1 % steps of s (float64 holds only ~9000 values above 1 - 1e-12)
    s = np.concatenate([np.linspace(1.0, 12.0, 2000), np.geomspace(12.0, 300.0, 330)[1:]])
    lik = likelihood_from_log10p(-s)
    assert lik.dtype == np.float64
    assert (np.diff(lik) > 0).all()
    assert lik[0] == pytest.approx(0.9)
    assert (lik < 1.0).all()


def test_likelihood_keeps_ordering_far_beyond_the_floor():
    """Scores can reach log10 p ~ -1e11 (z^2 is capped at 1e12); the map still orders them."""
    s = np.geomspace(300.0, 1e12, 100)  # ~20 % steps
    lik = likelihood_from_log10p(-s)
    assert (np.diff(lik) > 0).all()
    assert (lik < 1.0).all()
    assert likelihood_from_log10p(np.array([-1e3]))[0] < likelihood_from_log10p(np.array([-1.01e3]))[0]


def test_likelihood_orders_s_1e299_from_1e300_as_documented():
    lik = likelihood_from_log10p(np.array([-1e299, -1e300]))
    assert lik[1] > lik[0]


def test_likelihood_never_reaches_one_for_finite_input():
    s = np.concatenate([np.geomspace(1e-6, 1e308, 4000), [1.7e308]])
    with np.errstate(over="ignore"):  # the near branch overflows harmlessly where it is not used
        lik = likelihood_from_log10p(-s)
    assert np.isfinite(lik).all() and (lik < 1.0).all() and (lik >= 0.0).all()
    assert (np.diff(lik) >= 0).all()


def test_likelihood_is_continuous_at_the_floor():
    eps = 1e-9
    below, at, above = likelihood_from_log10p(np.array([-12 + eps, -12.0, -12 - eps]))
    assert below <= at <= above
    assert above - below < 1e-15  # no jump between the two branches


def test_likelihood_of_p_one_is_zero():
    assert likelihood_from_log10p(np.array([0.0]))[0] == 0.0


def test_threshold_for_rate_is_the_likelihood_of_that_tail():
    for rate in (1e-2, 1e-4, 1e-9, 1e-15):
        thr = threshold_for_rate(rate)
        assert thr == likelihood_from_log10p(np.array([np.log10(rate)]))[0]
    assert threshold_for_rate(1e-4) == pytest.approx(1 - 1e-4, abs=1e-15)
    assert threshold_for_rate(1e-3) < threshold_for_rate(1e-4) < threshold_for_rate(1e-20) < 1.0


def _table(seed=0, n=200_000):
    return fit_table(np.random.default_rng(seed).standard_normal(n))


def test_tail_log10_monotone_and_non_positive():
    table = _table()
    x = np.linspace(-10, 60, 20001)
    lp = tail_log10(x, table)
    assert (lp <= 0).all()
    assert (np.diff(lp) <= 0).all()
    beyond = x > table["x"][-1]
    assert (np.diff(lp[beyond]) < 0).all()  # the exponential tail keeps falling
    assert lp[-1] < -20


def test_tail_log10_does_not_modify_its_input():
    table = _table()
    x = np.array([0.0, 1.0, 50.0])
    x0 = x.copy()
    tail_log10(x, table)
    np.testing.assert_array_equal(x, x0)


@pytest.mark.parametrize("nominal", [1e-2, 1e-3])
def test_fit_table_gives_calibrated_tail_probabilities(nominal):
    table = _table(seed=1)
    grid = np.linspace(0.0, 8.0, 80001)
    lp = tail_log10(grid, table)
    x_at = grid[np.argmax(lp <= np.log10(nominal))]  # the value whose modelled tail is `nominal`
    fresh = np.random.default_rng(2).standard_normal(400_000)
    rate = float((fresh >= x_at).mean())
    assert nominal / 2 <= rate <= nominal * 2, (nominal, x_at, rate)


def test_fit_table_rejects_too_few_values():
    with pytest.raises(ValueError):
        fit_table(np.arange(10.0))


def test_fit_table_ignores_non_finite_values():
    v = np.random.default_rng(3).standard_normal(5000)
    a = fit_table(v)
    b = fit_table(np.concatenate([v, [np.nan, np.inf, -np.inf]]))
    np.testing.assert_allclose(a["x"], b["x"])


def test_default_calibration_is_loadable_and_consistent():
    cal = scoring.default_calibration(2)
    assert set(scoring.TABLE_LOOKS) <= set(cal["tables"])
    assert 0 < cal["threshold"] < 1
    for table in cal["tables"].values():
        assert np.all(np.diff(table["x"]) >= 0) and table["tail_scale"] > 0


KERNEL_MODULES = ["installed", "plain"]


def _kernel(which, bundle_dir, table):
    """(kernel module, its Params) (compiled when installed so, or kernel.py as plain Python) with
    ``table`` as every look's table."""
    from unit_helpers import plain_kernel_module

    from edgernn import kernel
    from edgernn.bundle import load_bundle
    from edgernn.detector import Detector

    module = kernel if which == "installed" else plain_kernel_module()
    det = Detector(load_bundle(bundle_dir))
    offsets = {name: max(at, 0) for name, at in det.state.layout.offsets.items()}
    t1 = scoring.prepare_table(table)
    return module, module.Params({**offsets, **det._params()}, scoring.ONSET_LEVELS.tolist(), [t1] * 4)


@pytest.mark.parametrize("which", KERNEL_MODULES)
def test_kernel_tail_and_likelihood_agree_with_the_vector_ones(which, tiny_bundle):
    """The kernel has its own one-value tail lookup and likelihood map."""
    table = _table(seed=4, n=20_000)
    k, p = _kernel(which, tiny_bundle(), table)
    values = np.concatenate([np.linspace(-5, 12, 3001), [table["x"][0], table["x"][1], 1e6]])
    vec = tail_log10(values, table)
    one = np.array([k.tail(p, 2, float(v)) for v in values])
    np.testing.assert_allclose(one, vec, rtol=1e-12, atol=1e-15)
    lp = -np.concatenate([np.geomspace(1e-8, 1e12, 3001), [12.0]])
    np.testing.assert_allclose([k.likelihood(float(v)) for v in lp], likelihood_from_log10p(lp), rtol=1e-14, atol=0)


@pytest.mark.parametrize("which", KERNEL_MODULES)
def test_kernel_tail_at_a_repeated_last_table_point(which, tiny_bundle):
    table = {"x": np.array([0.0, 1.0, 2.0, 2.0]), "log10_sf": np.array([0.0, -1.0, -2.0, -2.0]), "tail_scale": 0.5}
    k, p = _kernel(which, tiny_bundle(), table)
    for v in (2.0, 1.5, 2.0 + 1e-9, 3.0):
        assert k.tail(p, 0, v) == pytest.approx(float(tail_log10(np.array([v]), table)[0]), rel=1e-12)


def test_gauss_tail_log10_is_the_two_sided_normal_tail_at_any_depth():
    import math

    from unit_helpers import plain_kernel_module

    z = np.array([0.0, 0.5, 1.0, 1.96, 3.0, 10.0, 30.0, 36.76, 36.78, 50.0, 1e3])
    got = naive_gauss_tail_log10(z)
    assert got[0] == 0.0 and abs(got[3] - math.log10(0.05)) < 1e-3
    near = z < 36  # erfc itself is representable there
    np.testing.assert_allclose(got[near], [math.log10(math.erfc(v / math.sqrt(2))) for v in z[near]], rtol=1e-12)
    assert np.all(np.diff(got) < 0) and np.all(np.isfinite(got))  # strictly decreasing, never -inf
    y = scoring.GAUSS_SWITCH
    at = naive_gauss_tail_log10(np.array([y * math.sqrt(2) * (1 - 1e-12), y * math.sqrt(2)]))
    assert abs(at[0] - at[1]) < 1e-5  # the asymptotic branch joins erfc smoothly
    assert abs(got[-1] - (-(1e3**2) / 2 / math.log(10))) / abs(got[-1]) < 1e-2
    from edgernn import kernel

    for module in (kernel, plain_kernel_module()):  # the kernel's one-value version, installed and plain
        np.testing.assert_allclose([module.gauss_tail_log10(float(v)) for v in z], got, rtol=1e-12)
