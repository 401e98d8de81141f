"""SKAB through the path a user has: ``edgernn replay`` on each labelled file, the detector's own
alerts on rows 400 onward, SKAB's point-wise scorer (edgernn/evaluate/skab.py) -- beside the same
run with the persistence baseline.

Each file is read the way ``edgernn replay FILE --model M --reference-rows 400`` reads it
(``recording.read_recording``, the model's features by name) and run by the same function
(``replay.replay``); the ``alert`` column is what is scored. No threshold is fitted per file: the
model's calibrated threshold, as the daemon uses it. Extra detector settings (what a replay flag or
the model's ``detector_defaults`` would set) are given as ``--set name=value``; ``--cli`` instead
runs the real command line once per file (slower; the two agree, see docs/QUALITY.md).

    python benchmarks/skab_replay.py --data-dir ../shared/data/skab --model firmware_models/skab-pump \\
        --set reference_drift=0.5 --set reference_peak=0.3 --part validation --json skab_replay.json
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from dataclasses import fields
from pathlib import Path

import numpy as np

from edgernn.backends import BASELINE, create_backend
from edgernn.bundle import load_bundle
from edgernn.detector import Detector, DetectorSettings
from edgernn.evaluate import skab
from edgernn.evaluate.report import margin_rows, margin_table
from edgernn.evaluate.split import select
from edgernn.recording import read_recording
from edgernn.replay import replay

REFERENCE_ROWS = skab.TRAIN_ROWS  # 400: the protocol's training part = the reference look's known-good start


def parse_sets(items: list[str]) -> dict:
    """``["name=value", ...]`` -> DetectorSettings keyword arguments (typed like the field)."""
    types = {f.name: f.type for f in fields(DetectorSettings)}
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in types or not value:
            raise SystemExit(f"--set {item!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(types))}")
        kind = str(types[name])
        out[name] = (value.lower() in ("1", "true", "on", "yes")) if "bool" in kind else \
            int(value) if kind.startswith("int") else float(value)
    return out


def alerts_in_process(path: Path, bundle, backend: str, settings: dict) -> np.ndarray:
    from edgernn.settings import resolve  # as replay does: schema < the model's detector_defaults < flags

    det = Detector(bundle, create_backend(backend, bundle), resolve(bundle, {"reference_rows": REFERENCE_ROWS, **settings}))
    rec = read_recording(path, bundle.features)
    return replay(det, rec, progress=False).alert


def alerts_by_cli(path: Path, model: str, backend: str, flags: list[str]) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scored.csv"
        subprocess.run([sys.executable, "-m", "edgernn", "replay", str(path), "--model", model, "--backend", backend,
                        "--reference-rows", str(REFERENCE_ROWS), "--quiet", "--out", str(out), *flags],
                       check=True, stdout=subprocess.DEVNULL)
        with open(out, newline="") as fh:
            return np.array([row["alert"] == "1" for row in csv.DictReader(fh)])


def score(files, alerts: list) -> dict:
    total = skab.Counts()
    for f, al in zip(files, alerts):
        total = total + skab.confusion(f.anomaly[REFERENCE_ROWS:], al[REFERENCE_ROWS:])
    return skab.metrics(total)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--model", default="firmware_models/skab-pump")
    p.add_argument("--backend", default="numpy")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a detector setting (repeatable)")
    p.add_argument("--part", choices=("all", "dev", "validation"), default="all")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--cli", action="store_true", help="run the real `edgernn replay` per file (flags: --set as --name)")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    settings = parse_sets(a.set)
    bundle = load_bundle(a.model)
    paths = select(skab.list_files(a.data_dir), a.part, name=lambda q: f"{q.parent.name}/{q.name}")
    files = [skab.load_file(q, f"{q.parent.name}/{q.name}") for q in paths]
    backends = [a.backend] + ([] if a.no_baseline or a.backend == BASELINE else [BASELINE])
    flags = [x for k, v in settings.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    results = {}
    for be in backends:
        if a.cli:
            alerts = [alerts_by_cli(q, a.model, be, flags) for q in paths]
        else:
            alerts = [alerts_in_process(q, bundle, be, settings) for q in paths]
        results[be] = score(files, alerts)
    print(f"SKAB via replay ({len(files)} files, part {a.part}; model {bundle.name}, --reference-rows {REFERENCE_ROWS}"
          + "".join(f" --{k.replace('_', '-')} {v}" for k, v in settings.items()) + "; alerts on rows 400 onward)")
    for be, m in results.items():
        print(f"  {be:12s} F1 {m['f1']:.3f}  FAR {m['far']:.2f} %  MAR {m['mar']:.2f} %")
    rows = []
    if len(backends) == 2:
        g, b = (results[x] for x in backends)
        rows = margin_rows([("F1", g["f1"], b["f1"], "higher"), ("FAR %", g["far"], b["far"], "lower"),
                            ("MAR %", g["mar"], b["mar"], "lower")])
        print(margin_table(rows, backends[0], BASELINE, 2))
    if a.json:
        a.json.write_text(json.dumps({"model": a.model, "settings": settings, "part": a.part,
                                      "files": [f.name for f in files], "results": results, "margin": rows},
                                     indent=1) + "\n")
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
