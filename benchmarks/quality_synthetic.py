"""Detection quality of a model on synthetic recordings it never saw (python -m edgernn.synth faults).

An injected event counts as detected when an alert is raised between its start and its end plus
``--grace`` readings (for level shifts and drifts, which last to the end, anywhere after the start).
A false alert is one raised on a clean recording, or before the fault starts on a faulty one;
the rate is per 10,000 scored readings. Prints a table per fault kind and writes JSON.

    python -m edgernn.synth faults --out /tmp/faults
    python benchmarks/quality_synthetic.py /tmp/faults --model firmware_models/univariate
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from edgernn.backends import create_backend
from edgernn.bundle import load_bundle
from edgernn.detector import Detector
from edgernn.recording import parse_timestamp, read_recording
from edgernn.replay import replay


def evaluate(data_dir: Path, model: str, backend: str = "numpy", grace: int = 50, threshold=None) -> dict:
    from edgernn.detector import DetectorSettings

    bundle = load_bundle(model)
    labels = defaultdict(list)
    with open(data_dir / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            labels[row["stream"]].append((row["label"], parse_timestamp(row["start"]), parse_timestamp(row["end"])))
    per_kind = defaultdict(lambda: [0, 0])  # kind -> [detected, total]
    raised_at = {}  # file -> set of reading indices where an alert was raised (backend comparison)
    false_alerts, clean_readings, readings = 0, 0, 0
    delays = defaultdict(list)
    for path in sorted(data_dir.glob("*.csv")):
        if path.name == "labels.csv":
            continue
        det = Detector(bundle, create_backend(backend, bundle), DetectorSettings(threshold=threshold))
        rec = read_recording(path, bundle.features)
        out = replay(det, rec, progress=False)
        raised = [e for e in out.events if e.kind == "raised"]
        raised_at[path.stem] = sorted(e.position for e in raised)
        labs = labels.get(path.stem, [])
        first = min((a for _, a, _ in labs), default=np.inf)
        scored = np.isfinite(out.score)
        readings += int(scored.sum())
        clean_readings += int((scored & (rec.ts < first)).sum())
        false_alerts += sum(1 for e in raised if e.ts < first)
        for kind, a, b in labs:
            end = b + grace * (rec.ts[1] - rec.ts[0])
            hits = [e for e in raised if a <= e.ts <= end]
            per_kind[kind][1] += 1
            if hits:
                per_kind[kind][0] += 1
                delays[kind].append((hits[0].ts - a) / (rec.ts[1] - rec.ts[0]))
    total_hit = sum(v[0] for v in per_kind.values())
    total = sum(v[1] for v in per_kind.values())
    return {
        "model": str(model), "backend": backend,
        "per_kind": {k: {"detected": v[0], "events": v[1], "recall": v[0] / v[1],
                         "median_delay_readings": float(np.median(delays[k])) if delays[k] else None}
                     for k, v in sorted(per_kind.items())},
        "recall": total_hit / max(total, 1), "events": total, "detected": total_hit,
        "false_alerts": false_alerts, "clean_readings": clean_readings, "readings": readings,
        "false_alerts_per_10k": false_alerts / max(clean_readings, 1) * 1e4,
        "raised_at": raised_at,
    }


def alert_difference(a: dict, b: dict, slack: int = 3) -> int:
    """Raised alerts in one run with no raised alert within +-slack readings in the other."""
    diff = 0
    for name in a:
        pa, pb = np.array(a[name]), np.array(b.get(name, []))
        for p, q in ((pa, pb), (pb, pa)):
            diff += sum(1 for v in p if not (q.size and np.min(np.abs(q - v)) <= slack))
    return diff


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path)
    p.add_argument("--model", default="firmware_models/univariate")
    p.add_argument("--backend", default="numpy", help="a backend, or a comma list: the first is the reference")
    p.add_argument("--grace", type=int, default=50)
    p.add_argument("--threshold", type=float)
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    if not (a.data / "labels.csv").is_file():
        print(f"{a.data}: no labels.csv (make one with: python -m edgernn.synth faults --out {a.data})")
        return 2
    backends = a.backend.split(",")
    if len(backends) > 1:
        rows, ref = [], None
        print(f"{'backend':12s} {'recall':>7s} {'false/10k':>10s} {'alerts':>7s} {'differ':>7s} {'differ/10k':>11s}")
        for name in backends:
            r = evaluate(a.data, a.model, name, a.grace, a.threshold)
            ref = ref or r
            diff = alert_difference(ref["raised_at"], r["raised_at"])
            total = sum(len(v) for v in r["raised_at"].values())
            per10k = diff / max(r["readings"], 1) * 1e4
            print(f"{name:12s} {r['recall']:7.1%} {r['false_alerts_per_10k']:10.2f} {total:7d} {diff:7d} {per10k:11.2f}")
            rows.append({"backend": name, "recall": r["recall"], "false_alerts_per_10k": r["false_alerts_per_10k"],
                         "alerts": total, "differ_from_reference": diff, "differ_per_10k": per10k})
        if a.json:
            a.json.write_text(json.dumps({"reference": backends[0], "rows": rows}, indent=2))
        return 0
    r = evaluate(a.data, a.model, a.backend, a.grace, a.threshold)
    print(f"{'fault':18s} {'detected':>9s} {'recall':>7s} {'median delay':>13s}")
    for k, v in r["per_kind"].items():
        d = "-" if v["median_delay_readings"] is None else f"{v['median_delay_readings']:.0f}"
        print(f"{k:18s} {v['detected']:>4d}/{v['events']:<4d} {v['recall']:7.0%} {d:>13s}")
    print(f"{'all':18s} {r['detected']:>4d}/{r['events']:<4d} {r['recall']:7.0%}")
    print(f"false alerts: {r['false_alerts']} in {r['clean_readings']:,} clean readings = {r['false_alerts_per_10k']:.2f} per 10k")
    if a.json:
        a.json.write_text(json.dumps({k: v for k, v in r.items() if k != "raised_at"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
