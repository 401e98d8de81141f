"""`edgernn train` with default settings on multivariate data, measured the way a user meets it.

    python benchmarks/train_multivariate.py --skab ../shared/data/skab --out /tmp/trainbench \\
        --json out/train_multivariate.json

Two data sets:

* **synthetic telemetry**: 38 features like a server's metrics (24 continuous, driven by 3 shared
  load factors with a daily cycle; 4 constant; 3 counters with a reset; 3 binary; 4 quantised),
  one reading a minute. Training file: 20,000 normal readings. Test files: 4 x 6,000 readings of
  the same process (new seed), each with labelled faults (spike, level shift, a feature that
  decouples from its load factor, an error counter that starts counting, a noise burst).
* **SKAB**: the model is trained on the anomaly-free recording (read in place, never copied);
  the labelled files are scored as they are.

For each: the trainer's own report (calibration target vs achieved on its held-out part, feature
kinds, warnings), then on the labelled test files: best point-wise F1 over all thresholds of the
detector's surprise, and of a per-feature max-|z| baseline fitted on the same training file; the
F1 of the raised alerts; false alert events per 10,000 normal readings. Beside the GRU, the best F1
with the persistence baseline in its place (same tables and settings).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgernn import kernel, scoring  # noqa: E402
from edgernn.backends import BASELINE, create_backend  # noqa: E402
from edgernn.bundle import load_bundle  # noqa: E402
from edgernn.detector import Detector  # noqa: E402
from edgernn.drive import Feed, Output, drive  # noqa: E402
from edgernn.evaluate.skab import list_files, load_file  # noqa: E402
from edgernn.evaluate.split import PARTS, select  # noqa: E402
from edgernn.recording import Recording  # noqa: E402
from edgernn.replay import replay  # noqa: E402
from edgernn.settings import write_model_defaults  # noqa: E402

N_CONT, N_CONST, N_COUNT, N_BIN, N_QUANT = 24, 4, 3, 3, 4


def telemetry(rng: np.random.Generator, n: int, t0: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normal telemetry: (ts float64[n], x float64[n, 38], load float64[n, 3])."""
    t = np.arange(n, dtype=np.float64)
    day = 2 * np.pi * (t0 / 60 + t) / 1440.0
    load = np.empty((n, 3))
    for k in range(3):  # AR(1) around a daily cycle
        e = rng.standard_normal(n) * 0.15
        ar = np.zeros(n)
        for i in range(1, n):
            ar[i] = 0.97 * ar[i - 1] + e[i]
        load[:, k] = np.sin(day + k) + 0.5 * ar
    mix = np.random.default_rng(42).normal(size=(3, N_CONT))  # fixed mixing: same machine in train and test
    cont = load @ mix * 10 + 50 + rng.standard_normal((n, N_CONT)) * 0.8  # [n, 24]
    const = np.tile([0.0, 0.0, 100.0, 5.5], (n, 1))  # [n, 4]
    counts = np.cumsum(rng.poisson(np.clip(2 + load[:, :N_COUNT], 0.1, None)), axis=0).astype(np.float64)
    counts[n // 2 :, 0] -= counts[n // 2, 0]  # one reset (a service restart)
    binary = (load[:, :N_BIN] + rng.standard_normal((n, N_BIN)) * 0.1 > 0.3).astype(np.float64)
    quant = np.round(2 + 1.5 * load[:, [0, 1, 2, 0]] + rng.standard_normal((n, N_QUANT)) * 0.3)
    x = np.hstack([cont, const, counts, binary, quant])
    return t0 + 60.0 * t, x, load


def inject_faults(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Faults in place; returns labels int8[n]."""
    n = len(x)
    y = np.zeros(n, np.int8)
    starts = np.sort(rng.choice(np.arange(600, n - 400, 600), 5, replace=False))
    for kind, s in zip(("spike", "shift", "decouple", "errors", "noise"), starts):
        f = rng.choice(N_CONT, 3, replace=False)
        if kind == "spike":
            x[s : s + 3, f] += 8 * x[:, f].std(axis=0)
            e = s + 3
        elif kind == "shift":
            x[s : s + 200, f] += 3 * x[:, f].std(axis=0)
            e = s + 200
        elif kind == "decouple":
            x[s : s + 200, f[0]] = x[s, f[0]] + rng.standard_normal(200) * 0.8
            e = s + 200
        elif kind == "errors":  # the constant error counter (column N_CONT) starts counting
            x[s : s + 100, N_CONT] = np.arange(1, 101)
            e = s + 100
        else:
            x[s : s + 100, f] += rng.standard_normal((100, 3)) * 4 * x[:, f].std(axis=0)
            e = s + 100
        y[s:e] = 1
    return y


def write_csv(path: Path, ts: np.ndarray, x: np.ndarray, names: list[str], labels: np.ndarray | None = None) -> None:
    cols = ["timestamp", *names] + (["anomaly"] if labels is not None else [])
    stamps = np.datetime_as_string(ts.astype("datetime64[s]"), unit="s")
    with open(path, "w") as fh:
        fh.write(",".join(cols) + "\n")
        for i in range(len(x)):
            row = [stamps[i] + "Z", *(f"{v:.6g}" for v in x[i])] + ([str(int(labels[i]))] if labels is not None else [])
            fh.write(",".join(row) + "\n")


def feature_names() -> list[str]:
    return ([f"cpu_{i}" for i in range(N_CONT)] + ["errors_total", "oom_kills", "max_conn", "disk_ratio"]
            + [f"requests_total_{i}" for i in range(N_COUNT)] + [f"busy_{i}" for i in range(N_BIN)]
            + [f"workers_{i}" for i in range(N_QUANT)])


def make_synthetic(out: Path, seed: int = 3, test_seeds: tuple[int, ...] = ()) -> tuple[Path, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]:
    """Training CSV and test files (name, ts, x, labels): the benchmark's own 4 (drawn after the
    training file from ``seed``: the development files), or with ``test_seeds`` 2 fresh files per
    seed of the same machine after them (held-out files; the training file is the same)."""
    rng = np.random.default_rng(seed)
    names = feature_names()
    out.mkdir(parents=True, exist_ok=True)
    ts, x, _ = telemetry(rng, 20_000, 1.7e9)
    write_csv(out / "train.csv", ts, x, names)
    tests = []
    for k in range(4):
        ts_k, x_k, _ = telemetry(rng, 6_000, 1.7e9 + 60.0 * (20_000 + 6_000 * k))
        tests.append((f"test{k}", ts_k, x_k, inject_faults(rng, x_k)))
    if not test_seeds:
        return out / "train.csv", tests
    tests = []
    for sd in test_seeds:
        rng_t = np.random.default_rng(sd)
        for k in range(2):
            ts_k, x_k, _ = telemetry(rng_t, 6_000, 1.7e9 + 60.0 * (20_000 + 6_000 * (4 + k)))
            tests.append((f"seed{sd}-{k}", ts_k, x_k, inject_faults(rng_t, x_k)))
    return out / "train.csv", tests


def best_f1(score: np.ndarray, y: np.ndarray) -> float:
    """Best point-wise F1 over every threshold of score (NaN rows ignored)."""
    ok = np.isfinite(score)
    s, t = score[ok], y[ok].astype(bool)
    order = np.argsort(-s, kind="stable")
    tp = np.cumsum(t[order])
    k = np.arange(1, len(s) + 1)
    last = np.r_[np.diff(s[order]) != 0, True]  # only where the threshold separates distinct values
    f1 = 2 * tp / (k + t.sum())
    return float(f1[last].max()) if t.any() else float("nan")


def alert_metrics(out, y: np.ndarray) -> dict:
    """F1 of the alert flag, and raised events that start on a normal reading."""
    a, t = out.alert.astype(bool), y.astype(bool)
    tp, fp, fn = int((a & t).sum()), int((a & ~t).sum()), int((~a & t).sum())
    f1 = 2 * tp / max(2 * tp + fp + fn, 1)
    false_raised = sum(1 for e in out.events if e.kind == "raised" and not t[max(0, e.position - 50) : e.position + 1].any())
    return {"alert_f1": f1, "false_raised": false_raised, "normal_readings": int((~t).sum())}


def surprise(lik: np.ndarray) -> np.ndarray:
    """-log10 p from the likelihood, both branches of scoring.likelihood_from_log10p (monotone)."""
    lik = np.asarray(lik, np.float64)
    tail = np.maximum(1.0 - lik, 1e-300)
    s = -np.log10(tail)
    deep = s > -scoring.P_FLOOR_LOG10
    with np.errstate(over="ignore"):
        s[deep] = -scoring.P_FLOOR_LOG10 * np.exp((tail[deep] / 10.0**scoring.P_FLOOR_LOG10) ** -5.0 - 1.0)
    return s


def look_log10p(bundle, ts: np.ndarray, x: np.ndarray) -> tuple[dict, Output]:
    """One stream's readings through the real Detector with ``record_looks`` (``drive``, batches of
    256): (look -> log10 p float64[n] from the detector's own tables (kernel.tail), for the looks in
    use, in the detector's order; the run's Output, whose ``looks["log10p"]`` is the shipped combination)."""
    det = Detector(bundle)
    det.record_looks = True
    out = drive(det, Feed.in_arrival_order(["s"] * len(x), ts, x, 256), progress=False)
    lp = {}
    for name in det.looks:
        k = scoring.KERNEL_TABLES.index(name) if name in scoring.KERNEL_TABLES else -1
        lp[name] = np.array([kernel.tail(det.params, k, float(v)) if k >= 0 else float(v) for v in out.looks[name]])
    return lp, out


def looks_surprise(bundle, ts, x, drop=("stuck",)) -> np.ndarray:
    """A proxy: the combined surprise with the looks in ``drop`` left out (per-look log10 p from the
    detector's own tables, Bonferroni over the rest of the looks in use), float64[n]; NaN where not scored."""
    lp, out = look_log10p(bundle, ts, x)
    lps = np.array([v for name, v in lp.items() if name not in drop])  # [looks kept, n]
    s = -(np.nan_to_num(lps, nan=0.0).min(axis=0) + np.log10(len(lps)))
    return np.where(np.isfinite(out.score), np.maximum(s, 0.0), np.nan)


def zscore_baseline(train_x: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per-feature max |z| with the training file's mean and std (std floored at 1e-6)."""
    return np.abs((x - train_x.mean(axis=0)) / np.maximum(train_x.std(axis=0), 1e-6)).max(axis=1)


def persistence_f1(bundle, rec, y) -> float:
    """Best F1 of the surprise with the persistence baseline in place of the GRU."""
    det = Detector(bundle, create_backend(BASELINE, bundle))
    return best_f1(surprise(replay(det, rec, progress=False).likelihood), y)


def score_files(model: Path, train_x: np.ndarray, tests, names: list[str]) -> dict:
    """The model on its features (it may leave some out); the baseline on every column."""
    bundle = load_bundle(model)
    cols = [names.index(f) for f in bundle.features]
    rows, totals = [], {"false_raised": 0, "normal_readings": 0}
    for name, ts, x_all, y in tests:
        det = Detector(bundle)
        x = x_all[:, cols]
        rec = Recording(Path(name), bundle.features, [], ts, ["s"] * len(x), x, np.arange(len(x)) + 2)
        out = replay(det, rec, progress=False)
        m = alert_metrics(out, y)
        rows.append({"file": name, "rows": len(x), "anomalous": int(y.sum()),
                     "f1_surprise": best_f1(surprise(out.likelihood), y),
                     "f1_persistence": persistence_f1(bundle, rec, y),
                     "f1_no_stuck": best_f1(looks_surprise(bundle, ts, x), y),
                     "f1_max_abs_z": best_f1(zscore_baseline(train_x, x_all), y), **m})
        for k in totals:
            totals[k] += m[k]
    pooled_y = np.concatenate([t[3] for t in tests])
    return {"files": rows, "false_alerts_per_10k": 1e4 * totals["false_raised"] / max(totals["normal_readings"], 1),
            "mean_f1_surprise": float(np.nanmean([r["f1_surprise"] for r in rows])),
            "mean_f1_no_stuck": float(np.nanmean([r["f1_no_stuck"] for r in rows])),
            "mean_f1_persistence": float(np.mean([r["f1_persistence"] for r in rows])),
            "mean_f1_max_abs_z": float(np.nanmean([r["f1_max_abs_z"] for r in rows])),
            "mean_alert_f1": float(np.mean([r["alert_f1"] for r in rows])), "anomalous_share": float(pooled_y.mean())}


def train(data: Path, model: Path, extra: list[str], reuse: bool = False, defaults: dict | None = None) -> dict:
    """`edgernn train` (or, with ``reuse`` and a bundle already at ``model``, `edgernn train --recalibrate`:
    the same held-out part, tables and threshold refitted with this tree's detector, weights kept;
    ``defaults`` written into its detector_defaults first)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    t = time.monotonic()
    again = ["--recalibrate"] if reuse and (model / "manifest.yaml").is_file() else ["--threads", "1"]
    if defaults and again == ["--recalibrate"]:
        write_model_defaults(model, defaults)
    p = subprocess.run([sys.executable, "-m", "edgernn", "train", str(data), "--out", str(model), *again,
                        *extra], capture_output=True, text=True, env=env, cwd=REPO)
    print(p.stdout[-6000:])
    if p.returncode != 0:
        print(p.stderr[-3000:], file=sys.stderr)
    cal = load_bundle(model).manifest["calibration"]
    kinds = load_bundle(model).manifest.get("feature_kinds", {})
    return {"model": str(model), "exit": p.returncode, "seconds": round(time.monotonic() - t, 1), "threshold_surprise": cal["threshold_surprise"],
            "target_per_10k": cal["target_false_alarm_rate"] * 1e4,
            "achieved_per_10k": cal["achieved_false_alarm_rate"] * 1e4, "held_out_readings": cal["calibration_readings"],
            "target_met": cal["target_met"], "kinds": {k: sum(1 for v in kinds.values() if v["kind"] == k)
                                                       for k in sorted({v["kind"] for v in kinds.values()})},
            "warnings": len(load_bundle(model).manifest["provenance"].get("warnings", [])),
            **{k: load_bundle(model).manifest["provenance"][k] for k in ("final_train_nll", "final_val_nll", "epochs_run")}}


def skab_tests(skab: Path, part: str = "all"):
    files = select([load_file(p, f"{p.parent.name}/{p.name}") for p in list_files(skab)], part)
    return [(f.name, f.ts, f.x, f.anomaly) for f in files]


def report(name: str, tr: dict, sc: dict) -> None:
    print(f"\n## {name}\n")
    print(f"trainer: exit {tr['exit']}, {tr['seconds']} s, {tr['epochs_run']} epochs, train / held-out NLL "
          f"{tr['final_train_nll']:.3f} / {tr['final_val_nll']:.3f}; threshold surprise {tr['threshold_surprise']:.2f}; held-out "
          f"calibration {tr['achieved_per_10k']:.2f} per 10k in {tr['held_out_readings']:,} readings (target "
          f"{tr['target_per_10k']:.2f}, met: {tr['target_met']}); kinds {tr['kinds']}; {tr['warnings']} warning(s)")
    print(f"looks in use: {', '.join(Detector(load_bundle(tr['model'])).looks)}")
    print("\n| file | rows | anomalous | best F1 surprise | (no stuck look) | (persistence) | best F1 max-abs-z | alert F1 | false alerts |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in sc["files"]:
        print(f"| {r['file']} | {r['rows']:,} | {r['anomalous']:,} | {r['f1_surprise']:.3f} | {r['f1_no_stuck']:.3f} | "
              f"{r['f1_persistence']:.3f} | {r['f1_max_abs_z']:.3f} | {r['alert_f1']:.3f} | {r['false_raised']} |")
    print(f"| **mean** | | | **{sc['mean_f1_surprise']:.3f}** | {sc['mean_f1_no_stuck']:.3f} | {sc['mean_f1_persistence']:.3f} | "
          f"**{sc['mean_f1_max_abs_z']:.3f}** | {sc['mean_alert_f1']:.3f} | {sc['false_alerts_per_10k']:.2f} per 10k normal |")


def setting_value(text: str):
    """A ``--defaults`` value: none / true / false as words, else JSON (2 -> int, 0.5 -> float), else a
    float (inf, nan), else the text itself (a setting with named choices)."""
    words = {"none": None, "true": True, "false": False}
    if text in words:
        return words[text]
    for parse in (json.loads, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--skab", type=Path, help="SKAB directory (anomaly-free/, other/, valve1/, valve2/)")
    p.add_argument("--part", choices=PARTS, default="all", help="SKAB's labelled files: all, or the dev / validation part")
    p.add_argument("--no-synthetic", action="store_true", help="SKAB only")
    p.add_argument("--out", type=Path, default=Path("/tmp/trainbench"))
    p.add_argument("--json", type=Path)
    p.add_argument("--train-args", default="", help="extra `edgernn train` flags (default: none = defaults)")
    p.add_argument("--test-seed", type=int, action="append", default=[], help="synthetic: score 2 fresh test files "
                   "per seed (held-out: 9101, 9102) instead of the benchmark's 4 development files")
    p.add_argument("--reuse", action="store_true", help="keep the weights of models already in --out and only "
                   "recalibrate them (for detector changes that do not touch training)")
    p.add_argument("--defaults", default="", help="with --reuse: detector_defaults written into the models before "
                   "they are recalibrated, e.g. echo_decades=1 (a setting: none restores the schema's)")
    a = p.parse_args()
    if a.defaults and not a.reuse:
        p.error("--defaults needs --reuse (they are written into models already in --out before recalibrating)")
    extra = a.train_args.split()
    defaults = {k: setting_value(v) for k, v in (kv.split("=", 1) for kv in a.defaults.split(",") if kv)}
    results = {}
    if not a.no_synthetic:
        data, tests = make_synthetic(a.out / "synthetic", test_seeds=tuple(a.test_seed))
        tr = train(data, a.out / "m_synthetic", extra, a.reuse, defaults)
        train_x = np.loadtxt(data, delimiter=",", skiprows=1, usecols=range(1, 39))
        results["synthetic"] = {"train": tr, "score": score_files(a.out / "m_synthetic", train_x, tests, feature_names())}
        report(f"synthetic telemetry (38 features; test files: {'seeds ' + str(a.test_seed) if a.test_seed else 'dev'})", tr, results["synthetic"]["score"])
    if a.skab:
        free = a.skab / "anomaly-free" / "anomaly-free.csv"
        tr = train(free, a.out / "m_skab", extra, a.reuse, defaults)
        train_x = load_file(free).x
        results["skab"] = {"train": tr, "part": a.part, "score": score_files(a.out / "m_skab", train_x, skab_tests(a.skab, a.part),
                                                                          list(load_file(free).features))}
        report(f"SKAB (trained on anomaly-free.csv; files: {a.part})", tr, results["skab"]["score"])
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
