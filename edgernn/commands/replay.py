"""Score a CSV recording through exactly the detector the daemon runs, and show where alerts fall.

Input: `timestamp,value`, `timestamp,<features...>` or long format `timestamp,stream,<features...>`
(`,` or `;` separated; ISO-8601 or epoch-second timestamps). Output CSV columns, in order:
timestamp,stream,score,likelihood,threshold,alert,event, then the onset (high where a new anomaly
starts), the values, the expected value and its predicted std per feature, and the reject reason
of readings that were not scored.

examples:
  edgernn replay edgernn/data/demo_sensor.csv --model firmware_models/univariate --plot out.png
  edgernn replay pump.csv --model firmware_models/skab-pump --out scored.csv --backend onnx
  edgernn replay boiler.csv --model firmware_models/univariate --columns value=temperature
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from .common import add_model_arguments, fail, load_detector


def add_arguments(p) -> None:
    p.add_argument("input", type=Path, help="CSV recording to replay")
    add_model_arguments(p)
    p.add_argument("--out", type=Path, help="write per-reading results to this CSV")
    p.add_argument("--plot", type=Path, help="write a PNG: values, expected band, score, alerts")
    p.add_argument("--columns", help="map model features to file columns: FEATURE=COLUMN[,...]")
    p.add_argument("--stream", help="stream name for a one-stream file (default: the file's stem)")
    p.add_argument("--quiet", action="store_true", help="do not print the alert events")


def run(args) -> int:
    from ..threads import pin_blas

    pin_blas()  # one BLAS thread in this process (threads.py)

    from ..recording import RecordingError, parse_columns, read_recording
    from ..replay import replay

    det = load_detector(args)
    try:
        rec = read_recording(args.input, det.features, parse_columns(args.columns), args.stream)
    except RecordingError as exc:
        return fail("replay", exc)
    out = replay(det, rec, label=f"replay {args.input.name}")
    if not args.quiet:
        for e in out.events:
            if e.kind != "update":
                print(f"{rec.timestamps[e.position]}  {e.describe()}")
    raised = sum(e.kind == "raised" for e in out.events)
    rejected = sum(r is not None for r in out.reject)
    skipped = sum(rec.skipped.values())
    print(f"{len(rec)} readings, {len(set(rec.streams))} stream(s), {raised} alert(s) raised, "
          f"{rejected} rejected, {skipped} row(s) skipped; threshold {out.threshold:.6f}")
    for reason, n in sorted((det.rejects + rec.skipped).items()):
        print(f"  {reason}: {n}")
    if args.out:
        write_output(args.out, rec, out, det.features)
        print(f"wrote {args.out}")
    if args.plot:
        from ..plot import plot_replay

        try:
            plot_replay(args.plot, rec, out, title=f"{args.input.name} — {det.bundle.name} ({args.backend})")
        except ImportError:
            return fail("replay", "--plot needs matplotlib: pip install edgernn[plot]")
        print(f"wrote {args.plot}")
    return 0


def write_output(path: Path, rec, out, features) -> None:
    from ..alerts import EVENT_NAMES

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "stream", "score", "likelihood", "threshold", "alert", "event", "onset",
                    *features, *(f"expected_{f}" for f in features), *(f"sigma_{f}" for f in features), "reject"])
        for i in range(len(rec)):
            score = "" if out.score[i] != out.score[i] else f"{out.score[i]:.6g}"
            lik = "" if out.likelihood[i] != out.likelihood[i] else repr(float(out.likelihood[i]))
            w.writerow([rec.timestamps[i], rec.streams[i], score, lik, f"{out.threshold!r}", int(out.alert[i]),
                        EVENT_NAMES.get(int(out.event[i]), ""),
                        "" if out.onset[i] != out.onset[i] else repr(float(out.onset[i])),
                        *(f"{v:.10g}" for v in rec.x[i]), *(f"{v:.10g}" for v in out.expected[i]),
                        *(f"{v:.6g}" for v in out.sigma[i]), out.reject[i] or ""])
