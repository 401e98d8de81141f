"""Detector level: the alerts on a golden recording are identical between float backends and
within tolerance for int8 ones (same recording, same settings, only the backend differs)."""

from __future__ import annotations

import numpy as np
import pytest
from contract_helpers import runtime_missing

from edgernn.backends import BACKEND_NAMES, backend_artifact, create_backend

FLOAT_BACKENDS = ("onnx", "tflite")
INT8_AGREEMENT = 0.95  # share of readings whose alert state must match the numpy reference
SPIKE_AT, SHIFT_AT = 150, 200


def golden_recording(bundle) -> tuple[list[np.ndarray], list[str]]:
    """golden.npz x as raw readings of B streams, with a spike (stream 0) and a level shift
    (stream 1) injected. Returns one float64[B, F] batch per time step and the stream ids."""
    x = bundle.golden()["x"].astype(np.float64)  # [T, B, F] normalised
    x[SPIKE_AT, 0] += 8.0
    x[SHIFT_AT:, 1 % x.shape[1]] += 4.0
    raw = x * bundle.norm_std + bundle.norm_mean
    return list(raw), [f"s{i}" for i in range(x.shape[1])]


def run_detector(bundle, backend):
    from edgernn.detector import Batch, Detector

    det = Detector(bundle, backend=backend)
    steps, streams = golden_recording(bundle)
    alerts, events = [], []
    for t, values in enumerate(steps):
        res = det.process(Batch(list(streams), np.full(len(streams), float(t)), values))
        alerts.append(res.alert.copy())
        events += [(t, e.kind, e.stream) for e in res.events]
    return np.array(alerts), events


def test_alerts_match_across_backends(bundle):
    pytest.importorskip("edgernn.detector", reason="edgernn/detector.py not present yet")
    ref_alerts, ref_events = run_detector(bundle, None)  # numpy reference
    assert ref_alerts.any(), "the injected spike and level shift raised no alert: the check would be vacuous"
    compared = 0
    for name in BACKEND_NAMES:
        artifact = backend_artifact(name)
        if artifact is None or artifact not in bundle.manifest["artifacts"] or runtime_missing(name):
            continue
        alerts, events = run_detector(bundle, create_backend(name, bundle))
        compared += 1
        if name in FLOAT_BACKENDS:
            np.testing.assert_array_equal(alerts, ref_alerts, err_msg=name)
            assert events == ref_events, name
        else:
            agreement = float((alerts == ref_alerts).mean())
            assert agreement >= INT8_AGREEMENT, f"{name}: alert state agrees on {agreement:.1%} of readings"
            assert {s for _, k, s in events if k == "raised"} == {s for _, k, s in ref_events if k == "raised"}, name
    if compared == 0:
        pytest.skip("no runtime backend available for this model")
