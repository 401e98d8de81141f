"""`edgernn demo` end to end (small): broker, simulated fleet, daemon, live alerts, summary, exit 0;
honest output (surprise, not likelihood; caught only inside a fault); too few readings refused."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.integration


def _demo(bundle_dir, *args, timeout=90):
    return subprocess.run([sys.executable, "-m", "edgernn", "demo", "--model", str(bundle_dir), "--sensors", "4",
                           *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("broker", ["auto", "embedded"])
def test_demo_runs_and_ends_by_itself(bundle_dir, broker):
    out = _demo(bundle_dir, "--readings", "220", "--rate", "3000", "--broker", broker)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "summary: 880 of 880 readings scored" in out.stdout
    assert re.search(r"caught \d of \d faults; \d+ false alert\(s\)", out.stdout)
    assert "likelihood" not in out.stdout and "Traceback" not in out.stderr
    for line in out.stdout.splitlines():
        if " RAISED " in line:  # every raised alert is judged and shows its surprise
            assert re.search(r"surprise \d+\.\d \(1 in [\d,.]+", line), line
            assert "[caught: " in line or "[false alert: " in line, line


def test_too_few_readings_is_refused_in_one_line_naming_the_minimum(bundle_dir):
    out = _demo(bundle_dir, "--readings", "100", timeout=30)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and re.search(r"--readings 100 is too few .* use --readings \d+ or more", err[0]), err
    minimum = int(re.search(r"use --readings (\d+)", err[0]).group(1))
    assert minimum > 100
    ok = _demo(bundle_dir, "--readings", minimum, "--rate", "5000")
    assert ok.returncode == 0, ok.stderr[-2000:]


def test_a_missing_model_is_one_line_before_any_broker_starts(tmp_path):
    out = subprocess.run([sys.executable, "-m", "edgernn", "demo", "--model", str(tmp_path / "nope")], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "broker" not in out.stdout
    assert out.stderr.strip().splitlines() == [f"edgernn demo: model bundle directory not found: {tmp_path / 'nope'} "
                                               "(shipped models, usable by name: skab-pump, univariate)"]
