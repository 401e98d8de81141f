"""Write a model card (README.md) for a bundle from its manifest and measured numbers.

    python benchmarks/model_card.py firmware_models/univariate \\
        --quality out/quality_univariate.json --bench out/bench_univariate.json --how "..."

``--quality``: JSON from benchmarks/quality_synthetic.py (one backend, per fault kind) and/or the
multi-backend JSON (``--backend numpy,...``) as ``--quality-backends``; ``--bench``: JSON from
``edgernn bench --json``; ``--extra``: a markdown file appended as is (e.g. SKAB results).
Parity numbers are measured here, now (edgernn.export.parity).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgernn.bundle import load_bundle
from edgernn.export.parity import parity_report, render_markdown


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path)
    p.add_argument("--quality", type=Path)
    p.add_argument("--quality-backends", type=Path)
    p.add_argument("--bench", type=Path)
    p.add_argument("--how", default="", help="markdown: how the training data was made")
    p.add_argument("--extra", type=Path)
    a = p.parse_args()
    b = load_bundle(a.model)
    m, cal, prov = b.manifest, b.calibration, b.manifest.get("provenance", {})
    L = [f"# Model card: `{b.name}` {b.version}", "", m.get("description", ""), ""]
    L += ["## What it is", "",
          f"* Features: {', '.join(f'`{f}`' + (f' ({u})' if u else '') for f, u in zip(b.features, b.units))}",
          f"* Normalisation: `{b.norm_mode}`" + (f" — learned per stream during the first {cal.warmup} readings, "
                                                 f"then adapted at rate {m['normalisation'].get('adapt', 0)} from non-alerting readings"
                                                 if b.norm_mode == "stream" else " — the training data's mean and std"),
          f"* Cell: GRU, H = {b.hidden}, PyTorch gate convention; Gaussian residual head (mean and log-variance of the next reading)",
          f"* Parameters: {sum(w.size for w in b.weights.values()):,}; weights sha256 `{b.sha256}`",
          f"* Alert threshold: likelihood {cal.threshold:.12f} (tail probability {1 - cal.threshold:.2e}); "
          f"warm-up {cal.warmup} readings per stream",
          f"* Calibration: {m['calibration'].get('calibration_alerts', '?')} alert(s) in "
          f"{m['calibration'].get('calibration_readings', 0):,} readings of normal data "
          f"(target {cal.target_false_alarm_rate * 1e4:g} per 10,000, chosen with a 2x margin)", ""]
    L += ["## How it was made", ""]
    if a.how:
        L += [a.how, ""]
    L += ["```sh", prov.get("command", "?")]
    if prov.get("calibration_command"):
        L += [prov["calibration_command"] + "   # recalibration with the current detector"]
    L += ["```", "",
          f"Data: {prov.get('rows', 0):,} rows in {len(prov.get('data', []))} file(s) (each with its sha256 in "
          f"`manifest.yaml`), split in time 80 % train / 20 % validation per series. Epochs run "
          f"{prov.get('epochs_run')}, best {prov.get('best_epoch')}; train / validation Gaussian NLL per reading "
          f"{prov.get('final_train_nll')} / {prov.get('final_val_nll')}. torch {prov.get('torch')}, seed {prov.get('seed')}.",
          "", "![loss curve](loss_curve.png)", ""]
    L += ["## Artifacts and parity", "",
          "Max abs error against `golden.npz` (normalised units): one step fed the reference hidden state, and a "
          "256-step rollout fed the artifact's own hidden state. Measured when this card was written.", "",
          render_markdown(parity_report(b)), "",
          "`model.int8.onnx`: onnxruntime static QDQ on the MatMuls, int8 weights per output channel with 16-bit "
          "activations (fixed scales, so a row's result never depends on the rest of its batch). "
          "`model.int8.tflite` and `model_data.cc` (TFLite Micro): int8 weights (one scale per output row) with "
          "16-bit activations, float32 input and output. With 8-bit activations the univariate model's alerts "
          "changed by ~1 (ONNX) and ~9 (TFLite) per 10,000 readings against float. "
          f"Manifest: `{m['artifacts'].get('model.int8.tflite', {}).get('weights', '')}`.", ""]
    if a.bench and a.bench.exists():
        r = json.loads(a.bench.read_text())
        batches = sorted({row["batch"] for row in r["results"]})
        L += ["## Speed", "",
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
        L.append("")
    if a.quality and a.quality.exists():
        q = json.loads(a.quality.read_text())
        L += ["## Detection quality on recordings it never saw", "",
              "Synthetic recordings from `python -m edgernn.synth faults --out /tmp/faults` (seed 1000; the training "
              "corpus used seed 1): 20 per fault kind plus 40 clean ones, 5,000 readings each. An event counts as "
              "detected when an alert is raised between its start and 50 readings after its end; a false alert is "
              "one raised on a clean recording or before the fault. Command: "
              f"`python benchmarks/quality_synthetic.py /tmp/faults --model {a.model}`.", "",
              "| fault | detected | recall | median delay (readings) |", "|---|---:|---:|---:|"]
        for k, v in q["per_kind"].items():
            d = "-" if v["median_delay_readings"] is None else f"{v['median_delay_readings']:.0f}"
            L.append(f"| {k} | {v['detected']}/{v['events']} | {v['recall']:.0%} | {d} |")
        L += [f"| **all** | {q['detected']}/{q['events']} | **{q['recall']:.0%}** | |", "",
              f"False alerts: {q['false_alerts']} in {q['clean_readings']:,} clean readings = "
              f"**{q['false_alerts_per_10k']:.2f} per 10,000**.", ""]
    if a.quality_backends and a.quality_backends.exists():
        q = json.loads(a.quality_backends.read_text())
        L += ["Per artifact on the same recordings (`--backend numpy,onnx,...`); *differ* counts raised alerts with no "
              "counterpart within ±3 readings in the float (numpy) run:", "",
              "| backend | recall | false alerts / 10k | alerts raised | differ | differ / 10k readings |",
              "|---|---:|---:|---:|---:|---:|"]
        for r in q["rows"]:
            L.append(f"| {r['backend']} | {r['recall']:.1%} | {r['false_alerts_per_10k']:.2f} | {r['alerts']} | "
                     f"{r['differ_from_reference']} | {r['differ_per_10k']:.2f} |")
        L.append("")
    if a.extra and a.extra.exists():
        L += [a.extra.read_text(), ""]
    L += ["## Use", "", "```sh", f"edgernn inspect {a.model}",
          f"edgernn replay YOUR.csv --model {a.model} --plot replay.png",
          f"edgernn bench --model {a.model} --backend all", "```", ""]
    (a.model / "README.md").write_text("\n".join(L))
    print(f"wrote {a.model / 'README.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
