"""SKAB loader, point-wise metrics as SKAB computes them, and the train-part threshold."""

import numpy as np
import pytest

from edgernn.evaluate import skab

CSV = """datetime;Accelerometer1RMS;Current;anomaly;changepoint
2020-03-09 10:14:33;0.0265;1.33;0.0;0.0
2020-03-09 10:14:34;0.0261;1.35;1.0;1.0
2020-03-09 10:14:35;0.0262;1.36;1.0;0.0
"""


def test_load_file(tmp_path):
    p = tmp_path / "valve1" / "0.csv"
    p.parent.mkdir()
    p.write_text(CSV)
    f = skab.load_file(p, "valve1/0.csv")
    assert f.features == ("Accelerometer1RMS", "Current")
    assert f.x.shape == (3, 2) and f.x[1, 1] == 1.35
    assert f.anomaly.tolist() == [0, 1, 1] and f.changepoint.tolist() == [0, 1, 0]
    assert np.diff(f.ts).tolist() == [1.0, 1.0]


def test_list_files_order_and_excludes_anomaly_free(tmp_path):
    for rel in ["anomaly-free/anomaly-free.csv", "valve1/10.csv", "valve1/2.csv", "other/1.csv"]:
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_text(CSV)
    names = [f"{p.parent.name}/{p.name}" for p in skab.list_files(tmp_path)]
    assert names == ["other/1.csv", "valve1/2.csv", "valve1/10.csv"]


def test_metrics_hand_computed():
    # true 1 1 1 1 0 0 0 0 0 0 / pred 1 1 1 0 1 0 0 0 0 0 -> TP 3, FN 1, FP 1, TN 5
    # F1 = 3 / (3 + (1 + 1) / 2) = 0.75; FAR = 100 * 1 / 6 = 16.67 %; MAR = 100 * 1 / 4 = 25 %
    true = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    pred = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0])
    m = skab.metrics(skab.confusion(true, pred))
    assert m["f1"] == pytest.approx(0.75)
    assert m["far"] == pytest.approx(100 / 6)
    assert m["mar"] == pytest.approx(25.0)


def test_counts_sum_over_files_like_concatenation():
    rng = np.random.default_rng(3)
    trues = [rng.random(50) < 0.4 for _ in range(4)]
    preds = [rng.random(50) < 0.5 for _ in range(4)]
    total = skab.Counts()
    for t, p in zip(trues, preds):
        total = total + skab.confusion(t, p)
    assert total == skab.confusion(np.concatenate(trues), np.concatenate(preds))


def test_all_anomalous_baseline_matches_published_remark():
    # 54 % anomalous test rows, predict all: F1 = 2 * 0.54 / 1.54 = 0.70, FAR 100 %, MAR 0 %
    true = np.r_[np.ones(54), np.zeros(46)]
    m = skab.metrics(skab.confusion(true, np.ones(100)))
    assert m["f1"] == pytest.approx(0.701, abs=1e-3) and m["far"] == 100.0 and m["mar"] == 0.0


def test_threshold_from_train():
    lik = np.array([np.nan, 0.5, 0.9, 0.99])
    assert skab.threshold_from_train(lik, "max") == pytest.approx(0.99)
    # factor 2 doubles -log10(1 - L): 0.99 -> 1 - 1e-4
    assert skab.threshold_from_train(lik, "max", factor=2.0) == pytest.approx(0.9999)
    assert skab.threshold_from_train(lik, "q50") == pytest.approx(0.9)
    with pytest.raises(ValueError):
        skab.threshold_from_train(np.array([np.nan]), "max")
    with pytest.raises(ValueError):
        skab.threshold_from_train(lik, "median")


def _tiny_bundle(path, n_features):
    from edgernn.backends.base import GRU_WEIGHT_SHAPES
    from edgernn.bundle import load_bundle, write_bundle

    rng = np.random.default_rng(5)
    dims = {"F": n_features, "H": 8}
    weights = {k: (0.3 * rng.standard_normal(tuple(dims[d] for d in spec))).astype(np.float32)
               for k, spec in GRU_WEIGHT_SHAPES.items()}
    write_bundle(path, name="tiny", version="test", features=[f"f{i}" for i in range(n_features)],
                 weights=weights)
    return load_bundle(path)


def test_recordings_run_together_equal_each_run_alone(tmp_path):
    # the harness feeds all files as streams of one batch; that must not change any number
    from edgernn.detector import Detector
    from edgernn.evaluate.run import run_recordings

    bundle = _tiny_bundle(tmp_path / "m", 2)
    rng = np.random.default_rng(0)
    recs = []
    for j, n in enumerate([300, 170, 411]):
        x = np.cumsum(rng.standard_normal((n, 2)), axis=0)
        x[n // 2] += 25.0  # something to alert on
        recs.append((f"file{j}", 1000.0 + np.arange(n), x))
    together = run_recordings(Detector(bundle), recs, chunk=64)
    for rec, tr in zip(recs, together):
        alone = run_recordings(Detector(bundle), [rec], chunk=1)[0]
        np.testing.assert_array_equal(tr.likelihood, alone.likelihood)
        np.testing.assert_array_equal(tr.event, alone.event)
        np.testing.assert_array_equal(tr.alert, alone.alert)
    assert any(t.raised.any() for t in together)
    assert np.isnan(together[0].scored_likelihood[0])  # warming up: not a training value


def _skab_like(n=700, F=2, seed=0):
    rng = np.random.default_rng(seed)
    x = np.cumsum(0.3 * rng.standard_normal((n, F)), axis=0) + rng.standard_normal((n, F))
    return 1000.0 + np.arange(n), x


def test_train_calibration_sees_nothing_after_the_training_rows(tmp_path):
    from edgernn.detector import Detector, DetectorSettings

    bundle = _tiny_bundle(tmp_path / "m", 2)
    det = Detector(bundle, settings=DetectorSettings(reference_rows=skab.TRAIN_ROWS))
    ts, x = _skab_like()
    y = x.copy()
    y[skab.TRAIN_ROWS:] = 50.0 * np.random.default_rng(9).standard_normal(y[skab.TRAIN_ROWS:].shape)
    ta = skab.fit_train_tables(det, [("f", ts, x)])
    tb = skab.fit_train_tables(det, [("f", ts, y)])
    assert ta.keys() == tb.keys() == set(("instant", "smoothed", "level", "spread"))
    for name in ta:
        assert ta[name] == tb[name], name
    # and the tables are the file's, not the bundle's
    assert any(not np.array_equal(ta[n]["x"], bundle.calibration.tables[n]["x"]) for n in ta)
    tra = skab.run_calibrated(det, [("f", ts, x)])[0]
    trb = skab.run_calibrated(det, [("f", ts, y)])[0]
    R = skab.TRAIN_ROWS
    np.testing.assert_array_equal(tra.likelihood[:R], trb.likelihood[:R])  # the threshold's input
    assert not np.array_equal(tra.likelihood[R:], trb.likelihood[R:])


def test_train_calibration_pools_recordings_and_runs_each_afresh(tmp_path):
    from edgernn.detector import Detector
    from edgernn.evaluate.run import run_recordings

    bundle = _tiny_bundle(tmp_path / "m", 1)
    det = Detector(bundle)
    recs = []
    for j in range(3):
        ts, x = _skab_like(F=1, seed=j)
        recs.append((f"f:{j}", ts, x))
    pooled = skab.fit_train_tables(det, recs, passes=1)
    alone = skab.fit_train_tables(det, recs[:1], passes=1)
    assert pooled["level"] != alone["level"]
    traces = skab.run_calibrated(det, recs, passes=1)
    again = run_recordings(Detector(bundle, tables=pooled), recs)  # fresh state, the pooled tables
    for t, u in zip(traces, again):
        np.testing.assert_array_equal(t.likelihood, u.likelihood)
    # the first pass ran with the bundle's tables, the second reruns with the first's
    assert skab.fit_train_tables(det, recs, passes=2) != pooled
    with pytest.raises(ValueError, match="100"):
        skab.fit_train_tables(det, recs[:1], train_rows=100)
