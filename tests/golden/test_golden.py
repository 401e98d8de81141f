"""Today's outputs on the golden recordings (golden_cases.py), frozen: the kernel, compiled and
as plain Python, must reproduce them to 1e-9 (a change of the maths regenerates them with
make_golden.py and explains each difference in its commit)."""

from __future__ import annotations

import numpy as np
import pytest

from golden_cases import CASES, SKAB_VALVE, load, run
from unit_helpers import plain_kernel_module

from edgernn import detector as detector_module
from edgernn import kernel

TOL = 1e-9


@pytest.fixture(params=["installed", "plain"] if kernel.COMPILED else ["installed"])
def kernel_mode(request, monkeypatch):
    if request.param == "plain":
        monkeypatch.setattr(detector_module, "kernel", plain_kernel_module())
    return request.param


@pytest.mark.parametrize("case", CASES)
def test_golden_outputs_are_reproduced(case, kernel_mode):
    if case == "skab_valve" and not SKAB_VALVE.exists():
        pytest.skip(f"{SKAB_VALVE} is not on this machine (SKAB is not shipped)")
    want, want_events = load(case)
    got, got_events = run(case)
    assert got["reject"].tolist() == want["reject"].tolist()
    for name in ("alert", "event"):
        np.testing.assert_array_equal(got[name], want[name], err_msg=f"{case}: {name}")
    for name in ("score", "likelihood", "onset", "expected", "sigma"):
        np.testing.assert_allclose(got[name], want[name], rtol=TOL, atol=TOL, equal_nan=True, err_msg=f"{case}: {name}")
    assert len(got_events) == len(want_events), f"{case}: events"
    for g, w in zip(got_events, want_events):
        assert {k: g[k] for k in ("kind", "stream", "alert_id", "position", "reason", "feature")} == \
               {k: w[k] for k in ("kind", "stream", "alert_id", "position", "reason", "feature")}
        assert g["score"] == pytest.approx(w["score"], rel=TOL, abs=TOL)
        assert g["likelihood"] == pytest.approx(w["likelihood"], rel=TOL, abs=TOL)


def test_golden_fixtures_stay_small():
    from golden_cases import HERE

    total = sum(p.stat().st_size for p in HERE.glob("*.npz"))
    assert total < 1_000_000, f"golden fixtures are {total / 1e6:.2f} MB"
