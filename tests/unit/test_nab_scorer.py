"""The NAB scorer against hand-computed cases and against itself (sweep vs direct scoring)."""

import math

import numpy as np
import pytest

from edgernn.evaluate import nab

STD = nab.PROFILES["standard"]
LOW_FP = nab.PROFILES["reward_low_FP_rate"]
LOW_FN = nab.PROFILES["reward_low_FN_rate"]


def sig(x):  # NAB's scaledSigmoid written out, for the hand computations below
    return -1.0 if x > 3 else 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def test_scaled_sigmoid_reference_points():
    # the values quoted in NAB's docstring
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert nab.scaled_sigmoid(0.0) == pytest.approx(0.0, abs=1e-12)
    assert nab.scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(3.0) == pytest.approx(2 / (1 + math.exp(15)) - 1)
    assert nab.scaled_sigmoid(3.01) == -1.0


def test_probation_length():
    assert nab.probation_length(20) == 3  # floor(0.15 * 20)
    assert nab.probation_length(4032) == 604
    assert nab.probation_length(22695) == 750  # capped at 0.15 * 5000


def test_hand_computed_file():
    # 20 rows, probation floor(0.15 * 20) = 3 rows (0, 1, 2). One window: rows 8..11, width w = 4.
    # Detections at rows 1, 5, 9, 10, 13.
    #   row 1: in probation -> ignored.
    #   row 5: outside, no window before it -> -A_fp = -0.11.
    #   row 9: in the window, position -(11 - 9 + 1) / 4 = -0.75,
    #          sigma(-0.75) = 2 / (1 + e^-3.75) - 1 = 0.954045, / sigma(-1) = 0.986614 -> +0.966989.
    #   row 10: later in the same window -> does not count.
    #   row 13: outside, after the window: position |11 - 13| / (4 - 1) = 0.6667,
    #          sigma(0.6667) = 2 / (1 + e^3.3333) - 1 = -0.931110, x 0.11 -> -0.102422.
    #   S = -0.11 + 0.966989 - 0.102422 = 0.754567
    #   normalised: S_null = -1 (one window missed), S_perfect = +1 -> 100 (0.754567 + 1) / 2 = 87.73
    rw = nab.row_weights(20, [(8, 11)], STD)
    det = np.zeros(20, bool)
    det[[1, 5, 9, 10, 13]] = True
    fs = nab.score_detections(det, rw, STD)
    assert fs.score == pytest.approx(0.754567, abs=1e-6)
    assert (fs.tp, fs.fn, fs.fp) == (1, 0, 2)
    assert fs.first_detection == [9]
    assert nab.normalise(fs.score, rw.n_windows, STD) == pytest.approx(87.728, abs=1e-3)
    # by chance: 2 false positives on the 13 scored rows outside the window (20 - 3 probation - 4),
    # a window of 4 rows: 1 - exp(-4 x 2 / 13) = 0.459529
    assert fs.chance == pytest.approx(1 - math.exp(-8 / 13), abs=1e-9)
    # reward_low_FP_rate doubles the FP costs: -0.22 + 0.966989 - 0.204844 = 0.542145 -> 77.107
    rwf = nab.row_weights(20, [(8, 11)], LOW_FP)
    fsf = nab.score_detections(det, rwf, LOW_FP)
    assert fsf.score == pytest.approx(0.542145, abs=1e-6)
    assert nab.normalise(fsf.score, rwf.n_windows, LOW_FP) == pytest.approx(77.107, abs=1e-3)


def test_hand_computed_weights_match_formula():
    rw = nab.row_weights(20, [(8, 11)], STD)
    assert rw.weight[8] == pytest.approx(1.0)  # left edge: exactly A_tp
    assert rw.weight[11] == pytest.approx(sig(-0.25) / sig(-1.0))  # right edge, -(1)/4
    assert rw.weight[12] == pytest.approx(0.11 * sig(1 / 3))  # just after the window
    assert rw.weight[4] == pytest.approx(-0.11)  # before any window
    assert list(rw.window[:3]) == [-2, -2, -2] and rw.weight[:3].tolist() == [0, 0, 0]


def test_missed_window_costs_fn_weight():
    rw = nab.row_weights(100, [(40, 49), (70, 79)], LOW_FN)
    det = np.zeros(100, bool)
    det[40] = True
    fs = nab.score_detections(det, rw, LOW_FN)
    assert fs.score == pytest.approx(1.0 - 2.0)
    # S_null = -2 * 2 = -4, S_perfect = 2 -> 100 (-1 + 4) / 6 = 50
    assert nab.normalise(fs.score, 2, LOW_FN) == pytest.approx(50.0)


@pytest.mark.parametrize("profile", list(nab.PROFILES.values()), ids=list(nab.PROFILES))
def test_perfect_is_100_and_null_is_0(profile):
    windows = [(300, 349), (600, 649)]
    rw = nab.row_weights(1000, windows, profile)
    perfect = np.zeros(1000, bool)
    perfect[[300, 600]] = True
    null = np.zeros(1000, bool)
    assert nab.normalise(nab.score_detections(perfect, rw, profile).score, rw.n_windows, profile) == pytest.approx(100.0)
    assert nab.normalise(nab.score_detections(null, rw, profile).score, rw.n_windows, profile) == pytest.approx(0.0)
    # firing everywhere is far worse than never firing
    assert nab.score_detections(np.ones(1000, bool), rw, profile).score < -10


def test_windows_from_labels_follow_nab_labeler():
    # 1000 rows, 2 labels: width int(0.1 * 1000 / 2) = 50, half 25 -> [275, 325], [675, 725]
    assert nab.windows_from_labels(1000, [300, 700]) == [(275, 325), (675, 725)]
    # a first window reaching into the probation period (150 rows) is dropped; overlaps merge
    assert nab.windows_from_labels(1000, [160, 500]) == [(475, 525)]
    assert nab.windows_from_labels(1000, [500, 520]) == [(475, 545)]


def test_window_indices_from_timestamps():
    ts = np.arange(10, dtype=float) * 300.0
    assert nab.window_indices(ts, [(600.0, 1500.0)]) == [(2, 5)]
    assert nab.window_indices(ts, [(610.0, 900.0)]) == [(3, 3)]
    assert nab.window_indices(ts, [(610.0, 890.0)]) == []  # covers no row
    assert nab.window_indices(ts, [(5000.0, 6000.0)]) == []


def test_sweep_matches_direct_scoring_at_every_threshold():
    rng = np.random.default_rng(7)
    files, weights = [], []
    for n, wins in [(400, [(150, 189)]), (300, []), (500, [(200, 229), (350, 379)])]:
        v = rng.random(n) ** 3
        for lo, hi in wins:
            v[lo + 5:hi] += 0.5 * rng.random(hi - lo - 5)
        files.append(np.round(v, 3))  # ties on purpose
        weights.append(nab.row_weights(n, wins, STD))
    sw = nab.sweep(files, weights, STD)
    assert sw.thresholds[0] == np.inf and np.all(np.diff(sw.thresholds) < 0)
    assert sw.scores[0] == pytest.approx(-3.0)  # nothing detected: 3 windows missed
    for i in range(0, len(sw.thresholds), 37):
        t = sw.thresholds[i]
        direct = sum(nab.score_detections(v >= t, rw, STD).score for v, rw in zip(files, weights))
        assert sw.scores[i] == pytest.approx(direct, abs=1e-9)
    best = sum(nab.score_detections(v >= sw.best_threshold, rw, STD).score for v, rw in zip(files, weights))
    assert best == pytest.approx(sw.best_score) and sw.best_score == pytest.approx(sw.scores.max())


def test_sweep_finds_the_separating_threshold():
    # likelihood 0.9 only at each window's left edge, 0.5 elsewhere: the best threshold is 0.9
    # and scores like the perfect detector.
    n, wins = 1000, [(300, 349), (600, 649)]
    v = np.full(n, 0.5)
    v[[300, 600]] = 0.9
    rw = nab.row_weights(n, wins, STD)
    sw = nab.sweep([v], [rw], STD)
    assert sw.best_threshold == 0.9
    assert nab.normalise(sw.best_score, rw.n_windows, STD) == pytest.approx(100.0)


def test_sweep_subsampled_candidates_are_a_subset():
    rng = np.random.default_rng(1)
    v = rng.random(2000)
    rw = nab.row_weights(2000, [(900, 999)], STD)
    full = nab.sweep([v], [rw], STD)
    sub = nab.sweep([v], [rw], STD, max_candidates=100)
    assert len(sub.thresholds) <= 101
    assert sub.best_score <= full.best_score + 1e-12


def _nab_sweep_scores(n, windows, profile):
    """NAB's Sweeper.calcSweepScore loop, transliterated on row indices (the reference)."""
    probation = min(math.floor(0.15 * n), 0.15 * 5000)
    wins = list(windows)
    out, cur, prev_right, prev_width = [], None, None, None
    for i in range(n):
        if wins and i == wins[0][0]:
            cur = wins.pop(0)
            width = float(cur[1] - cur[0] + 1)
        if cur is not None:
            w = sig(-(cur[1] - i + 1) / width) * profile.tp / sig(-1.0)
        elif prev_right is None:
            w = -1.0 * profile.fp
        else:
            w = sig(abs(prev_right - i) / float(prev_width - 1)) * profile.fp
        out.append(w if i >= probation else None)
        if cur is not None and i == cur[1]:
            prev_right, prev_width, cur = i, width, None
    return out


@pytest.mark.parametrize("profile", list(nab.PROFILES.values()), ids=list(nab.PROFILES))
def test_row_weights_match_nab_sweeper_loop(profile):
    n, windows = 3000, [(500, 799), (1200, 1260), (1261, 1400), (2900, 2999)]
    rw = nab.row_weights(n, windows, profile)
    ref = _nab_sweep_scores(n, windows, profile)
    for i, r in enumerate(ref):
        if r is None:
            assert rw.window[i] == -2
        else:
            assert rw.weight[i] == pytest.approx(r, abs=1e-12), i


def _corpus(seed, n_files=6):
    """Files in two categories, each with one window; ``good`` marks its window's left edge only."""
    rng = np.random.default_rng(seed)
    weights, good, noise, groups = [], [], [], []
    for j in range(n_files):
        n, win = 1000, [(400, 449)]
        weights.append(nab.row_weights(n, win, STD))
        v = rng.random(n) * 0.5
        good.append(np.where(np.arange(n) == 400, 0.9, v))
        noise.append(rng.random(n))
        groups.append("a" if j % 2 else "b")
    return weights, good, noise, groups


def test_bootstrap_margin_of_a_detector_against_itself_is_zero():
    weights, good, _, groups = _corpus(3)
    b = nab.bootstrap_margin(good, [g.copy() for g in good], weights, groups, STD, resamples=50)
    assert b["resamples"] == 50 and b["mean"] == b["low"] == b["high"] == 0.0 and b["ahead"] == 0.0


def test_bootstrap_margin_brackets_the_corpus_margin_and_orders_detectors():
    weights, good, noise, groups = _corpus(4)
    point = [nab.normalise(nab.sweep(v, weights, STD).best_score, 6, STD) for v in (good, noise)]
    b = nab.bootstrap_margin(good, noise, weights, groups, STD, resamples=200, seed=1)
    assert point[0] == pytest.approx(100.0) and point[1] < 60.0  # the perfect detector vs noise
    assert b["low"] <= point[0] - point[1] <= b["high"] and b["low"] > 0 and b["ahead"] == 1.0
    swapped = nab.bootstrap_margin(noise, good, weights, groups, STD, resamples=200, seed=1)
    assert swapped["mean"] == pytest.approx(-b["mean"]) and swapped["ahead"] == 0.0


def test_bootstrap_margin_resamples_within_groups():
    # one category holds every window: a resample never lacks windows, and the other category's
    # files (no window) only ever add false positives
    weights, good, noise, _ = _corpus(5, 4)
    weights[1] = weights[3] = nab.row_weights(1000, [], STD)
    b = nab.bootstrap_margin(good, noise, weights, ["w", "none", "w", "none"], STD, resamples=100)
    assert b["resamples"] == 100
    assert nab.bootstrap_margin(good, noise, [nab.row_weights(1000, [], STD)] * 4, ["x"] * 4, STD, 20) is None


def test_windows_hit_by_chance_grow_with_false_positives_and_sum_over_files():
    """A detector with no false positive catches nothing by chance, one that fires everywhere is
    expected to hit every window by chance, and a corpus's figure is the sum of its files'."""
    rw = nab.row_weights(1000, [(300, 349), (700, 749)], STD)
    hits = np.zeros(1000, bool)
    hits[[310, 720]] = True
    assert nab.score_detections(hits, rw, STD).chance == 0.0
    noisy = hits.copy()
    noisy[200:280:8] = True  # 10 false positives on 1000 - 150 - 100 = 750 scored rows outside
    one = nab.score_detections(noisy, rw, STD)
    assert one.chance == pytest.approx(2 * (1 - math.exp(-50 * 10 / 750)))
    assert nab.score_detections(np.ones(1000, bool), rw, STD).chance > 1.99
    assert one.add(one).chance == pytest.approx(2 * one.chance)


def test_a_window_reaching_into_probation_counts_only_its_scored_rows_by_chance():
    """Rows in probation are neither false positives nor window: a window of rows 100..199 in a file
    whose probation is 150 rows is 50 scored rows wide for the chance figure."""
    rw = nab.row_weights(1000, [(100, 199)], STD, probation=150)
    det = np.zeros(1000, bool)
    det[[10, 400, 600]] = True  # row 10 in probation: not counted
    fs = nab.score_detections(det, rw, STD)
    assert fs.fp == 2
    assert fs.chance == pytest.approx(1 - math.exp(-50 * 2 / (1000 - 150 - 50)))


def test_report_carries_chance_per_file_and_sums_it_per_category_and_corpus():
    """report.nab_results: each file's chance (sweep and operational) in its JSON entry, each
    category's and the corpus's the sum of its files'; the table prints the column, '-' for a
    category without windows."""
    from types import SimpleNamespace

    from edgernn.evaluate import report

    rng = np.random.default_rng(3)
    files, traces = [], []
    for k, (cat, wins) in enumerate([("catA", [(400, 449)]), ("catA", [(300, 339), (700, 759)]), ("catB", [])]):
        n = 1000
        onset = rng.uniform(0.0, 0.99, n)
        onset[rng.choice(np.arange(150, n), 6, replace=False)] = 0.9999  # detections at the swept threshold
        for lo, _ in wins:
            onset[lo + 3] = 0.9999  # as high as the false positives: no threshold takes one without the other
        raised = onset >= 0.9999
        files.append(nab.NabFile(f"{cat}/f{k}.csv", cat, np.arange(n, dtype=float), onset, wins, 150))
        traces.append(SimpleNamespace(onset=onset, raised=raised, threshold=0.9997))
    res = report.nab_results(files, traces, profiles=["standard"])
    summary = res["profiles"]["standard"]
    for way in ("sweep", "operational"):
        per = [f["standard"][way]["chance"] for f in res["per_file"]]
        assert per[0] > 0 and per[1] > 0 and per[2] == 0.0
        got = summary[way]["summary"]
        assert got["catA"]["chance"] == pytest.approx(per[0] + per[1])
        assert got["corpus"]["chance"] == pytest.approx(sum(per))
    text = report.nab_table(res, "standard")
    assert "chance tp~" in text.splitlines()[1]
    row_b = next(line for line in text.splitlines() if line.startswith("catB"))
    assert row_b.split()[4] == "-"  # windows, NAB, tp/fn/fp, then the chance column
