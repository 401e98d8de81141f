"""The peak look (issue 12 item 3): max over features of |z_f| with its own calibrated table, for
multivariate models whose calibration has a peak table; off for univariate models and for bundles
calibrated before it (their outputs are unchanged)."""

from __future__ import annotations

import numpy as np
import pytest

from edgernn import detector as detector_module
from edgernn import scoring
from edgernn.bundle import load_bundle
from edgernn.detector import Batch, Detector
from edgernn.layout import N_LOOKS, Layout
from edgernn.train.calibrate import fit_tables

from unit_helpers import plain_kernel_module, sine_series

F_MANY = 12


def peak_table(F: int) -> dict:
    """The peak statistic's table as if every z_f ~ N(0, 1): max over F of |N(0, 1)|."""
    z = np.random.default_rng(7).standard_normal((100_000, F))
    return scoring.fit_table(np.abs(z).max(axis=1))


def run(det: Detector, x: np.ndarray, chunk: int = 50):
    """Every reading of x[n, F] on one stream; returns (surprise[n], events)."""
    n, sur, events = len(x), [], []
    ts = np.arange(n, dtype=np.float64)
    for lo in range(0, n, chunk):
        res = det.process(Batch(["s"] * len(x[lo : lo + chunk]), ts[lo : lo + chunk], x[lo : lo + chunk]))
        sur.append(res.surprise.copy())
        events += [(e.kind, lo + e.position, e.reason, e.feature, e.carrying) for e in res.events]
    return np.concatenate(sur), events


def test_layout_has_peak_onset_columns_only_for_multivariate_models():
    # onset slots only for the looks that can be in use: univariate has no peak slot, multivariate
    # no seasonal slot (and each loses the reference slot when the reference look is off, the
    # relation slot without a relation)
    for F, reference, width in ((1, True, N_LOOKS - 2), (3, True, N_LOOKS - 2), (1, False, N_LOOKS - 3), (3, False, N_LOOKS - 3)):
        L = Layout(F, reference)
        assert L.onset_ref.stop - L.onset_ref.start == width
        assert L.onset_quiet.stop - L.onset_quiet.start == -(-width // scoring.QUIET_PER_WORD)  # packed counts
    assert Layout(3, True, relation=True).onset_ref.stop - Layout(3, True, relation=True).onset_ref.start == N_LOOKS - 1
    assert scoring.ALL_LOOKS[N_LOOKS - 2] == scoring.PEAK and scoring.ALL_LOOKS[N_LOOKS - 1] == scoring.RELATION


def test_off_without_a_peak_table_and_for_univariate_models(steady_bundle):
    multi = load_bundle(steady_bundle(F=3))
    assert scoring.PEAK not in multi.calibration.tables
    det = Detector(multi)
    assert not det.peak and scoring.PEAK not in det.looks
    assert scoring.PEAK in det.recorded  # calibration still sees the statistic (it fits the table from it)
    det.set_tables({scoring.PEAK: peak_table(3)})
    assert det.peak and det.looks[-1] == scoring.PEAK
    uni = Detector(load_bundle(steady_bundle(F=1)), tables={scoring.PEAK: peak_table(1)})
    assert not uni.peak and scoring.PEAK not in uni.recorded


def test_univariate_outputs_unchanged_by_a_peak_table(steady_bundle):
    b = load_bundle(steady_bundle(F=1))
    x = sine_series(400, seed=1)
    x[300] += 3.0
    plain, _ = run(Detector(b), x)
    with_table, _ = run(Detector(b, tables={scoring.PEAK: peak_table(1)}), x)
    np.testing.assert_array_equal(plain, with_table)


@pytest.mark.parametrize("plain_kernel", [False, True])
def test_one_feature_of_many_is_seen_and_named(steady_bundle, monkeypatch, plain_kernel):
    """A one-reading spike in one feature of 12, small enough that its share of the mean z^2 stays
    below the threshold (threshold surprise 4): with the peak look it is over the threshold, the
    alert's reason is the peak look and it names the feature. (The stream's start-up alert has
    cleared by then.)"""
    if plain_kernel:
        monkeypatch.setattr(detector_module, "kernel", plain_kernel_module())
    b = load_bundle(steady_bundle(F=F_MANY))
    x = sine_series(700, seed=2, F=F_MANY)
    x[600, 7] += 0.3
    off = Detector(b)
    on = Detector(b, tables={scoring.PEAK: peak_table(F_MANY)})
    s_off, events_off = run(off, x)
    s_on, events = run(on, x)
    near = slice(595, 610)
    assert s_off[near].max() < off.threshold_surprise <= on.threshold_surprise <= s_on[near].max()
    assert s_on[near].max() > s_off[near].max() + 1.0  # the peak look's evidence, undiluted
    assert not [e for e in events_off if e[0] == "raised" and e[1] >= 400]
    raised = [e for e in events if e[0] == "raised" and e[1] >= 400]
    assert len(raised) == 1 and 595 <= raised[0][1] < 610
    assert raised[0][2] == scoring.PEAK and raised[0][3] == 7 and raised[0][4][0] == "f7"


def test_normal_readings_cost_only_the_bonferroni_share(steady_bundle):
    """On normal data the extra look adds log10(6 / 5) of surprise at most where no look is
    extreme: the combined surprise of the quiet readings barely moves."""
    b = load_bundle(steady_bundle(F=3))
    x = sine_series(400, seed=3, F=3)
    s_off, _ = run(Detector(b), x)
    s_on, _ = run(Detector(b, tables={scoring.PEAK: peak_table(3)}), x)
    ok = np.isfinite(s_off) & (s_off > 0)
    assert ok.sum() > 100
    assert np.median(s_on[ok] - s_off[ok]) == pytest.approx(-np.log10(6 / 5), abs=0.02)


def test_fit_tables_fits_the_peak_table_only_when_asked_and_recorded():
    rng = np.random.default_rng(0)
    looks = {name: np.abs(rng.standard_normal(500)) for name in (*scoring.TABLE_LOOKS, scoring.PEAK)}
    assert scoring.PEAK in fit_tables(looks, optional=scoring.OPTIONAL_TABLES)
    assert scoring.PEAK not in fit_tables(looks)
    del looks[scoring.PEAK]  # a univariate model records no peak statistic
    assert scoring.PEAK not in fit_tables(looks, optional=scoring.OPTIONAL_TABLES)
