"""Show a model bundle: features, normalisation, cell, calibration, artifacts and provenance.
The bundle is fully verified on the way (sha256 of every artifact, weight names and shapes).

examples:
  edgernn inspect firmware_models/univariate
  edgernn inspect firmware_models/skab-pump --json
"""

from __future__ import annotations

import json

from ..backends.base import jump_text
from ..logs import first_line
from .common import fail, resolve_model


def add_arguments(p) -> None:
    p.add_argument("model", help="model bundle directory")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")


def run(args) -> int:
    from ..bundle import BundleError, load_bundle

    try:
        b = load_bundle(resolve_model(args.model))
    except BundleError as exc:
        return fail("inspect", exc)
    if args.json:
        print(json.dumps(_json_keys(b.manifest), indent=2, default=str))
        return 0
    lines: list[str] = []
    for key, section in _SECTIONS:  # all of it made before a line is printed
        try:
            lines += section(b)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a hand-edited optional block
            what = f"missing {exc}" if isinstance(exc, KeyError) else \
                f"a value of the wrong type: {first_line(exc)}"
            return fail("inspect", f"{b.path / 'manifest.yaml'}: {key + ': ' if key else ''}cannot be shown ({what}); the bundle "
                        "itself loads (--json prints the manifest as it is)")
    print("\n".join(lines))
    return 0


def _model(b) -> list[str]:
    m = b.manifest
    return ([f"{b.name} {b.version}   ({b.path}, weights sha256 {b.sha256[:16]}…) — verified"]
            + ([f"  {m['description']}"] if m.get("description") else [])
            + [f"features      {', '.join(f'{n} [{u}]' if u else n for n, u in zip(b.features, b.units))}",
               f"normalisation {b.norm_mode}" + (f", adapt {m['normalisation'].get('adapt', 0)}"
                                                  if b.norm_mode == "stream" else ""),
               f"cell          GRU H={b.hidden} ({m['cell'].get('gates', '')}), head {m['head'].get('type', 'gaussian-residual')}"
               + (f" (K={b.components} Gaussians per feature)" if b.components > 1 else "")]
            + ([f"inputs        {jump_text(b.weights)}"] if b.jump else []))


def _calibration(b) -> list[str]:
    from ..train.calibrate import threshold_text

    c, cal = b.manifest["calibration"], b.calibration
    out = [f"calibration   {threshold_text(c)}, warm-up {cal.warmup}, "
           f"target {cal.target_false_alarm_rate * 1e4:g} false alerts per 10,000 readings"]
    if "achieved_false_alarm_rate" in c:
        out.append(f"              held out: {c['calibration_alerts']} alert(s) in {c['calibration_readings']:,} readings = "
                   f"{c['achieved_false_alarm_rate'] * 1e4:.2f} per 10,000" + ("" if c.get("target_met") else " - TARGET NOT MET"))
    return out


def _defaults(b) -> list[str]:
    """The bundle's own detector settings (detector_defaults, over the schema's; a config or the
    command line overrides them), one line; none when it has none."""
    from ..settings import model_defaults

    own = model_defaults(b.manifest, str(b.path / "manifest.yaml"))
    if not own:
        return []
    text = lambda v: f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
    shown = ", ".join(", ".join(f"{k}.{n} {text(w)}" for n, w in v.items()) if isinstance(v, dict) else f"{k} {text(v)}"
                      for k, v in own.items())
    return [f"detector      its defaults: {shown} (over the schema's; edgernn check-config --schema lists them all)"]


def _kinds(b) -> list[str]:
    from ..train.features import describe

    return [f"  kind        {describe(name, facts)}" for name, facts in b.manifest.get("feature_kinds", {}).items()
            if facts.get("kind") != "continuous"]


def _left_out(b) -> list[str]:
    return [f"  left out    {name}: {facts.get('reason', facts.get('kind', ''))}"
            for name, facts in b.manifest.get("left_out_features", {}).items()]


def _warnings(b) -> list[str]:
    return [f"  warning     {w}" for w in _list(b.manifest.get("provenance", {}).get("warnings", []))]


def _artifacts(b) -> list[str]:
    out = ["artifacts"]
    for name, meta in b.manifest["artifacts"].items():
        tol = meta.get("tolerance")
        out.append(f"  {name:22s} {meta.get('size_bytes', 0):>9,} B  sha256 {meta['sha256'][:12]}…"
                   + (f"  tolerance {tol}" if tol is not None else ""))
    return out


def _provenance(b) -> list[str]:
    prov, out = b.manifest.get("provenance", {}), []
    if prov.get("command"):
        out.append(f"made by       {prov['command']}")
    if prov.get("rows"):
        out.append(f"data          {prov['rows']:,} rows in {len(_list(prov.get('data', [])))} file(s); "
                   f"epochs {prov.get('epochs_run')} (best {prov.get('best_epoch')}), "
                   f"val NLL {prov.get('final_val_nll')}")
    return out


def _json_keys(value):
    """The manifest with every mapping key one JSON takes (str, number, bool, null; YAML also allows
    dates: a date key was a TypeError traceback), others as their text."""
    if isinstance(value, dict):
        return {k if isinstance(k, (str, int, float, type(None))) else str(k): _json_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_keys(v) for v in value]
    return value


def _list(value) -> list:
    """A manifest list (warnings, data files); anything else is not one (a string is not iterated)."""
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


# (manifest key, lines): in the order shown
_SECTIONS = (("", _model), ("calibration", _calibration), ("detector_defaults", _defaults), ("feature_kinds", _kinds),
             ("left_out_features", _left_out), ("provenance", _warnings), ("artifacts", _artifacts),
             ("provenance", _provenance))
