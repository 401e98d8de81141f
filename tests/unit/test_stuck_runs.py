"""stuck_runs (kernel._stuck_lp / _runs_learn): the stuck look scores a run of exact repeats at the
value the stream's last run of 3 or more held by the stream's own runs (a two-state chain) instead of
its repeat rate alone, so a meter that reads an exact 0 whenever its load is off is not a stuck
sensor at every off stretch, while a value held anywhere else still is. Off by default (the rows
and snapshots as before). The shipped univariate model, numpy backend, real detector runs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from edgernn.backends import create_backend
from edgernn.detector import Batch, Detector
from edgernn.layout import Layout
from edgernn.settings import resolve

pytestmark = pytest.mark.usefixtures("each_kernel_mode")  # conftest.py: installed kernel, then plain Python


def _detector(bundle, **settings) -> Detector:
    return Detector(bundle, create_backend("numpy", bundle), resolve(bundle, settings))


def _meter(rng, n: int) -> np.ndarray:
    """float64[n]: an on/off load read by a power meter: 0 exactly when off, 1-1,000 with 1-8 %
    multiplicative noise when on, stretches of 30-240 readings."""
    high, level, on, i = 10 ** rng.uniform(0, 3), np.empty(n), bool(rng.integers(2)), 0
    while i < n:
        k = int(rng.integers(30, 241))
        level[i:i + k] = high if on else 0.0
        i, on = i + k, not on
    return level * (1 + rng.uniform(0.01, 0.08) * rng.standard_normal(n))


def _raised(bundle, x: np.ndarray, runs: bool) -> list:
    """x float64[n, streams], a minute apart: the raised events as (stream, reading, look)."""
    n, streams = x.shape
    det = _detector(bundle, stuck_runs=runs)
    t0 = 1.7e9
    res = det.process(Batch([f"s{k}" for k in range(streams)] * n, np.repeat(t0 + 60.0 * np.arange(n), streams),
                            x.reshape(-1, 1)))
    return [(e.stream, int(round((e.ts - t0) / 60.0)), e.reason.split()[0]) for e in res.events if e.kind == "raised"]


def test_a_meter_that_reads_0_when_off_is_not_a_stuck_sensor_at_every_off_stretch(univariate):
    """Four clean meters, 2,500 readings each: the repeat rate alone raises the stuck look on their off
    stretches again and again; scored by their own runs, a few alerts at most."""
    rng = np.random.default_rng(4)
    x = np.stack([_meter(rng, 2500) for _ in range(4)], axis=1)
    before, after = _raised(univariate, x, False), _raised(univariate, x, True)
    assert sum(look == "stuck" for *_, look in before) >= 20, before
    assert len(after) <= 4 and len(after) * 5 <= len(before), after


def test_a_value_held_at_the_on_level_or_on_a_noisy_sensor_still_alerts(univariate):
    """A meter frozen at one of its on readings for 150 readings, and a noisy temperature frozen for 150:
    neither value is the stream's run value (0, or none), so the stuck look scores them by the repeat
    rate as before and raises inside the frozen stretch."""
    rng = np.random.default_rng(6)
    n, at = 2500, 1800
    meter = _meter(rng, n)
    on = at + int(np.flatnonzero(meter[at:] > 0)[0])  # the first on reading from there
    meter[on:on + 150] = meter[on]
    temp = 20.0 + 2.0 * np.sin(2 * np.pi * np.arange(n) / 1440.0) + 0.05 * rng.standard_normal(n)
    temp[at:at + 150] = temp[at]
    raised = _raised(univariate, np.stack([meter, temp], axis=1), True)
    assert any(s == "s0" and on < i <= on + 150 and look == "stuck" for s, i, look in raised), raised
    assert any(s == "s1" and at < i <= at + 150 and look == "stuck" for s, i, look in raised), raised


def test_the_run_columns_are_there_only_with_the_setting(univariate):
    """rstart (float32) and rval (float64) per feature only with stuck_runs on (12 bytes per stream
    for a univariate model); off, the rows and the snapshot signature are as before; a new stream's
    run value is NaN (no completed run yet)."""
    assert Layout(1, components=3).signature() == Layout(1, components=3, runs=False).signature()
    assert Layout(1, components=3, runs=True).row_bytes == Layout(1, components=3).row_bytes + 12
    assert Layout(3, runs=True).row_bytes == Layout(3).row_bytes + 36
    on, off = _detector(univariate, stuck_runs=True), _detector(univariate)
    assert on.runs and not off.runs and off.state.layout.offsets["rval"] == -1
    assert on.params.runs_on and not off.params.runs_on
    on.process(Batch(["a"], np.array([1.7e9]), np.array([[5.0]])))
    assert np.isnan(on.state.get("a")["rval"]).all()


def test_a_snapshot_with_the_runs_restores_and_scores_on_as_one_run(univariate, tmp_path):
    """A meter's state (its run value 0, its run counts) survives a snapshot: the rest of the recording
    scores bit for bit as in one unbroken run; a store without the setting does not take the snapshot."""
    rng = np.random.default_rng(8)
    n, cut = 1600, 1100
    ts = 1.7e9 + 60.0 * np.arange(n)
    x = _meter(rng, n)[:, None]
    whole = _detector(univariate, stuck_runs=True).process(Batch(["m"] * n, ts, x))
    first = _detector(univariate, stuck_runs=True)
    first.process(Batch(["m"] * cut, ts[:cut], x[:cut]))
    assert first.state.get("m")["rval"][0] == 0.0 and first.state.get("m")["rstart"][0] > 0.0
    first.state.snapshot(tmp_path / "s.npz", "m")
    second = _detector(univariate, stuck_runs=True)
    ok, why = second.state.restore(tmp_path / "s.npz", "m", resettle=False)
    assert ok, why
    rest = second.process(Batch(["m"] * (n - cut), ts[cut:], x[cut:]))
    np.testing.assert_array_equal(rest.likelihood, whole.likelihood[cut:])
    ok, why = _detector(univariate).state.restore(tmp_path / "s.npz", "m")
    assert not ok and why


def test_the_chain_score_against_its_formula():
    """_stuck_lp (plain Python; the compiled kernel is held to it by the detector checks): log10 b +
    (run - 1) log10 a from the EW counts, a shrunk to the repeat rate by STUCK_PRIOR; a stream that
    rarely repeats makes a first repeat news, one that sits in long runs makes a long run ordinary."""
    from unit_helpers import plain_kernel_module

    k = plain_kernel_module()
    reps, starts, trials, run = 500.0, 4.0, 1000.0, 120.0
    r = (reps + 1) / (trials + 2)
    b = (starts + 1) / (trials - reps + 2)
    a = (reps - starts + k.STUCK_PRIOR * r) / (reps + k.STUCK_PRIOR)
    assert k._stuck_lp(reps, starts, trials, run) == pytest.approx(np.log10(b) + (run - 1) * np.log10(a))
    assert k._stuck_lp(reps, starts, trials, run) > -3.0  # 120 zeros on a meter off half the time: under 3.52
    assert k._stuck_lp(2.0, 2.0, 1000.0, 2.0) < -4.0  # a second repeat on a stream that hardly ever repeats
    assert k._stuck_lp(reps, starts, trials, 1.0) == pytest.approx(np.log10(b))


def test_a_meter_dead_at_its_off_value_is_the_documented_cost(univariate):
    """With stuck_runs a meter that goes dead at 0 is not reported by the stuck look (the counts learn
    the run as it goes: settings.py and docs/QUALITY.md say so); without it, the stuck look reports it."""
    rng = np.random.default_rng(2)
    n, dead = 6000, 3000
    x = _meter(rng, n)
    x[dead:] = 0.0
    on = [(i, look) for _, i, look in _raised(univariate, x[:, None], True) if i >= dead]
    off = [(i, look) for _, i, look in _raised(univariate, x[:, None], False) if i >= dead]
    assert not any(look == "stuck" for _, look in on), on
    assert any(look == "stuck" and i < dead + 50 for i, look in off), off


def test_a_multivariate_model_keeps_a_run_value_per_feature(tmp_path):
    """skab-pump (8 features) with stuck_runs: each feature's run value is its own last run's; the
    persistence backend runs with it too; a snapshot whose run value is infinite is refused."""
    from edgernn.bundle import load_bundle

    bundle = load_bundle(os.path.join(os.path.dirname(__file__), "..", "..", "firmware_models", "skab-pump"))
    F, n = len(bundle.features), 400
    x = np.tile(np.arange(F, dtype=float), (n, 1)) + 0.01 * np.random.default_rng(1).standard_normal((n, F))
    x[100:110] = np.arange(F) * 10.0  # every feature holds 10 f for 10 readings, then moves on
    for backend in ("numpy", "persistence"):
        det = Detector(bundle, create_backend(backend, bundle), resolve(bundle, {"stuck_runs": True}))
        det.process(Batch(["p"] * n, 1.7e9 + np.arange(n), x))
        np.testing.assert_array_equal(det.state.get("p")["rval"], np.arange(F) * 10.0)
    det.state.snapshot(tmp_path / "s.npz", "m")
    with np.load(tmp_path / "s.npz") as z:
        parts = dict(z)
    parts["num"][0, det.state.layout.rval.start] = np.inf
    np.savez(tmp_path / "bad.npz", **parts)
    again = Detector(bundle, create_backend("persistence", bundle), resolve(bundle, {"stuck_runs": True}))
    ok, why = again.state.restore(tmp_path / "bad.npz", "m")
    assert not ok and "rval" in why
