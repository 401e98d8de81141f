"""Show a model bundle: features, normalisation, cell, calibration, artifacts and provenance.
The bundle is fully verified on the way (sha256 of every artifact, weight names and shapes).

examples:
  edgernn inspect firmware_models/univariate
  edgernn inspect firmware_models/skab-pump --json
"""

from __future__ import annotations

import json

from .common import fail, resolve_model


def add_arguments(p) -> None:
    p.add_argument("model", help="model bundle directory")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")


def run(args) -> int:
    from ..bundle import BundleError, load_bundle
    from ..train.calibrate import threshold_text
    from ..train.features import describe

    try:
        b = load_bundle(resolve_model(args.model))
    except BundleError as exc:
        return fail("inspect", exc)
    if args.json:
        print(json.dumps({k: v for k, v in b.manifest.items()}, indent=2, default=str))
        return 0
    m, cal = b.manifest, b.calibration
    print(f"{b.name} {b.version}   ({b.path}, weights sha256 {b.sha256[:16]}…) — verified")
    if m.get("description"):
        print(f"  {m['description']}")
    print(f"features      {', '.join(f'{n} [{u}]' if u else n for n, u in zip(b.features, b.units))}")
    print(f"normalisation {b.norm_mode}" + (f", adapt {m['normalisation'].get('adapt', 0)}" if b.norm_mode == "stream" else ""))
    print(f"cell          GRU H={b.hidden} ({m['cell'].get('gates', '')}), head {m['head']['type']}"
          + (f" (K={b.components} Gaussians per feature)" if b.components > 1 else ""))
    print(f"calibration   {threshold_text(m['calibration'])}, warm-up {cal.warmup}, "
          f"target {cal.target_false_alarm_rate * 1e4:g} false alerts per 10,000 readings")
    if "achieved_false_alarm_rate" in m["calibration"]:
        c = m["calibration"]
        print(f"              held out: {c['calibration_alerts']} alert(s) in {c['calibration_readings']:,} readings = "
              f"{c['achieved_false_alarm_rate'] * 1e4:.2f} per 10,000" + ("" if c.get("target_met") else " - TARGET NOT MET"))
    for name, facts in m.get("feature_kinds", {}).items():
        if facts.get("kind") != "continuous":
            print(f"  kind        {describe(name, facts)}")
    for name, facts in m.get("left_out_features", {}).items():
        print(f"  left out    {name}: {facts.get('reason', facts.get('kind', ''))}")
    for w in m.get("provenance", {}).get("warnings", []):
        print(f"  warning     {w}")
    print("artifacts")
    for name, meta in m["artifacts"].items():
        tol = meta.get("tolerance")
        print(f"  {name:22s} {meta.get('size_bytes', 0):>9,} B  sha256 {meta['sha256'][:12]}…" + (f"  tolerance {tol}" if tol is not None else ""))
    prov = m.get("provenance", {})
    if prov.get("command"):
        print(f"made by       {prov['command']}")
    if prov.get("rows"):
        print(f"data          {prov['rows']:,} rows in {len(prov.get('data', []))} file(s); "
              f"epochs {prov.get('epochs_run')} (best {prov.get('best_epoch')}), "
              f"val NLL {prov.get('final_val_nll')}")
    return 0
