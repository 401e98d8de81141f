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
    (stream 1) injected. Returns one float64[B, F] batch per time step and the stream ids.

    A one-feature model with per-stream normalisation gets four synthetic sensors of 3,000
    readings instead (golden.npz's 256 steps are shorter than its warm-up)."""
    if bundle.n_features == 1 and bundle.norm_mode == "stream":
        from edgernn.synth import normal_signal

        rng = np.random.default_rng(7)
        raw = np.stack([normal_signal(rng, 3000, kind)[0] for kind in ("sine", "daily", "ar1", "noise")], axis=1)
        sd = raw[:2000].std(axis=0)
        raw[2000, 0] += 8 * sd[0]
        raw[2500:, 1] += 4 * sd[1]
        return list(raw[:, :, None]), [f"s{i}" for i in range(raw.shape[1])]
    x = bundle.golden()["x"].astype(np.float64)  # [T, B, F] normalised
    x[SPIKE_AT, 0] += 8.0
    x[SHIFT_AT:, 1 % x.shape[1]] += 4.0
    raw = x * bundle.norm_std + bundle.norm_mean
    return list(raw), [f"s{i}" for i in range(x.shape[1])]


def run_detector(bundle, backend):
    from edgernn.detector import Batch, Detector

    from edgernn.detector import DetectorSettings

    # golden.npz is 256 steps: a fixed-normalisation model warms up on the first 32
    det = Detector(bundle, backend=backend, settings=DetectorSettings(
        warmup=None if bundle.norm_mode == "stream" and bundle.n_features == 1 else 32))
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
