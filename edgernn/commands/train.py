"""Train a model bundle from CSV recordings of normal operation (needs: pip install 'edgernn[train]').

Give it readings of your machine working normally; it learns to predict each next reading and
writes a bundle (--out) that `edgernn replay`, `edgernn serve` and `edgernn export` use.

What happens, per series (each stream of each file), in time order, never shuffled:
  first 70 %   trains the GRU (AdamW; --weight-decay, --average)
  last 30 %    held out (--holdout): stops training when its NLL stops improving; fits the
               score tables; then runs as a new stream from a cold start (as a daemon meets
               it) to set the alert threshold so that alerts there stay within half the
               target false-alarm rate (--target-far). The rate achieved there is reported;
               if no threshold reaches the target, it says so (and --strict exits 3).

Each feature is classified on the training part: constant, near-constant, binary, counter,
quantised or continuous; the summary, manifest (feature_kinds) and model card say how each
is handled (a constant feature gets a std of 1 % of its value, not 1e-6; counters are left
out of the model unless --counters model). Warnings name too little data for the model,
held-out readings outside the training range and a validation NLL far above the training
NLL. Thresholds are printed as surprise (-log10 p) and "1 in N".

Too little held-out data cannot show a low rate: 0 alerts in 3,000 readings only says the
rate is below ~10 per 10,000. The trainer says so; give it more normal data.

The bundle holds manifest.yaml, weights.npz, golden.npz, representative.npz (relation.npz),
loss_curve.png and README.md (the model card: data files + sha256, this command, features, calibration
achieved, fit, artifacts). Files are written 0644, the directory 0755. The bundle is built in a
temporary directory next to --out and moved into place only when complete: a run that fails leaves
--out as it was (no bundle, or the previous one; --recalibrate too); Ctrl-C during that move takes effect
when it ends.

Normalisation: `stream` (default for one feature) learns each stream's mean/std during its
warm-up at run time, so the model works on any sensor without retraining; `fixed` (default for
several features) uses the training part's statistics.

Several features with fixed normalisation also get the relation look (relation.npz): each
continuous / quantised feature predicted from the others at the same reading (a ridge regression
on the training part), so a feature that decouples from the rest or shifts alone is seen for as
long as it stays away, and its alert names it. (--recalibrate keeps a bundle's relation, or its
absence: retrain to add one.)

exit codes: 0 done; 2 bad input (one line naming the file or the option, before the fit); 3 --strict
and the calibration target was not met.

examples:
  edgernn train normal.csv --out my_model
  edgernn train pump_*.csv --out pump_model --features temp,pressure,flow --norm fixed
  edgernn train a.csv b.csv --out m --hidden 16 --epochs 20 --seed 7 --target-far 1e-4 --strict
  edgernn train new_normal.csv --out my_model --recalibrate      # new threshold, same weights
"""

from __future__ import annotations

import errno
import math
import os
import shlex
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from ..fileio import signals_deferred
from ..recording import infer_features
from .common import fail, number_problem, write_problem


def add_arguments(p) -> None:
    p.add_argument("data", nargs="+", type=Path, help="CSV files of normal data, or directories of them")
    p.add_argument("--out", required=True, type=Path, help="bundle directory to write")
    p.add_argument("--features", help="comma-separated feature columns (default: every non-time, non-label column)")
    p.add_argument("--columns", help="map features to file columns: FEATURE=COLUMN[,...]")
    p.add_argument("--name", help="model name (default: the --out directory name)")
    p.add_argument("--version", default="1.0.0", help="model version for the manifest (default 1.0.0)")
    p.add_argument("--hidden", type=int, default=32, help="GRU hidden size H (default 32, at most 1024)")
    p.add_argument("--components", type=int, default=1, choices=range(1, 9), metavar="K",
                   help="Gaussians per feature in the head (default 1: one Gaussian; 2-8: a mixture, for signals that "
                        "switch between levels such as on/off duty cycles)")
    p.add_argument("--tied-variance", action="store_true",
                   help="with --components K > 1: the K Gaussians of a feature share one variance (levels, no "
                        "catch-all wide component)")
    p.add_argument("--jump-inputs", action="store_true",
                   help="give the GRU a slow input per feature besides the reading: the stream's own rate of jumps "
                        "(|change| > 1 sd; EW over 200 readings, log scale), so it can learn when a jump between levels is "
                        "ordinary (on/off duty cycles) and when it is not; the detector computes it per stream. Measured on "
                        "the univariate recipe: young duty cycles' false alerts -70 %%, NAB's development files -2 "
                        "points (docs/QUALITY.md)")
    p.add_argument("--logvar-max", type=float, default=None,
                   help="cap on the head's predicted log-variance, in the model's normalised units, between -5 and 6 "
                        "(default 6); "
                        "with --components K > 1, e.g. 0 (std <= the stream's std) leaves no catch-all wide "
                        "component to explain a level shift or a burst. Training clamps at it and so does the "
                        "detector (the manifest's head.logvar_max)")
    p.add_argument("--norm", choices=("stream", "fixed"), help="normalisation (default: stream for 1 feature, else fixed)")
    p.add_argument("--warmup", type=int, default=None, help="readings per stream before scoring (default 64 fixed, 256 stream)")
    p.add_argument("--adapt", type=float, default=None, help="EW rate of stream normalisation after warm-up (default 0.002 stream)")
    p.add_argument("--epochs", type=int, default=30, help="most epochs (default 30; early stopping usually ends sooner)")
    p.add_argument("--patience", type=int, default=4, help="early stopping: epochs without validation improvement (default 4)")
    p.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate (default 3e-3)")
    p.add_argument("--weight-decay", type=float, default=0.0,
                   help="AdamW weight decay (default 0: measured no better held-out NLL at 0.01-1; early stopping "
                        "on the held-out NLL is the default regulariser)")
    p.add_argument("--average", type=float, default=0.0, metavar="DECAY",
                   help="keep an exponential moving average of the weights, DECAY per optimiser step (e.g. 0.995: "
                        "about the last 200 steps); the average is what is validated, early-stopped on and saved. "
                        "Default 0: the last step's weights. Measured on the univariate recipe over 16 seeds: "
                        "NAB's development files 64.5 -> 66.5 and +2 soft faults caught of 140, but duty "
                        "cycles' false alerts 1.97 -> 2.45 per 10k (docs/QUALITY.md). The decay warms up: "
                        "min(DECAY, (1 + n) / (10 + n)) at the n-th step")
    p.add_argument("--segment", type=int, default=512, help="readings per training segment (default 512)")
    p.add_argument("--chunk", type=int, default=64, help="truncated BPTT length (default 64)")
    p.add_argument("--holdout", "--val-fraction", dest="holdout", type=float, default=0.3,
                   help="share at the end of each series held out from training: validation and calibration "
                        "(default 0.3)")
    p.add_argument("--target-far", type=float, default=1e-4,
                   help="target false alerts per reading on normal data (default 1e-4 = 1 per 10,000)")
    p.add_argument("--learn-far", type=float, default=1e-4,
                   help="what the streams learn from: they pause on readings over the clear level of the threshold "
                        "that gives this false-alert rate, whatever --target-far (default 1e-4)")
    p.add_argument("--counters", choices=("leave-out", "model"), default="leave-out",
                   help="features found to be counters (non-decreasing with resets): leave them out of the model "
                        "(default: their raw value grows out of any training range) or model them like the rest")
    p.add_argument("--strict", action="store_true", help="exit 3 when the calibration cannot meet --target-far")
    p.add_argument("--max-surprise", type=float, default=1e5,
                   help="never set the threshold above this surprise (-log10 p); when the target needs more, "
                        "the target is not met (default 1e5: effectively no limit)")
    p.add_argument("--seed", type=int, default=0, help="same seed, same data: same weights (default 0)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--description", default="", help="one line for the manifest and the model card")
    p.add_argument("--recalibrate", action="store_true",
                   help="keep the trained weights in --out; only refit the score tables and threshold on DATA "
                        "(no PyTorch needed)")


def _command() -> str:
    return "edgernn train " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["train"] else sys.argv[1:])


def _expand(paths: list[Path]) -> list[Path]:
    """Directories stand for the sorted *.csv files in them (ValueError naming one that has none)."""
    out = []
    for p in paths:
        found = sorted(p.glob("*.csv")) if p.is_dir() else [p]
        if not found:
            raise ValueError(f"{p}: no .csv files in this directory")
        out.extend(found)
    return out


def _series(args, features, columns: dict):
    """The series of every file, or an int exit code after one line on stderr."""
    from ..recording import RecordingError
    from ..train.data import MIN_ROWS, huge_spread, load_series

    notes: list[str] = []
    try:
        series = load_series(args.data, features, columns, args.holdout, notes)
    except RecordingError as exc:
        return fail("train", exc)
    if not series:
        left = [n for n in notes if " rows left out: " in n]  # (not the reading warnings)
        more = f" (and {len(left) - 1} more file(s) like it)" if len(left) > 1 else ""
        return fail("train", f"no usable series (each needs >= {MIN_ROWS} complete rows)"
                             + (f": {left[0]}{more}" if left else ""))
    if (err := huge_spread(series, features)) is not None:
        return fail("train", err)
    for note in notes:  # rows left out, reading warnings: counted and said before the work
        print(f"note: {note}")
    return series


def _columns(args, features, named: bool) -> dict:
    """FEATURE -> file column: --columns, and with ``named`` (--features given) each other feature its
    own column, so that a name that is not a column is an error naming the columns (RecordingError)
    instead of the file's one other column taken under that name."""
    from ..recording import parse_columns

    return {**({f: f for f in features} if named else {}), **parse_columns(args.columns)}


def _features(args) -> tuple[str, ...]:
    """The features to train on: --features, else the first file's columns. ValueError: one line."""
    if args.features is None:  # (--features "" too is an empty feature name, not every column)
        return infer_features(args.data[0])
    features = tuple(f.strip() for f in args.features.split(","))
    if "" in features:
        raise ValueError(f"--features {args.features!r}: an empty feature name")
    twice = sorted({f for f in features if features.count(f) > 1})
    if twice:
        raise ValueError(f"--features {args.features!r}: {', '.join(map(repr, twice))} named more than once")
    return features


def _warmup_error(series, warmup: int, whose: str, stream: bool,
                  shorter: str = "a shorter --warmup, ") -> str | None:
    """One line when the warm-up (``whose``: "--warmup 500: the warm-up", "the model's warm-up (256
    readings)") leaves too few held-out readings to calibrate on, or (``stream`` normalisation, which
    skips it in training) no training readings in a series; else None."""
    from ..scoring import MIN_CALIBRATION  # held-out readings a look's table is fitted on, at least

    held = sum(max(0, len(s.raw) - max(s.split, warmup)) for s in series)
    if held < MIN_CALIBRATION:
        return (f"{whose} leaves {held or 'no'} held-out readings to calibrate on (at least {MIN_CALIBRATION} "
                f"needed): give {shorter}a larger --holdout or more data")
    short = next((s for s in series if s.split - warmup < 2), None)
    if stream and short is not None:
        return (f"{whose} leaves no training readings in {short.name} (its first {short.split} train): give a "
                "shorter --warmup, a smaller --holdout or more data")
    return None


def _calibration_option_error(args) -> str | None:
    """One line naming the first calibration option out of range (train and --recalibrate), or None."""
    problem = (number_problem("--holdout", args.holdout, ge=0.05, le=0.8)
               or number_problem("--target-far", args.target_far, gt=0, lt=1)
               or number_problem("--learn-far", args.learn_far, gt=0, lt=1)
               or number_problem("--max-surprise", args.max_surprise, gt=0))
    if problem is None and args.max_surprise < -math.log10(args.target_far):
        problem = (f"--max-surprise must be at least -log10(--target-far) = {-math.log10(args.target_far):g} "
                   f"(got {args.max_surprise})")
    return problem


@contextmanager
def _staged(out: Path, copy: bool = False):
    """The directory to build the bundle in: a temporary sibling of ``out``, which replaces ``out``
    (two renames) only when the block completes, so that a run that fails or is interrupted leaves
    ``out`` as it was (absent, or the previous bundle) and a reader never sees new weights beside an
    old manifest. The previous directory's other files and folders (an export, a user's notes) move
    into the new one. ``copy``: start from a copy of the bundle's files (--recalibrate). Where the
    parent directory cannot take a sibling (an existing ``out`` in a read-only parent), the bundle is
    built in place, as before staging. Ctrl-C and SIGTERM wait for the move into place and the
    clean-up to end (fileio.signals_deferred)."""
    out = out.resolve()  # a symlink: the sibling beside its target (a rename cannot cross filesystems)
    if out.is_dir() and not os.access(out.parent, os.W_OK | os.X_OK):
        yield out
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        if copy:
            for f in out.iterdir():
                if f.is_file():
                    shutil.copy2(f, work / f.name)
        yield work
        with signals_deferred():
            if out.exists():
                _replace(out, work)
            else:
                os.rename(work, out)
    finally:
        with signals_deferred():
            shutil.rmtree(work, ignore_errors=True)


def _replace(out: Path, work: Path) -> None:
    """``work`` into ``out``'s place, then ``out``'s other files (those the new bundle does not have)
    into it: ``out`` -> ``old``, ``work`` -> ``out``, the other files ``old`` -> ``out``, ``old``
    deleted. At every step each of the user's files is in ``old`` or ``out``, never only in ``work``
    (a run killed meanwhile leaves them findable). On a failure
    (a file or folder that cannot move: a mount point; EBUSY...) or an interrupt, ``out`` is put back
    as it was, its files too, before the error goes on (_staged then deletes ``work``)."""
    old, moving = work.with_suffix(".old"), []
    try:
        os.rename(out, old)
        os.rename(work, out)
        for f in list(old.iterdir()):
            if not os.path.lexists(out / f.name):
                moving.append(f.name)
                os.replace(f, out / f.name)
    except BaseException:  # (Ctrl-C too)
        _put_back(out, work, old, moving)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _put_back(out: Path, work: Path, old: Path, moving: list[str]) -> None:
    """Undo a _replace stopped at any step (``moving``: the names it moved or was moving)."""
    if not os.path.lexists(old):  # ``out`` was not renamed
        return
    if os.path.lexists(out) and not os.path.lexists(work):  # the new bundle is in place: out again
        for name in reversed(moving):
            if os.path.lexists(out / name) and not os.path.lexists(old / name):
                os.replace(out / name, old / name)
        os.rename(out, work)
    os.rename(old, out)


def _out_error(out: Path) -> str | None:
    """One line when --out cannot take a bundle (checked before anything is read), else None."""
    if out.exists() and not out.is_dir():
        return f"--out {out}: exists and is not a directory"
    ancestor = next((p for p in out.parents if p.exists()), Path("."))  # where the bundle's directory is made
    if not ancestor.is_dir():
        return f"--out {out}: {ancestor} is not a directory"
    d = out if out.exists() else ancestor  # an existing bundle in a read-only folder is rebuilt in place (_staged)
    if not os.access(d, os.W_OK | os.X_OK):
        return f"--out {out}: {d} is not writable"
    if out.is_dir() and os.access(out.resolve().parent, os.W_OK | os.X_OK):  # staged: _mount_error
        return _mount_error(out)
    return None


def _mount_error(out: Path) -> str | None:
    """One line when the existing directory ``out`` is or holds a mount point, else None: _staged
    renames ``out`` and moves its other files into the new bundle, and a mount point cannot move
    (an OSError after the whole fit)."""
    if os.path.ismount(out.resolve()):
        return (f"--out {out}: is a mount point, which cannot be replaced (the bundle is built beside --out and "
                "moved into place): give a directory inside it")
    try:
        inner = next((p for p in out.iterdir() if os.path.ismount(p)), None)
    except OSError:  # (not readable: found when the bundle is built)
        return None
    if inner is not None:
        return (f"--out {out}: holds a mount point, {inner}, which cannot be moved into the new bundle: give "
                "another --out")
    return None


def _calibration_lines(summary: dict) -> list[str]:
    from ..train.calibrate import one_in

    s = summary["surprise"]
    lines = [f"{'threshold':24s} surprise {s:.2f} ({one_in(s)})",
             f"{'false alerts (held out)':24s} {summary['alerts']} in {summary['readings']:,} readings = "
             f"{summary['rate'] * 1e4:.2f} per 10,000 (target {summary['target'] * 1e4:.2f})"]
    if summary.get("note"):
        lines.append(f"{'NOTE':24s} {summary['note']}")
    if not summary["met"]:
        lines.append(f"{'CALIBRATION':24s} TARGET NOT MET: even the highest threshold leaves "
                     f"{summary['rate'] * 1e4:.2f} false alerts per 10,000 held-out normal readings "
                     f"(target {summary['target'] * 1e4:.2f}); see the feature kinds and warnings")
    return lines


def _finish_calibration(out: Path, summary: dict, strict: bool) -> int:
    for line in _calibration_lines(summary):
        print(line)
    if not summary["met"]:
        print(f"edgernn train: {out}: calibration target not met ({summary['rate'] * 1e4:.2f} false alerts "
              f"per 10,000 held-out readings, target {summary['target'] * 1e4:.2f})", file=sys.stderr)
        return 3 if strict else 0
    return 0


def _out_write_failed(out: Path, exc: OSError, data: list[Path] = ()) -> int:
    """One line for an OSError of the run: a bundle that could not be written, or what else failed
    (a data file removed while training, an OSError of torch) named as such; an error of stdout
    itself (a closed pipe, ``> /dev/full``) goes on to cli.main, which says so."""
    if getattr(sys.stdout, "failed", False):
        raise exc
    name = os.fsdecode(exc.filename) if isinstance(exc.filename, (str, bytes, os.PathLike)) else None
    why = exc.strerror or exc
    if name is not None and any(os.path.abspath(name) == os.path.abspath(p) for p in data):
        return fail("train", f"{name}: cannot read: {why} (removed or changed while training): train again")
    if (exc.errno in WRITE_ERRNOS) if name is None else _names_out(out, name):
        return fail("train", write_problem("--out", out, exc))
    if name is None:
        return fail("train", f"training failed: {why} (an error of the fit, not of writing --out {out})")
    return fail("train", f"{name}: {why} (while training: not an error of writing --out {out})")


# errors of a write with no file name (a full disk, a quota, a file too large, a read-only file system, a
# failing disk): the run writes only the bundle
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}


def _names_out(out: Path, filename) -> bool:
    """Whether ``filename`` (an OSError's) is --out ``out``, in it, its staging directory or in it, or a
    directory made for it (an ancestor)."""
    path, given, real = Path(os.path.abspath(filename)), Path(os.path.abspath(out)), out.resolve()
    if path in given.parents or path in real.parents:
        return True
    staging = f".{real.name}."
    return any(p in (given, real) or (p.parent == real.parent and p.name.startswith(staging))
               for p in (path, *path.parents))


def recalibrate(args) -> int:
    """Refit the calibration of an existing bundle on new normal data (weights unchanged), in a copy
    that replaces the bundle's files only when it is complete."""
    from ..bundle import BundleError, load_bundle, make_readable, write_manifest
    from ..recording import RecordingError
    from ..settings import resolve
    from ..train.calibrate import calibrate
    from ..train.card import write_card

    try:
        bundle = load_bundle(args.out)
        columns = _columns(args, bundle.features, named=False)
    except (BundleError, RecordingError) as exc:
        return fail("train", exc)
    series = _series(args, bundle.features, columns)
    if isinstance(series, int):
        return series
    warmup = resolve(bundle).warmup
    warmup = bundle.calibration.warmup if warmup is None else warmup
    if (err := _warmup_error(series, warmup, f"the model's warm-up ({warmup} readings)", False, "")) is not None:
        return fail("train", err)
    try:
        with _staged(args.out, copy=True) as work:
            summary = calibrate(work, series, target_rate=args.target_far, max_surprise=args.max_surprise,
                                learn_rate=args.learn_far)
            manifest = load_bundle(work).manifest
            manifest.setdefault("provenance", {})["calibration_command"] = _command()
            write_manifest(work, manifest)
            write_card(work, ref=str(args.out))
            make_readable(work)
    except OSError as exc:  # a full disk: found when written (--out as it was)
        return _out_write_failed(args.out, exc, args.data)
    return _finish_calibration(args.out, summary, args.strict)


# the fit's options and their smallest values (each one below it crashed the fit or, for --chunk, skipped it)
FIT_MINIMA = {"hidden": 1, "epochs": 1, "patience": 1, "segment": 2, "chunk": 1, "threads": 0, "weight_decay": 0.0,
              "warmup": 0, "seed": 0}  # warmup None: the normalisation's default
# ... and their largest: no edge model needs a hidden size above 1024 (100,000 ran out of memory); the seed's
# generators take 32 bits; torch's thread pool crashed the process (a segfault, or libgomp's "Thread creation
# failed") at 20,000 - 100,000 threads, and no machine here has more than 1024 cores
FIT_MAXIMA = {"hidden": 1024, "seed": 2**32 - 1, "threads": 1024}


def _fit_option_error(args) -> str | None:
    """One line naming the first training option out of range (NaN and inf too), or None."""
    from ..settings import BY_KEY

    for name, lo in FIT_MINIMA.items():
        flag, value = f"--{name.replace('_', '-')}", getattr(args, name)
        problem = number_problem(flag, value, ge=lo) or number_problem(flag, value, le=FIT_MAXIMA.get(name))
        if problem:
            return problem
    problem = (number_problem("--lr", args.lr, gt=0) or number_problem("--lr", args.lr, le=1e6)  # (1e38: torch overflow)
               or number_problem("--logvar-max", getattr(args, "logvar_max", None), ge=-5, le=6)
               or number_problem("--average", args.average, ge=0, lt=1))
    if problem:
        return problem
    adapt = BY_KEY["adapt"]  # as replay's --adapt: the detector's setting it becomes
    if args.adapt is not None and (problem := adapt.problem(args.adapt)):
        return f"{adapt.flag_names[0]}: {problem}"
    return None


def _text_option_error(args) -> str | None:
    """One line naming the first of --name, --version, --description that is not one line of text (a
    newline or control character broke the model card's title and `edgernn inspect`), or None."""
    for flag in ("--name", "--version", "--description"):
        value = getattr(args, flag[2:]) or ""
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            return f"{flag} {value!r}: must be one line of text (no newline or control character)"
    return None


def _options_error(args) -> str | None:
    """One line naming the first bad option or --out (nothing read yet), or None."""
    return ((None if args.recalibrate else _fit_option_error(args) or _text_option_error(args))
            or _calibration_option_error(args) or _out_error(args.out))


def run(args) -> int:
    try:
        args.data = _expand(args.data)
    except ValueError as exc:
        return fail("train", exc)
    for p in args.data:
        if not p.is_file():
            return fail("train", f"{p}: " + ("not a regular file (a directory, FIFO or device): give a CSV file"
                                            if p.exists() else "not found"))
    if (err := _options_error(args)) is not None:
        return fail("train", err)
    if args.recalibrate:
        return recalibrate(args)
    try:
        import torch
    except ImportError as exc:
        return fail("train", f"needs PyTorch: pip install 'edgernn[train]' ({exc})")
    from ..train.pipeline import TrainError, normalisation, train

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        features = _features(args)
        columns = _columns(args, features, named=bool(args.features))
    except ValueError as exc:  # (a RecordingError too)
        return fail("train", exc)
    series = _series(args, features, columns)
    if isinstance(series, int):
        return series
    norm, warmup, _ = normalisation(args, features)
    whose = f"the warm-up ({warmup} readings, the default)" if args.warmup is None else f"--warmup {warmup}: the warm-up"
    if (err := _warmup_error(series, warmup, whose, stream=norm == "stream")) is not None:
        return fail("train", err)
    t_start = time.monotonic()
    try:
        with _staged(args.out) as work:
            summary = train(args, features, series, _command(), work)
    except TrainError as exc:
        return fail("train", exc)
    except OSError as exc:  # a full disk, a read-only file system: found when written (--out as it was)
        return _out_write_failed(args.out, exc, args.data)
    print(f"{'time':24s} {time.monotonic() - t_start:.0f} s")
    return _finish_calibration(args.out, summary, args.strict)
