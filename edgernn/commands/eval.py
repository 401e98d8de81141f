"""Measure detection quality on labelled recordings, through exactly the detector the daemon runs
(causal: each reading is scored before anything after it is seen).

  edgernn eval nab    NAB corpus: NAB score per category and profile, with NAB's corpus-wide
                      threshold sweep on likelihood and with the detector's own alerts
  edgernn eval skab   SKAB: per file, threshold from the first 400 rows, point-wise F1/FAR/MAR
  edgernn eval events RECORDING.csv [...] --labels LABELS.csv
                      your own incidents: event-wise precision, recall, F1, detection delay

Benchmark data is read in place (default: ../shared/data/<nab|skab> next to the checkout, or
--data-dir). When the default location is absent the command prints one "skipped" line and exits
0; a --data-dir that does not exist is an error (exit 2). Tables go to stdout, progress to stderr,
--json writes every number (per file too), --plot DIR writes one PNG per file.

examples:
  edgernn eval nab --model firmware_models/univariate --json nab.json --plot plots/nab
  edgernn eval skab --model firmware_models/skab-pump --json skab.json
  edgernn eval events pump.csv --labels incidents.csv --model firmware_models/skab-pump --late 300
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..timestamps import utc_text
from .common import add_model_arguments, fail, load_detector, number_problem, output_problem, write_problem

MAX_BOOTSTRAP = 1_000_000  # NAB resamples: ~0.1 ms each on the corpus, and one float kept per resample
NAB_PUBLISHED_HTM = {"artificialWithAnomaly": 70.2, "realAdExchange": 76.9, "realKnownCause": 55.5,
                     "corpus": 70.1}


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="suite", metavar="SUITE", required=True)

    nab = sub.add_parser("nab", help="Numenta Anomaly Benchmark (NAB score, three profiles)")
    _common(nab, "firmware_models/univariate", "nab")
    nab.add_argument("--profile", default="standard",
                     choices=["standard", "reward_low_FP_rate", "reward_low_FN_rate", "all"],
                     help="profile(s) to print (the JSON always has all three)")
    nab.add_argument("--categories", help="comma-separated NAB categories (default: all present)")
    nab.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                     help="resample the files N times (within categories, both detectors alike) and print how "
                          "far the corpus margin over the persistence baseline moves with the choice of files: "
                          "its 90 %% interval and how often the model stays ahead (default: 1000; 0: off)")

    sk = sub.add_parser("skab", help="Skoltech Anomaly Benchmark (F1 / FAR / MAR)")
    _common(sk, "firmware_models/skab-pump", "skab", exclude=("reference_rows",))
    sk.add_argument("--rule", default="max",
                    help="threshold from each file's training rows: 'max' or 'q<pct>' like q99 (default: max)")
    sk.add_argument("--factor", type=float, default=1.0,
                    help="scale the threshold's -log10(1 - likelihood) by this factor, above 0 (default: 1)")
    sk.add_argument("--train-rows", type=int, default=400,
                    help="training rows per file, more than the model's warm-up (SKAB: 400)")
    sk.add_argument("--renorm", choices=("train", "none"), default="train",
                    help="fixed-normalisation models: rescale each file by its training rows' mean/std "
                         "into the model's units (default: train; stream models normalise themselves)")
    sk.add_argument("--reference", choices=("train", "off"), default="train",
                    help="the detector's reference look, learned on each file's training rows (the "
                         "protocol's per-file fit): 'train' (default) or 'off' (the five looks only)")
    sk.add_argument("--score", choices=("combined", "reference"), default="combined",
                    help="the per-row statistic the protocol thresholds: 'combined' (default: the "
                         "detector's likelihood, all looks) or 'reference' (the reference look's own p)")
    sk.add_argument("--calibrate", choices=("model", "train"), default="model",
                    help="the looks' calibration tables: 'model' (default: the bundle's) or 'train' (refitted "
                         "per file on its training rows only, then the file is scored afresh with them)")
    sk.add_argument("--calibrate-passes", type=int, default=2,
                    help="--calibrate train: runs over the training rows to fit the tables, each with the "
                         "previous run's tables (default: 2, as edgernn train calibrates)")
    sk.add_argument("--calibrate-pool", choices=("file", "sensor"), default="file",
                    help="--calibrate train with a univariate model: one table set per file from all its "
                         "sensors' training rows (default), or one per sensor")

    ev = sub.add_parser("events", help="event-wise metrics against your own labelled incidents")
    ev.add_argument("recording", type=Path, nargs="+",
                    help="CSV recording(s) (layouts as for edgernn replay); each stream is scored on its own")
    ev.add_argument("--labels", type=Path, required=True,
                    help="incidents CSV: stream,start,end[,label] (see edgernn/evaluate/events.py)")
    add_model_arguments(ev)
    ev.add_argument("--columns", help="map model features to file columns: FEATURE=COLUMN[,...]")
    ev.add_argument("--stream", help="stream name for a one-stream file (default: the file's stem)")
    ev.add_argument("--early", type=float, default=0.0, help="seconds an alert may precede an incident (>= 0)")
    ev.add_argument("--late", type=float, default=0.0, help="seconds an alert may follow an incident's end (>= 0)")
    ev.add_argument("--json", type=Path, help="write the results here")
    ev.add_argument("--plot", type=Path, metavar="DIR", help="write one PNG per stream here")
    _baseline_argument(ev)


def _common(p, model: str, name: str, exclude=()) -> None:
    p.add_argument("--data-dir", type=Path, help=f"{name.upper()} data (default: ../shared/data/{name})")
    add_model_arguments(p, default_model=model, exclude=exclude)
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--plot", type=Path, metavar="DIR", help="write one PNG per file here")
    p.add_argument("--chunk", type=int, default=256, help="rows per stream per batch (default: 256)")
    p.add_argument("--part", choices=("all", "dev", "validation"), default="all",
                   help="the files to run: all (default), or the development / validation part of the fixed "
                        "split (edgernn/evaluate/split.py, listed in docs/QUALITY.md): choose on dev, report validation")
    _baseline_argument(p)


def _baseline_argument(p) -> None:
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the persistence baseline (last value, running variance) that is otherwise run "
                        "in the same pass, with the same settings, to print the model's margin over it")


def run(args) -> int:
    from ..threads import pin_blas

    pin_blas()  # one BLAS thread in this process (threads.py)

    return {"nab": _run_nab, "skab": _run_skab, "events": _run_events}[args.suite](args)


# -- helpers ------------------------------------------------------------------------------------

def _data_dir(args, name: str) -> tuple[Path | None, str]:
    """(directory, message): directory None means skip (default absent) or fail (explicit)."""
    if args.data_dir is not None:
        return (args.data_dir, "") if args.data_dir.is_dir() else (None, f"--data-dir {args.data_dir}: not a directory")
    repo = Path(__file__).resolve().parents[2]
    for cand in (repo.parent / "shared" / "data" / name, Path.cwd().parent / "shared" / "data" / name):
        if cand.is_dir():
            return cand, ""
    return None, "skipped"


def _meta(args, det, data_dir) -> dict:
    from .. import __version__

    b = det.bundle
    return {"edgernn": __version__, "command": "edgernn " + " ".join(sys.argv[1:]),
            "model": {"name": b.name, "version": b.version, "path": str(b.path), "sha256": b.sha256},
            "backend": args.backend, "threshold": det.threshold, "warmup": det.warmup,
            "seasonal": det.seasonal, "seasonal_trust": det.seasonal_trust,
            "data_dir": str(data_dir) if data_dir else None, "part": getattr(args, "part", "all")}


def _plot_problem(path: Path | None) -> str | None:
    """One line when --plot cannot be a directory of plots (checked before the run; missing
    directories are made)."""
    if path is None:
        return None
    if path.exists():
        return None if path.is_dir() else f"--plot {path}: not a directory"
    parent = next((q for q in path.parents if q.exists()), None)
    if parent is None or not parent.is_dir():
        return f"--plot {path}: {parent} is not a directory"
    return None if os.access(parent, os.W_OK | os.X_OK) else f"--plot {path}: cannot create directories in {parent}"


def _read_problem(exc: OSError, what: str) -> str:
    """One line for a benchmark file that cannot be read (names the file when the OS does)."""
    return f"{exc.filename}: cannot read: {exc.strerror}" if exc.filename else f"cannot read {what}: {exc}"


def _warn_rejects(command: str, traces: list, results: dict) -> None:
    """Readings the detector rejected (not scored: a NaN / inf value, a timestamp out of order or
    repeated, ...): one warning line per stream on stderr (the first 10), all in ``results``
    (JSON: "rejected", ``{stream: {reason: readings}}``)."""
    rejected = {t.stream: r for t in traces if (r := t.rejects())}
    if rejected:
        results["rejected"] = rejected
    rows = {t.stream: len(t.ts) for t in traces}
    for stream, r in list(rejected.items())[:10]:
        print(f"edgernn {command}: warning: {stream}: {sum(r.values())} of {rows[stream]} readings not scored (rejected: "
              + ", ".join(f"{k} {v}" for k, v in r.items()) + ")", file=sys.stderr)
    if len(rejected) > 10:
        print(f"edgernn {command}: warning: and {len(rejected) - 10} more stream(s) with rejected readings "
              "(see --json)", file=sys.stderr)


def _json_problem(path: Path | None) -> str | None:
    """One line when --json could not be written (checked before the run; missing directories are made)."""
    return None if path is None else output_problem("--json", path, make_dirs=True)


def _write_json(path: Path | None, obj: dict, command: str = "eval") -> None:
    """Write ``obj`` as JSON to --json (directories made); a failed write exits 2 with one line."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_plain(obj), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise SystemExit(fail(command, write_problem("--json", path, exc))) from None
    print(f"wrote {path}")


def _plain(o):
    """JSON-safe: numpy -> Python, NaN / inf -> None."""
    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
    if isinstance(o, np.ndarray):
        return _plain(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not np.isfinite(o):
        return None
    return o


def _baseline(args, det, command: str):
    """The persistence baseline as a Detector with ``det``'s settings, or None when it is not
    wanted (--no-baseline, or the backend under test is itself a baseline) or cannot run."""
    from ..backends import BASELINE, BASELINES, BackendUnavailable, create_backend
    from ..detector import Detector

    if args.no_baseline or args.backend in BASELINES:
        return None
    try:
        base = Detector(det.bundle, create_backend(BASELINE, det.bundle), det.settings)
    except BackendUnavailable as exc:
        print(f"edgernn {command}: no baseline: {exc}", file=sys.stderr)
        return None
    base.record_looks = det.record_looks
    return base


def _print_margins(results: dict, rows: list, backend: str, title: str, digits: int) -> None:
    """Print the margin table and keep it in ``results`` (JSON: "margin", "baseline")."""
    from ..backends import BASELINE
    from ..evaluate.report import margin_table

    results["margin"] = rows
    print()
    print(f"{title}: {backend} vs the {BASELINE} baseline")
    print(margin_table(rows, backend, BASELINE, digits))


def _plots_available(command: str) -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        fail(command, "--plot needs matplotlib: pip install 'edgernn[plot]'")
        return False
    return True


# -- NAB ----------------------------------------------------------------------------------------

def _run_nab(args) -> int:
    from ..evaluate import nab, report
    from ..evaluate.run import run_recordings
    from ..progress import Progress

    problem = (number_problem("--bootstrap", args.bootstrap, ge=0) or number_problem("--bootstrap", args.bootstrap, le=MAX_BOOTSTRAP)
               or number_problem("--chunk", args.chunk, ge=1) or _json_problem(args.json) or _plot_problem(args.plot))
    if problem:
        return fail("eval nab", problem)
    data_dir, why = _data_dir(args, "nab")
    if data_dir is None:
        if why == "skipped":
            print("edgernn eval nab: skipped: NAB data not found at ../shared/data/nab (pass --data-dir)")
            return 0
        return fail("eval nab", why)
    if args.plot and not _plots_available("eval nab"):
        return 2
    det = load_detector(args, command=f"eval {args.suite}")
    if det.F != 1:
        return fail("eval nab", f"NAB is univariate; model {det.bundle.name!r} has {det.F} features")
    files, problem = _nab_files(args, data_dir)
    if problem:
        return fail("eval nab", problem)
    t0 = time.monotonic()
    recs = [(f.name, f.ts, f.values[:, None]) for f in files]
    base = _baseline(args, det, "eval nab")
    with Progress(sum(len(f.ts) for f in files) * (2 if base else 1), "eval nab") as bar:
        traces = run_recordings(det, recs, args.chunk, bar)
        base_traces = run_recordings(base, recs, args.chunk, bar) if base else None
    results = report.nab_results(files, traces)
    _warn_rejects("eval nab", traces, results)
    results["meta"] = {**_meta(args, det, data_dir), "seconds": round(time.monotonic() - t0, 2),
                       "files": len(files), "rows": int(sum(len(f.ts) for f in files))}
    profiles = list(nab.PROFILES) if args.profile == "all" else [args.profile]
    print(f"NAB ({len(files)} files{'' if args.part == 'all' else ', ' + args.part + ' part'}) - model {det.bundle.name} {det.bundle.version}, backend {args.backend}")
    for prof in profiles:
        print()
        print(report.nab_table(results, prof, NAB_PUBLISHED_HTM if prof == "standard" else None))
    if base_traces is not None:
        base_results = report.nab_results(files, base_traces)
        results["baseline"] = {"backend": base.backend.name, "profiles": base_results["profiles"]}
        rows = [r for prof in profiles for r in report.nab_margins(results, base_results, prof)]
        _print_margins(results, rows, args.backend, "NAB normalised scores", 1)
        if args.bootstrap > 0:
            boot = {prof: report.nab_bootstrap(files, traces, base_traces, prof, args.bootstrap) for prof in profiles}
            results["bootstrap"] = boot
            print("\n".join(report.bootstrap_line(b, args.backend, base.backend.name, prof) for prof, b in boot.items()))
    _write_json(args.json, results, f"eval {args.suite}")
    if args.plot:
        return _plotted("eval nab", args.plot, lambda: _nab_plots(args, det, files, traces, results))
    return 0


def _nab_files(args, data_dir) -> tuple[list, str | None]:
    """The NAB files of --categories and --part, or what is wrong (one line). Files the labels name
    but the data lacks, data files the labels do not name and windows that cover no row are warned."""
    from ..evaluate import nab, split

    cats = [c.strip() for c in args.categories.split(",")] if args.categories else None
    missing: list = []
    unlabelled: list = []
    try:
        files = nab.load_corpus(data_dir, cats, missing, unlabelled)
    except OSError as exc:
        return [], _read_problem(exc, f"NAB data in {data_dir}")
    except ValueError as exc:
        return [], str(exc)
    for names, what in ((missing, "named in the labels are not files in"), (unlabelled, "not in the labels, in")):
        if names:  # a subset of the corpus is fine (the labels list all of NAB), but say so
            print(f"edgernn eval nab: warning: {len(names)} file(s) {what} {data_dir / 'data'}, not scored: "
                  f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''}", file=sys.stderr)
    for f in files:  # labels that do not match the file's time range (another file's, another time zone)
        if f.empty_windows:
            print(f"edgernn eval nab: warning: {f.name}: {f.empty_windows} labelled window(s) cover no row of the "
                  f"file ({utc_text(f.ts.min())} to {utc_text(f.ts.max())}), not scored", file=sys.stderr)
    files = split.select(files, args.part)
    if not files:
        return [], f"no NAB files found in {data_dir}" + (f" (part {args.part})" if args.part != "all" else "")
    return files, None


def _nab_plots(args, det, files, traces, results) -> None:
    from ..evaluate.plots import plot_file, safe_name

    thr = results["profiles"]["standard"]["sweep"]["threshold"]
    for f, t in zip(files, traces):
        labelled = np.zeros(len(f.ts), bool)
        for lo, hi in f.windows:
            labelled[lo:hi + 1] = True
        plot_file(args.plot / f"{safe_name(f.name)}.png", f"{f.name} - {det.bundle.name} "
                  f"(onset; dashed: corpus sweep threshold, shaded red: operational alerts)",
                  f.ts, f.values, ("value",), t.onset, thr, t.alert, t.raised, labelled,
                  train_end=f.probation, label_name="NAB window", split_name="end of probation")
    print(f"wrote {len(files)} plots to {args.plot}")


def _plotted(command: str, path: Path, draw) -> int:
    """Run ``draw()`` (writes the plots); a failed write (disk full, permissions) is one line, exit 2."""
    try:
        draw()
    except OSError as exc:
        return fail(command, write_problem("--plot", exc.filename or path, exc))
    return 0


# -- SKAB ---------------------------------------------------------------------------------------

def _run_skab(args) -> int:
    from ..evaluate import report
    from ..progress import Progress

    problem = (number_problem("--factor", args.factor, gt=0) or number_problem("--train-rows", args.train_rows, ge=1)
               or number_problem("--chunk", args.chunk, ge=1) or _rule_problem(args.rule)
               or _json_problem(args.json) or _plot_problem(args.plot))
    if problem:
        return fail("eval skab", problem)
    data_dir, why = _data_dir(args, "skab")
    if data_dir is None:
        if why == "skipped":
            print("edgernn eval skab: skipped: SKAB data not found at ../shared/data/skab (pass --data-dir)")
            return 0
        return fail("eval skab", why)
    if args.plot and not _plots_available("eval skab"):
        return 2
    det = load_detector(args, command=f"eval {args.suite}",
                        reference_rows=args.train_rows if args.reference == "train" else 0)
    if (problem := number_problem("--train-rows", args.train_rows, gt=det.warmup)) is not None:
        return fail("eval skab", f"{problem}: the threshold comes from the training rows scored after the "
                                 f"model's warm-up ({det.warmup} readings)")
    if args.score == "reference":
        if not det.reference_rows:
            return fail("eval skab", "--score reference needs the reference look (--reference train)")
        det.record_looks = True
    files, problem = _skab_files(args, data_dir)
    if problem:
        return fail("eval skab", problem)
    recs, mode = _skab_recordings(args, det, files)
    if recs is None:
        return fail("eval skab", mode)
    t0 = time.monotonic()
    base = _baseline(args, det, "eval skab")
    with Progress(sum(len(r[1]) for r in recs) * (2 if base else 1), "eval skab") as bar:
        try:
            liks, alerts, raised, how, traces = _skab_scores(args, det, recs, len(files), bar)
            base_scores = _skab_scores(args, base, recs, len(files), bar) if base else None
        except ValueError as exc:
            return fail("eval skab", f"--calibrate train: {exc}")
    mode += how
    rejected: dict = {}
    _warn_rejects("eval skab", traces, rejected)
    try:  # a file whose training rows were all rejected has no threshold
        results = report.skab_results(files, liks, alerts, args.rule, args.factor, args.train_rows)
    except ValueError as exc:
        return fail("eval skab", exc)
    results.update(rejected)
    if det.reference_rows:
        ds = det.settings
        mode += f", reference look on rows [0, {det.reference_rows}) (window {ds.reference_window:g}"
        if ds.reference_drift or ds.reference_peak:
            mode += f", drift {ds.reference_drift:g}, peak gate {ds.reference_peak:g}"
        mode += ")"
    results["mode"] = mode
    results["meta"] = {**_meta(args, det, data_dir), "seconds": round(time.monotonic() - t0, 2),
                       "files": len(files), "test_rows": int(sum(len(f.ts) - args.train_rows for f in files))}
    print(f"SKAB ({len(files)} files{'' if args.part == 'all' else ', ' + args.part + ' part'}, {mode}) - model {det.bundle.name} {det.bundle.version}, "
          f"backend {args.backend}; threshold per file from rows [0, {args.train_rows})")
    print()
    print(report.skab_table(results))
    if base_scores is not None:
        b = report.skab_results(files, base_scores[0], base_scores[1], args.rule, args.factor, args.train_rows)
        results["baseline"] = {"backend": base.backend.name, "calibrated": b["calibrated"],
                               "operational": b["operational"], "rules": b["rules"]}
        _print_margins(results, report.skab_margins(results, b), args.backend, "SKAB", 2)
    _write_json(args.json, results, f"eval {args.suite}")
    if args.plot:
        return _plotted("eval skab", args.plot, lambda: _skab_plots(args, det, files, liks, alerts, raised, results))
    return 0


def _skab_files(args, data_dir) -> tuple[list, str | None]:
    """The labelled files of --part that have test rows, or what is wrong (one line)."""
    from ..evaluate import skab, split

    try:
        files = skab.load_corpus(data_dir)
    except OSError as exc:
        return [], _read_problem(exc, f"SKAB data in {data_dir}")
    except ValueError as exc:
        return [], str(exc)
    files = split.select(files, args.part)
    if not files:
        return [], f"no labelled SKAB files found in {data_dir}" + (f" (part {args.part})" if args.part != "all" else "")
    if args.calibrate_passes < 1:
        return [], "--calibrate-passes must be >= 1"
    return _skab_test_rows(files, args.train_rows)


def _rule_problem(rule: str) -> str | None:
    """One line when --rule is neither 'max' nor 'q<percentile>' with a percentile in [0, 100]."""
    if rule == "max":
        return None
    try:
        pct = float(rule[1:]) if rule.startswith("q") else math.nan
    except ValueError:
        pct = math.nan
    if 0.0 <= pct <= 100.0:
        return None
    return f"--rule {rule!r}: use 'max' or 'q<percentile>' with a percentile from 0 to 100, like q99"


def _skab_test_rows(files: list, train_rows: int) -> tuple[list, str | None]:
    """The files with rows after their ``train_rows`` training rows (those without are named in a
    warning: nothing of theirs is tested), or what is wrong when no file has any."""
    kept = [f for f in files if len(f.ts) > train_rows]
    if not kept:
        return kept, (f"--train-rows {train_rows}: no file has rows after its training rows "
                      f"(the longest has {max(len(f.ts) for f in files)} rows)")
    short = [f"{f.name} ({len(f.ts)} rows)" for f in files if len(f.ts) <= train_rows]
    if short:
        print(f"edgernn eval skab: warning: {len(short)} file(s) with no rows after the {train_rows} training rows, "
              f"not scored: {', '.join(short[:5])}{' ...' if len(short) > 5 else ''}", file=sys.stderr)
    return kept, None


def _skab_recordings(args, det, files) -> tuple[list | None, str]:
    """The recordings to run and a description of the mode (or None and the error)."""
    from ..evaluate import skab

    cols = files[0].features
    odd = next((f for f in files if f.features != cols), None)
    if odd is not None:  # columns are taken by position below: every file must have the same ones
        pairs = list(zip((*odd.features, None), (*cols, None)))  # None: past the last column
        j = next(j for j, (a, b) in enumerate(pairs) if a != b)
        have, want = (repr(c) if c else "missing" for c in pairs[j])
        return None, (f"{odd.name}: sensor column {j + 1} is {have}, {want} in {files[0].name} "
                      f"(every file needs the same columns, in the same order)")
    if det.F == 1:  # univariate model: every sensor is its own stream; a row's likelihood is the max
        return [(f"{f.name}:{c}", f.ts, f.x[:, j:j + 1]) for f in files for j, c in enumerate(cols)], "per-sensor"
    missing = [c for c in det.features if c not in cols]
    if missing:
        return None, f"model features {missing} are not SKAB columns {list(cols)}"
    idx = [cols.index(c) for c in det.features]
    b = det.bundle
    if args.renorm == "train" and b.norm_mode == "fixed":
        return ([(f.name, f.ts, skab.renormalise(f.x[:, idx], b.norm_mean, b.norm_std, args.train_rows)) for f in files],
                "multivariate, renormalised on each file's training rows")
    return [(f.name, f.ts, f.x[:, idx]) for f in files], "multivariate"


def _skab_scores(args, det, recs, n_files: int, bar) -> tuple[list, list, list, str]:
    """Run ``recs`` through ``det`` (or its per-file calibrated copies); per file: likelihood,
    alert state and raised flags per row (a univariate model's sensors combined by max / any),
    and what was done (appended to the mode). Raises ValueError from --calibrate train."""
    from ..evaluate import skab
    from ..evaluate.run import run_recordings

    if args.score == "reference":
        det.record_looks = True
    per_sensor = det.F == 1
    k = len(recs) // n_files if per_sensor else 1  # streams per file
    how = ""
    if args.calibrate == "model":
        traces = run_recordings(det, recs, args.chunk, bar)
    else:  # one table set per group: a file (its stream, or all its sensors pooled) or a sensor
        g = k if per_sensor and args.calibrate_pool == "file" else 1
        traces = [t for i in range(0, len(recs), g)
                  for t in skab.run_calibrated(det, recs[i:i + g], args.train_rows, args.calibrate_passes,
                                               args.chunk, bar)]
        pool = "sensor" if per_sensor and args.calibrate_pool == "sensor" else "file"
        how += f", tables refitted per {pool} on rows [0, {args.train_rows}) ({args.calibrate_passes} passes)"
    if args.score == "reference":
        # the reference look's own surprise s = -log10 p, carried as the likelihood 1 - 10**(-s / 100):
        # exact in float64 up to s ~ 1500 (1 - p itself stops at p ~ 1e-16), and the threshold rules
        # are unchanged by it (a quantile commutes with a monotone map; the factor scales s linearly)
        from ..scoring import REFERENCE

        for t in traces:
            lp = t.looks[REFERENCE]
            t.likelihood = np.where(np.isnan(lp), t.likelihood, -np.expm1(np.nan_to_num(lp) / 100.0 * np.log(10.0)))
        how += ", scored on the reference look alone"
    groups = [traces[i * k:(i + 1) * k] for i in range(n_files)]
    liks = [np.fmax.reduce(np.stack([t.scored_likelihood for t in g]), axis=0) for g in groups]
    alerts = [np.any(np.stack([t.alert for t in g]), axis=0) for g in groups]
    raised = [np.any(np.stack([t.raised for t in g]), axis=0) for g in groups]
    return liks, alerts, raised, how, traces


def _skab_plots(args, det, files, liks, alerts, raised, results) -> None:
    from ..evaluate.plots import plot_file, safe_name

    cols = files[0].features
    for f, lik, al, ra, pf in zip(files, liks, alerts, raised, results["per_file"]):
        plot_file(args.plot / f"{safe_name(f.name)}.png",
                  f"SKAB {f.name} - {det.bundle.name}: F1 {pf['f1']:.2f} FAR {pf['far']:.1f}% MAR {pf['mar']:.1f}%",
                  f.ts, f.x, cols, lik, pf["threshold"], al, ra, f.anomaly.astype(bool),
                  train_end=args.train_rows, label_name="anomaly")
    print(f"wrote {len(files)} plots to {args.plot}")


# -- your own incidents -------------------------------------------------------------------------

def _run_events(args) -> int:
    from ..evaluate import events
    from ..evaluate.report import table
    from ..evaluate.run import run_recordings
    from ..progress import Progress
    from ..replay import roomier

    problem = (number_problem("--early", args.early, ge=0) or number_problem("--late", args.late, ge=0)
               or _json_problem(args.json) or _plot_problem(args.plot))
    if problem:
        return fail("eval events", problem)
    try:
        incidents = events.read_labels(args.labels)
    except OSError as exc:
        return fail("eval events", f"--labels {args.labels}: cannot read: {exc.strerror or exc}")
    except ValueError as exc:
        return fail("eval events", exc)
    if args.plot and not _plots_available("eval events"):
        return 2
    det = load_detector(args, command=f"eval {args.suite}")
    paths = [p for p in args.recording if p.resolve() != args.labels.resolve()]
    if args.stream and len(paths) > 1:
        return fail("eval events", "--stream names the stream of one recording; several were given")
    recs = _event_recordings(args, det, paths)
    if isinstance(recs, str):
        return fail("eval events", recs)
    det = roomier(det, len(recs), "the recordings" if len(paths) > 1 else paths[0].name)
    base = _baseline(args, det, "eval events")
    with Progress(sum(len(r[1]) for r in recs) * (2 if base else 1), "eval events") as bar:
        traces = run_recordings(det, recs, progress=bar)
        base_traces = run_recordings(base, recs, progress=bar) if base else None
    streams = [t.stream for t in traces]
    res = _incident_scores(incidents, traces, args)
    _warn_rejects("eval events", traces, res)
    unknown = sorted({i.stream for i in incidents} - set(streams) - {events.ANY_STREAM})
    res["labels_for_unknown_streams"] = unknown
    res["meta"] = {**_meta(args, det, None), "recordings": [str(p) for p in paths], "labels": str(args.labels),
                   "early_s": args.early, "late_s": args.late}
    print(f"{len(paths)} recording(s), {sum(len(t.ts) for t in traces)} readings, {len(streams)} stream(s) - "
          f"model {det.bundle.name}, threshold {det.threshold:.10g}")
    print(table(["incidents", "detected", "alerts", "false alerts", "precision", "recall", "F1",
                 "delay mean s", "delay median s", "delay max s"],
                [[res["incidents"], res["detected"], res["alerts"], res["false_alerts"],
                  _f(res["precision"]), _f(res["recall"]), _f(res["f1"]),
                  _f(res["delay_mean_s"], 1), _f(res["delay_median_s"], 1), _f(res["delay_max_s"], 1)]]))
    if len(res["recall_by_label"]) > 1:
        print(table(["label", "recall"], [[k, _f(v)] for k, v in res["recall_by_label"].items()]))
    if unknown:
        print(f"warning: labels name stream(s) not in the recordings: {', '.join(unknown[:10])}")
    if base_traces is not None:
        from ..evaluate.report import events_margins

        b = _incident_scores(incidents, base_traces, args)
        res["baseline"] = {"backend": base.backend.name, **{k: b[k] for k in (
            "incidents", "detected", "alerts", "false_alerts", "precision", "recall", "f1", "delay_mean_s")}}
        _print_margins(res, events_margins(res, b), args.backend, "incidents", 3)
    _write_json(args.json, res, "eval events")
    if args.plot:
        return _plotted("eval events", args.plot, lambda: _event_plots(args, det, incidents, traces))
    return 0


def _event_plots(args, det, incidents, traces) -> None:
    from ..evaluate import events
    from ..evaluate.plots import plot_file, safe_name

    for t in traces:
        labelled = np.zeros(len(t.ts), bool)
        for inc in incidents:
            if inc.stream in (events.ANY_STREAM, t.stream):
                labelled |= (t.ts >= inc.start - args.early) & (t.ts <= inc.end + args.late)
        plot_file(args.plot / f"{safe_name(t.stream)}.png", f"{t.stream} - {det.bundle.name}", t.ts, t.x,
                  det.features, t.scored_likelihood, det.threshold, t.alert, t.raised, labelled,
                  label_name="incident")
    print(f"wrote {len(traces)} plots to {args.plot}")


def _event_recordings(args, det, paths) -> list | str:
    """Every stream of every file as one recording ``(stream, ts, x)`` (in order of first appearance,
    rows in file order; one pass per file), or what is wrong (one line)."""
    from ..recording import RecordingError, parse_columns, read_recording, rows_by_stream
    from ..replay import unnamed_warning

    recs, origin = [], {}
    for path in paths:  # every stream of every file becomes one stream of the run
        try:
            rec = read_recording(path, det.features, parse_columns(args.columns), args.stream, progress=None)
        except RecordingError as exc:
            return str(exc)
        warning = unnamed_warning(rec)
        if warning:
            print(f"edgernn eval events: warning: {warning}", file=sys.stderr)
        if rec.skipped:  # rows the reader could not use: counted, as replay does
            worst = max(rec.skipped, key=rec.skipped.get)
            print(f"edgernn eval events: warning: {path}: {sum(rec.skipped.values())} row(s) skipped ("
                  + ", ".join(f"{k} {n}" for k, n in sorted(rec.skipped.items()))
                  + (f"; first: {rec.problems[worst]}" if rec.problems.get(worst) else "") + ")", file=sys.stderr)
        for s, rows in rows_by_stream(rec.streams):
            if s in origin:
                return f"stream {s!r} is in both {origin[s]} and {path}; give the files distinct names"
            origin[s] = path
            recs.append((s, rec.ts[rows], rec.x[rows]))
    return recs


def _incident_scores(incidents, traces, args) -> dict:
    from ..evaluate import events

    spans = [sp for t in traces for sp in events.alert_spans(t.stream, t.ts, t.raised, t.cleared)]
    return events.evaluate(incidents, spans, [t.stream for t in traces], args.early, args.late)


def _f(v, digits: int = 3) -> str:
    return "-" if v is None or v != v else f"{v:.{digits}f}"
