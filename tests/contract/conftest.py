"""Models and backends for the contract tests (river-style: one list of checks, run on everything).

Models: three tiny bundles built once per session (random weights, F=2/H=8, F=1/H=32 and F=2/H=8
with a mixture head of K=3 Gaussians per feature, exported
to every format whose runtime is installed) plus every ``firmware_models/*/`` that has a
manifest.yaml -- new shipped models are picked up automatically.

Parametrization (collection time, from the manifests): ``model_id`` over all models;
``backend_name`` over every backend whose artifact the model lists (tiny models: all of them).
A backend is skipped, with the reason, only when its runtime is not installed here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from contract_helpers import (MODEL_IDS, ROOT, TINY, backend_cases, export_formats, random_weights,
                              runtime_missing)

from edgernn.backends import create_backend
from edgernn.bundle import load_bundle, write_bundle


def pytest_generate_tests(metafunc):
    if "backend_name" in metafunc.fixturenames:
        cases = backend_cases()
        metafunc.parametrize(("model_id", "backend_name"), cases, ids=[f"{m}-{b}" for m, b in cases])
    elif "model_id" in metafunc.fixturenames:
        metafunc.parametrize("model_id", MODEL_IDS)


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory):
    """model_id -> bundle directory; tiny bundles are written and exported on first use."""
    from edgernn.export import export_bundle

    cache: dict[str, Path] = {}

    def get(model_id: str) -> Path:
        if model_id not in cache:
            if model_id in TINY:
                F, H, seed, K = TINY[model_id]
                out = tmp_path_factory.mktemp(model_id)
                write_bundle(out, name=model_id, version="0.0-test", features=[f"f{i}" for i in range(F)],
                             weights=random_weights(F, H, seed, K=K))
                export_bundle(out, export_formats())
                cache[model_id] = out
            else:
                cache[model_id] = ROOT / "firmware_models" / model_id.split("/", 1)[1]
        return cache[model_id]

    return get


@pytest.fixture
def bundle(model_id, model_dirs):
    return load_bundle(model_dirs(model_id))


_BACKENDS: dict[tuple[str, str], object] = {}


@pytest.fixture
def backend(model_id, backend_name, bundle):
    """The backend under test (one instance per model and backend for the session)."""
    reason = runtime_missing(backend_name)
    if reason:
        pytest.skip(reason)
    key = (model_id, backend_name)
    if key not in _BACKENDS:  # BackendUnavailable here is a failure: the runtime is installed
        _BACKENDS[key] = create_backend(backend_name, bundle)
    return _BACKENDS[key]


