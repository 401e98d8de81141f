"""Feature kinds, the sane std of constant features, the data warnings and the threshold search:
pure functions of the trainer, checked on hand-made columns (no torch)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgernn.train.calibrate import S_CAP, extrapolate, one_in, search_threshold
from edgernn.train.checks import data_warnings, fit_warnings
from edgernn.train.data import Series
from edgernn.train.features import classify, describe, feature_kinds, sane_std

rng = np.random.default_rng(0)
N = 2000


@pytest.mark.parametrize("column, kind", [
    (np.full(N, 7.0), "constant"),
    (np.r_[np.zeros(N - 5), np.ones(5)], "near-constant"),
    (rng.integers(0, 2, N).astype(float), "binary"),
    (np.cumsum(rng.poisson(3, N)).astype(float), "counter"),
    (np.r_[np.cumsum(rng.poisson(3, N // 2)), np.cumsum(rng.poisson(3, N // 2))].astype(float), "counter"),
    (np.round(rng.normal(5, 1.5, N)).clip(0, 9), "quantised"),
    (rng.normal(0, 1, N), "continuous"),
    (np.sin(np.arange(N) / 20.0), "continuous"),  # rises half the time but also falls: not a counter
    (np.round(np.cumsum(rng.normal(0, 0.003, N)), 2), "quantised"),  # a slow sensor at its resolution
    (np.round(np.cumsum(rng.normal(0, 0.02, N)), 2), "continuous"),  # repeats, but in short runs
])
def test_classify(column, kind):
    facts = classify(column)
    assert facts["kind"] == kind, facts
    assert facts["distinct"] == np.unique(column).size
    assert describe("f", facts).startswith(f"f: {kind} (")


def test_facts_name_value_step_and_resets():
    assert classify(np.full(N, 0.0))["value"] == 0.0
    q = classify(np.round(rng.normal(0, 2, N)).clip(-6, 6) * 0.5)
    assert q["kind"] == "quantised" and q["step"] == 0.5
    c = classify(np.r_[np.arange(1000.0), np.arange(1000.0)])
    assert c["kind"] == "counter" and c["resets"] == 1 and c["step"] == 1.0
    r = classify(np.r_[np.zeros(5), np.ones(3), np.arange(2.0, 200.0)])
    assert r["longest_repeat_run"] == 5 and r["repeat_share"] == round(6 / 205, 4)


def test_counters_are_judged_per_series():
    """Two files of one counter: the jump back between files is a new count, not a reset."""
    parts = [np.c_[np.cumsum(rng.poisson(2, 500)).astype(float)] for _ in range(3)]
    assert feature_kinds(["n"], parts)["n"]["kind"] == "counter"


def test_sane_std_for_constant_features():
    kinds = {"zero": {"kind": "constant"}, "hundred": {"kind": "constant"}, "blip": {"kind": "near-constant"},
             "x": {"kind": "continuous"}}
    std = sane_std(np.array([0.0, 0.0, 1e-4, 2.5]), np.array([0.0, 100.0, 3.0, 1.0]), kinds, list(kinds))
    np.testing.assert_array_equal(std, [1.0, 1.0, 0.03, 2.5])  # 1 unit at 0, else 1 % of the value


def _series(train: np.ndarray, held: np.ndarray) -> list[Series]:
    raw = np.vstack([train, held])
    return [Series("s", raw, len(train))]


def test_data_warnings_name_the_feature_and_the_numbers():
    train = rng.normal(0, 1, (1000, 2))
    held = np.c_[rng.normal(0, 1, 400), rng.normal(5, 1, 400)]  # b leaves its training range
    w = data_warnings(["a", "b"], _series(train, held), n_params=100, kinds={})
    assert len(w) == 1 and w[0].startswith("b: ") and "outside the training range" in w[0]
    w = data_warnings(["a", "b"], _series(train, rng.normal(0, 1, (400, 2))), n_params=1_000_000, kinds={})
    assert len(w) == 1 and "little data" in w[0] and "1,000,000 parameters" in w[0]
    assert fit_warnings(0.1, 0.2) == [] and "above training NLL" in fit_warnings(0.1, 1.0)[0]


def _rates(table):
    """rate_at from a step function {surprise: rate} (rate falls as surprise grows), counting calls."""
    calls = []

    def rate_at(s):
        calls.append(s)
        return next((r for lim, r in sorted(table.items()) if s < lim), 0.0)
    return rate_at, calls


def test_search_stays_at_the_target_when_it_is_quiet_there():
    rate_at, calls = _rates({5.0: 0.0})
    assert search_threshold(rate_at, 1e-4, 5e-5) == 4.0 and len(calls) == 1


def test_search_finds_the_least_surprise_within_budget():
    rate_at, _ = _rates({37.0: 1e-3, 1e9: 0.0})  # alerts up to surprise 37, none beyond
    s = search_threshold(rate_at, 1e-4, 5e-5)
    assert 37.0 <= s <= 37.0 * 1.01


def test_search_at_a_floor_returns_the_least_surprise_reaching_it():
    """Alerts no threshold removes (rate 2e-3 at any surprise): not S_CAP, the floor's start."""
    rate_at, _ = _rates({20.0: 5e-3, math.inf: 2e-3})
    s = search_threshold(rate_at, 1e-4, 5e-5)
    assert 20.0 <= s <= 20.0 * 1.01 and rate_at(s) == 2e-3
    # capped below where the rate falls: the floor (5e-3) starts at the target's own surprise
    s = search_threshold(rate_at, 1e-4, 5e-5, cap=10.0)
    assert 4.0 <= s <= 4.0 * 1.01 < S_CAP


def test_one_in_is_for_people():
    assert one_in(4.0) == "1 in 10,000"
    assert one_in(41.25) == "1 in 10^41.2" or one_in(41.25) == "1 in 10^41.3"


def test_extrapolate_follows_a_log_linear_tail():
    """rate = 10 ** (-(s - 1)): -log10 decades per unit surprise; the budget 1e-6 sits at s = 7."""
    s_ext = extrapolate(lambda s: 10.0 ** (-(s - 1.0)), 3.0, 1e-6)
    assert s_ext == pytest.approx(7.0)
    assert extrapolate(lambda s: 0.0, 3.0, 1e-6) is None  # nothing below: nothing to extrapolate from
    assert extrapolate(lambda s: 1e-3, 3.0, 1e-6) is None  # no fall measurable


def test_stream_models_take_the_kind_most_series_have():
    """A broad corpus: a few quantised series among continuous ones make the pooled rows quantised
    (stuck look off for every stream); a stream-normalised model takes the series' majority kind."""
    cont = [np.c_[rng.normal(0, 1, 2000)] for _ in range(3)]
    quant = [np.c_[np.repeat(np.round(rng.normal(0, 3, 100)), 20)] for _ in range(2)]  # runs of 20 repeats
    parts = cont + quant
    assert feature_kinds(["v"], parts)["v"]["kind"] == "quantised"  # pooled rows: 40 % repeats
    facts = feature_kinds(["v"], parts, per_series=True)["v"]
    assert facts["kind"] == "continuous" and facts["series_kinds"] == {"continuous": 3, "quantised": 2}
    assert "series: 3 continuous, 2 quantised" in describe("v", facts)
    assert feature_kinds(["v"], cont[:1] + quant, per_series=True)["v"]["kind"] == "quantised"
    counters = [np.c_[np.cumsum(rng.poisson(2, 500)).astype(float)] for _ in range(3)]
    assert feature_kinds(["n"], counters, per_series=True)["n"]["kind"] == "counter"
