"""One ablation row: a COPY of a bundle with some detector_defaults changed, run through the synthetic
quality sets and NAB (the persistence baseline in the same runs, with the same settings).

    python benchmarks/ablate.py NAME '{"onset_rearm": 0}' --sets /tmp/au/sel_faults /tmp/au/sel_duty \\
        /tmp/au/sel_counts --nab-part dev --out /tmp/au

writes OUT/m_NAME (the bundle copy: only manifest.yaml's detector_defaults differ), OUT/q_NAME.txt|json
(benchmarks/quality_synthetic.py run) and OUT/nab_NAME.txt|json (edgernn eval nab), then prints one
line: caught / events and false alerts per 10k per set, GRU (persistence), and NAB's standard sweep,
operational, low-FP and low-FN sweep, GRU (persistence). The given overrides are merged over the
bundle's own detector_defaults (an "alerts" mapping key by key). Nothing is recalibrated.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from edgernn.settings import write_model_defaults


def bundle_copy(src: Path, dst: Path, overrides: dict) -> dict:
    """dst = a copy of src with ``overrides`` merged over its detector_defaults (settings.write_model_defaults)."""
    if dst.resolve() == src.resolve():
        raise SystemExit(f"{dst} is the source bundle: give the row another name or --out")
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return write_model_defaults(dst, overrides)


def run(cmd: list[str], out: Path) -> None:
    with open(out, "w") as fh:
        subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=True)


def quality_sets(path: Path) -> dict:
    """{set directory: (GRU run, persistence run)} of benchmarks/quality_synthetic.py's JSON."""
    return {name: tuple(runs) for name, runs in json.loads(path.read_text())["sets"].items()}


def nab_corpus(doc: dict, profile: str, kind: str) -> tuple[float, float]:
    """NAB's normalised corpus score in ``edgernn eval nab``'s JSON: (GRU, persistence)."""
    return (doc["profiles"][profile][kind]["summary"]["corpus"]["normalised"],
            doc["baseline"]["profiles"][profile][kind]["summary"]["corpus"]["normalised"])


def quality_cells(path: Path) -> list[str]:
    """Per set: 'caught/events, false per 10k (persistence caught, false)'."""
    return [f"{Path(name).name}: {g['detected']}/{g['events']}, {g['false_alerts_per_10k']:.2f} "
            f"({b['detected']}, {b['false_alerts_per_10k']:.2f})" for name, (g, b) in quality_sets(path).items()]


def nab_cells(path: Path) -> list[str]:
    """Corpus scores: standard sweep / operational, low-FP / low-FN sweep, GRU (persistence)."""
    doc = json.loads(path.read_text())
    return [f"{prof[:13]} {kind[:5]} {g:.1f} ({b:.1f})"
            for prof, kind in (("standard", "sweep"), ("standard", "operational"), ("reward_low_FP_rate", "sweep"),
                               ("reward_low_FN_rate", "sweep"))
            for g, b in [nab_corpus(doc, prof, kind)]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name")
    ap.add_argument("overrides", help="JSON mapping of detector settings ('{}': the bundle as it is)")
    ap.add_argument("--model", type=Path, default=Path("firmware_models/univariate"))
    ap.add_argument("--sets", type=Path, nargs="*", default=[])
    ap.add_argument("--nab-part", choices=("dev", "validation", "all"))
    ap.add_argument("--nab-dir", default="/work/shared/data/nab")
    ap.add_argument("--out", type=Path, default=Path("/tmp/au"))
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    m = a.out / f"m_{a.name}"
    defaults = bundle_copy(a.model, m, json.loads(a.overrides))
    cells = [f"{a.name} {json.dumps(defaults)}"]
    if a.sets:
        q = a.out / f"q_{a.name}"
        run([sys.executable, str(Path(__file__).with_name("quality_synthetic.py")), "run", *map(str, a.sets), "--model", str(m),
             "--json", f"{q}.json"], Path(f"{q}.txt"))
        cells += quality_cells(Path(f"{q}.json"))
    if a.nab_part:
        n = a.out / f"nab_{a.name}"
        run([sys.executable, "-m", "edgernn", "eval", "nab", "--data-dir", a.nab_dir, "--part", a.nab_part,
             "--model", str(m), "--profile", "all", "--json", f"{n}.json"], Path(f"{n}.txt"))
        cells += nab_cells(Path(f"{n}.json"))
    print(" | ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
