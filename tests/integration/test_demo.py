"""`edgernn demo` end to end (small): broker, simulated fleet, daemon, live alerts, summary, exit 0."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("broker", ["auto", "embedded"])
def test_demo_runs_and_ends_by_itself(bundle_dir, broker):
    out = subprocess.run([sys.executable, "-m", "edgernn", "demo", "--model", str(bundle_dir), "--sensors", "4",
                          "--readings", "220", "--rate", "3000", "--broker", broker],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "summary: 880 of 880 readings scored" in out.stdout
    assert "caught" in out.stdout
