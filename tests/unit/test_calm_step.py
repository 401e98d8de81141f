"""The calm step (calm_memory, univariate models; kernel._calm_step / _calm_learn): a stream that has
not stepped over 4 sd of its own steps in its last calm_memory readings is also scored by the size
of its step, so a spike inside a smooth sensor's daily swing alerts however the mixture explains it,
while a stream that steps (an on/off signal) scores as without it; a stream younger than calm_memory
is calm once its whole life, at least CALM_YOUNG readings, has had no such step. With it, the
calm trend (kernel._calm_trend / _trend_learn): on a calm or recently calm stream, the EW mean of the
residual against a smoothed level and trend, in sd of itself, so a level shift too small to be a
step alerts. The shipped univariate model, numpy backend, real detector runs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from edgernn import scoring
from edgernn.backends import create_backend
from edgernn.bundle import load_bundle
from edgernn.detector import Batch, Detector
from edgernn.layout import Layout
from edgernn.settings import resolve

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "firmware_models", "univariate")


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(ROOT)


pytestmark = pytest.mark.usefixtures("each_kernel_mode")  # conftest.py: the installed kernel, then plain Python


def _detector(bundle, **settings) -> Detector:
    """A numpy-backend detector on the bundle with its detector defaults and these settings over them."""
    return Detector(bundle, create_backend("numpy", bundle), resolve(bundle, settings))


def _run(bundle, x: np.ndarray, calm: float):
    """x float64[n, streams]: reading i of every stream in turn, a minute apart. (Result, names, ts)."""
    n, streams = x.shape
    det = _detector(bundle, calm_memory=calm)
    ts = np.repeat(1.7e9 + 60.0 * np.arange(n), streams)
    names = [f"s{k}" for k in range(streams)] * n
    return det.process(Batch(names, ts, x.reshape(-1, 1))), ts


def _pressure(rng, n: int, at: int, streams: int, swing: float, size: float, shift: bool) -> np.ndarray:
    """float64[n, streams]: pressure-like sensors (1013 + swing sin(day) + noise 0.01, a random phase
    each) with a fault of ``size`` (either sign) at reading ``at``: one reading (a spike), or every
    reading from there on (``shift``: a level shift)."""
    t = np.arange(n)[:, None]
    x = 1013.0 + swing * np.sin(2 * np.pi * t / 1440.0 + rng.uniform(0, 2 * np.pi, streams)) \
        + 0.01 * rng.standard_normal((n, streams))
    x[at:at + (n if shift else 1)] += size * np.where(rng.random(streams) < 0.5, 1.0, -1.0)
    return x


def _alerts(bundle, x: np.ndarray, calm: float, at: int, within: int, reason: str | None = None):
    """Raised events of a _run of x (float64[n, streams]): (all of them, the streams raised between
    reading ``at`` and ``at + within`` (by ``reason`` when given), the ones raised before ``at``)."""
    r, ts = _run(bundle, x, calm)
    streams = x.shape[1]
    raised = [e for e in r.events if e.kind == "raised"]
    hit = {e.stream for e in raised if ts[at * streams] <= e.ts <= ts[(at + within) * streams]
           and reason in (None, e.reason)}
    return raised, hit, [e for e in raised if e.ts < ts[at * streams]]


def test_a_spike_inside_a_smooth_sensors_daily_swing_alerts_with_the_calm_step(bundle):
    """A pressure-like sensor (1013 + 2 sin(day) + noise 0.01) with a spike of 12 noise sd at reading
    2,500, well inside its swing: with calm_memory 1000 nearly every stream alerts at the spike, by
    the instant look, and none before it; without, the mixture's widest component and the instant
    table keep most of them under the threshold."""
    n, at, streams = 2600, 2500, 12
    x = _pressure(np.random.default_rng(11), n, at, streams, swing=2.0, size=0.12, shift=False)
    caught, early = {}, {}
    for calm in (1000.0, 0.0):
        _, caught[calm], early[calm] = _alerts(bundle, x, calm, at, 0, "instant")
    assert len(caught[1000.0]) >= streams - 1 and not early[1000.0], (caught, early)
    assert len(caught[0.0]) < len(caught[1000.0]) - 3, caught


def test_a_level_shift_inside_a_smooth_sensors_swing_alerts_with_the_calm_trend(bundle):
    """A pressure-like sensor (1013 + 0.6 sin(day) + noise 0.01) shifted by 5 noise sd at reading 2,500
    and staying there: one step of 3.5 sd of its steps, under the calm step's 4 (and its window's
    ~5.9), but the readings after it stay off the smoothed level and trend. With calm_memory 1000
    nearly every stream alerts within a few readings, by the smoothed look, none before; without,
    only the instant look's odd catch at the shift."""
    n, at, streams = 2700, 2500, 12
    x = _pressure(np.random.default_rng(7), n, at, streams, swing=0.6, size=0.05, shift=True)
    caught, early = {}, {}
    for calm in (1000.0, 0.0):
        raised, caught[calm], early[calm] = _alerts(bundle, x, calm, at, 20)
        if calm:
            assert sum(e.reason == "smoothed" for e in raised) >= streams - 3, [e.reason for e in raised]
    assert len(caught[1000.0]) >= streams - 2 and not early[1000.0], (caught, early)
    assert len(caught[0.0]) <= 3, caught


def test_the_calm_trend_scores_a_young_calm_stream(bundle):
    """The same shift at reading 700 of 24 young streams (calm by their whole life from reading
    CALM_YOUNG + 2): the smoothed look raises alerts within 20 readings on a good part of them (the
    trend's mean square is younger, so fewer than in an old stream), none before; without the calm
    step (as such a stream was scored before the young rule) none by the smoothed look."""
    n, at, streams = 800, 700, 24
    x = _pressure(np.random.default_rng(7), n, at, streams, swing=0.6, size=0.05, shift=True)
    caught = {}
    for calm in (1000.0, 0.0):
        raised, caught[calm], early = _alerts(bundle, x, calm, at, 20, "smoothed")
        assert not early, raised
    assert len(caught[1000.0]) >= 4 and not caught[0.0], caught


def test_a_stream_that_steps_and_a_young_stream_score_as_without_it(bundle):
    """An on/off signal (two levels 10 apart, hard edges every 40-160 readings, noise 0.1) steps far
    over 4 sd of its steps all the time: it is never calm, and every surprise is what it is with
    calm_memory 0. A smooth stream is not calm before CALM_YOUNG readings without a step: the same
    there; one that stepped in its warm-up is not calm before calm_memory readings after that step."""
    rng = np.random.default_rng(5)
    n, streams = 3000, 4
    level = np.zeros((n, streams))
    for k in range(streams):
        i, on = 0, 0.0
        while i < n:
            run = int(rng.integers(40, 160))
            level[i:i + run, k], i, on = on, i + run, 10.0 - on
    duty = level + 0.1 * rng.standard_normal((n, streams))
    a, b = _run(bundle, duty, 1000.0)[0], _run(bundle, duty, 0.0)[0]
    assert np.array_equal(a.surprise, b.surprise, equal_nan=True)
    assert [(e.kind, e.stream, e.ts) for e in a.events] == [(e.kind, e.stream, e.ts) for e in b.events]
    t = np.arange(1100)[:, None]
    smooth = 20.0 + np.sin(2 * np.pi * t / 1440.0) + 0.01 * rng.standard_normal((1100, streams))
    a, b = _run(bundle, smooth, 1000.0)[0], _run(bundle, smooth, 0.0)[0]
    young = slice(0, int(scoring.CALM_YOUNG + 1) * streams)  # calm at the earliest from reading CALM_YOUNG + 2
    assert np.array_equal(a.surprise[young], b.surprise[young], equal_nan=True)
    smooth[100:] += 0.5  # a step of 50 noise sd in the warm-up: calm again only at reading 1,102,
    smooth[700] += 0.12  # so a spike of 12 noise sd at reading 700 is the model's alone
    a, b = _run(bundle, smooth, 1000.0)[0], _run(bundle, smooth, 0.0)[0]
    assert np.array_equal(a.surprise, b.surprise, equal_nan=True)


def test_a_young_calm_stream_is_scored_by_its_step(bundle):
    """A young pressure-like sensor (1013 + 2 sin(day) + noise 0.01) with a spike of 12 noise sd at
    reading 700: its whole life of 700 readings without a step over 4 sd of its steps makes it calm
    (CALM_YOUNG, 500), so nearly every stream alerts at the spike, by the instant look, and none
    before; without the calm step (as such a stream was scored before this rule) few do."""
    n, at, streams = 760, 700, 12
    x = _pressure(np.random.default_rng(12), n, at, streams, swing=2.0, size=0.12, shift=False)
    raised, caught, early = _alerts(bundle, x, 1000.0, at, 0, "instant")
    assert len(caught) >= streams - 1 and not early, raised
    assert len(_alerts(bundle, x, 0.0, at, 0)[1]) < streams - 4


def test_the_calm_columns_are_there_only_with_the_setting_on_a_univariate_model(bundle):
    """The calm step's and the calm trend's columns exist (and snapshots carry them: 24 bytes) only where
    calm_memory is on for a univariate model; otherwise the rows and the snapshot signature are as before."""
    names = {"calm_var", "calm_since", "trend_m1", "trend_d", "trend_eb", "trend_v"}
    assert names <= {c[0] for c in Layout(1, calm=True).columns}
    assert not names & {c[0] for c in Layout(1).columns}
    assert not names & {c[0] for c in Layout(3, calm=True).columns}
    assert Layout(1, components=3).signature() == Layout(1, components=3, calm=False).signature()
    assert Layout(1, components=3, calm=True).row_bytes == Layout(1, components=3).row_bytes + 24
    on = _detector(bundle, calm_memory=1000.0)
    off = _detector(bundle, calm_memory=0.0)
    assert on.calm and not off.calm and off.state.layout.offsets["calm_since"] == -1
    assert on.state.layout.offsets["calm_since"] >= 0 and on.state.layout.signature() != off.state.layout.signature()
    assert on.params.calm_mem == 1000.0 and off.params.calm_mem == 0.0
    with pytest.raises(ValueError, match="calm_memory"):
        resolve(bundle, {"calm_memory": 1.0})


def test_huge_steps_a_flat_start_and_a_gap_neither_poison_nor_fool_it(bundle, tmp_path):
    """A stream stepping by 1e25 keeps a finite calm_var (held under float32's largest) and a
    snapshot of it restores; a stream flat for its first readings learns its steps' scale once it
    moves (a zero calm_var does not cap every later step at zero)."""
    det = _detector(bundle, calm_memory=1000.0)
    rng = np.random.default_rng(2)
    n = 400
    huge = 1e25 + 1e20 * rng.standard_normal(n)
    flat = np.concatenate([np.zeros(40), 0.1 * rng.standard_normal(n - 40)])
    det.process(Batch(["huge"] * n + ["flat"] * n, np.tile(1.7e9 + 60.0 * np.arange(n), 2),
                      np.concatenate([huge, flat]).reshape(-1, 1)))
    assert np.isfinite(det.state.get("huge")["calm_var"]) and det.state.get("flat")["calm_var"] > 0.0
    det.state.snapshot(tmp_path / "s.npz", "m")
    again = _detector(bundle, calm_memory=1000.0)
    ok, why = again.state.restore(tmp_path / "s.npz", "m")
    assert ok, why
    assert again.state.get("huge")["calm_var"] == det.state.get("huge")["calm_var"]


@pytest.mark.parametrize("seasonal", [True, False])
def test_the_first_reading_after_a_gap_is_no_step(bundle, seasonal):
    """The first reading after a two-hour gap on a calm sensor is no step (the stream's sampling
    interval, kept with the seasonal look on or off, tells the gap), and the calm trend starts again
    from it: the gap alerts no more often, then or in the next 100 readings, than without the calm step."""
    rng = np.random.default_rng(11)
    m, streams = 2600, 8
    t = 1.7e9 + 60.0 * np.arange(m)
    t[2500:] += 7200.0  # two hours without a reading, then on as before
    x = 1013.0 + 0.6 * np.sin(2 * np.pi * (t[:, None] - t[0]) / 86400.0 + rng.uniform(0, 2 * np.pi, streams)) \
        + 0.01 * rng.standard_normal((m, streams))  # two hours of the daily swing: a step of 20-30 noise sd
    raised = {}
    for calm in (1000.0, 0.0):
        d = _detector(bundle, calm_memory=calm, seasonal=seasonal)
        assert d.state.layout.offsets["sample_dt"] >= 0 or not calm
        r = d.process(Batch([f"s{k}" for k in range(streams)] * m, np.repeat(t, streams), x.reshape(-1, 1)))
        raised[calm] = {e.stream for e in r.events if e.kind == "raised" and e.ts >= t[2500]}
    assert len(raised[1000.0]) <= len(raised[0.0]), raised  # (scored as a step: 7 of 8 against 2)


def test_a_snapshot_without_the_seasonal_look_restores_the_calm_steps_columns(bundle, tmp_path):
    """With seasonal: false and the calm step on, the rows hold the sampling interval (sample_dt) and
    the calm columns but no seasonal ones; a snapshot taken mid-stream restores them, and the rest of
    the stream scores bit for bit as in one unbroken run."""
    rng = np.random.default_rng(4)
    n, cut = 1600, 1100
    ts = 1.7e9 + 60.0 * np.arange(n)
    ts[1300:] += 3600.0  # a gap after the cut: the restored sampling interval must tell it
    x = (1013.0 + 0.2 * np.sin(2 * np.pi * np.arange(n) / 1440.0) + 0.01 * rng.standard_normal(n))[:, None]
    x[1450] += 0.2
    settings = {"calm_memory": 1000.0, "seasonal": False}
    whole = _detector(bundle, **settings)
    r_whole = whole.process(Batch(["s"] * n, ts, x))
    first = _detector(bundle, **settings)
    assert "seas_m" not in first.state.layout.offsets or first.state.layout.offsets["seas_m"] == -1
    first.process(Batch(["s"] * cut, ts[:cut], x[:cut]))
    first.state.snapshot(tmp_path / "s.npz", "m")
    second = _detector(bundle, **settings)
    ok, why = second.state.restore(tmp_path / "s.npz", "m", resettle=False)
    assert ok, why
    assert second.state.get("s")["sample_dt"] == first.state.get("s")["sample_dt"] > 0.0
    r_rest = second.process(Batch(["s"] * (n - cut), ts[cut:], x[cut:]))
    np.testing.assert_array_equal(r_rest.likelihood, r_whole.likelihood[cut:])
    for name in ("calm_var", "calm_since", "sample_dt"):
        assert second.state.get("s")[name] == whole.state.get("s")[name], name
    assert any(e.kind == "raised" and e.ts == ts[1450] for e in r_whole.events)  # the spike, after the gap


def test_a_step_ends_a_young_calm_stretch_into_the_recently_calm_grace(bundle):
    """A young stream calm by its whole life (no step in 700 readings) that steps by 30 noise sd is
    "recently calm" after it, as an old calm stream is: calm_since counts up from -TREND_GRACE, so the
    calm trend scores the readings after the step; one that stepped in its warm-up counts from 0."""
    from edgernn.scoring import TREND_GRACE

    rng = np.random.default_rng(4)
    n = 710
    ts = 1.7e9 + 60.0 * np.arange(n)
    x = (1013.0 + 0.2 * np.sin(2 * np.pi * np.arange(n) / 1440.0) + 0.01 * rng.standard_normal(n))[:, None]
    x[700:] += 0.3
    det = _detector(bundle, calm_memory=1000.0)
    det.process(Batch(["s"] * n, ts, x))
    assert -TREND_GRACE < det.state.get("s")["calm_since"] < 0.0
    x[100:] += 0.3  # a step in the warm-up too: not calm at reading 700, so no grace after it
    det = _detector(bundle, calm_memory=1000.0)
    det.process(Batch(["s"] * n, ts, x))
    assert 0.0 <= det.state.get("s")["calm_since"] <= 10.0


def test_a_snapshot_of_a_recently_calm_stream_restores_and_scores_on_as_one_run(bundle, tmp_path):
    """A level shift of 30 noise sd ends a calm stretch (calm_since then counts up from -TREND_GRACE:
    recently calm); a snapshot taken 10 readings later holds the negative count, restores, and the rest
    of the stream, with a second, small shift, scores bit for bit as in one unbroken run."""
    from edgernn.scoring import TREND_GRACE

    rng = np.random.default_rng(9)
    n, cut = 1500, 1210
    ts = 1.7e9 + 60.0 * np.arange(n)
    x = (1013.0 + 0.2 * np.sin(2 * np.pi * np.arange(n) / 1440.0) + 0.01 * rng.standard_normal(n))[:, None]
    x[1200:] += 0.3  # a step over 4 sd (of 30 noise sd): the end of a calm stretch
    x[1214:] += 0.05  # a shift of 5 noise sd, while recently calm
    whole = _detector(bundle, calm_memory=1000.0)
    r_whole = whole.process(Batch(["s"] * n, ts, x))
    first = _detector(bundle, calm_memory=1000.0)
    first.process(Batch(["s"] * cut, ts[:cut], x[:cut]))
    assert -TREND_GRACE < first.state.get("s")["calm_since"] < 0.0
    first.state.snapshot(tmp_path / "s.npz", "m")
    second = _detector(bundle, calm_memory=1000.0)
    ok, why = second.state.restore(tmp_path / "s.npz", "m", resettle=False)
    assert ok, why
    r_rest = second.process(Batch(["s"] * (n - cut), ts[cut:], x[cut:]))
    np.testing.assert_array_equal(r_rest.likelihood, r_whole.likelihood[cut:])
    assert [(e.kind, e.ts, e.reason) for e in r_rest.events] == [(e.kind, e.ts, e.reason) for e in r_whole.events
                                                                 if e.ts >= ts[cut]]


@pytest.mark.parametrize("huge", [(1e20,), (4e38,), (1e100,), (1.7e308, -1.7e308)])
def test_a_huge_reading_on_a_calm_stream_leaves_every_column_finite_and_no_echo(bundle, tmp_path, huge):
    """One reading of 1e20, 4e38 (beyond float32 on a stream at 20) or 1e100, or two of +-1.7e308 (a
    step beyond float64's range), on a calm stream: the calm trend restarts at the wild reading and at
    the one back from it (a step over TREND_RESTART sd), so its columns and the looks' onset references
    stay finite, the next snapshot restores, and once the stream is calm again (calm_memory readings
    later) nothing the spike left in its means raises an alert: one alert, the spike's."""
    rng = np.random.default_rng(6)
    n, at = 3000, 800
    x = (20.0 + 0.2 * np.sin(2 * np.pi * np.arange(n) / 1440.0) + 0.01 * rng.standard_normal(n))[:, None]
    x[at : at + len(huge), 0] = huge
    det = _detector(bundle, calm_memory=1000.0)
    ts = 1.7e9 + 60.0 * np.arange(n)
    r = det.process(Batch(["s"] * n, ts, x))
    row = det.state.get("s")
    for name in ("trend_m1", "trend_d", "trend_eb", "trend_v", "onset_ref"):
        assert np.isfinite(row[name]).all(), (name, row[name])
    det.state.snapshot(tmp_path / "s.npz", "m")
    ok, why = _detector(bundle, calm_memory=1000.0).state.restore(tmp_path / "s.npz", "m")
    assert ok, why
    assert np.isfinite(r.likelihood[at + 10 :]).all()
    raised = [e.ts for e in r.events if e.kind == "raised"]
    assert raised == [ts[at]], [int((t - ts[0]) / 60) for t in raised]


@pytest.mark.parametrize("word", [-1.0, 2.0**24, 1e19, 3e38, 7.5])
def test_a_snapshot_with_a_packed_quiet_count_no_store_writes_is_refused(bundle, tmp_path, word):
    """The onset's quiet counts are three 8-bit counts to a float32 column: an integer under 2**24. A
    snapshot holding anything else there (negative, too large to be exact, past a long's range,
    fractional) is refused with one line naming the column."""
    det = _detector(bundle)
    n = 400
    det.process(Batch(["s"] * n, 1.7e9 + 60.0 * np.arange(n), (20.0 + 0.1 * np.arange(n) % 3.0)[:, None]))
    det.state.num4[det.state.ids["s"], det.state.layout.onset_quiet.start] = word  # tampered
    det.state.snapshot(tmp_path / "s.npz", "m")
    ok, why = _detector(bundle).state.restore(tmp_path / "s.npz", "m")
    assert not ok and "onset_quiet" in why and "\n" not in why, why


@pytest.mark.parametrize("column", ["sample_dt", "seas_cyc", "calm_since", "trend_v"])
def test_a_snapshot_with_a_negative_interval_or_count_is_refused(bundle, tmp_path, column):
    """The sampling interval, the seasonal look's day counts and the calm trend's mean square are never
    negative in a row this store writes, nor the calm step's count below -TREND_GRACE (its "recently
    calm" countdown): a snapshot holding one is refused with one line naming the column."""
    det = _detector(bundle)
    n = 400
    det.process(Batch(["s"] * n, 1.7e9 + 60.0 * np.arange(n), (20.0 + 0.1 * np.arange(n) % 3.0)[:, None]))
    det.state.num4[det.state.ids["s"], getattr(det.state.layout, column)] = -60.0  # tampered
    det.state.snapshot(tmp_path / "s.npz", "m")
    again = _detector(bundle)
    ok, why = again.state.restore(tmp_path / "s.npz", "m")
    assert not ok and f"{column} = -60" in why and "\n" not in why


def test_calm_memory_over_a_million_readings_is_refused(bundle):
    """A stream's reading count is a float32 column, exact to 2**24: a calm window anywhere near that
    would let a stream that stepped look calm by its whole life once its count stops growing, so the
    schema holds calm_memory at most 1e6 (and 0, off, or at least 2)."""
    assert resolve(bundle, {"calm_memory": 1e6}).calm_memory == 1e6
    for bad in (2e6, 1.0):
        with pytest.raises(ValueError, match="calm_memory"):
            resolve(bundle, {"calm_memory": bad})
