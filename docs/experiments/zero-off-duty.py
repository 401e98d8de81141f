"""A probe, outside the package: clean on/off streams whose off level reads an exact 0 (a power meter
that reads 0 W when the compressor is off), multiplicative noise (1-8 %) on the on level (1-1,000),
stretches of 30-240 readings, 40 streams of 5,000 readings. Every raised alert is a false one; the
detector (shipped univariate model, its defaults) and the persistence baseline in one run, by look
(docs/QUALITY.md, "runs of exact repeats as a two-state chain", session 8).

    python docs/experiments/zero-off-duty.py SEED ['{"setting": value}']
"""

import collections
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edgernn.backends import create_backend  # noqa: E402
from edgernn.bundle import load_bundle  # noqa: E402
from edgernn.detector import Detector  # noqa: E402
from edgernn.drive import Feed, drive  # noqa: E402
from edgernn.settings import resolve  # noqa: E402


def streams(seed: int, count: int = 40, n: int = 5000) -> list:
    rng = np.random.default_rng(seed)
    recs = []
    for j in range(count):
        high = 10 ** rng.uniform(0, 3)
        level, on, i = np.empty(n), bool(rng.integers(2)), 0
        while i < n:
            k = int(rng.integers(30, 241))
            level[i:i + k] = high if on else 0.0
            i, on = i + k, not on
        x = level * (1 + rng.uniform(0.01, 0.08) * rng.standard_normal(n))
        recs.append((f"zero_{j:03d}", 1.7e9 + 60.0 * np.arange(n), x.reshape(-1, 1)))
    return recs


def main() -> int:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    extra = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    recs, bundle = streams(seed), load_bundle(ROOT / "firmware_models" / "univariate")
    for backend in ("numpy", "persistence"):
        det = Detector(bundle, create_backend(backend, bundle), resolve(bundle, {"max_streams": len(recs), **extra}))
        raised = [e for e in drive(det, Feed.from_recordings(recs, chunk=256), progress=None, label=backend).events
                  if e.kind == "raised"]
        looks = collections.Counter(str(e.reason).split()[0] for e in raised)
        readings = sum(len(ts) for _, ts, _ in recs)
        print(f"{backend:12s} {len(raised) / readings * 1e4:6.2f} false alerts per 10k  by look: {dict(looks)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
