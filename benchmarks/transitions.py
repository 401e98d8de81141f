"""Where a model's false alerts fall on a labelled synthetic set, and what its mixture head predicted
at each switch between the levels of an on/off duty cycle: issue 11 item 2 asks that a switch to a
level the stream is known to visit be unsurprising, which needs probability near that level.

    python benchmarks/quality_synthetic.py duty --seed 7002 --out /tmp/d/duty7002
    python benchmarks/transitions.py /tmp/d/duty7002 --model firmware_models/univariate \\
        [--set '{"weight_memory": 0}'] [--json transitions.json]

Prints (1) the false alerts (raised on a clean recording or before a fault starts) by the look that
raised them and by the reading's index in its stream, and (2) over the switches of the set's clean
recordings (a reading on the other side of the midpoint of the stream's 10th and 90th percentiles
than the one before), by stream age: the mixture's weight within 3 sd of the new reading (each
component's weight where |mu_k - c| < 3 s_k, normalised units, the weight correction included), and
the share of switches whose surprise reaches the alert threshold. Recordings of one set must have
one length (the set is stepped one reading of every stream at a time).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_synthetic import evaluate, load_set  # noqa: E402  (benchmarks/ is not a package)

from edgernn.backends import create_backend  # noqa: E402
from edgernn.bundle import load_bundle  # noqa: E402
from edgernn.detector import Batch, Detector  # noqa: E402
from edgernn.settings import resolve  # noqa: E402

POSITION_BINS = (0, 300, 500, 750, 1000, 1500, 2500, 5000, 10**9)
AGE_BINS = (300, 750, 1500, 3000, 10**9)


def _bin(a: int, b: int) -> str:
    return f"{a}-{b}" if b < 10**9 else f"{a}+"


def false_alerts(recs: list, labels: dict, bundle, overrides: dict) -> dict:
    """{'by_look': {look: n}, 'by_position': {"a-b": n}} of the set's false alerts."""
    res = evaluate(recs, labels, bundle, "numpy", settings=overrides)
    looks, positions = Counter(), Counter()
    for stream, i, reason in res["false"]:
        looks[reason] += 1
        k = int(np.searchsorted(POSITION_BINS, i, side="right")) - 1
        positions[_bin(POSITION_BINS[k], POSITION_BINS[k + 1])] += 1
    return {"false_alerts": res["false_alerts"], "false_alerts_per_10k": res["false_alerts_per_10k"],
            "by_look": dict(looks.most_common()),
            "by_position": {_bin(a, b): positions[_bin(a, b)] for a, b in zip(POSITION_BINS[:-1], POSITION_BINS[1:])}}


def mass_near(det: Detector, rows: np.ndarray, x: np.ndarray) -> np.ndarray:
    """float64[B]: the stored mixture's weight within 3 sd of each stream's reading x[B] (normalised
    by the stream's own mean and variance), before the reading is scored."""
    L, K = det.state.layout, det.state.layout.K
    num, num4 = det.state.num[rows], det.state.num4[rows]
    pred = num4[:, L.pred].astype(np.float64)  # [B, 3K]: means | logvars | logits (F = 1)
    logits = pred[:, 2 * K:] + (num4[:, L.wbias] if num4[:, L.wbias].shape[1] else 0.0)
    w = np.exp(logits - logits.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)  # [B, K]
    c = (x - num[:, L.norm_mean][:, 0]) / np.sqrt(num[:, L.norm_var][:, 0])  # [B]
    sd = np.exp(np.clip(pred[:, K:2 * K], det.params.lvmin, det.params.lvmax) / 2)  # [B, K]
    return (w * (np.abs(pred[:, :K] - c[:, None]) < 3 * sd)).sum(axis=1)


def switches(recs: list, bundle, overrides: dict) -> list[dict]:
    """Per stream-age bin: switches, median mass near the new level, share >= 1 %, share alerting."""
    clean = [r for r in recs if "_clean_" in r[0]]
    streams = [r[0] for r in clean]
    X = np.stack([np.ravel(r[2]) for r in clean])  # [S, N]
    T = np.stack([r[1] for r in clean])  # [S, N]
    mid = (np.percentile(X, 10, axis=1) + np.percentile(X, 90, axis=1)) / 2
    side = X > mid[:, None]  # [S, N]
    det = Detector(bundle, create_backend("numpy", bundle), resolve(bundle, {"max_streams": len(streams), **overrides}))
    if det.state.layout.K < 2:
        raise SystemExit("transitions: the model's head is not a mixture (components 1)")
    seen = []  # (reading index, mass near the new level, surprise)
    for i in range(X.shape[1]):
        flip = np.flatnonzero(side[:, i] != side[:, i - 1]) if i > AGE_BINS[0] else np.zeros(0, int)
        near = mass_near(det, det.state.rows_for(streams), X[:, i]) if flip.size else None
        res = det.process(Batch(streams, T[:, i], X[:, i:i + 1]))
        seen += [(i, near[j], res.surprise[j]) for j in flip]
    seen = np.array(seen).reshape(-1, 3)
    out = []
    for a, b in zip(AGE_BINS[:-1], AGE_BINS[1:]):
        m = seen[(seen[:, 0] >= a) & (seen[:, 0] < b)]
        if len(m):
            out.append({"age": _bin(a, b), "switches": len(m), "mass_near_median": float(np.median(m[:, 1])),
                        "share_mass_1pct": float(np.mean(m[:, 1] >= 0.01)),
                        "share_alerting": float(np.mean(m[:, 2] >= det.threshold_surprise))})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="a labelled set (quality_synthetic.py duty --out DIR)")
    ap.add_argument("--model", default="firmware_models/univariate")
    ap.add_argument("--set", default="{}", help="detector settings over the bundle's, as JSON")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    bundle, overrides = load_bundle(args.model), json.loads(args.set)
    recs, labels = load_set(args.data, bundle.features)
    fa, sw = false_alerts(recs, labels, bundle, overrides), switches(recs, bundle, overrides)
    print(f"{args.data}: {fa['false_alerts']} false alerts ({fa['false_alerts_per_10k']:.2f} per 10k clean)")
    print("  by look:     " + ", ".join(f"{k} {v}" for k, v in fa["by_look"].items()))
    print("  by position: " + ", ".join(f"{k} {v}" for k, v in fa["by_position"].items() if v))
    print(f"{'age':>11s} {'switches':>9s} {'mass near':>10s} {'>= 1 %':>7s} {'alerting':>9s}")
    for r in sw:
        print(f"{r['age']:>11s} {r['switches']:9d} {r['mass_near_median']:10.4f} {r['share_mass_1pct']:7.2f} "
              f"{r['share_alerting']:9.3f}")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "set": overrides, "false": fa, "switches": sw}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
