"""Every detector check (checks.CHECKS) on every combination of kernel mode (compiled, plain
Python) x model (univariate, skab-pump) x backend (every name in the registry; skipped where its
runtime or artifact is not on this machine)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from checks import CHECKS, Setup
from unit_helpers import plain_kernel_module

from edgernn import detector as detector_module
from edgernn import kernel
from edgernn.backends import BACKEND_NAMES, BackendUnavailable, create_backend
from edgernn.bundle import load_bundle

MODELS = Path(__file__).resolve().parents[2] / "firmware_models"
_BUNDLES: dict = {}


def _bundle(name):
    if name not in _BUNDLES:
        _BUNDLES[name] = load_bundle(MODELS / name)
    return _BUNDLES[name]


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
@pytest.mark.parametrize("model", ["univariate", "skab-pump"])
def test_check(check, backend, model, kernel_mode, tmp_path):
    bundle = _bundle(model)
    try:
        create_backend(backend, bundle)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    setup = Setup(bundle, lambda: create_backend(backend, bundle), bundle.n_features)
    if "tmp_path" in inspect.signature(check).parameters:
        check(setup, tmp_path)
    else:
        check(setup)
