"""The synthetic corpora: today's classic signals stay bit-for-bit what they were (golden fixtures and
the shipped model's provenance use them); the broad corpus has what its docstring promises."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from unit_helpers import PYTHON, REPO

from edgernn.recording import read_recording
from edgernn.synth import BROAD, BROAD_KINDS, KINDS, broad_plan, broad_signal, inject, normal_signal

# sum of normal_signal(rng, 400, kind) over KINDS in order, rng = default_rng(1), frozen before the
# broad corpus was added
CLASSIC_SUMS = [388670.059114, 17215.792822, 206848.006285, 93968.131598, -22284.340944, 359156.497819,
                295642.441079, 6219.109122, 74877.900458]


def test_classic_signals_are_unchanged():
    rng = np.random.default_rng(1)
    sums = [float(normal_signal(rng, 400, k)[0].sum()) for k in KINDS]
    np.testing.assert_allclose(sums, CLASSIC_SUMS, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", BROAD_KINDS)
def test_every_broad_kind_is_finite_varied_and_deterministic(kind):
    a, pa = broad_signal(np.random.default_rng(3), 3000, kind)
    b, pb = broad_signal(np.random.default_rng(3), 3000, kind)
    assert a.shape == pa.shape == (3000,)
    assert np.isfinite(a).all() and np.isfinite(pa).all()
    assert np.std(a) > 0
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pa, pb)


def test_duty_cycles_have_two_levels_and_hard_edges():
    for seed in range(20):
        v, _ = broad_signal(np.random.default_rng(seed), 4000, "duty")
        lo, hi = np.percentile(v, [5, 95])
        between = np.mean(np.abs(v - (lo + hi) / 2) < 0.2 * (hi - lo))  # readings in the middle fifth
        assert between < 0.05, seed
        edges = np.abs(np.diff(v)) > 0.5 * (hi - lo)
        assert 2 <= edges.sum() < 4000 / 2, seed  # it switches, one reading from level to level


def test_counts_and_event_rates_are_non_negative_integers():
    for kind in ("counts", "bursty"):
        for seed in range(5):
            v, _ = broad_signal(np.random.default_rng(seed), 2000, kind)
            assert (v >= 0).all() and (v == np.round(v)).all(), (kind, seed)


def test_adc_signals_have_few_distinct_values():
    v, _ = broad_signal(np.random.default_rng(4), 3000, "adc")
    assert len(np.unique(v)) <= 100


def test_broad_plan_covers_every_kind_and_favours_duty_cycles():
    plan = broad_plan(len(BROAD_KINDS) * 4)
    assert set(plan) == set(BROAD_KINDS)
    assert plan.count("duty") > plan.count("sine")
    assert set(BROAD) <= set(BROAD_KINDS) and set(KINDS) <= set(BROAD_KINDS)


def test_unknown_kind_is_a_one_line_error():
    with pytest.raises(ValueError, match="unknown signal kind 'pump'.*duty"):
        broad_signal(np.random.default_rng(0), 100, "pump")


def test_corpus_command_writes_the_broad_mix(tmp_path):
    run = subprocess.run([PYTHON, "-m", "edgernn.synth", "corpus", "--mix", "broad", "--out", tmp_path,
                          "--series", "24", "--length", "300", "--seed", "2"],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 0, run.stderr
    files = sorted(tmp_path.glob("*.csv"))
    assert len(files) == 24
    assert {f.stem.split("_", 2)[2] for f in files} == set(broad_plan(24))
    rec = read_recording(files[0], ("value",))
    assert rec.x.shape == (300, 1) and np.isfinite(rec.x).all()


def test_corpus_command_rejects_an_unknown_mix(tmp_path):
    run = subprocess.run([PYTHON, "-m", "edgernn.synth", "corpus", "--mix", "wide", "--out", tmp_path],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 2 and "invalid choice: 'wide'" in run.stderr


def _starts(labels_csv):
    """Reading index of each labelled fault's start (readings a minute apart from the first)."""
    import csv

    from edgernn.recording import parse_timestamp

    with open(labels_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [round((parse_timestamp(r["start"]) - 1.7e9) / 60.0) for r in rows]


def test_faults_command_places_faults_where_fault_at_says(tmp_path):
    """--fault-at FROM,TO: every fault starts between FROM and TO of the recording (default 0.4,0.8,
    the files bit for bit what they were without the option); a bad range is one line, exit 2."""
    def write(out, *extra):
        run = subprocess.run([PYTHON, "-m", "edgernn.synth", "faults", "--out", out, "--per-fault", "2",
                              "--clean", "1", "--length", "1000", "--seed", "3", *extra],
                             capture_output=True, text=True, cwd=REPO, timeout=60)
        assert run.returncode == 0, run.stderr
        return out
    plain, same, early = write(tmp_path / "a"), write(tmp_path / "b", "--fault-at", "0.4,0.8"), \
        write(tmp_path / "c", "--fault-at", "0.2,0.3")
    names = sorted(p.name for p in plain.iterdir())
    assert all((plain / m).read_bytes() == (same / m).read_bytes() for m in names)
    assert all(400 <= s <= 800 for s in _starts(plain / "labels.csv"))
    starts = _starts(early / "labels.csv")
    assert len(starts) == 2 * 7 and all(200 <= s <= 300 for s in starts), starts
    for bad in ("0.9,0.2", "0.01,0.3", "abc", "0.2,0.3,0.4"):
        run = subprocess.run([PYTHON, "-m", "edgernn.synth", "faults", "--out", tmp_path / "d", "--fault-at", bad],
                             capture_output=True, text=True, cwd=REPO, timeout=60)
        assert run.returncode == 2 and run.stderr.count("\n") == 1 and "--fault-at must be FROM,TO" in run.stderr
        assert not (tmp_path / "d").exists()


def test_a_noise_burst_past_the_recordings_end_keeps_its_first_part():
    """inject's noise burst (30-120 readings) starting near the end of a recording is cut at the end
    (it raised a broadcast error before): its label ends at the recording's end at the latest, every
    reading in it moves and none outside it, and the draws are those of a burst that fits (so no
    other recording of a set moves)."""
    x = np.sin(np.arange(200) / 5.0)
    for start in (150, 195, 199):
        v, (kind, a, b) = inject(np.random.default_rng(3), x, np.zeros(200), "noise_burst", start)
        assert kind == "noise_burst" and a == start < b <= 200
        assert np.array_equal(np.delete(v, np.s_[a:b]), np.delete(x, np.s_[a:b])) and np.all(v[a:b] != x[a:b])
    fits, _ = inject(np.random.default_rng(3), np.zeros(1000), np.zeros(1000), "noise_burst", 500)
    cut, _ = inject(np.random.default_rng(3), np.zeros(560), np.zeros(560), "noise_burst", 500)
    assert np.array_equal(cut[500:], fits[500:560])
