"""level_memory (kernel._lm_learn / _lm_z): each stream of a mixture-head model keeps two levels of its
own and, once it has stayed LM_HOLD readings in a row at each, scores a reading under the model's
mixture blended with the level it is not at, so a young on/off signal's switch back to a level it
left a few hundred readings ago is not news, while a spike, a third level and levels visited only in
short bursts are scored by the model alone. Off by default (rows and snapshots as before). The
shipped univariate model, numpy backend, real detector runs, in both kernel modes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from edgernn.backends import create_backend
from edgernn.detector import Batch, Detector
from edgernn.layout import LM_HOLD, LM_STAY0, Layout
from edgernn.settings import resolve

pytestmark = pytest.mark.usefixtures("each_kernel_mode")  # conftest.py: installed kernel, then plain Python


def _detector(bundle, **settings) -> Detector:
    return Detector(bundle, create_backend("numpy", bundle), resolve(bundle, settings))


def _duty(rng, n: int) -> np.ndarray:
    """float64[n]: a hard on/off signal (a compressor's power draw): two levels 3-100 apart, a stay of
    30-240 readings at each, additive noise of 3 % of the gap."""
    lo = rng.uniform(0, 5)
    hi = lo + 10 ** rng.uniform(0.5, 2)
    level, on, i = np.empty(n), bool(rng.integers(2)), 0
    while i < n:
        k = int(rng.integers(30, 241))
        level[i:i + k] = hi if on else lo
        i, on = i + k, not on
    return level + 0.03 * (hi - lo) * rng.standard_normal(n)


def _run(bundle, x: np.ndarray, memory: float):
    """x float64[n, streams], a minute apart: (the detector, its Result)."""
    n, streams = x.shape
    det = _detector(bundle, level_memory=memory)
    res = det.process(Batch([f"s{k}" for k in range(streams)] * n, np.repeat(1.7e9 + 60.0 * np.arange(n), streams),
                            x.reshape(-1, 1)))
    return det, res


def _raised(res) -> list:
    """(stream, reading, look) of each raised alert (readings a minute apart from 1.7e9)."""
    return [(e.stream, int(round((e.ts - 1.7e9) / 60.0)), e.reason.split()[0]) for e in res.events if e.kind == "raised"]


def test_young_on_off_signals_switch_back_without_the_instant_look_alerting(univariate):
    """48 clean on/off signals, 1,500 readings each (a few switches past the warm-up): the switches
    back to a level the GRU has forgotten raise the instant look a dozen times by the model alone;
    with the memory, less than half as often, and no other look more often."""
    rng = np.random.default_rng(11)
    x = np.stack([_duty(rng, 1500) for _ in range(48)], axis=1)
    off = Counter(look for *_, look in _raised(_run(univariate, x, 0.0)[1]))
    on = Counter(look for *_, look in _raised(_run(univariate, x, 1000.0)[1]))
    assert off["instant"] >= 8, off
    assert on["instant"] * 2 < off["instant"], (off, on)
    assert all(on[look] <= off[look] for look in on), (off, on)


def test_levels_visited_in_short_bursts_leave_the_score_to_the_model(univariate):
    """A stream at 0 with bursts of 1-19 readings at 0.9-1.8 and one spike of 40 (a key counter): no run
    at the bursts' level reaches LM_HOLD, so the memory never scores and every output is bit for bit
    the model's alone; its state says so (centre 0 held, centre 1 not)."""
    rng = np.random.default_rng(5)
    n, z, i = 3000, np.zeros(3000), 300
    while i < n:
        k = int(rng.integers(1, 20))
        z[i:i + k] = rng.uniform(0.9, 1.8, k)[: n - i]
        i += k + int(rng.integers(20, 120))
    z[2000] = 40.0
    _, alone = _run(univariate, z[:, None], 0.0)
    det, with_memory = _run(univariate, z[:, None], 1000.0)
    np.testing.assert_array_equal(with_memory.likelihood, alone.likelihood)
    np.testing.assert_array_equal(with_memory.onset, alone.onset)
    flags = int(det.state.get("s0")["lm_stay"][0] // 64)
    assert flags == 1, det.state.get("s0")


def test_a_third_level_and_a_spike_are_as_surprising_as_by_the_model_alone(univariate):
    """An on/off signal that stops switching and sits at the middle of its two levels for 200
    readings (lost periodicity), and one that spikes past its high level, once the memory has held
    both levels: the memory gives those readings next to no probability (they are at neither level),
    so their surprise is the model's alone within 1 % (what else the two streams learned differs a
    little), and the spike is raised at once as without the memory."""
    rng = np.random.default_rng(3)
    n, at = 4000, 3000
    mid, spike = _duty(rng, n), _duty(rng, n)
    lo, hi = np.percentile(mid[:at], [5, 95])
    mid[at:at + 200] = (lo + hi) / 2 + 0.03 * (hi - lo) * rng.standard_normal(200)
    lo2, hi2 = np.percentile(spike[:at], [5, 95])
    spike[at] = hi2 + 2.0 * (hi2 - lo2)
    x = np.stack([mid, spike], axis=1)
    before, _ = _run(univariate, x[:at], 1000.0)
    assert all(before.state.get(s)["lm_stay"][0] >= 192 for s in ("s0", "s1"))  # both levels held before `at`
    _, alone = _run(univariate, x, 0.0)
    _, with_memory = _run(univariate, x, 1000.0)
    rows = 2 * at + np.arange(0, 40, 2)  # s0's first 20 readings at the middle level (rows interleave s0, s1)
    rows = np.r_[rows, 2 * at + 1]  # and s1's spike
    assert (with_memory.surprise[rows] >= 0.99 * alone.surprise[rows]).all()
    assert ("s1", at, "instant") in _raised(with_memory) and ("s1", at, "instant") in _raised(alone)


def test_the_memory_columns_are_there_only_with_the_setting(univariate):
    """lm_c, lm_v (2 per feature), lm_w and lm_stay: 24 bytes per stream and feature, only with
    level_memory on and a mixture head; off, or on a Gaussian head, the rows and the snapshot
    signature are as before; a new stream's memory: centres -1 / +1, unit variance, no run."""
    assert not any(name.startswith("lm_") for name, *_ in Layout(1, components=3, wbias=True, calm=True).columns)
    assert Layout(1, components=3, lmem=True).row_bytes == Layout(1, components=3).row_bytes + 24
    assert Layout(2, components=3, lmem=True).row_bytes == Layout(2, components=3).row_bytes + 48
    assert Layout(1, components=1, lmem=True).signature() == Layout(1, components=1).signature()
    off, on = _detector(univariate), _detector(univariate, level_memory=1000.0)
    assert not off.lm_on and off.state.layout.offsets["lm_w"] == -1 and off.params.lm_rate == 0.0
    assert on.lm_on and on.params.lm_rate == pytest.approx(1e-3)
    on.process(Batch(["a"], np.array([1.7e9]), np.array([[5.0]])))
    row = on.state.get("a")
    np.testing.assert_array_equal(row["lm_c"], [-1.0, 1.0])
    assert row["lm_v"].tolist() == [1.0, 1.0] and row["lm_stay"][0] == LM_STAY0


def test_a_snapshot_with_the_memory_restores_and_a_tampered_one_is_refused(univariate, tmp_path):
    """An on/off signal's memory survives a snapshot (the rest scores bit for bit as one unbroken
    run); a snapshot whose memory weight is above its bound, whose variance is 0 or whose packed run
    is not an integer or out of its range (a run past LM_HOLD, flags past 3) is refused, naming the
    column."""
    rng = np.random.default_rng(8)
    n, cut = 1600, 1100
    ts = 1.7e9 + 60.0 * np.arange(n)
    x = _duty(rng, n)[:, None]
    whole = _detector(univariate, level_memory=1000.0).process(Batch(["m"] * n, ts, x))
    first = _detector(univariate, level_memory=1000.0)
    first.process(Batch(["m"] * cut, ts[:cut], x[:cut]))
    assert first.state.get("m")["lm_stay"][0] >= 192  # both levels held by then
    first.state.snapshot(tmp_path / "s.npz", "m")
    second = _detector(univariate, level_memory=1000.0)
    ok, why = second.state.restore(tmp_path / "s.npz", "m", resettle=False)
    assert ok, why
    np.testing.assert_array_equal(second.process(Batch(["m"] * (n - cut), ts[cut:], x[cut:])).likelihood,
                                  whole.likelihood[cut:])
    layout = second.state.layout
    for column, value in (("lm_w", 0.9), ("lm_stay", 100.5), ("lm_stay", 63.0), ("lm_stay", 256.0), ("lm_v", 0.0)):
        with np.load(tmp_path / "s.npz") as z:
            parts = dict(z)
        parts["num4"][0, getattr(layout, column).start] = value
        np.savez(tmp_path / "bad.npz", **parts)
        ok, why = _detector(univariate, level_memory=1000.0).state.restore(tmp_path / "bad.npz", "m")
        assert not ok and column in why, (column, why)


def test_the_packed_run_counts_and_flags_each_centre_once():
    """_lm_stayed (plain Python; the compiled kernel is held to it by the detector checks): a run at
    one centre counts up to LM_HOLD and sets that centre's flag there, a reading at the other centre
    starts a run there, one at neither ends the run; flags stay."""
    from unit_helpers import plain_kernel_module

    k = plain_kernel_module()
    stay = LM_STAY0
    for _ in range(int(LM_HOLD) - 1):
        stay = k._lm_stayed(stay, 1, True)
    assert stay == LM_STAY0 + LM_HOLD - 1 and not k._lm_held(stay)
    stay = k._lm_stayed(stay, 1, True)
    assert stay // 64 == 2 and stay % 64 == LM_STAY0 + LM_HOLD  # centre 1's flag, the run capped there
    assert k._lm_stayed(stay, 1, True) == stay
    stay = k._lm_stayed(stay, 0, True)
    assert stay == 2 * 64 + LM_STAY0 - 1  # a run of one at centre 0
    assert k._lm_stayed(stay, 0, False) == 2 * 64 + LM_STAY0  # a reading at neither: no run
    for _ in range(int(LM_HOLD)):
        stay = k._lm_stayed(stay, 0, True)
    assert k._lm_held(stay) and stay == 3 * 64 + LM_STAY0 - LM_HOLD
