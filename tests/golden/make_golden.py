"""Regenerate the golden fixtures (only when a change of outputs is intended and explained):

    PYTHONPATH=. python tests/golden/make_golden.py [case ...]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_cases import CASES, SKAB_VALVE, save  # noqa: E402

if __name__ == "__main__":
    for case in sys.argv[1:] or CASES:
        if case == "skab_valve" and not SKAB_VALVE.exists():
            print(f"{case}: {SKAB_VALVE} absent, skipped")
            continue
        path = save(case)
        print(f"{case}: {path} ({path.stat().st_size / 1024:.0f} KiB)")
