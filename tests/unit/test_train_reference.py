"""The training reference (issue 12, acceptance 1) and the kinds left out of the level / spread
looks (issue 12 item 2).

With fixed normalisation (a model trained on the user's data), F > 1 and reference_rows 0, the
reference look compares each feature with what training saw: |x_f - m_f| / s_f with the model's
mean / std, or from the stream's own warm-up mean where that is nearer; max over features, its own
calibrated table (calibration.tables.reference). reference_rows > 0 keeps the first-N-readings
reference exactly; stream models, univariate models and bundles without the table are unchanged.
Binary and (near-)constant features are left out of the level and spread looks."""

from __future__ import annotations

import numpy as np
import pytest

from edgernn import detector as detector_module
from edgernn import scoring
from edgernn.bundle import SHAPELESS_KINDS, load_bundle, write_bundle, write_manifest
from edgernn.detector import Batch, Detector, DetectorSettings, K
from edgernn.train.calibrate import fit_tables, reference_gate
from edgernn.train.card import card_text
from edgernn.train.data import Series

from unit_helpers import plain_kernel_module, sine_series, steady_weights

F = 6


def ref_table(F: int) -> dict:
    """The statistic's table as if each z_f ~ N(0, 1): max over F of |N(0, 1)|."""
    z = np.random.default_rng(11).standard_normal((100_000, F))
    return scoring.fit_table(np.abs(z).max(axis=1))


@pytest.fixture
def fixed_bundle(tmp_path):
    """A persistence model with fixed normalisation fitted on sine_series(seed=5); feature kinds
    recorded (f0 binary, f1 constant, the rest continuous)."""

    def make(F: int = F, kinds: dict | None = None):
        x = sine_series(2000, seed=5, F=F)
        out = tmp_path / f"fixed{F}"
        write_bundle(out, name="fixed", version="0.0-test", features=[f"f{i}" for i in range(F)],
                     weights=steady_weights(F, 16, 0.2), norm_mode="fixed", norm_mean=x.mean(0).tolist(),
                     norm_std=x.std(0).tolist(), calibration=scoring.default_calibration(F, warmup=32))
        m = dict(load_bundle(out).manifest)
        m["feature_kinds"] = kinds or {f"f{i}": {"kind": "continuous"} for i in range(F)}
        write_manifest(out, m)
        return load_bundle(out), x

    return make


def run(det: Detector, x: np.ndarray):
    """Every reading of x[n, F] on one stream, one at a time: (outs[n, N_OUT], works[n, F, W], events)."""
    outs, works, events = [], [], []
    for i in range(len(x)):
        res = det.process(Batch(["s"], np.array([float(i)]), x[i : i + 1]))
        out, work, _ = det._one
        outs.append(np.array(out)), works.append(np.array(work).reshape(det.F, K.W))
        events += [(e.kind, i, e.reason, e.feature) for e in res.events]
    return np.array(outs), np.array(works), events


def test_on_only_for_fixed_multivariate_models_with_a_table_and_no_reference_rows(fixed_bundle, steady_bundle):
    b, _ = fixed_bundle()
    det = Detector(b)
    assert det.tref_stat and not det.tref and scoring.REFERENCE not in det.looks
    assert scoring.REFERENCE in det.recorded  # calibration fits the table from the statistic
    det.set_tables({scoring.REFERENCE: ref_table(F)})
    assert det.tref and scoring.REFERENCE in det.looks
    rows = Detector(b, settings=DetectorSettings(reference_rows=50), tables={scoring.REFERENCE: ref_table(F)})
    assert not rows.tref_stat and not rows.tref  # reference_rows > 0: the first-N-readings reference
    stream = Detector(load_bundle(steady_bundle(F=3)), tables={scoring.REFERENCE: ref_table(3)})
    assert not stream.tref_stat and not stream.tref and scoring.REFERENCE not in stream.recorded


def test_reference_rows_path_unchanged_by_a_reference_table(fixed_bundle):
    b, x = fixed_bundle()
    s = DetectorSettings(reference_rows=100)
    y = x[:400].copy()
    y[300:, 2] += 3.0 * x[:, 2].std()
    plain, _, _ = run(Detector(b, settings=s), y)
    with_table, _, _ = run(Detector(b, settings=s, tables={scoring.REFERENCE: ref_table(F)}), y)
    np.testing.assert_array_equal(plain, with_table)


@pytest.mark.parametrize("plain_kernel", [False, True])
def test_a_level_shift_is_seen_for_its_whole_length_and_named(fixed_bundle, monkeypatch, plain_kernel):
    """A 4-sd shift of one feature held for 150 readings: the training reference's statistic is
    |x - m| / s of that feature on every reading of it (the one-step residual only sees its start),
    the look is the reference and it blames the feature."""
    if plain_kernel:
        monkeypatch.setattr(detector_module, "kernel", plain_kernel_module())
    b, x = fixed_bundle()
    m, s = np.asarray(b.norm_mean), np.asarray(b.norm_std)
    y = x[:600].copy()
    y[400:550, 3] = m[3] + 4.0 * s[3]
    outs, works, _ = run(Detector(b, tables={scoring.REFERENCE: ref_table(F)}), y)
    seg = slice(420, 550)
    start = y[:32, 3].mean()  # the stream's warm-up mean (warmup 32)
    expect = min(4.0, abs(m[3] + 4.0 * s[3] - start) / s[3])
    assert expect > 3.0
    np.testing.assert_allclose(outs[seg, K.O_REF], expect, rtol=1e-9)
    assert (works[seg, 3, K.W_REF] == outs[seg, K.O_REF]).all()
    assert (works[seg, :, K.W_REF].argmax(axis=1) == 3).all()  # the feature it blames
    lp = outs[seg, K.O_LP + scoring.ALL_LOOKS.index(scoring.REFERENCE)]
    assert (lp < -3.0).all()
    assert (outs[seg, K.O_SURPRISE] >= -lp - np.log10(7) - 1e-9).all()  # 7 looks in use
    assert (outs[100:400, K.O_REF] < 3.0).all()  # normal readings: within what training saw


def test_a_stream_at_another_operating_point_is_measured_from_its_warm_up(fixed_bundle):
    """A stream offset by 6 sd in every feature from its first reading: after the warm-up its
    statistic is its distance from its own warm-up mean, not 6."""
    b, x = fixed_bundle()
    s = np.asarray(b.norm_std)
    y = x[:300] + 6.0 * s
    outs, _, _ = run(Detector(b, tables={scoring.REFERENCE: ref_table(F)}), y)
    assert (outs[:32, K.O_REF] > 4.0).all()  # warm-up (not scored): from the training mean
    assert (outs[40:, K.O_REF] < 3.0).all()


def with_gate(b, gate) -> object:
    """The bundle with calibration.reference_gate set (written to its manifest)."""
    m = dict(b.manifest)
    m["calibration"] = {**m["calibration"], "reference_gate": list(gate)}
    write_manifest(b.path, m)
    return load_bundle(b.path)


@pytest.mark.parametrize("plain_kernel", [False, True])
def test_the_warm_up_gate_measures_a_stream_where_training_went_from_training(fixed_bundle, monkeypatch, plain_kernel):
    """calibration.reference_gate: a feature whose warm-up mean sits within the gate (sd from m) is
    measured from the training mean alone; beyond it, from the warm-up mean where nearer (as
    without a gate)."""
    if plain_kernel:
        monkeypatch.setattr(detector_module, "kernel", plain_kernel_module())
    b, x = fixed_bundle()
    m, s = np.asarray(b.norm_mean), np.asarray(b.norm_std)
    y = x[:300] + 6.0 * s  # every feature 6 sd away from the training mean from the first reading
    tables = {scoring.REFERENCE: ref_table(F)}
    outs, works, _ = run(Detector(with_gate(b, [10.0] * F), tables=tables), y)  # 6 sd is within a gate of 10
    z = np.abs(y - m) / s  # [n, F] from the training mean only
    np.testing.assert_allclose(works[40:, :, K.W_REF], z[40:], rtol=1e-9)
    assert (outs[40:, K.O_REF] > 4.0).all()
    outs, works, _ = run(Detector(with_gate(b, [2.0] * F), tables=tables), y)  # beyond a gate of 2
    assert (outs[40:, K.O_REF] < 3.0).all()
    gate = [10.0] * F
    gate[2] = 2.0  # per feature: only f2 is measured from its warm-up mean
    _, works, _ = run(Detector(with_gate(b, gate), tables=tables), y)
    assert (works[40:, 2, K.W_REF] < 3.0).all() and (works[40:, 3, K.W_REF] > 4.0).all()


def test_a_malformed_reference_gate_is_refused(fixed_bundle):
    b, _ = fixed_bundle()
    with pytest.raises(ValueError, match="reference_gate"):
        Detector(with_gate(b, [1.0] * (F - 1)))
    with pytest.raises(ValueError, match="reference_gate"):
        Detector(with_gate(b, [-1.0] * F))


def test_reference_gate_is_the_farthest_window_mean_of_the_normal_data(fixed_bundle):
    """reference_gate: per feature, max over every window-long run of readings (each series) of
    |window mean - m| / s; a series shorter than the window, or a window holding a NaN, adds nothing."""
    b, x = fixed_bundle()
    m, s = np.asarray(b.norm_mean), np.asarray(b.norm_std)
    a, c = x[:500].copy(), x[500:900].copy()
    c[100, 1] = np.nan
    c[300:340, 1] = m[1] + 3.5 * s[1]  # the farthest window of f1 comes after the NaN
    w = 32
    got = reference_gate(b, [Series("a", a, 400), Series("c", c, 300), Series("short", x[:10] + 50 * s, 8)], w)
    expect = np.zeros(F)
    for r in (a, c):
        for i in range(len(r) - w + 1):
            expect = np.fmax(expect, np.abs(r[i : i + w].mean(axis=0) - m) / s)  # a NaN window: fmax skips it
    np.testing.assert_allclose(got, expect, rtol=1e-9)
    assert got[1] == pytest.approx(3.5)
    assert all(g < 5.0 for g in got)  # the short series (50 sd away) counted for nothing


def test_the_model_card_states_the_gate(fixed_bundle):
    b, _ = fixed_bundle(kinds={f"f{i}": {"kind": "continuous", "distinct": 2000} for i in range(F)})
    assert "warm-up mean" not in card_text(b.path)
    text = card_text(with_gate(b, [0.5, 1.0, 2.5, 1.0, 1.0, 1.0]).path)
    assert "Training reference" in text and "0.50 to 2.50 sd" in text


def test_binary_and_constant_features_are_out_of_the_level_and_spread_looks(fixed_bundle):
    kinds = {"f0": {"kind": "binary"}, "f1": {"kind": "constant"}, "f2": {"kind": "near-constant"},
             **{f"f{i}": {"kind": "continuous"} for i in range(3, F)}}
    assert {"binary", "constant", "near-constant"} == set(SHAPELESS_KINDS)
    b, x = fixed_bundle(kinds=kinds)
    y = x[:300].copy()
    y[150:, :3] += 5.0 * np.asarray(b.norm_std)[:3]  # the shapeless ones move; level / spread do not see it
    y[200:, 4] += 5.0 * np.asarray(b.norm_std)[4]
    _, works, _ = run(Detector(b), y)
    assert (works[:, :3, K.W_LEVEL] == 0.0).all() and (works[:, :3, K.W_SPREAD] == 0.0).all()
    assert works[210:, 4, K.W_LEVEL].max() > 1.0  # a continuous feature still is in them
    assert (works[160:, :3, K.W_CONTRIB] > 0.0).all()  # ... and the shapeless ones in the score


def test_fit_tables_fits_the_reference_table_when_asked_and_recorded():
    rng = np.random.default_rng(0)
    looks = {name: np.abs(rng.standard_normal(500)) for name in (*scoring.TABLE_LOOKS, scoring.REFERENCE)}
    assert scoring.REFERENCE in fit_tables(looks, optional=scoring.OPTIONAL_TABLES)
    assert scoring.REFERENCE not in fit_tables(looks, optional=(scoring.PEAK,))
    del looks[scoring.REFERENCE]
    assert scoring.REFERENCE not in fit_tables(looks, optional=scoring.OPTIONAL_TABLES)


@pytest.mark.parametrize("plain_kernel", [False, True])
def test_echo_decades_bounds_the_slow_looks_once_a_fault_has_ended(fixed_bundle, monkeypatch, plain_kernel):
    """echo_decades c > 0 (training reference in use): the smoothed and spread looks' log10 p enter
    the combination at most c decades below the present reading's own (min of the instant,
    reference and peak looks'). A 40-sd burst of 5 readings on one feature: its first reading is
    scored as before, the rest still alert; after it the slow looks' echo is bounded, so the
    surprise falls back within c decades (+ Bonferroni) of the present's; c = 0 (the default) is
    bit for bit the detector without the setting."""
    if plain_kernel:
        monkeypatch.setattr(detector_module, "kernel", plain_kernel_module())
    b, x = fixed_bundle()
    y = x[:700].copy()
    y[400:405, 2] += 40.0 * np.asarray(b.norm_std)[2]
    tables = {scoring.REFERENCE: ref_table(F)}
    off, _, _ = run(Detector(b, tables=tables), y)
    zero, _, _ = run(Detector(b, settings=DetectorSettings(echo_decades=0.0), tables=tables), y)
    np.testing.assert_array_equal(off, zero)
    on, _, _ = run(Detector(b, settings=DetectorSettings(echo_decades=1.0), tables=tables), y)
    lp = lambda o, look: o[:, K.O_LP + scoring.ALL_LOOKS.index(look)]  # noqa: E731
    now = np.minimum.reduce([lp(on, "instant"), lp(on, scoring.REFERENCE), lp(on, scoring.PEAK)])
    after = slice(406, 700)
    for look in ("smoothed", "spread"):
        assert (lp(on, look)[after] >= now[after] - 1.0 - 1e-9).all()
        assert (lp(on, look)[after] >= lp(off, look)[after]).all()
    echo = lp(off, "smoothed")[after] < now[after] - 1.0  # where the unbounded memory outlived the burst
    assert echo.sum() > 20, echo.sum()
    s_on, s_off = on[after, K.O_SURPRISE][echo], off[after, K.O_SURPRISE][echo]
    assert (s_on <= s_off + 1e-9).all() and (s_on < 0.5 * s_off).sum() > 20  # (the level look may still lead)
    assert on[400, K.O_SURPRISE] == off[400, K.O_SURPRISE] > 100  # the fault's first reading: the present leads
    assert (on[401:405, K.O_SURPRISE] > 30).all()  # the burst (a step the model then follows) still alerts
    univariate = Detector(b, settings=DetectorSettings(echo_decades=1.0))  # no reference table: not in use
    assert not univariate.tref and univariate.params.echo_decades == 1.0
