"""benchmarks/transitions.py: where a model's false alerts fall, and the mixture's weight near the
level a duty cycle switches to."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from unit_helpers import load_benchmark

from edgernn.backends import create_backend
from edgernn.bundle import load_bundle
from edgernn.detector import Batch, Detector
from edgernn.settings import resolve

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "firmware_models" / "univariate"


@pytest.fixture(scope="module")
def tr():
    load_benchmark("quality_synthetic")
    return load_benchmark("transitions")


def test_mass_near_is_the_weight_of_the_components_within_3_sd(tr):
    """A stored prediction set by hand: components at 0 (sd 0.1, weight 0.7), 2 (sd 0.1, 0.2) and
    0 (logvar ln 9, clamped to the head's logvar_max 0: sd 1; weight 0.1); a reading at normalised 2
    is within 3 sd of the second and the third, one at 0 of the first and the third."""
    bundle = load_bundle(MODEL)
    det = Detector(bundle, create_backend("numpy", bundle), resolve(bundle, {"max_streams": 2}))
    det.process(Batch(["a", "b"], np.array([1.0, 1.0]), np.array([[0.0], [0.0]])))
    L, rows = det.state.layout, det.state.rows_for(["a", "b"])
    for r in rows:
        det.state.num[r, L.norm_mean], det.state.num[r, L.norm_var] = 10.0, 4.0  # x = 10 + 2 c
        det.state.num4[r, L.pred] = [0.0, 2.0, 0.0, np.log(0.01), np.log(0.01), np.log(9.0),
                                     np.log(0.7), np.log(0.2), np.log(0.1)]
        det.state.num4[r, L.wbias] = 0.0
    near = tr.mass_near(det, rows, np.array([14.0, 10.0]))  # c = 2 and c = 0
    assert near == pytest.approx([0.3, 0.8], abs=1e-6)


def test_the_report_counts_every_false_alert_and_every_switch(tr, tmp_path, capsys):
    qs = sys.modules["quality_synthetic"]
    qs.write_duty(tmp_path / "set", per_fault=1, clean=3, length=1600, seed=4)
    assert tr.main([str(tmp_path / "set"), "--model", str(MODEL), "--set", '{"threshold": 0.99}',
                    "--json", str(tmp_path / "t.json")]) == 0
    doc = json.loads((tmp_path / "t.json").read_text())
    fa = doc["false"]
    assert fa["false_alerts"] > 0 and sum(fa["by_look"].values()) == fa["false_alerts"]
    assert sum(fa["by_position"].values()) == fa["false_alerts"]
    ages = [r["age"] for r in doc["switches"]]
    assert ages == ["300-750", "750-1500", "1500-3000"][: len(ages)] and len(ages) >= 2
    for r in doc["switches"]:
        assert r["switches"] > 0 and 0.0 <= r["mass_near_median"] <= 1.0 and 0.0 <= r["share_alerting"] <= 1.0
    assert "false alerts" in capsys.readouterr().out
