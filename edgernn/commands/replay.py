"""Score a CSV recording through exactly the detector the daemon runs, and show where alerts fall.

Input: `timestamp,value`, `timestamp,<features...>` or long format `timestamp,stream,<features...>`,
`,` `;` or tab separated; timestamps as epoch numbers, ISO-8601 or `31.01.2024 12:00` (no offset =
UTC). Spreadsheet exports are read as they come (BOM, CRLF, decimal commas, day-first dates,
Windows-1252 text): the first output line says what was detected, and the summary names the first
bad row, column and format of each kind of problem.

Output CSV columns, in order: timestamp,stream,score,likelihood,threshold,alert,event, then the
onset (high where a new anomaly starts), surprise and threshold_surprise (-log10 of the tail
probability, what alerts compare: 6 = 1 in a million; no floor), the values, the expected value and
its predicted std per feature, and the reject reason of readings that were not scored.

Exit status: 0 when readings were scored, 1 when none was (every reading rejected, or none got
past the warm-up or the settling after a reset: the line on stderr names which, and the gap or
state resets in the way), 2 on a usage or file error (one line on stderr).

examples:
  edgernn replay edgernn/data/demo_sensor.csv --model univariate --plot out.png
  edgernn replay pump.csv --model skab-pump --out scored.csv --backend onnx
  edgernn replay boiler.csv --model univariate --columns value=temperature
"""

from __future__ import annotations

import csv
import math
import os
import sys
from pathlib import Path

from .common import add_model_arguments, fail, load_detector, output_problem, write_problem


def add_arguments(p) -> None:
    p.add_argument("input", type=Path, help="CSV recording to replay")
    add_model_arguments(p)
    p.add_argument("--out", type=Path, help="write per-reading results to this CSV")
    p.add_argument("--plot", type=Path, help="write a PNG (.png added to a name without an extension; .svg, .pdf "
                                             "too): values, expected band, score, alerts")
    p.add_argument("--columns", help="map model features to file columns: FEATURE=COLUMN[,...]")
    p.add_argument("--stream", help="stream name for a one-stream file (default: the file's stem)")
    p.add_argument("--quiet", action="store_true", help="do not print the alert events")


def run(args) -> int:
    from ..threads import pin_blas

    pin_blas()  # one BLAS thread in this process (threads.py)

    from ..recording import RecordingError, parse_columns, read_recording
    from ..replay import replay, roomier, unnamed_warning

    plot = _plot_path(args.plot) if args.plot else None
    problem = (plot if isinstance(plot, str) else None) or (output_problem("--out", args.out) if args.out else None)
    if problem:
        return fail("replay", problem)
    det = load_detector(args)
    try:
        rec = read_recording(args.input, det.features, parse_columns(args.columns), args.stream,
                             progress=None)  # (a bar on a terminal, as the replay's own)
    except RecordingError as exc:
        return fail("replay", exc)
    for warning in [*rec.dialect.warnings, unnamed_warning(rec)]:
        if warning:
            print(f"edgernn replay: warning: {warning}", file=sys.stderr)
    print(f"read {args.input.name}: {rec.dialect.describe()}")
    det = roomier(det, len(set(rec.streams)), args.input.name)
    out = replay(det, rec, label=f"replay {args.input.name}")
    if not args.quiet:
        for e in out.events:
            if e.kind != "update":
                print(f"{rec.timestamps[e.position]}  {e.describe()}")
    _summary(rec, out, det)
    if args.out:
        try:
            write_output(args.out, rec, out, det.features)
        except OSError as exc:
            return fail("replay", write_problem("--out", args.out, exc))
        print(f"wrote {args.out}")
    if plot:
        from ..plot import plot_replay

        try:
            note = plot_replay(plot, rec, out, title=f"{args.input.name} — {det.bundle.name} ({args.backend})")
        except OSError as exc:
            return fail("replay", write_problem("--plot", plot, exc))
        except (ValueError, OverflowError) as exc:  # matplotlib's limits on what it can draw
            return fail("replay", f"--plot: cannot draw {args.input.name}: {exc}")
        print(f"wrote {plot}" + (f" ({note})" if note else ""))
    return _nothing_scored(rec, out, det)


def _plot_path(path: Path) -> Path | str:
    """The file --plot writes (matplotlib adds .png to a name without an extension), or what is wrong:
    no matplotlib, an image format it cannot write, a path that cannot be written."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        return "--plot needs matplotlib: pip install 'edgernn[plot]'"
    ext = os.path.splitext(str(path))[1][1:].lower()  # as matplotlib's savefig reads it
    if path.is_dir():
        return output_problem("--plot", path)  # (not DIR.png)
    if not ext:
        path = Path(str(path).rstrip(".") + ".png")
    elif ext not in FigureCanvasBase.get_supported_filetypes():
        return f"--plot {path}: cannot write .{ext} images (use .png, .svg or .pdf)"
    return output_problem("--plot", path) or path


# which reading problem of the file explains a detector reject reason
_FILE_CAUSE = {"missing_value": "non_numeric", "non_finite": "non_numeric"}


def _summary(rec, out, det) -> None:
    from ..readings import describe_threshold

    raised = sum(e.kind == "raised" for e in out.events)
    rejected = sum(r is not None for r in out.reject)
    skipped = sum(rec.skipped.values())
    print(f"{len(rec)} readings, {len(set(rec.streams))} stream(s), {raised} alert(s) raised, "
          f"{rejected} rejected, {skipped} row(s) skipped; threshold {describe_threshold(out.threshold)}")
    for reason, n in sorted((det.rejects + rec.skipped).items()):
        first = rec.problems.get(reason) or rec.problems.get(_FILE_CAUSE.get(reason, "")) or _behind(rec, out, reason)
        print(f"  {reason}: {n}" + (f"  (first: {first})" if first else ""))


def _behind(rec, out, reason: str) -> str:
    """The first reading rejected as out_of_order or duplicate and the earlier row of its stream it
    is behind (replay takes the times as they are: one row far ahead locks its stream out), or ''."""
    if reason not in ("out_of_order", "duplicate"):
        return ""
    i = next((i for i, r in enumerate(out.reject) if r == reason), None)
    if i is None:
        return ""
    s = rec.streams[i]
    j = max((j for j in range(i) if out.reject[j] is None and rec.streams[j] == s), key=lambda j: rec.ts[j], default=None)
    where = f"line {rec.line[i]}, {rec.timestamps[i]!r}"
    if j is None:
        return where
    after = "is not after" if reason == "out_of_order" else "repeats"
    return f"{where} {after} line {rec.line[j]}'s {rec.timestamps[j]!r} in stream {s!r}"


def _nothing_scored(rec, out, det) -> int:
    """0, or 1 with one line on stderr when no reading of the file got a score, naming why."""
    accepted = sum(r is None for r in out.reject)
    if accepted == 0:
        reasons = ", ".join(f"{k} {n}" for k, n in sorted(det.rejects.items()))
        first = next((rec.problems[c] for c in ("non_numeric",) if c in rec.problems), "")
        print(f"edgernn replay: every reading of {rec.path.name} was rejected ({reasons})"
              + (f"; first: {first}" if first else ""), file=sys.stderr)
        return 1
    if not any(s == s for s in out.score):  # NaN != NaN: no finite score
        print(f"edgernn replay: no reading of {rec.path.name} was scored: {accepted} accepted, "
              f"{_why_unscored(rec, out, det)}", file=sys.stderr)
        return 1
    return 0


def _why_unscored(rec, out, det) -> str:
    """Why none of the accepted readings got a score: the streams' state reset (state_reset rejects:
    a stream starts over, warm-up and all), gaps longer than --max-gap (each resets the hidden state,
    settle readings to wait again), or the warm-up itself."""
    import numpy as np

    warmup = f"the model's warm-up ({det.warmup} readings per stream)"
    resets = det.rejects.get("state_reset", 0)
    if resets:
        return (f"but the state was reset {resets} time(s) ({_reset_cause(rec, out)}), so none got past "
                f"{warmup}" + _rejected(det, "state_reset"))
    accepted = np.array([r is None for r in out.reject])
    _, sid = np.unique(np.asarray(rec.streams, dtype=object)[accepted], return_inverse=True)  # int[A] stream index
    order = np.argsort(sid, kind="stable")  # the accepted rows stream by stream, in file order within each
    same = np.diff(sid[order]) == 0  # bool[A-1] consecutive rows of one stream
    steps = np.diff(rec.ts[accepted][order])[same]  # float64 the time steps within each stream
    max_gap = det.settings.max_gap_s
    gaps = int((steps > max_gap).sum()) if max_gap is not None else 0
    if gaps:
        return (f"but gaps longer than --max-gap {max_gap:g} s reset the hidden state {gaps} time(s) (a stream "
                f"scores again after {det.settings.settle} readings without such a gap; the readings are "
                f"{float(np.median(steps)):g} s apart)" + _rejected(det))
    longest = int(np.bincount(sid).max())
    most = f"; the longest stream had {longest}" if longest < len(sid) else ""
    return f"all within {warmup[:-1]}{most})" + _rejected(det)


def _rejected(det, but: str = "") -> str:
    """'; rejected: out_of_order 539' (the detector's reject counts, ``but`` one), or ''."""
    rejected = sorted((k, n) for k, n in det.rejects.items() if k != but)
    return f"; rejected: {', '.join(f'{k} {n}' for k, n in rejected)}" if rejected else ""


def _reset_cause(rec, out) -> str:
    """What made a stream's statistics non-finite: values too large for them (their spread), or not known."""
    import numpy as np

    from ..train.data import HUGE_SPREAD

    x = rec.x[[r in (None, "state_reset") for r in out.reject]]
    x = x[np.isfinite(x).all(axis=1)]  # float64[n, F] the values the detector learned from
    if not x.size:
        return "its statistics went non-finite"
    scale = np.abs(x).max(axis=0)  # [F] (no overflow in the std below)
    scale[scale == 0] = 1.0
    with np.errstate(over="ignore"):
        spread = float((np.std(x / scale, axis=0) * scale).max())
    if spread < HUGE_SPREAD:  # (the float32 squares saturate instead: kernel.F4_MAX)
        return "its statistics went non-finite"
    return (f"values too large for the detector's statistics: spread ~{spread:.1e}; its float64 variance "
            f"holds a spread up to ~{math.sqrt(np.finfo(np.float64).max):.1e}")


def write_output(path: Path, rec, out, features) -> None:
    from ..alerts import EVENT_NAMES

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "stream", "score", "likelihood", "threshold", "alert", "event", "onset",
                    "surprise", "threshold_surprise", *features, *(f"expected_{f}" for f in features), *(f"sigma_{f}" for f in features), "reject"])
        thr_s = f"{out.threshold_surprise:.6g}"
        for i in range(len(rec)):
            score = "" if out.score[i] != out.score[i] else f"{out.score[i]:.6g}"
            lik = "" if out.likelihood[i] != out.likelihood[i] else repr(float(out.likelihood[i]))
            w.writerow([rec.timestamps[i], rec.streams[i], score, lik, f"{out.threshold!r}", int(out.alert[i]),
                        EVENT_NAMES.get(int(out.event[i]), ""),
                        "" if out.onset[i] != out.onset[i] else repr(float(out.onset[i])),
                        "" if not out.score[i] == out.score[i] else f"{out.surprise[i]:.6g}", thr_s,
                        *(f"{v:.10g}" for v in rec.x[i]), *(f"{v:.10g}" for v in out.expected[i]),
                        *(f"{v:.6g}" for v in out.sigma[i]), out.reject[i] or ""])
