"""Screening combinations of the looks' evidence offline (issue 12 item 3).

A trained multivariate bundle (``benchmarks/train_multivariate.py --out DIR``: DIR/m_synthetic,
DIR/m_skab) is run once per test file by the real Detector with ``record_looks``; each look's
statistic is turned into its log10 p with the detector's own tables (``kernel.tail``). Then
combinations of those per-look log10 p are scored by best point-wise F1 over all thresholds
(as in train_multivariate.py), beside the shipped combination (min-p, Bonferroni over the looks)
and the max-|z| baseline. Offline: a combination changes what the streams learn from (learning
stops at the clear level of the combined surprise); that feedback is not in these figures.

Also a per-feature training reference: z_f = |x_f - m_f| / s_f (or from the stream's warm-up
mean a_f where nearer, as the kernel's `_train_ref`), each feature's z turned into its log10 p by
its own tail table fitted on the trainer's held-out part of the training file (so binary /
quantised / counter features get their own tails), min over features + log10 F (Bonferroni).

    python benchmarks/combine_looks.py --out /tmp/tb            # the synthetic set (dev: seed 3's files)
    python benchmarks/combine_looks.py --out /tmp/tb --test-seed 9101 --test-seed 9102   # held-out files
    python benchmarks/combine_looks.py --out /tmp/tb --skab ../shared/data/skab --part dev
    # --ref-tables own | pooled | kind | discount | gated: how each feature's z is read (feature_tables)

The detector the per-look figures come from is this tree's: to screen on top of an experimental
kernel (docs/experiments/echo-cap.patch), apply it and run with its environment knobs.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from edgernn import scoring  # noqa: E402
from edgernn.bundle import load_bundle  # noqa: E402
from edgernn.commands import train as train_command  # noqa: E402
from edgernn.evaluate.skab import load_file  # noqa: E402
from edgernn.evaluate.split import PARTS  # noqa: E402
from edgernn.train.calibrate import reference_gate  # noqa: E402
from edgernn.train.data import Series  # noqa: E402

import train_multivariate as tm  # noqa: E402


def trainer_holdout() -> float:
    """`edgernn train`'s default --holdout: the share at the end of the training file held out."""
    p = argparse.ArgumentParser()
    train_command.add_arguments(p)
    return float(p.get_default("holdout"))


def per_look(bundle, ts: np.ndarray, x: np.ndarray) -> tuple[dict, np.ndarray]:
    """(look -> log10 p float64[n] for the looks in use, shipped combined log10 p float64[n]); NaN: not scored."""
    lp, out = tm.look_log10p(bundle, ts, x)
    ok = np.isfinite(out.score)
    for v in lp.values():
        v[~ok] = np.nan
    return lp, np.where(ok, out.looks["log10p"], np.nan)


def ref_z(bundle, x: np.ndarray, warmup: int, gate: np.ndarray | None = None) -> np.ndarray:
    """The training reference's per-feature z, float64[n, F]: min(|x - m|, |x - a|) / s after warm-up
    (a: mean of the stream's first ``warmup`` readings), |x - m| / s before (kernel._train_ref).
    ``gate`` (float64[F], calibrate.reference_gate): the warm-up mean only for the features whose
    |a - m| / s exceeds it (the stream's warm-up is at an operating point training did not show);
    |x - m| / s for the others."""
    m, s = bundle.norm_mean, bundle.norm_std  # [F]
    z = np.abs(x - m) / s  # [n, F]
    a = x[:warmup].mean(axis=0)  # [F]
    za = np.abs(x - a) / s
    away = np.ones(len(m), bool) if gate is None else np.abs(a - m) / s > gate  # [F]
    z[warmup:, away] = np.minimum(z[warmup:, away], za[warmup:, away])
    return np.minimum(z, 1e6)


def feature_tables(bundle, train_x: np.ndarray, warmup: int, how: str = "own") -> list[dict]:
    """Per feature, the tail table(s) its z is read with (prepared: scoring.prepare_table), fitted on
    the training file's held-out part (its last trainer_holdout()): ``own`` one table per feature;
    ``pooled`` one table for every continuous feature (their z pooled), own tables for the other
    kinds; ``kind`` one table per kind (z pooled over the features of that kind); ``discount`` [own,
    pooled over every feature]: a feature is read with the less surprising of the two (its own table
    can only discount it); ``gated`` [the table of max over features of the z with the warm-up mean
    gated (ref_z, calibrate.reference_gate), the gate]."""
    fit = lambda v: scoring.prepare_table(scoring.fit_table(v))  # noqa: E731
    split = int(len(train_x) * (1 - trainer_holdout()))  # the first held-out reading
    if how == "gated":  # one table of max over features, as the shipped look, of the gated z
        gate = np.array(reference_gate(bundle, [Series("train", train_x, split)], warmup))  # [F]
        z = ref_z(bundle, train_x, warmup, gate)[split:]  # [held, F]
        return [fit(z.max(axis=1)), gate]
    z = ref_z(bundle, train_x, warmup)[split:]  # [held, F]
    kinds = bundle.manifest.get("feature_kinds") or {}
    kind = [(kinds.get(n) or {}).get("kind", "continuous") for n in bundle.features]
    own = [fit(z[:, f]) for f in range(z.shape[1])]
    if how == "own":
        return [[t] for t in own]
    if how == "discount":
        shared = fit(z.ravel())
        return [[t, shared] for t in own]
    per_kind = {k: fit(z[:, [f for f in range(z.shape[1]) if kind[f] == k]].ravel()) for k in set(kind)}
    if how == "kind":
        return [[per_kind[k]] for k in kind]
    return [[per_kind[k]] if k == "continuous" else [own[f]] for f, k in enumerate(kind)]


def table_log10p(table: dict, v: np.ndarray) -> np.ndarray:
    """log10 P(stat >= v) from a prepared table (scoring.prepare_table: its exponential tail is its last segment)."""
    return np.interp(v, table["x"], table["log10_sf"])


def combos(lp: dict, comb: np.ndarray, fref: np.ndarray) -> dict:
    """Surprise (-log10 p, larger = more anomalous) of each candidate, float64[n] each."""
    names = list(lp)
    L = np.vstack([np.nan_to_num(lp[k], nan=0.0) for k in names])  # [looks, n]
    nk = len(names)
    swap = L.copy()
    if scoring.REFERENCE in names:
        swap[names.index(scoring.REFERENCE)] = fref
    else:
        swap = np.vstack([swap, fref[None]])
    ln = np.log(10.0)
    fisher = lambda M: -np.minimum(_chi2_log10_sf(-2 * ln * M.sum(axis=0), 2 * M.shape[0]), 0.0)  # noqa: E731
    slow = [names.index(k) for k in ("smoothed", "spread") if k in names]
    fast = [i for i in range(nk) if i not in slow]
    out = {"shipped (min-p, Bonferroni)": -comb,
           "min-p, reference -> per-feature tables": -(swap.min(axis=0) + math.log10(swap.shape[0])),
           "per-feature reference alone": -fref,
           "shipped reference look alone": -L[names.index(scoring.REFERENCE)] if scoring.REFERENCE in names else -comb,
           "Fisher over the looks": fisher(L),
           "Fisher, per-feature reference": fisher(swap),
           "min-p over looks without smoothed / spread": -(L[fast].min(axis=0) + math.log10(len(fast))),
           "same, per-feature reference": -(swap[fast].min(axis=0) + math.log10(len(fast)))}
    ri = names.index(scoring.REFERENCE) if scoring.REFERENCE in names else swap.shape[0] - 1
    others = np.delete(swap, ri, axis=0)  # [looks - 1, n]
    two = np.sort(swap, axis=0)[1]  # the second smallest log10 p: two looks agree
    for w in (0.5, 0.75, 0.9):  # weighted Bonferroni: the per-feature reference's share w
        out[f"weighted Bonferroni, per-feature reference share {w}"] = -np.minimum(
            fref - math.log10(w), others.min(axis=0) + math.log10(others.shape[0] / (1 - w)))
    present = [names.index(k) for k in ("instant", scoring.REFERENCE, scoring.PEAK) if k in names]
    now = L[present].min(axis=0)  # [n] the present reading's own evidence (instant, reference, peak)
    slow3 = slow + [names.index("level")]
    age = np.arange(1, L.shape[1] + 1, dtype=np.float64)  # [n] readings the stream has seen
    li = names.index("level")
    for n0 in (250.0, 500.0, 1000.0, 2000.0):  # + the level look discounted while its statistics are young
        Mc = L.copy()
        Mc[slow] = np.maximum(L[slow], now[None] - 1.0)
        Mc[li] = np.minimum(L[li] + np.log10(1.0 + n0 / age), 0.0)
        out[f"smoothed / spread capped at present - 1, level discounted by log10(1 + {n0:g} / age)"] = -(Mc.min(axis=0) + math.log10(L.shape[0]))
    for c in (0.0, 0.5, 1.0, 2.0):  # the slow looks at most c decades beyond the present evidence
        for tag, M in (("shipped reference", L), ("per-feature reference", swap)):
            for stag, sl in (("smoothed / spread", slow), ("+ level", slow3)):
                Mc = M.copy()
                Mc[sl] = np.maximum(M[sl], now[None] - c)
                out[f"{stag} capped at present - {c:g}, {tag}"] = -(Mc.min(axis=0) + math.log10(M.shape[0]))
    for c in (0.0, 1.0, 2.0):
        out[f"reference alone, or any two looks (second smallest + {c})"] = -(np.minimum(fref, two + c) + math.log10(2))
        out[f"reference alone, or any one look + {c + 2}"] = -(np.minimum(fref, others.min(axis=0) + c + 2) + math.log10(2))
    return out


def _chi2_log10_sf(t: np.ndarray, dof: int) -> np.ndarray:
    """log10 survival of chi2 with an even number of degrees of freedom, in log space (no underflow):
    sf = exp(-t/2) sum_{j<dof/2} (t/2)^j / j!."""
    h = t / 2.0
    term = np.ones_like(h)
    acc = np.ones_like(h)
    for j in range(1, dof // 2):
        term = term * h / j
        acc = acc + term
    return (-h + np.log(acc)) / math.log(10.0)


def run(bundle_dir: Path, train_x: np.ndarray, tests, names: list[str], how: str = "own") -> dict:
    bundle = load_bundle(bundle_dir)
    cols = [names.index(f) for f in bundle.features]
    warmup = int(bundle.calibration.warmup)
    tabs = feature_tables(bundle, train_x[:, cols], warmup, how)
    F = len(cols)
    res: dict[str, list[float]] = {}
    for name, ts, x_all, y in tests:
        x = x_all[:, cols]
        lp, comb = per_look(bundle, ts, x)
        if how == "gated":  # the shipped look's form (one table of the max), the warm-up mean gated
            fref = table_log10p(tabs[0], ref_z(bundle, x, warmup, tabs[1]).max(axis=1))  # [n]
        else:
            z = ref_z(bundle, x, warmup)  # [n, F]
            fref = np.min(np.vstack([np.max([table_log10p(t, z[:, f]) for t in tabs[f]], axis=0)
                                     for f in range(F)]), axis=0) + math.log10(F)  # [n]
        fref = np.where(np.isfinite(comb), np.minimum(fref, 0.0), np.nan)
        for k, s in combos(lp, comb, np.nan_to_num(fref, nan=0.0)).items():
            s = np.where(np.isfinite(comb), s, np.nan)
            res.setdefault(k, []).append(tm.best_f1(s, y))
        res.setdefault("max-|z| baseline", []).append(tm.best_f1(tm.zscore_baseline(train_x, x_all), y))
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="train_multivariate.py's --out (models trained there)")
    p.add_argument("--test-seed", type=int, action="append", default=[], help="fresh synthetic test files (2 per seed)")
    p.add_argument("--skab", type=Path)
    p.add_argument("--part", choices=PARTS, default="dev")
    p.add_argument("--ref-tables", choices=("own", "pooled", "kind", "discount", "gated"), default="own",
                   help="how the per-feature training reference reads each feature's z (feature_tables)")
    a = p.parse_args()
    if a.skab:
        free = load_file(a.skab / "anomaly-free" / "anomaly-free.csv")
        res = run(a.out / "m_skab", free.x, tm.skab_tests(a.skab, a.part), list(free.features), a.ref_tables)
        title = f"SKAB {a.part}"
    else:
        train_csv, tests = tm.make_synthetic(a.out / "synthetic", test_seeds=tuple(a.test_seed))
        train_x = np.loadtxt(train_csv, delimiter=",", skiprows=1, usecols=range(1, 39))
        res = run(a.out / "m_synthetic", train_x, tests, tm.feature_names(), a.ref_tables)
        title = f"synthetic, seeds {a.test_seed or 'benchmark files'}"
    print(f"\n## {title}\n\n| combination | mean best F1 | per file |\n|---|---:|---|")
    for k, v in res.items():
        print(f"| {k} | {np.mean(v):.3f} | {' '.join(f'{u:.3f}' for u in v)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
