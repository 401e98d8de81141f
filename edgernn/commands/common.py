"""Arguments and loading shared by the commands that run a detector.

The detector-setting flags of replay, eval and serve are derived from ``edgernn.settings``
(``add_setting_arguments``): name, type, unit, range and default come from the declaration, so a
setting exposed there is a flag everywhere, spelled the same.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from ..fileio import target_problem


def fail(command: str, message) -> int:
    """One clear line on stderr, exit code 2."""
    print(f"edgernn {command}: {message}", file=sys.stderr)
    return 2


def number_problem(flag: str, value, ge=None, gt=None, le=None, lt=None) -> str | None:
    """What is wrong with a number given on the command line, as one line naming the flag, or None
    (also for an unset value): NaN / inf, or outside the range ``ge`` / ``gt`` (>= / >) below and
    ``le`` / ``lt`` (<= / <) above: ``--lr must be above 0 (got -1.0)``, ``--seconds must be a
    finite number (got inf)``, ``--holdout must be between 0.05 and 0.8 (got 0.95)``."""
    if value is None:
        return None
    from ..settings import in_bounds

    if isinstance(value, float) and not math.isfinite(value):
        return f"{flag} must be a finite number (got {value})"
    if in_bounds(value, ge, gt, le, lt):
        return None
    return f"{flag} must be {_range_words(ge, gt, le, lt)} (got {value})"


def _range_words(ge, gt, le, lt) -> str:
    """``at least 1``, ``above 0``, ``at most 1024``, ``between 0.05 and 0.8``, ``in (0, 1)``."""
    ge, gt, le, lt = (f"{v:g}" if isinstance(v, float) else v for v in (ge, gt, le, lt))
    if ge is not None and le is not None:
        return f"between {ge} and {le}"
    low, high = (ge, gt) != (None, None), (le, lt) != (None, None)
    if low and high:
        return f"in {'[' if ge is not None else '('}{gt if ge is None else ge}, {lt if le is None else le}" \
               f"{']' if le is not None else ')'}"
    if low:
        return f"at least {ge}" if ge is not None else f"above {gt}"
    return f"at most {le}" if le is not None else f"below {lt}"


def output_problem(flag: str, path, make_dirs: bool = False) -> str | None:
    """One line when the file ``path`` given as ``flag`` could not be written (fileio.target_problem:
    a directory, its directory missing or not writable, read-only), else None: checked before a run,
    so that a long run does not end in a traceback. (A full disk is only found when written: see
    ``write_problem``.)"""
    why = target_problem(path, make_dirs=make_dirs)
    if why is None:
        return None
    hint = " (give a file name)" if why == "is a directory" else ""
    return f"{flag} {Path(path)}: {why}{hint}"


def write_problem(flag: str, path, exc: OSError) -> str:
    """One line for a failed write of ``path`` (an OSError: disk full, permission, ...)."""
    return f"{flag} {path}: cannot write: {exc.strerror or exc}"


def add_model_arguments(p, default_model: str | None = "univariate", exclude=()) -> None:
    """--model, --backend and every detector-setting flag (``exclude``: setting keys a command sets itself)."""
    from ..backends import BACKEND_NAMES

    p.add_argument("--model", default=default_model, help="model bundle directory, or a shipped model's name (default: %(default)s)")
    p.add_argument("--backend", default="numpy", choices=BACKEND_NAMES, help="inference backend (default: numpy)")
    add_setting_arguments(p, exclude=exclude)


PRECEDENCE = "precedence: the schema default < the model's detector_defaults < these flags"


def add_setting_arguments(p, exclude=(), title: str = "detector settings", note: str = PRECEDENCE) -> None:
    """One flag per setting the schema exposes (``Setting.cli``); unset flags leave the value to the model."""
    from ..settings import SETTINGS

    g = p.add_argument_group(title, note)
    for s in SETTINGS:
        if not s.cli or s.key in exclude:
            continue
        metavar = {"readings": "N", "s": "SECONDS"}.get(s.unit, "N" if s.kind is int else "X")
        kw = dict(choices=("on", "off"), metavar="on|off") if s.kind is bool else dict(type=s.kind, metavar=metavar)
        g.add_argument(*s.flag_names, dest=_dest(s), default=None, help=s.describe().replace("%", "%%"), **kw)


def _dest(s) -> str:
    return s.key.replace(".", "_")


def settings_from_args(args, command: str) -> dict:
    """The setting flags given on the command line as a settings mapping (``alerts`` nested);
    a value out of range exits with one line naming the flag."""
    from ..settings import ALERTS, SETTINGS

    out: dict = {}
    for s in SETTINGS:
        v = getattr(args, _dest(s), None) if s.cli else None
        if v is None:
            continue
        v = (v == "on") if s.kind is bool else v
        problem = s.problem(v)
        if problem:
            raise SystemExit(fail(command, f"{s.flag_names[0]}: {problem}"))
        if s.group == ALERTS:
            out.setdefault(ALERTS, {})[s.name] = v
        else:
            out[s.name] = v
    return out


def load_detector(args, command: str = "replay", **settings):
    """Bundle + backend + Detector from the common arguments; exits with one line on failure.
    Settings: schema default < the model's detector_defaults < the flags < ``settings`` (the command's own)."""
    from ..backends import BackendUnavailable, create_backend
    from ..bundle import BundleError, load_bundle
    from ..detector import Detector
    from ..settings import merge, resolve

    given = merge(settings_from_args(args, command), settings)
    try:
        bundle = load_bundle(resolve_model(args.model))
        backend = create_backend(args.backend, bundle)
        return Detector(bundle, backend, resolve(bundle, given))
    except (BundleError, BackendUnavailable, ValueError) as exc:
        raise SystemExit(fail(command, exc)) from None


def build_pipelines(cfg, command: str) -> tuple[list, int]:
    """Every pipeline of a loaded config (model, backend, settings); each failure printed as
    ``FILE:LINE: pipelines[i].key: message``. Returns (pipelines built, number of failures)."""
    from ..daemon import PipelineError, build_pipeline

    pipes, errors = [], 0
    for i, p in enumerate(cfg.pipelines):
        try:
            pipes.append(build_pipeline(cfg, p, cfg.limits))
        except PipelineError as exc:
            key = f"pipelines[{i}].{exc.key}"
            print(f"{command}: {cfg.where(key)}: {key}: {exc}", file=sys.stderr)
            errors += 1
    return pipes, errors


def settings_origin(pipe) -> str:
    """The settings of a built pipeline that differ from the schema's defaults, each with where it
    came from: ``reference_rows=400 (config), reference_drift=0.5 (model)``."""
    from dataclasses import asdict

    from ..settings import DetectorSettings, model_defaults

    def flat(d, prefix=""):
        return {f"{prefix}{k}": v for k, v in d.items() if k != "alerts"} | (
            flat(d["alerts"], "alerts.") if isinstance(d.get("alerts"), dict) else {})

    now, default = flat(asdict(pipe.detector.settings)), flat(asdict(DetectorSettings()))
    given, model = flat(pipe.cfg.settings), flat(model_defaults(pipe.bundle.manifest))
    changed = [k for k, v in now.items() if v != default[k]]
    value = {k: f"{now[k]:g}" if isinstance(now[k], float) else str(now[k]) for k in changed}
    origin = {k: "config" if k in given else "model" if k in model else "default" for k in changed}
    return ", ".join(f"{k}={value[k]} ({origin[k]})" for k in changed) or "the defaults"


def resolve_model(path: str):
    """A bundle directory from a path or a shipped model's name (ModelNotFound lists the names)."""
    from ..models import find_model

    return find_model(path)
