"""Compares `edgernn replay --out` CSVs of two machines, backend by backend (standard library only).

    python3 deploy/compare_replays.py DIR numpy onnx ...   # DIR/x86-<b>.csv against DIR/replay-<b>.csv

The alert events (timestamp, stream, event) must be equal; scores may differ by rounding (onnx-int8's
dynamic quantisation rounds differently per CPU instruction set): the largest difference is shown.
Exit 1 when any backend's alert events differ.
"""

import csv
import sys
from pathlib import Path


def read(path: Path) -> tuple[list[tuple[str, str, str]], list[float]]:
    """(alert events, scores) of one replay output: events in file order, scores of scored rows."""
    events, scores = [], []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row.get("event"):
                events.append((row["timestamp"], row["stream"], row["event"]))
            try:
                scores.append(float(row["score"]))
            except (TypeError, ValueError):
                scores.append(float("nan"))
    return events, scores


def main(folder: str, *backends: str) -> int:
    d, bad = Path(folder), 0
    print(f"{'backend':<12s} {'alert events x86':>16s} {'arm64':>6s} {'equal':>6s} "
          f"{'|score diff| median':>20s} {'p99':>8s} {'max':>8s} {'at score':>9s}")
    for b in backends:
        ex, sx = read(d / f"x86-{b}.csv")
        ea, sa = read(d / f"replay-{b}.csv")
        diffs = sorted((abs(x - a), x) for x, a in zip(sx, sa) if x == x and a == a) or [(0.0, 0.0)]
        same = ex == ea and len(sx) == len(sa)
        bad += not same
        n = len(diffs)
        print(f"{b:<12s} {len(ex):>16d} {len(ea):>6d} {'yes' if same else 'NO':>6s} "
              f"{diffs[n // 2][0]:>20.3g} {diffs[int(n * 0.99)][0]:>8.3g} {diffs[-1][0]:>8.3g} {diffs[-1][1]:>9.4g}")
        for x, a in zip(ex, ea):
            if x != a:
                print(f"  first difference: x86 {x} vs arm64 {a}")
                break
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
