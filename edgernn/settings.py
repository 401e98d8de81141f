"""THE schema of the detector and alert settings: each declared once, with its type, default, unit,
valid range and a sentence of help.

Everything else is derived from the declarations below: the ``DetectorSettings`` and
``AlertSettings`` frozen dataclasses (and their range checks), the daemon config's ``pipelines[]``
keys (config.py), the JSON Schema of the config (``edgernn check-config --schema``) and the CLI
flags of ``replay``, ``eval`` and ``serve``. Adding a setting is one ``Setting(...)`` entry.

Precedence when a detector is built (``resolve``): schema default < the model bundle's
``detector_defaults`` (manifest.yaml) < the config file / the command line.

>>> DetectorSettings().seasonal_trust, AlertSettings().cooldown
(0.5, 32)
>>> problems({"seasonal_trust": 2.0})
[('seasonal_trust', '2.0 is out of range: must be in (0, 1] (a variance ratio)')]
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .scoring import CALM_YOUNG, QUIET_MAX, TREND_GRACE

DETECTOR, ALERTS = "detector", "alerts"


@dataclass(frozen=True)
class Setting:
    """One setting. Range bounds: ``ge``/``gt`` (>= / >) below, ``le``/``lt`` (<= / <) above."""

    name: str
    kind: type  # bool | int | float | str
    default: Any
    help: str  # one sentence, what it does (no default, no unit: those are added where shown)
    unit: str = ""  # human unit: "readings", "s", "x", ...
    group: str = DETECTOR
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple = ()
    optional: str = ""  # None allowed; what None means ("the model's calibrated one")
    cli: bool = False  # a flag of replay / eval / serve
    flags: tuple[str, ...] = ()  # flag spellings (default: --name with dashes; alerts: --alerts-name)
    range_help: str = ""  # words after the range in errors: "(a variance ratio)"
    zero_off: bool = False  # 0 (off) is allowed besides the range

    @property
    def key(self) -> str:
        """Dotted name inside a pipeline: ``reference_rows``, ``alerts.k``."""
        return self.name if self.group == DETECTOR else f"{self.group}.{self.name}"

    @property
    def flag_names(self) -> tuple[str, ...]:
        if self.flags:
            return self.flags
        prefix = "--" if self.group == DETECTOR else f"--{self.group}-"
        return (prefix + self.name.replace("_", "-"),)

    def range_text(self) -> str:
        """``in (0, 1]``, ``>= 0``, ... ('' when unbounded)."""
        text = bounds_text(self.ge, self.gt, self.le, self.lt)
        return f"0 (off) or {text}" if self.zero_off and text else text

    def describe(self) -> str:
        """Help with unit, range and default: for --help and JSON Schema descriptions."""
        rng = self.range_text()
        unit = f" [{self.unit}]" if self.unit else ""
        if self.default is None and not self.optional:
            return f"{self.help}{unit} (required{'; ' + rng if rng else ''})"
        default = self.optional if self.default is None else _show(self.default)
        return f"{self.help}{unit} ({rng + '; ' if rng else ''}default: {default})"

    def problem(self, value) -> str | None:
        """What is wrong with ``value`` for this setting, or None."""
        if value is None:
            return None if self.optional else "must be set (None is not allowed)"
        want = {int: numbers.Integral, float: numbers.Real}.get(self.kind, self.kind)  # numpy scalars too
        if not isinstance(value, want) or (isinstance(value, bool) and self.kind is not bool):
            return f"expected {_TYPE_WORDS[self.kind]}, got {_kind(value)}"
        if self.choices and value not in self.choices:
            return f"{value!r} is not one of: {', '.join(map(str, self.choices))}"
        if self.kind in (int, float) and not self._in_range(value):
            words = f" {self.range_help}" if self.range_help else ""
            return f"{value!r} is out of range: must be {self.range_text()}{words}"
        return None

    def _in_range(self, v) -> bool:
        return (self.zero_off and v == 0) or in_bounds(v, self.ge, self.gt, self.le, self.lt)

    def json_schema(self) -> dict:
        """This setting as a JSON Schema (draft 2020-12) property."""
        kind = {bool: "boolean", int: "integer", float: "number", str: "string"}[self.kind]
        s: dict = {"type": [kind, "null"] if self.optional else kind, "description": self.describe()}
        if self.default is not None:
            s["default"] = self.default
        bounds = {word: bound for word, bound in (("minimum", self.ge), ("exclusiveMinimum", self.gt),
                                                  ("maximum", self.le), ("exclusiveMaximum", self.lt)) if bound is not None}
        s.update({"anyOf": [{"const": 0}, bounds]} if self.zero_off and bounds else bounds)
        if self.choices:
            s["enum"] = list(self.choices)
        return s


def in_bounds(v, ge=None, gt=None, le=None, lt=None) -> bool:
    """``v`` is a finite number and >= ge, > gt, <= le, < lt (the bounds given): the one range check of
    settings, manifest numbers (bundle.py) and command-line numbers (commands/common.py)."""
    return (math.isfinite(v) and (ge is None or v >= ge) and (gt is None or v > gt)
            and (le is None or v <= le) and (lt is None or v < lt))


def bounds_text(ge=None, gt=None, le=None, lt=None) -> str:
    """``in (0, 1]``, ``>= 0``, ``< 1``, ... of the bounds given ('' when unbounded)."""
    lo = ("[", ge) if ge is not None else ("(", gt) if gt is not None else None
    hi = ("]", le) if le is not None else (")", lt) if lt is not None else None
    if lo and hi:
        return f"in {lo[0]}{lo[1]:g}, {hi[1]:g}{hi[0]}"
    if lo:
        return f"{'>=' if lo[0] == '[' else '>'} {lo[1]:g}"
    if hi:
        return f"{'<=' if hi[0] == ']' else '<'} {hi[1]:g}"
    return ""


_TYPE_WORDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _kind(v) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "nothing"}.get(type(v), type(v).__name__)


def _show(v) -> str:
    return ("on" if v else "off") if isinstance(v, bool) else f"{v:g}" if isinstance(v, float) else str(v)


S = Setting
SETTINGS: tuple[Setting, ...] = (
    # -- when a reading counts ------------------------------------------------------------------
    S("threshold", float, None, "likelihood over which a reading is anomalous", gt=0, le=1, cli=True,
      optional="the model's calibrated one", range_help="(a likelihood)"),
    S("max_streams", int, 10_000, "live streams kept; the least recently seen is evicted beyond", "streams", ge=1,
      le=10_000_000, range_help="(every stream's state is allocated up front, about 1 KB each: "
      "10 million is already about 10 GB per pipeline)"),
    S("warmup", int, None, "readings per stream before its scores count", "readings", ge=0, cli=True,
      optional="the model's"),
    S("settle", int, 16, "readings after a hidden-state reset before scores count again", "readings", ge=0, cli=True),
    S("max_gap_s", float, None, "a longer silence resets the stream's hidden state", "s", gt=0, cli=True,
      optional="never", flags=("--max-gap", "--max-gap-s")),
    S("adapt", float, None, "EW rate at which a stream model's normalisation follows the stream after warm-up",
      "per reading", ge=0, lt=1, cli=True, optional="the model's"),
    # -- the statistics each stream keeps -------------------------------------------------------
    S("min_std", float, 1e-6, "floor on a stream's standard deviation", "raw units", gt=0),
    S("min_rel_std", float, 1e-3, "floor on a stream's standard deviation relative to |mean|", "x |mean|", ge=0),
    S("repeat_memory", float, 1000.0, "readings a stream's own statistics remember (stuck, level, spread)",
      "readings", ge=1),
    S("learn_surprise", float, None, "surprise (-log10 p) that decides what a stream learns from, apart from the "
      "alert threshold: readings at or above its clear level (clear_factor hysteresis) are not learned from",
      "-log10 p", gt=0, cli=True, optional="the model's calibration.learn_surprise, else the alert threshold"),
    S("relearn_after", int, 256, "readings a stream may stay above the clear level before its statistics "
      "learn again (accepts a genuine change of regime)", "readings", ge=1),
    S("fast_window", float, 128.0, "readings in the short EW window of the level and spread looks", "readings", ge=1),
    S("level_settle", float, 0.0, "the level and spread looks stay silent until their own statistics have learned "
      "from this many fast windows (their EW mean is correlated over about 2 windows: younger estimates of its "
      "spread are too narrow; 0: off)", "x fast_window", ge=0),
    S("weight_memory", float, 0.0, "a mixture head (K > 1): each stream corrects the weights the model gives its "
      "components by how often each explains the stream's own readings (an online EM step per reading, over about "
      "this many readings, at most one decade either way): a wide catch-all fades on a quiet stream, so a jump "
      "it used to absorb surprises, while the other level of an on/off signal keeps its weight",
      "readings", ge=2, zero_off=True),
    S("stuck_runs", bool, False, "the stuck look scores a run of exact repeats at the value the stream's last run "
      "of 4 or more equal readings held by the stream's own runs (runs as a two-state chain: how often runs start, "
      "how often they go on) instead of its repeat rate alone; the run counts then learn from every reading. For "
      "streams whose values repeat exactly in the ordinary course: a meter that reads 0 when its load is off, a "
      "quantised slow sensor. A value held anywhere else is still a stuck sensor, but a meter dead at its off "
      "value is not reported by the stuck look. 12 more bytes per stream and feature. Off by default: it costs "
      "NAB points (docs/QUALITY.md, 'candidate C as a setting')", cli=True),
    S("calm_memory", float, 0.0, "univariate models: a calm stream, one with no step from one reading to the next "
      f"over 4 sd of its own steps in its last this many readings (a younger stream: in its whole life, at least "
      f"{CALM_YOUNG:g} readings), is also scored by its step's size in those sd "
      "(in the instant look: the chance of a step that large, a Gaussian tail, anywhere in this many readings): a "
      "spike on a smooth sensor is news there however the model explains it, while a stream that steps (an on/off "
      "signal, counts) is scored by the model alone; on a calm stream (or one whose calm a step ended in its last "
      f"{TREND_GRACE:g} readings) the mean residual against a smoothed level and trend is scored too (in the smoothed look), so "
      "a level shift too small to be a step alerts", "readings", ge=2, le=1e6, zero_off=True),
    S("level_memory", float, 0.0, "a mixture head (K > 1): each stream keeps two levels of its own (online 2-means "
      "of its normalised readings, each learned only from readings at it) and, once it has stayed 30 readings in a "
      "row at each, scores a reading under the model's mixture blended with the level it is not at, the blend's "
      "weight learned over about this many readings (an online EM step): an on/off signal's switch back to a level "
      "it left a few hundred readings ago is expected even where the GRU has forgotten it, while a spike, a third "
      "level or levels visited only in short bursts are scored by the model alone. 24 more bytes per stream and "
      "feature. Off by default: it would take the shipped univariate stream past issue 10's 800 bytes "
      "(docs/QUALITY.md, 'a level memory that scores a level only after the stream has stayed there')",
      "readings", ge=2, le=1e6, zero_off=True, cli=True),
    # -- the onset ------------------------------------------------------------------------------
    S("onset_ratio", float, 2.0, "a look's surprise must exceed this multiple of its last onset's (decaying) "
      "surprise to be an onset again", "x", ge=1),
    S("onset_rearm", int, 225, "scored readings a look must stay quiet to end its episode (0: never; at most 256, "
      "the count is kept in 8 bits)", "readings", ge=0, le=QUIET_MAX + 1),
    S("onset_quiet", float, 1.5, "surprise below which a look counts as quiet", "-log10 p", ge=0),
    S("onset_memory", float, 5000.0, "scored readings over which a stream's onset rates are remembered", "readings",
      ge=1),
    S("onset_weight", float, 0.99, "weight of the stream's own onset rate against the model's tail", "", ge=0, lt=1),
    S("alert_rate_weight", float, 0.0, "the alert path's surprise is capped at -log10(w r), r the stream's own "
      "(debiased) rate of onsets at least that surprising: what this stream does often does not alert (0: off)",
      "", ge=0),
    S("echo_decades", float, 0.0, "models with a training reference: the smoothed and spread looks count at most "
      "this many decades of p beyond the present reading's own evidence, so a fault that has ended does not echo "
      "(0: off)", "decades", ge=0),
    S("range_surprise", float, 100.0, "onset surprise per unit of excess beyond the stream's range (0: off)",
      "per std", ge=0),
    # -- the reference look ---------------------------------------------------------------------
    S("reference_rows", int, 0, "compare each stream with its own first N readings, taken as known-good "
      "(the reference look; 0: off)", "readings", ge=0, cli=True),
    S("reference_window", float, 8.0, "readings in the reference look's short EW mean", "readings", ge=1, cli=True),
    S("reference_drift", float, 0.0, "the reference look allows each feature to drift on at this multiple of its "
      "slope over the reference rows (0: off)", "x slope", ge=0, cli=True),
    S("reference_peak", float, 0.0, "after the reference rows a feature counts only while its z is at least this "
      "fraction of its fading peak z (0: off)", "", ge=0, lt=1, cli=True),
    # -- the seasonal look ----------------------------------------------------------------------
    S("seasonal", bool, True, "the seasonal (time-of-day) look and its AND-gate, univariate models only",
      cli=True),
    S("seasonal_trust", float, 0.5, "the seasonal look acts where its profile's residual variance is below this "
      "fraction of the day-scale variance", "", gt=0, le=1, cli=True, range_help="(a variance ratio)"),
    S("day_offset_s", float, 0.0, "seconds added to timestamps for the time of day and weekday (local time for "
      "UTC timestamps, e.g. 3600 for CET)", "s", ge=-7 * 86400, le=7 * 86400, cli=True,
      flags=("--day-offset", "--day-offset-s"), range_help="(at most a week either way)"),
    # -- time (live daemon: Detector.process(batch, now=wall clock)) ------------------------------
    S("max_future_s", float, 30 * 86400.0, "readings further ahead of the wall clock are rejected 'future' (the "
      "daemon sets it from limits.max_future_s)", "s", gt=0),
    S("clock_skew_s", float, 5.0, "no reading moves a stream's clock beyond the wall clock + this, so one far-future "
      "timestamp cannot lock the stream out", "s", ge=0),
    # -- the alert state machine (alerts.py) ----------------------------------------------------
    S("k", int, 1, "raise when k of the last n readings are over the threshold", "readings", ALERTS, ge=1, le=16,
      cli=True),
    S("n", int, 1, "the window of the k-of-n raise rule", "readings", ALERTS, ge=1, le=16, cli=True),
    S("clear_after", int, 16, "readings in a row below the clear level that end an alert", "readings", ALERTS,
      ge=0, cli=True),
    S("clear_factor", float, 100.0, "the clear level's tail probability is this multiple of the threshold's "
      "(hysteresis)", "x", ALERTS, ge=1),
    S("min_duration", int, 1, "readings an alert stays active at least before it clears", "readings", ALERTS, ge=0),
    S("cooldown", int, 32, "readings after a clear before the same stream can raise again", "readings", ALERTS,
      ge=0, cli=True),
    S("update_factor", float, 4.0, "an 'update' event when the score exceeds the last event's by this factor", "x",
      ALERTS, gt=1),
    S("update_gap", int, 16, "readings at least between two events of one alert", "readings", ALERTS, ge=0),
    S("max_duration", int, 1440, "an alert active this long clears as 'new_normal' and the stream learns its new "
      "level (0: never)", "readings", ALERTS, ge=0, cli=True),
)
del S
BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}


def group(name: str) -> tuple[Setting, ...]:
    return tuple(s for s in SETTINGS if s.group == name)


def _cross_problems(values: Mapping, grp: str) -> list[tuple[str | None, str]]:
    """Rules that tie several settings together (name None: the group as a whole)."""
    if grp == ALERTS:
        k, n = values.get("k", 1), values.get("n", 1)
        if isinstance(k, int) and isinstance(n, int) and k > n:
            return [(None, f"need k <= n (k={k} of the last n={n} readings)")]
    return []


def problems(values: Mapping, grp: str = DETECTOR) -> list[tuple[str | None, str]]:
    """Every problem of a settings mapping of one group: ``[(name or None, message), ...]``.
    Unknown names, types, ranges and cross-setting rules; [] when all is well."""
    known = {s.name: s for s in group(grp)}
    out: list[tuple[str | None, str]] = []
    for name, value in values.items():
        if grp == DETECTOR and name == ALERTS:
            out += [(f"{ALERTS}.{n}" if n else ALERTS, m) for n, m in problems(_as_dict(value), ALERTS)]
        elif name not in known:
            out.append((name, f"unknown setting{did_you_mean(str(name), known)}"))
        elif (msg := known[name].problem(value)) is not None:
            out.append((name, msg))
    return out + _cross_problems(values, grp)


def check(values: Mapping, grp: str = DETECTOR) -> None:
    """Raise one ValueError naming every problem (``name: message; ...``)."""
    found = problems(values, grp)
    if found:
        prefix = "" if grp == DETECTOR else f"{grp}."
        raise ValueError("; ".join(f"{prefix}{n}: {m}" if n else f"{grp}: {m}" for n, m in found))


def did_you_mean(word: str, allowed: Iterable[str]) -> str:
    import difflib

    m = difflib.get_close_matches(word, list(allowed), n=1)
    return f" (did you mean {m[0]!r}?)" if m else ""


def _as_dict(v) -> dict:
    if dataclasses.is_dataclass(v):
        return dataclasses.asdict(v)
    return dict(v)


# -- the dataclasses, built from the declarations ------------------------------------------------
def _validate(self) -> None:
    values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
    check(values, self._group)


def dataclass_of(name: str, keys: Iterable[Setting], doc: str, extra: Iterable = (), module: str = __name__,
                 **namespace):
    """A frozen dataclass with one field per declared key (its type and default), plus ``extra`` fields."""
    fields_ = [(s.name, s.kind if s.default is not None else (s.kind | None), field(default=s.default)) for s in keys]
    cls = dataclasses.make_dataclass(name, fields_ + list(extra), frozen=True, namespace={"__doc__": doc, **namespace})
    cls.__module__ = module
    return cls


AlertSettings = dataclass_of("AlertSettings", group(ALERTS), "The alert state machine's settings (alerts.py); "
                             "declared in edgernn.settings.SETTINGS.", __post_init__=_validate, _group=ALERTS)
DetectorSettings = dataclass_of("DetectorSettings", group(DETECTOR), "Every detector setting; declared in "
                                "edgernn.settings.SETTINGS.",
                                [(ALERTS, AlertSettings, field(default_factory=AlertSettings))],
                                __post_init__=_validate, _group=DETECTOR)


def build(values: Mapping) -> "DetectorSettings":
    """DetectorSettings from a mapping (``alerts`` may be a mapping too); ValueError names every problem."""
    values = dict(values)
    check(values)
    if ALERTS in values:
        values[ALERTS] = AlertSettings(**_as_dict(values[ALERTS]))
    return DetectorSettings(**values)


def merge(*layers: Mapping) -> dict:
    """Later layers win; ``alerts`` mappings are merged key by key."""
    out: dict = {}
    for layer in layers:
        for k, v in layer.items():
            out[k] = {**out.get(k, {}), **_as_dict(v)} if k == ALERTS else v
    return out


def model_defaults(manifest: Mapping, where: str = "manifest.yaml") -> dict:
    """A bundle manifest's ``detector_defaults`` (validated); ValueError names the manifest and every key."""
    raw = manifest.get("detector_defaults") or {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: detector_defaults: expected a mapping of setting: value")
    found = problems(raw)
    if found:
        from .yamlpos import file_line

        lines = _lines_of(where)
        raise ValueError("; ".join(f"{file_line(where, lines, f'detector_defaults.{n or ALERTS}')}: "
                                   f"detector_defaults.{n or ALERTS}: {m}" for n, m in found))
    return dict(raw)


def write_model_defaults(bundle_dir, overrides: Mapping) -> dict:
    """Merge ``overrides`` over a bundle's ``detector_defaults`` (an ``alerts`` mapping key by key; a
    top-level value of None removes that setting), check the result against the schema (ValueError:
    nothing written) and write its manifest; returns the new defaults. For benchmarks and
    experiments on a copy of a bundle (the manifest is not hashed)."""
    from .bundle import load_bundle, write_manifest

    manifest = dict(load_bundle(bundle_dir).manifest)
    merged = {k: v for k, v in merge(model_defaults(manifest), overrides).items() if v is not None}
    try:
        check(merged)
    except ValueError as exc:
        raise ValueError(f"{bundle_dir}: detector_defaults (not written): {exc}") from None
    manifest["detector_defaults"] = merged
    write_manifest(bundle_dir, manifest)
    return merged


def _lines_of(path: str) -> dict:
    """Line of every key path of a YAML file ({} when it cannot be read), for error messages."""
    from pathlib import Path

    from .yamlpos import yaml_lines

    try:
        return yaml_lines(Path(path).read_text(encoding="utf-8"), path)[1]
    except (OSError, ValueError):
        return {}


def resolve(bundle, overrides: Mapping = (), where: str | None = None) -> "DetectorSettings":
    """The settings a detector on ``bundle`` runs with: schema defaults < the bundle's
    ``detector_defaults`` < ``overrides`` (config or command line)."""
    manifest = getattr(bundle, "manifest", None) or {}
    path = getattr(bundle, "path", None)
    defaults = model_defaults(manifest, where or (f"{path}/manifest.yaml" if path else "manifest.yaml"))
    return build(merge(defaults, dict(overrides)))
