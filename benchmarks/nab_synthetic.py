"""NAB scoring on recordings no choice was made on: the synthetic faults of ``edgernn.synth faults``.

A held-out check for the detector's NAB output (``onset``): every recording written by
``python -m edgernn.synth faults`` (seed 1000; the shipped model trained on seed 1) becomes a NAB
file whose category is its fault kind (``clean`` files have no window), with one NAB window per
injected fault centred on its start (``nab.windows_from_labels``: width 10 % of the file / faults)
and NAB's probation. Then exactly ``edgernn eval nab``'s scoring: standard profile (and the other
two), one corpus-wide threshold swept on ``onset``. Prints the table and writes JSON.

    python -m edgernn.synth faults --out /tmp/faults
    python benchmarks/nab_synthetic.py /tmp/faults --model firmware_models/univariate --json out/nab_synth.json
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from edgernn.backends import create_backend
from edgernn.bundle import load_bundle
from edgernn.detector import Detector
from edgernn.evaluate import nab, report
from edgernn.evaluate.run import run_recordings
from edgernn.recording import parse_timestamp, read_recording


def load(data_dir: Path, features) -> list[tuple[nab.NabFile, np.ndarray]]:
    starts = defaultdict(list)
    with open(data_dir / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            starts[row["stream"]].append(parse_timestamp(row["start"]))
    out = []
    for path in sorted(data_dir.glob("*.csv")):
        if path.name == "labels.csv":
            continue
        rec = read_recording(path, features)
        rows = [int(np.searchsorted(rec.ts, t)) for t in sorted(starts.get(path.stem, []))]
        kind = path.stem.rsplit("_", 1)[0]
        f = nab.NabFile(name=f"{kind}/{path.name}", category=kind, ts=rec.ts, values=rec.x[:, 0],
                        windows=nab.windows_from_labels(len(rec.ts), rows), probation=nab.probation_length(len(rec.ts)))
        out.append((f, rec.x))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path, help="directory written by python -m edgernn.synth faults")
    p.add_argument("--model", default="firmware_models/univariate")
    p.add_argument("--backend", default="numpy")
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    if not (a.data / "labels.csv").is_file():
        print(f"{a.data}: no labels.csv (write it with python -m edgernn.synth faults --out {a.data})", file=sys.stderr)
        return 2
    bundle = load_bundle(a.model)
    det = Detector(bundle, create_backend(a.backend, bundle))
    files = load(a.data, bundle.features)
    traces = run_recordings(det, [(f.name, f.ts, x) for f, x in files])
    results = report.nab_results([f for f, _ in files], traces)
    print(f"synthetic faults scored as NAB ({len(files)} files) - model {bundle.name} {bundle.version}")
    for prof in nab.PROFILES:
        print()
        print(report.nab_table(results, prof))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({k: v for k, v in results.items() if k != "per_file"}, indent=1, default=float))
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
