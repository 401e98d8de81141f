"""The relation look (issue 12 item 3): each feature against the others at the same reading.

edgernn train fits, for a model with fixed normalisation and F > 1, a ridge regression of every
continuous / quantised feature on the others (train/relation.py, relation.npz in the bundle); the
kernel's _relation turns each reading into e_i = (c_i - coef[i] . c) / resid_std_i, measured from
the stream's own warm-up mean of e_i where nearer, max over i with its own calibrated table.
Bundles without relation.npz (every shipped one) have neither the look nor its slab columns."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgernn import detector as detector_module
from edgernn import scoring
from edgernn.bundle import BundleError, load_bundle, write_bundle, write_manifest
from edgernn.detector import Batch, Detector, K
from edgernn.train.relation import MIN_FEATURES, fit_relation, write_relation

from unit_helpers import plain_kernel_module, steady_weights

F = 5
WARM = 32


def machine(n: int, seed: int) -> np.ndarray:
    """float64[n, F]: two load factors (slow sines + AR noise) mixed into 5 features + own noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    load = np.stack([np.sin(2 * np.pi * t / 300.0), np.cos(2 * np.pi * t / 170.0)], axis=1)  # [n, 2]
    mix = np.array([[3.0, 0.5], [1.0, 2.0], [2.0, -1.0], [0.5, 3.0], [-2.0, 1.5]])  # [F, 2]
    return 20.0 + load @ mix.T + 0.1 * rng.standard_normal((n, F))


def table(values: np.ndarray) -> dict:
    return scoring.fit_table(values)


@pytest.fixture
def related(tmp_path):
    """A persistence model with fixed normalisation on machine(), its relation fitted by the
    trainer's code, and a relation table fitted on the statistic of normal readings."""
    x = machine(4000, seed=1)
    out = tmp_path / "related"
    mean, std = x.mean(0), x.std(0)
    write_bundle(out, name="related", version="0.0-test", features=[f"f{i}" for i in range(F)],
                 weights=steady_weights(F, 16, 0.2), norm_mode="fixed", norm_mean=mean.tolist(),
                 norm_std=std.tolist(), calibration=scoring.default_calibration(F, warmup=WARM))
    kinds = {f"f{i}": {"kind": "continuous"} for i in range(F)}
    m = dict(load_bundle(out).manifest)
    m["feature_kinds"] = kinds
    write_manifest(out, m)
    rel = fit_relation([np.clip((x - mean) / std, -10, 10)], [f"f{i}" for i in range(F)], kinds)
    write_relation(out, rel)
    b = load_bundle(out)
    stat = run(Detector(b), machine(3000, seed=2))[0][WARM:, K.O_REL]  # the statistic on normal readings
    return b, table(stat), x


def run(det: Detector, x: np.ndarray, events: list | None = None):
    """Every reading of x[n, F] on one stream, one at a time: (outs[n, N_OUT], works[n, F, W]);
    (reading index, event) pairs appended to ``events``."""
    outs, works = [], []
    for i in range(len(x)):
        res = det.process(Batch(["s"], np.array([float(i)]), x[i : i + 1]))
        out, work, _ = det._one
        outs.append(np.array(out)), works.append(np.array(work).reshape(det.F, K.W))
        if events is not None:
            events += [(i, e) for e in res.events]
    return np.array(outs), np.array(works)


def test_the_fit_recovers_a_linear_relation():
    """Three features where f2 = f0 + f1 (+ small noise): f2's residual against the others is the
    noise; a kind outside continuous / quantised is not modelled; too few features: no relation."""
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(5000), rng.standard_normal(5000)
    Z = np.stack([a, b, (a + b) / np.sqrt(2) + 0.05 * rng.standard_normal(5000), rng.standard_normal(5000)], axis=1)
    names = ["a", "b", "sum", "flag"]
    kinds = {"a": {"kind": "continuous"}, "b": {"kind": "quantised"}, "sum": {"kind": "continuous"},
             "flag": {"kind": "binary"}}
    rel = fit_relation([Z[:2500], Z[2500:]], names, kinds)
    assert rel["features"].tolist() == [0, 1, 2]
    assert not np.diag(rel["coef"]).any()
    assert (rel["resid_std"] < 0.3).all() and rel["resid_std"][2] < 0.15  # each is the others' (ridge shrinks a little)
    np.testing.assert_allclose(rel["coef"][2, :2], [1 / np.sqrt(2)] * 2, atol=0.1)
    assert fit_relation([Z], names, {**kinds, "sum": {"kind": "counter"}}) is None  # 2 < MIN_FEATURES
    assert MIN_FEATURES == 3


@pytest.mark.parametrize("plain_kernel", [False, True])
def test_a_decoupled_feature_is_seen_for_as_long_as_it_stays_away_and_named(related, monkeypatch, plain_kernel):
    """f3 held at its value while the others follow the load for 140 readings: its relation
    residual is large for most of the segment (wherever the load has moved away from where f3 was
    held), the look is in use, fires on it and blames f3; the statistic is the formula's."""
    if plain_kernel:
        monkeypatch.setattr(detector_module, "kernel", plain_kernel_module())
    b, tab, _ = related
    x = machine(900, seed=4)
    x[500:640, 3] = x[500, 3] + 0.1 * np.random.default_rng(9).standard_normal(140)  # (not exact repeats: not stuck)
    det = Detector(b, tables={scoring.RELATION: tab})
    assert det.rel and scoring.RELATION in det.looks
    got: list = []
    outs, works = run(det, x, got)
    seg = slice(520, 640)  # once the load has moved (a held value agrees with the others only where the load passes by)
    away = outs[seg, K.O_REL] > 6.0
    assert away.mean() > 0.8 and np.median(outs[seg, K.O_REL]) > 10.0, outs[seg, K.O_REL]
    assert (works[seg, :, K.W_REL].argmax(axis=1)[away] == 3).all()
    # the alert names it: at its first readings f3 and f1 (coef 0.68 on each other) explain e about
    # equally well, so f3 carries the alert; once it has moved further it is the one blamed
    raised = [e for i, e in got if e.kind == "raised" and 500 <= i < 640]
    assert raised and raised[0].reason == "relation" and "f3" in raised[0].carrying, raised
    assert (outs[100:500, K.O_REL] < 5.0).all()
    lp = outs[:, K.O_LP + scoring.ALL_LOOKS.index(scoring.RELATION)]
    assert (lp[seg][away] < -4.0).all()
    # the formula: e = (c - coef c) / se, from the warm-up mean where nearer (c: normalised, clipped)
    rel, mean, std = b.relation, b.norm_mean, b.norm_std
    c = np.clip((x - mean) / std, -10, 10)[:, rel["features"]]  # [n, U]
    e = (c - c @ rel["coef"].T) / rel["resid_std"]
    a = e[:WARM].mean(axis=0)
    expect = np.minimum(np.abs(e), np.abs(e - a)).max(axis=1)
    np.testing.assert_allclose(outs[WARM:, K.O_REL], expect[WARM:], rtol=1e-4, atol=1e-4)  # (a: float32 in the slab)


def test_a_stream_whose_relations_sit_elsewhere_from_its_start_is_measured_from_there(related):
    """Every reading of f1 offset by 3 sd from the first reading (a sensor calibrated differently):
    after the warm-up the statistic is about what it is on normal data."""
    b, tab, x = related
    y = machine(800, seed=5)
    y[:, 1] += 3.0 * b.norm_std[1]
    outs, _ = run(Detector(b, tables={scoring.RELATION: tab}), y)
    plain, _ = run(Detector(b, tables={scoring.RELATION: tab}), machine(800, seed=5))
    assert outs[:WARM, K.O_REL].min() > 5.0  # warm-up: measured from training
    assert np.median(outs[WARM:, K.O_REL]) < 1.5 * np.median(plain[WARM:, K.O_REL]) + 0.5


def test_without_a_table_the_statistic_is_kept_but_not_a_look(related):
    b, _, _ = related
    det = Detector(b)
    assert det.rel_stat and not det.rel and scoring.RELATION not in det.looks
    assert scoring.RELATION in det.recorded  # calibration fits its table from it
    assert det.state.layout.offsets["rel_mean"] >= 0


def test_bundles_without_a_relation_have_no_relation_columns():
    from edgernn.layout import Layout

    for F_, ref in ((1, False), (3, True), (8, False)):
        lay = Layout(F_, ref, True)
        assert lay.offsets["rel_mean"] == -1
        assert lay.signature() == Layout(F_, ref, True, relation=False).signature()
    assert Layout(1, False, True, relation=True).offsets["rel_mean"] == -1  # univariate: never


def test_a_broken_or_tampered_relation_is_a_one_line_error(related, tmp_path):
    b, _, _ = related
    bad = tmp_path / "bad"
    shutil.copytree(b.path, bad)
    (bad / "relation.npz").write_bytes(b"not an npz")
    with pytest.raises(BundleError, match="relation.npz: sha256 mismatch"):
        load_bundle(bad)
    rel = dict(b.relation)
    rel["coef"] = rel["coef"] + np.eye(len(rel["features"]))  # a feature predicting itself
    write_relation(bad, rel)
    with pytest.raises(BundleError, match="relation.npz: the relation needs"):
        load_bundle(bad)


def test_the_trainer_writes_a_relation_and_the_card_says_so(tmp_path):
    """edgernn train on a multivariate CSV (fixed normalisation): relation.npz, its table, the
    echo bound in detector_defaults, the card's line."""
    import subprocess
    import sys
    from pathlib import Path

    x = machine(3000, seed=6)
    csv = tmp_path / "m.csv"
    np.savetxt(csv, np.column_stack([np.arange(len(x)) * 60.0 + 1.7e9, x]), delimiter=",",
               header="timestamp," + ",".join(f"f{i}" for i in range(F)), comments="")
    repo = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-m", "edgernn", "train", str(csv), "--out", str(tmp_path / "m"),
                        "--epochs", "2", "--hidden", "8", "--threads", "1"], capture_output=True, text=True,
                       cwd=repo, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    b = load_bundle(tmp_path / "m")
    assert b.relation is not None and len(b.relation["features"]) == F
    assert scoring.RELATION in b.calibration.tables
    assert b.manifest["detector_defaults"] == {"echo_decades": 1.0}
    assert scoring.RELATION in Detector(b).looks
    assert "Relation look: 5 features" in (tmp_path / "m" / "README.md").read_text()
