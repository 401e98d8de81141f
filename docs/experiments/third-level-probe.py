"""A probe, outside the package: a third level on a two-level stream (docs/QUALITY.md, section "a third
level on a duty cycle -- a two-level test", session 8). Not part of edgernn and not run by its tests.

Per recording, online, seven numbers (and the last reading and two flags): two level centres (an
online 2-means split at their middle, rate 1/32, starting at the quartiles of the first 100 finite
readings), each with its own noise (EW mean square distance of its readings, 1/32), the share of
readings on the upper side (1/256), the occupancy of the middle band (|x - middle| < gap / 4, a
running mean becoming EW 1/256, not learned while the band statistic is at 0.25 or more), and the
band statistic (EW 1/8 of "in the middle band and not an exact repeat of the last reading").
Readings farther than 4 noise sd from both centres move the nearer side's centre at 1/512 and leave
its noise and the share alone, from reading 500 on. It raises when the band statistic crosses 0.6
upward while, on this reading and the one before, the stream is past 500 readings, its centres are
more than 8 of the larger noise apart, the middle band's occupancy is under 0.05 and each side holds
at least 5 % of the readings; it can raise again once the statistic has fallen under 0.3. Its raises
are added to the detector's own alerts (the detector's run of firmware_models/univariate through
quality_synthetic.evaluate's Detector / drive path): an event counts as caught if either raises
inside its window (+ 50 readings), a raise before a recording's first label is a false alert (so a
raise during an alert the detector already holds counts as one more: conservative).

    python docs/experiments/third-level-probe.py D7 YD7 COUNTS ...   # sets of quality_synthetic.py
    python docs/experiments/third-level-probe.py --nab ../shared/data/nab --part dev
    ... --learn-raised [--occupancy-rate 2048]   # the occupancy also learns once it has raised
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import quality_synthetic as qs  # noqa: E402
from edgernn.backends import create_backend  # noqa: E402
from edgernn.bundle import load_bundle  # noqa: E402
from edgernn.detector import Detector  # noqa: E402
from edgernn.evaluate.run import run_recordings  # noqa: E402
from edgernn.settings import resolve  # noqa: E402

WARM, GAP, OCC, RAISE, PAUSE, SIDE = 500, 8.0, 0.05, 0.6, 0.25, 0.05


def third_level(x: np.ndarray, count_repeats: bool = False, learn_raised: bool = False,
                occupancy_rate: int = 256) -> list[int]:
    """Indices of x (float64[n]) where the band statistic raises (the module's rules)."""
    init = x[:100][np.isfinite(x[:100])]
    if not len(init):
        return []
    lo, hi = np.percentile(init, 25), np.percentile(init, 75)
    v_lo = v_hi = max(np.var(init) / 4, 1e-12)
    occ, share, stat, raised, gated_before, last = 1.0, 0.5, 0.0, False, False, np.nan
    out = []
    for i, v in enumerate(map(float, x)):
        if not np.isfinite(v):
            continue
        gap, mid = hi - lo, (lo + hi) / 2
        floor = (1e-3 * abs(gap)) ** 2 + 1e-18
        s_lo, s_hi = np.sqrt(max(v_lo, floor)), np.sqrt(max(v_hi, floor))
        band = abs(v - mid) < abs(gap) / 4
        before = stat
        stat += ((band and (count_repeats or v != last)) - stat) / 8
        last = v
        gated = i >= WARM and gap > GAP * max(s_lo, s_hi) and occ < OCC and min(share, 1 - share) > SIDE
        if gated and gated_before and before <= RAISE < stat and not raised:
            out.append(i)
            raised = True
        elif raised and stat < RAISE / 2:
            raised = False
        gated_before = gated
        if i >= 100 and (stat < PAUSE or (learn_raised and raised)):  # (raised: stat >= RAISE / 2 > PAUSE)
            occ += (band - occ) / min(i - 99, occupancy_rate)
        upper = v >= mid
        inlier = i < WARM or min(abs(v - lo) / s_lo, abs(v - hi) / s_hi) < 4.0  # near either centre
        if inlier:
            share += (upper - share) / 256
        rate = 32 if inlier else 512
        if upper:
            hi += (v - hi) / rate
            v_hi += ((v - hi) ** 2 - v_hi) / 32 if inlier else 0.0
        else:
            lo += (v - lo) / rate
            v_lo += ((v - lo) ** 2 - v_lo) / 32 if inlier else 0.0
    return out


def detector_raises(recs: list, model: str) -> dict:
    """{stream: timestamps of its raised alerts} of the detector with the model's defaults, through
    the offline driver every benchmark uses (edgernn.evaluate.run.run_recordings)."""
    bundle = load_bundle(model)
    det = Detector(bundle, create_backend("numpy", bundle), resolve(bundle, {"max_streams": len(recs)}))
    return {t.stream: list(t.ts[t.raised]) for t in run_recordings(det, recs)}


def run_set(d: Path, model: str, grace: int, **rules) -> str:
    recs, labels = qs.load_set(d, load_bundle(model).features)
    raised = detector_raises(recs, model)
    kinds = defaultdict(lambda: [0, 0, 0])  # kind -> [caught by the detector, by either, events]
    false = [0, 0]
    clean = 0
    for stream, ts, x in recs:
        labs = labels.get(stream, [])
        first = min((s for _, s, _ in labs), default=np.inf)
        if len(ts) < 2:
            continue
        extra = [ts[i] for i in third_level(np.asarray(x, np.float64)[:, 0], **rules)]
        step, det = ts[1] - ts[0], raised.get(stream, [])
        clean += max(int((ts < first).sum()) - 1, 0)
        false[0] += sum(t < first for t in det)
        false[1] += sum(t < first for t in det) + sum(t < first for t in extra)
        for kind, s, e in labs:
            hit = [any(s <= t <= e + grace * step for t in ts_) for ts_ in (det, extra)]
            kinds[kind][0] += hit[0]
            kinds[kind][1] += hit[0] or hit[1]
            kinds[kind][2] += 1
    ev, a, b = (sum(v[j] for v in kinds.values()) for j in (2, 0, 1))
    moved = " ".join(f"{k} {v[0]}->{v[1]}/{v[2]}" for k, v in sorted(kinds.items()) if v[0] != v[1])
    clean = max(clean, 1)
    return (f"{d.name:12s} detector {a}/{ev} at {false[0] / clean * 1e4:.2f} false / 10k | with the probe "
            f"{b}/{ev} at {false[1] / clean * 1e4:.2f}   {moved}")


def run_nab(data_dir: str, part: str, **rules) -> None:
    from edgernn.evaluate.nab import load_corpus
    from edgernn.evaluate.split import select

    for f in select(load_corpus(data_dir), part):
        idx = third_level(np.asarray(f.values, np.float64), **rules)
        inside = [i for i in idx if any(lo <= i <= hi for lo, hi in f.windows)]
        print(f"{f.name:55s} raises {len(idx)}, inside a window {len(inside)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sets", nargs="*", type=Path)
    ap.add_argument("--model", default=str(ROOT / "firmware_models" / "univariate"))
    ap.add_argument("--grace", type=int, default=50)
    ap.add_argument("--count-repeats", action="store_true", help="let exact repeats count in the band statistic")
    ap.add_argument("--learn-raised", action="store_true", help="the occupancy also learns once the probe has raised")
    ap.add_argument("--occupancy-rate", type=int, default=256, help="the occupancy's EW memory, readings (default 256)")
    ap.add_argument("--nab", metavar="DIR")
    ap.add_argument("--part", default="dev", choices=("dev", "all"), help="NAB files (the validation part is "
                    "run once per decision, not probed)")
    a = ap.parse_args()
    if len(load_bundle(a.model).features) != 1:
        ap.error("the probe is for univariate models")
    rules = dict(count_repeats=a.count_repeats, learn_raised=a.learn_raised, occupancy_rate=a.occupancy_rate)
    for d in a.sets:
        print(run_set(d, a.model, a.grace, **rules), flush=True)
    if a.nab:
        run_nab(a.nab, a.part, **rules)
    return 0


if __name__ == "__main__":
    sys.exit(main())
