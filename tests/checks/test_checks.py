"""Every detector check (checks.CHECKS) on every combination of kernel mode (compiled, plain
Python) x model (univariate, skab-pump, a K=3 mixture-head bundle and skab-pump with a relation look, built here) x backend (every name in the registry; skipped where its
runtime or artifact is not on this machine)."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import pytest

from checks import CHECKS, Setup
from unit_helpers import plain_kernel_module, random_weights

from edgernn import detector as detector_module
from edgernn import kernel
from edgernn.backends import BACKEND_NAMES, BackendUnavailable, create_backend
from edgernn.bundle import load_bundle

MODELS = Path(__file__).resolve().parents[2] / "firmware_models"
_BUNDLES: dict = {}


def _bundle(name, tmp_path_factory):
    if name not in _BUNDLES:
        _BUNDLES[name] = (_mixture_bundle(tmp_path_factory) if name == "mixture-k3" else
                          _relation_bundle(tmp_path_factory) if name == "skab-relation" else load_bundle(MODELS / name))
    return _BUNDLES[name]


def _relation_bundle(tmp_path_factory):
    """skab-pump (its weights and exported artifacts) with a relation look: relation.npz fitted by
    the trainer's code on 8 features driven by 3 shared factors, and a relation table (the peak
    look's, as numbers to read: the checks compare the kernel with itself and with the formulas)."""
    import shutil

    import numpy as np

    from edgernn.bundle import write_manifest
    from edgernn.train.relation import fit_relation, write_relation

    out = tmp_path_factory.mktemp("skab-relation") / "m"
    shutil.copytree(MODELS / "skab-pump", out)
    b = load_bundle(out)
    rng = np.random.default_rng(8)
    z = rng.standard_normal((3000, 3)) @ rng.standard_normal((3, b.n_features)) + 0.3 * rng.standard_normal((3000, b.n_features))
    kinds = {n: {"kind": "continuous"} for n in b.features}
    write_relation(out, fit_relation([z / z.std(0)], b.features, kinds))
    m = load_bundle(out).manifest
    m["calibration"]["tables"]["relation"] = m["calibration"]["tables"]["peak"]
    write_manifest(out, m)
    return load_bundle(out)


def _mixture_bundle(tmp_path_factory):
    """A real univariate bundle with a head of K=3 Gaussians (random weights, written and exported
    to every format whose writer is installed: the backends' artifacts are real)."""
    from edgernn.bundle import write_bundle
    from edgernn.export import export_bundle

    out = tmp_path_factory.mktemp("mixture-k3")
    weights = random_weights(1, 8, seed=7, gain=0.5, K=3)
    weights["head.b_mean"][:] = [0.0, 1.5, -1.5]  # three levels around x: stay, step up, step down
    write_bundle(out, name="mixture-k3", version="0.0-test", features=["value"], weights=weights)
    formats = [f for f in ("onnx", "onnx-int8", "tflite", "tflite-int8")
               if importlib.util.find_spec("onnxruntime" if f.startswith("onnx") else "ai_edge_litert")]
    if formats:
        export_bundle(out, formats)
    return load_bundle(out)


@pytest.fixture(params=["compiled", "plain"])
def kernel_mode(request, monkeypatch):
    if request.param == "compiled":
        if not kernel.COMPILED:
            pytest.skip("the kernel is not compiled here")
    else:
        monkeypatch.setattr(detector_module, "kernel", plain_kernel_module())
    return request.param


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__.removeprefix("check_") for c in CHECKS])
@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("model", ["univariate", "skab-pump", "mixture-k3", "skab-relation"])
def test_check(check, backend, model, kernel_mode, tmp_path, tmp_path_factory):
    bundle = _bundle(model, tmp_path_factory)
    try:
        create_backend(backend, bundle)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    setup = Setup(bundle, lambda: create_backend(backend, bundle), bundle.n_features)
    if "tmp_path" in inspect.signature(check).parameters:
        check(setup, tmp_path)
    else:
        check(setup)
