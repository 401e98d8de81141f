"""Write the model card (README.md) of a shipped bundle with its measured benchmark sections.

    python benchmarks/model_card.py firmware_models/univariate \\
        --quality out/quality_univariate.json --bench out/bench_univariate.json --how "..."

``--quality``: JSON from benchmarks/quality_synthetic.py (one backend, per fault kind) and/or the
multi-backend JSON (``--backend numpy,...``) as ``--quality-backends``; ``--bench``: JSON from
``edgernn bench --json``; ``--extra``: a markdown file appended as is (e.g. SKAB results).
The card itself is edgernn.train.card (the one `edgernn train` writes for every bundle).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgernn.train.card import backends_section, bench_section, quality_section, write_card


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path)
    p.add_argument("--quality", type=Path)
    p.add_argument("--quality-backends", type=Path)
    p.add_argument("--bench", type=Path)
    p.add_argument("--how", default="", help="markdown: how the training data was made")
    p.add_argument("--extra", type=Path)
    a = p.parse_args()
    sections = []
    if a.bench and a.bench.exists():
        sections.append(bench_section(a.bench))
    if a.quality and a.quality.exists():
        sections.append(quality_section(a.quality, str(a.model)))
    if a.quality_backends and a.quality_backends.exists():
        sections.append(backends_section(a.quality_backends))
    if a.extra and a.extra.exists():
        sections.append(a.extra.read_text())
    print(f"wrote {write_card(a.model, sections, how=a.how, ref=str(a.model))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
