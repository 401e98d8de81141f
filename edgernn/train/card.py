"""The model card: ``README.md`` in a bundle, written from its manifest (and, for the shipped
models, measured speed and quality JSON). ``edgernn train`` writes one for every bundle;
``benchmarks/model_card.py`` adds the benchmark sections for the bundles in firmware_models/.

Every number comes from the manifest or is measured when the card is written (parity)."""

from __future__ import annotations

import json
from pathlib import Path

from .. import scoring
from ..backends.base import jump_text
from ..bundle import FILE_MODE, RELATION_FILE, load_bundle
from ..fileio import atomic_write
from .calibrate import one_in, threshold_text
from .features import HANDLING

GENERATED = {"weights.npz", "golden.npz", "representative.npz"}  # what training writes itself
REFRESHABLE = "<!-- made from manifest.yaml by edgernn; `edgernn export` rewrites it -->"
INT8_NOTE = ("`model.int8.onnx`: onnxruntime static QDQ on the MatMuls, int8 weights per output channel with 16-bit "
             "activations (fixed scales, so a row's result never depends on the rest of its batch). "
             "`model.int8.tflite` and `model_data.cc` (TFLite Micro): int8 weights (one scale per output row) with "
             "16-bit activations, float32 input and output (by default; `edgernn export --help`).")


def _fmt_span(seconds) -> str:
    if not seconds:
        return "no timestamps"
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:,.0f} s"


def _summary(b) -> list[str]:
    """What it is, and the warnings first: a card is read top-down."""
    m, cal = b.manifest, b.manifest["calibration"]
    prov = m.get("provenance", {})
    L = []
    if cal.get("target_met") is False:
        L += [f"> **Calibration did not meet its target.** {cal['calibration_alerts']} alert(s) in "
              f"{cal['calibration_readings']:,} held-out normal readings = "
              f"{cal['achieved_false_alarm_rate'] * 1e4:.2f} per 10,000 against a target of "
              f"{cal['target_false_alarm_rate'] * 1e4:.2f}, even at the highest threshold tried: expect more "
              f"false alerts than asked for (see the warnings and the feature table).", ""]
    for w in prov.get("warnings", []):
        L.append(f"* **Warning:** {w}")
    if prov.get("warnings"):
        L.append("")
    L += ["## What it is", "",
          f"* Cell: GRU, H = {b.hidden}, PyTorch gate convention; " + (
              "Gaussian residual head (mean and log-variance of the next reading)" if b.components == 1 else
              f"mixture residual head: {b.components} Gaussians per feature (means, log-variances and mixture "
              "weights of the next reading; a reading's surprise is its two-sided tail under the whole mixture)")
          + (f". It reads {jump_text(b.weights)}" if b.jump else "")
          + f". Parameters: {sum(w.size for w in b.weights.values()):,}; weights sha256 `{b.sha256}`",
          f"* Normalisation: `{b.norm_mode}`" + (
              f" — learned per stream during the first {b.calibration.warmup} readings, then adapted at rate "
              f"{m['normalisation'].get('adapt', 0)} from non-alerting readings" if b.norm_mode == "stream"
              else " — the training part's mean and std (see the feature table)"), ""]
    return L


def _features(b) -> list[str]:
    kinds = b.manifest.get("feature_kinds", {})
    ranges = b.manifest.get("provenance", {}).get("extent", {}).get("ranges", {})
    L = ["## Features", "", "| feature | unit | kind | range in the data | mean / std used | handling |",
         "|---|---|---|---|---|---|"]
    for i, (name, unit) in enumerate(zip(b.features, b.units)):
        k = kinds.get(name, {})
        lo_hi = ranges.get(name)
        rng = f"{lo_hi[0]:g} .. {lo_hi[1]:g}" if lo_hi else "-"
        norm = f"{b.norm_mean[i]:.4g} / {b.norm_std[i]:.4g}" if b.norm_mode == "fixed" else "per stream"
        kind = f"{k['kind']} ({k['distinct']:,} distinct)" if k else "not classified (trained before feature kinds)"
        L.append(f"| `{name}` | {unit} | {kind} | {rng} | {norm} | {HANDLING.get(k.get('kind'), '-')} |")
    for name, facts in b.manifest.get("left_out_features", {}).items():
        lo_hi = ranges.get(name)
        rng = f"{lo_hi[0]:g} .. {lo_hi[1]:g}" if lo_hi else "-"
        L.append(f"| `{name}` | | {facts['kind']} ({facts.get('distinct', 0):,} distinct) | {rng} | - | "
                 f"**left out of the model**: {facts.get('reason', '')} |")
    return L + [""]


def _data(b) -> list[str]:
    prov = b.manifest.get("provenance", {})
    ext = prov.get("extent", {})
    split = prov.get("split", {})
    L = ["## Data and command", "", "| file | rows | sha256 |", "|---|---:|---|"]
    for d in prov.get("data", []):
        L.append(f"| `{d['file']}` | {d.get('rows', 0):,} | `{d['sha256']}` |")
    L.append("")
    if ext and split:
        L += [f"{ext['rows']:,} rows in {ext['series']} series, spanning {_fmt_span(ext.get('time_span_s'))}. "
              f"Each series split in time: the first {split['train']} trains; the last {split['held_out']} is held "
              f"out (early stopping, score tables, alert threshold; never trained on).", ""]
    L += ["```sh", prov.get("command", "?")]
    if prov.get("calibration_command"):
        L.append(prov["calibration_command"] + "   # recalibration")
    L += ["```", ""]
    return L


def _calibration_and_fit(b) -> list[str]:
    cal, prov = b.manifest["calibration"], b.manifest.get("provenance", {})
    s = cal.get("threshold_surprise")
    L = ["## Calibration and fit", ""]
    if s is not None:
        L += [f"* Alert threshold: surprise {s:.2f} (-log10 p; a combined tail probability of {one_in(s)})",
              f"* Held-out part (run as new streams): {cal.get('calibration_alerts', '?')} alert(s) in "
              f"{cal.get('calibration_readings', 0):,} normal readings = "
              f"{cal.get('achieved_false_alarm_rate', 0) * 1e4:.2f} per 10,000; target "
              f"{cal['target_false_alarm_rate'] * 1e4:.2f} per 10,000 (chosen for half of it) - "
              + ("**met**" if cal.get("target_met") else "**not met**")]
        if cal.get("calibration_note"):
            L.append(f"* **Note:** {cal['calibration_note']}")
        ls = cal.get("learn_surprise")
        if ls is not None and ls != s:
            L.append(f"* What a stream learns from: readings under the clear level of surprise {ls:.2f} ({one_in(ls)}, the "
                     f"threshold for {cal.get('learn_false_alarm_rate', 0) * 1e4:.2f} false alerts per 10,000), "
                     "whatever the alert threshold")
    else:
        L += [f"* Alert {threshold_text(cal)} (calibrated before surprise thresholds); "
              f"{cal.get('calibration_alerts', '?')} alert(s) in {cal.get('calibration_readings', 0):,} readings"]
    gate = cal.get("reference_gate")
    if gate:
        L.append(f"* Training reference: a feature is measured from a stream's own warm-up mean only when that mean "
                 f"sits farther from the training mean than any {cal['warmup']}-reading window of the normal data "
                 f"calibrated on did ({min(gate):.2f} to {max(gate):.2f} sd over the features; "
                 "calibration.reference_gate), else from the training mean")
    rel = b.relation
    if rel is not None:
        L.append(f"* Relation look: {len(rel['features'])} features each modelled from the others at the same reading "
                 f"(ridge regression on the training part; residual sd {rel['resid_std'].min():.2f} to "
                 f"{rel['resid_std'].max():.2f} of the feature's sd; {RELATION_FILE}); "
                 + ("its table is calibrated" if scoring.RELATION in cal.get("tables", {})
                    else "**no table: not in use**"))
    L += [f"* Warm-up: {cal['warmup']} readings per stream before scores count",
          f"* Fit: {prov.get('epochs_run')} epochs (best {prov.get('best_epoch')}); "
          f"{'mixture' if b.components > 1 else 'Gaussian'} NLL per value, "
          f"train {prov.get('final_train_nll')} / validation {prov.get('final_val_nll')}; "
          f"torch {prov.get('torch')}, seed {prov.get('seed')}", ""]
    if (b.path / "loss_curve.png").exists():
        L += ["![loss curve](loss_curve.png)", ""]
    return L


def _artifacts(b) -> list[str]:
    L = ["## Artifacts", "", "| file | bytes | sha256 | purpose |", "|---|---:|---|---|"]
    for name, meta in b.manifest["artifacts"].items():
        L.append(f"| `{name}` | {meta.get('size_bytes', 0):,} | `{meta['sha256'][:16]}…` | {meta.get('purpose', '')} |")
    L.append("")
    if set(b.manifest["artifacts"]) - GENERATED:
        from ..export.parity import parity_report, render_markdown

        L += ["Max abs error against `golden.npz` (normalised units): one step fed the reference hidden state, "
              "and a rollout fed the artifact's own hidden state. Measured when this card was written.", "",
              render_markdown(parity_report(b)), ""]
    if any(".int8." in name for name in b.manifest["artifacts"]):
        L += [INT8_NOTE, ""]
    return L


def _use(ref: str) -> list[str]:
    return ["## Use", "", "```sh", f"edgernn inspect {ref}", f"edgernn replay YOUR.csv --model {ref} --plot replay.png",
            f"edgernn export {ref}", "```", ""]


def card_text(bundle_dir, sections: list[str] | None = None, how: str = "", ref: str | None = None) -> str:
    """The card's markdown. ``sections``: extra markdown blocks (benchmarks) placed before "Use"."""
    b = load_bundle(bundle_dir)
    L = [f"# Model card: `{b.name}` {b.version}", "", b.manifest.get("description", "") or "", ""]
    L += _summary(b) + _features(b)
    if how:
        L += ["## How the data was made", "", how, ""]
    L += _data(b) + _calibration_and_fit(b) + _artifacts(b)
    for block in sections or []:
        L += [block, ""]
    L += _use(ref or str(bundle_dir))
    return "\n".join(L)


def write_card(bundle_dir, sections: list[str] | None = None, how: str = "", ref: str | None = None) -> Path:
    """Write README.md into the bundle (mode 0644) and return its path. A card made from the
    manifest alone carries REFRESHABLE, so `edgernn export` may rewrite it with the new artifacts."""
    path = Path(bundle_dir) / "README.md"
    text = card_text(bundle_dir, sections, how, ref)
    data = (text + (REFRESHABLE + "\n" if not sections and not how else "")).encode("utf-8")
    atomic_write(path, data)  # (replaces a symlinked README.md: never writes through it, outside the bundle)
    path.chmod(FILE_MODE)
    return path


def refresh_card(bundle_dir) -> bool:
    """Rewrite the bundle's card when it is one `write_card` made from the manifest alone (not a
    shipped card with benchmark sections). Returns whether it did."""
    path = Path(bundle_dir) / "README.md"
    if not path.is_file() or REFRESHABLE not in path.read_text(encoding="utf-8"):
        return False
    write_card(bundle_dir)
    return True


def bench_section(path: Path) -> str:
    """Markdown for `edgernn bench --json` output."""
    r = json.loads(Path(path).read_text())
    batches = sorted({row["batch"] for row in r["results"]})
    L = ["## Speed", "",
         "`Detector.process` (the whole hot path), µs per reading, and the bare `backend.step` µs per call, "
         "from `edgernn bench --backend all` (medians of interleaved rounds on a shared 2-core x86 machine; "
         "ratios are more trustworthy than absolute figures):", "",
         "| backend | " + " | ".join(f"B={n}" for n in batches) + " |", "|---|" + "---:|" * len(batches)]
    for name in dict.fromkeys(row["backend"] for row in r["results"]):
        cells = []
        for n in batches:
            row = next((x for x in r["results"] if x["backend"] == name and x["batch"] == n), None)
            cells.append(f"{row['us_per_reading']:.2f} ({row.get('us_per_step_call', float('nan')):.1f})" if row else "-")
        L.append(f"| {name} | " + " | ".join(cells) + " |")
    for peer in r.get("peers", []):
        L.append(f"| {peer['name']} (peer) | {peer['us_per_reading']:.2f} per reading |" + " |" * (len(batches) - 1))
    return "\n".join(L)


def quality_section(path: Path, model_ref: str) -> str:
    """Markdown for benchmarks/quality_synthetic.py output (one backend, per fault kind)."""
    q = json.loads(Path(path).read_text())
    L = ["## Detection quality on recordings it never saw", "",
         "Synthetic recordings from `python -m edgernn.synth faults --out /tmp/faults` (seed 1000; the training "
         "corpus used seed 1): 20 per fault kind plus 40 clean ones, 5,000 readings each. An event counts as "
         "detected when an alert is raised between its start and 50 readings after its end; a false alert is "
         "one raised on a clean recording or before the fault. Command: "
         f"`python benchmarks/quality_synthetic.py /tmp/faults --model {model_ref}`.", "",
         "| fault | detected | recall | median delay (readings) |", "|---|---:|---:|---:|"]
    for k, v in q["per_kind"].items():
        d = "-" if v["median_delay_readings"] is None else f"{v['median_delay_readings']:.0f}"
        L.append(f"| {k} | {v['detected']}/{v['events']} | {v['recall']:.0%} | {d} |")
    L += [f"| **all** | {q['detected']}/{q['events']} | **{q['recall']:.0%}** | |", "",
          f"False alerts: {q['false_alerts']} in {q['clean_readings']:,} clean readings = "
          f"**{q['false_alerts_per_10k']:.2f} per 10,000**."]
    return "\n".join(L)


def backends_section(path: Path) -> str:
    """Markdown for the multi-backend quality JSON (``--backend numpy,...``)."""
    q = json.loads(Path(path).read_text())
    L = ["Per artifact on the same recordings (`--backend numpy,onnx,...`); *differ* counts raised alerts with no "
         "counterpart within ±3 readings in the float (numpy) run:", "",
         "| backend | recall | false alerts / 10k | alerts raised | differ | differ / 10k readings |",
         "|---|---:|---:|---:|---:|---:|"]
    for r in q["rows"]:
        L.append(f"| {r['backend']} | {r['recall']:.1%} | {r['false_alerts_per_10k']:.2f} | {r['alerts']} | "
                 f"{r['differ_from_reference']} | {r['differ_per_10k']:.2f} |")
    return "\n".join(L)
