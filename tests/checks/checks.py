"""The detector checks, river-style: one list of functions, each taking a ``Setup`` (a way to make
fresh Detectors for one {kernel mode} x {model} x {backend} combination) and asserting one
property. test_checks.py runs every check on every combination.

    CHECKS = [check_batched_equals_one_at_a_time, check_snapshot_restores_the_whole_slab, ...]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

import naive
from edgernn.detector import Batch, Detector, DetectorSettings

WARMUP = 40
T0 = 1_700_006_400.0  # a Wednesday, 00:00 UTC


@dataclass
class Setup:
    bundle: object
    make_backend: Callable[[], object]
    F: int

    def detector(self, **settings) -> Detector:
        return Detector(self.bundle, self.make_backend(), DetectorSettings(warmup=WARMUP, **settings))

    def data(self, n: int = 160, streams: int = 3, seed: int = 0, dt: float = 60.0):
        """Interleaved readings of ``streams`` streams: (ids, ts float64[N], x float64[N, F])."""
        rng = np.random.default_rng(seed)
        t = np.arange(n)[:, None]
        per = []
        for s in range(streams):
            z = np.sin(2 * np.pi * t / rng.uniform(20, 60, self.F) + rng.uniform(0, 6, self.F))
            z = z + 0.1 * rng.standard_normal((n, self.F))
            per.append(self.bundle.norm_mean + self.bundle.norm_std * z if self.bundle.norm_mode == "fixed"
                       else rng.uniform(-50, 50, self.F) + rng.uniform(1, 5, self.F) * z)
        ids = [f"s{s}" for _ in range(n) for s in range(streams)]
        ts = np.repeat(T0 + dt * np.arange(n), streams)
        return ids, ts, np.stack(per, axis=1).reshape(n * streams, self.F)


def whole_state(det: Detector, sid: str) -> dict:
    """Every column of the stream's slab rows (layout.columns) and its hidden state."""
    return det.state.get(sid)


def assert_same_state(a: dict, b: dict, rtol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=0 if rtol == 0 else 1e-6, equal_nan=True, err_msg=k)


def run(det: Detector, ids, ts, x, chunk: int, now=None):
    """Feed in chunks; returns (score, surprise, alert, accepted, reject reasons, event keys)."""
    out = [[], [], [], [], [], []]
    for lo in range(0, len(ids), chunk):
        r = det.process(Batch(ids[lo:lo + chunk], ts[lo:lo + chunk], x[lo:lo + chunk]), now=now)
        for i, part in enumerate((r.score, r.surprise, r.alert, r.accepted)):
            out[i].append(part)
        out[4] += r.reject_reason
        out[5] += [(e.kind, e.stream, e.alert_id, e.position + lo, e.reason) for e in r.events]
    return [np.concatenate(o) for o in out[:4]] + out[4:]


# -- the checks ---------------------------------------------------------------------------------
def check_batched_equals_one_at_a_time(s: Setup):
    ids, ts, x = s.data()
    one, batched = run(s.detector(), ids, ts, x, 1), run(s.detector(), ids, ts, x, 37)
    np.testing.assert_array_equal(one[3], batched[3])
    for i in (0, 1):  # backends may round differently at another batch size: to float32 precision
        np.testing.assert_allclose(one[i], batched[i], rtol=1e-4, atol=1e-6, equal_nan=True)
    assert np.isfinite(one[0]).sum() > len(ids) // 2


def check_snapshot_restores_the_whole_slab(s: Setup, tmp_path):
    ids, ts, x = s.data()
    half = len(ids) // 2
    a = s.detector()
    run(a, ids[:half], ts[:half], x[:half], 16)
    a.state.snapshot(tmp_path / "snap.npz", "sha")
    b = s.detector()
    ok, reason = b.state.restore(tmp_path / "snap.npz", "sha", resettle=False)
    assert ok, reason
    for sid in set(ids):
        assert_same_state(whole_state(a, sid), whole_state(b, sid))
    ra, rb = run(a, ids[half:], ts[half:], x[half:], 16), run(b, ids[half:], ts[half:], x[half:], 16)
    np.testing.assert_array_equal(ra[1], rb[1])
    assert ra[5] == rb[5]
    for sid in set(ids):
        assert_same_state(whole_state(a, sid), whole_state(b, sid))


def check_nan_and_inf_are_rejected_and_change_nothing(s: Setup):
    ids, ts, x = s.data(n=60, streams=1)
    det = s.detector()
    run(det, ids, ts, x, 16)
    before = whole_state(det, "s0")
    bad = np.tile(x[-1], (4, 1))
    bad[0, 0], bad[1, -1], bad[2, 0] = np.nan, np.inf, -np.inf
    t = ts[-1] + 60.0 * np.arange(1, 5)
    t[3] = np.nan
    r = det.process(Batch(["s0"] * 4, t, bad))
    assert not r.accepted.any() and np.isnan(r.score).all()
    assert r.reject_reason == ["missing_value", "non_finite", "non_finite", "non_finite"]
    assert_same_state(before, whole_state(det, "s0"))


def check_out_of_order_is_rejected_and_changes_nothing(s: Setup):
    ids, ts, x = s.data(n=60, streams=1)
    det = s.detector()
    run(det, ids, ts, x, 16)
    before = whole_state(det, "s0")
    r = det.process(Batch(["s0"], ts[-2:-1], x[-1:]))
    assert r.reject_reason == ["out_of_order"]
    assert_same_state(before, whole_state(det, "s0"))


def check_duplicates_are_dropped_and_counted(s: Setup):
    ids, ts, x = s.data(n=60, streams=1)
    det = s.detector()
    run(det, ids, ts, x, 16)
    before = whole_state(det, "s0")
    r = det.process(Batch(["s0", "s0"], ts[-1:].repeat(2), x[-1:].repeat(2, axis=0)))
    assert r.reject_reason == ["duplicate", "duplicate"] and det.rejects["duplicate"] == 2
    assert_same_state(before, whole_state(det, "s0"))


def check_a_gap_resets_the_hidden_state_and_resettles(s: Setup):
    ids, ts, x = s.data(n=120, streams=1)
    det = s.detector(max_gap_s=600.0, settle=5)
    ts = ts.copy()
    ts[80:] += 3600.0  # an hour of silence before reading 80
    r = run(det, ids, ts, x, 16)
    assert np.isfinite(r[0][WARMUP + 5 : 80]).all()
    assert np.isnan(r[0][80:85]).all() and np.isfinite(r[0][86:]).all()
    assert whole_state(det, "s0")["since_reset"] == len(ids) - 80


def check_warmup_holds_scores_back_and_learns_the_normalisation(s: Setup):
    ids, ts, x = s.data(n=100, streams=1)
    det = s.detector()
    r = run(det, ids, ts, x, 16)
    assert np.isnan(r[0][:WARMUP]).all() and not r[2][:WARMUP].any() and (r[1][:WARMUP] == 0).all()
    assert np.isfinite(r[0][WARMUP:]).all()
    st = whole_state(det, "s0")
    if s.bundle.norm_mode == "stream":  # Welford over the warm-up readings, then frozen (adapt 0)
        mean, var = naive.warmup_statistics(x[:WARMUP])
        if det.adapt == 0.0:
            np.testing.assert_allclose(st["norm_mean"], mean, rtol=1e-9)
            np.testing.assert_allclose(st["norm_var"], var, rtol=1e-6)
    else:
        np.testing.assert_allclose(st["norm_mean"], s.bundle.norm_mean, rtol=1e-9)


def check_score_is_the_naive_score_of_its_expected_and_sigma(s: Setup):
    if s.detector().components > 1:  # the backend's head (a baseline on a mixture bundle: 1)
        return _check_mixture_score(s)
    ids, ts, x = s.data(n=100, streams=2)
    det = s.detector()
    score, expected, sigma = [], [], []
    for lo in range(0, len(ids), 16):
        r = det.process(Batch(ids[lo:lo + 16], ts[lo:lo + 16], x[lo:lo + 16]))
        score.append(r.score), expected.append(r.expected.copy()), sigma.append(r.sigma.copy())
    score, expected, sigma = np.concatenate(score), np.concatenate(expected), np.concatenate(sigma)
    ok = np.isfinite(score) & (np.abs(x - expected) / sigma < 1e3).all(axis=1)  # no input clipping there
    z_in = np.abs(x - np.stack([det.state.get(i)["norm_mean"] for i in ids])) / np.sqrt(
        np.stack([det.state.get(i)["norm_var"] for i in ids]))
    ok &= (z_in < det.bundle.input_clip * 0.9).all(axis=1)
    assert ok.sum() > 50
    np.testing.assert_allclose(score[ok], naive.score_from_outputs(x[ok], expected[ok], sigma[ok]), rtol=1e-6)


def _check_mixture_score(s: Setup):
    """A mixture head's score: the mean over features of the squared equivalent z of each reading
    under the prediction stored before it (naive.mixture_z), and expected / sigma the most probable
    component's mean and std (raw units)."""
    ids, ts, x = s.data(n=100, streams=1)
    det = s.detector()
    F, K, b = s.F, det.components, s.bundle
    checked = 0
    for i in range(len(ids)):
        before = whole_state(det, ids[i]) if ids[i] in det.state.ids else None
        r = det.process(Batch(ids[i:i + 1], ts[i:i + 1], x[i:i + 1]))
        if before is None or not np.isfinite(r.score[0]):
            continue
        mean, std = before["norm_mean"], np.sqrt(before["norm_var"])
        c = (x[i] - mean) / std
        if np.abs(c).max() >= b.input_clip:
            continue
        pred = before["pred"]
        z = np.array([naive.mixture_z(c[f], pred, F, f, b.logvar_min, b.logvar_max) for f in range(F)])
        np.testing.assert_allclose(r.score[0], np.mean(np.minimum(z * z, 1e12)), rtol=1e-6, atol=1e-9)
        logits = pred[2 * K * F:].reshape(K, F)
        best = logits.argmax(axis=0)  # [F]
        mu = pred[: K * F].reshape(K, F)[best, np.arange(F)]
        lv = np.clip(pred[K * F : 2 * K * F].reshape(K, F)[best, np.arange(F)], b.logvar_min, b.logvar_max)
        np.testing.assert_allclose(r.expected[0], mu * std + mean, rtol=1e-6)
        np.testing.assert_allclose(r.sigma[0], np.exp(0.5 * lv) * std, rtol=1e-6)
        checked += 1
    assert checked > 40


def check_seasonal_on_equals_off_until_trusted(s: Setup):
    ids, ts, x = s.data(n=200, streams=2, dt=600.0)  # 200 readings at 10 minutes: < 2 days, never trusted
    on, off = s.detector(seasonal=True), s.detector(seasonal=False)
    ron, roff = run(on, ids, ts, x, 16), run(off, ids, ts, x, 16)
    for i in (0, 1, 2):
        np.testing.assert_array_equal(ron[i], roff[i])
    assert ron[5] == roff[5]
    assert on.seasonal == (s.F == 1) and not off.seasonal
    assert ("seas_m" in whole_state(on, "s0")) == (s.F == 1) and "seas_m" not in whole_state(off, "s0")


def check_future_timestamps_are_rejected_and_cannot_lock_a_stream(s: Setup):
    ids, ts, x = s.data(n=80, streams=1)
    det = s.detector()
    now = ts[59]
    run(det, ids[:60], ts[:60], x[:60], 16, now=now)
    r = det.process(Batch(["s0", "s0"], np.array([now + 29 * 86400.0, now + 31 * 86400.0]), x[60:62]), now=now)
    assert r.accepted.tolist() == [True, False] and r.reject_reason[1] == "future"
    later = run(det, ids[62:], ts[62:] + 1.0, x[62:], 1, now=ts[-1] + 1.0)
    assert later[3].all()


CHECKS = [check_batched_equals_one_at_a_time, check_snapshot_restores_the_whole_slab,
          check_nan_and_inf_are_rejected_and_change_nothing, check_out_of_order_is_rejected_and_changes_nothing,
          check_duplicates_are_dropped_and_counted, check_a_gap_resets_the_hidden_state_and_resettles,
          check_warmup_holds_scores_back_and_learns_the_normalisation,
          check_score_is_the_naive_score_of_its_expected_and_sigma, check_seasonal_on_equals_off_until_trusted,
          check_future_timestamps_are_rejected_and_cannot_lock_a_stream]
