"""Shared fixtures for the unit tests: tiny real bundles written with edgernn.bundle.write_bundle.

    tiny_bundle(F=1, H=8, seed=0, ...) -> Path     random weights (edgernn.backends.base shapes)
    steady_bundle(F=1, ...) -> Path                a "trained-ish" model: the head predicts
                                                   persistence (mean = x_t) with a fixed, fitting
                                                   variance, so a smooth signal scores low and a
                                                   spike scores very high -- deterministic, no torch
    sine_series(n, seed, F) -> float64[n, F]       smooth sine + small noise, per feature offsets

Everything is tiny (F <= 3, H <= 16, a few hundred readings) so the whole suite stays fast.
"""

from __future__ import annotations

import copy
import functools
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from edgernn.backends.base import GRU_WEIGHT_SHAPES
from edgernn.bundle import write_bundle

from unit_helpers import PYTHON, REPO, random_weights, sine_series, steady_weights  # noqa: F401


@functools.lru_cache(maxsize=None)
def _cached_calibration(F: int, warmup: int) -> dict:
    from edgernn.scoring import default_calibration

    return default_calibration(F, warmup=warmup)


def _calibration(F: int, warmup: int) -> dict:
    return copy.deepcopy(_cached_calibration(F, warmup))


@pytest.fixture(scope="session")
def _bundle_cache(tmp_path_factory):
    return {}


@pytest.fixture
def tiny_bundle(tmp_path_factory, _bundle_cache):
    """Factory: a loadable bundle dir with random weights. Identical arguments share one directory
    (bundles are read-only for the tests); pass ``fresh=True`` for a private copy to tamper with."""

    def make(F: int = 1, H: int = 8, seed: int = 0, warmup: int = 16, norm_mode: str = "stream",
             fresh: bool = False, **kw) -> Path:
        key = ("tiny", F, H, seed, warmup, norm_mode, tuple(sorted(kw.items())))
        if key in _bundle_cache:
            if not fresh:
                return _bundle_cache[key]
            out = tmp_path_factory.mktemp(f"tiny_f{F}_h{H}") / "bundle"
            shutil.copytree(_bundle_cache[key], out)
            return out
        out = tmp_path_factory.mktemp(f"tiny_f{F}_h{H}")
        write_bundle(out, name=f"tiny-f{F}-h{H}", version="0.0-test", features=[f"f{i}" for i in range(F)]
                     if F > 1 else ["value"], weights=random_weights(F, H, seed), norm_mode=norm_mode,
                     calibration=_calibration(F, warmup), golden_x=np.random.default_rng(seed).standard_normal(
                         (16, 2, F)).astype(np.float32), **kw)
        _bundle_cache[key] = out
        return make(F, H, seed, warmup, norm_mode, fresh, **kw) if fresh else out

    return make


@pytest.fixture
def steady_bundle(tmp_path_factory, _bundle_cache):
    """Factory: a persistence-predicting model that fits ``sine_series`` (see module doc)."""

    def make(F: int = 1, H: int = 8, warmup: int = 32, sigma: float = 0.2, features=None) -> Path:
        features = list(features or (["value"] if F == 1 else [f"f{i}" for i in range(F)]))
        key = ("steady", F, H, warmup, sigma, tuple(features))
        if key in _bundle_cache:
            return _bundle_cache[key]
        out = tmp_path_factory.mktemp(f"steady_f{F}")
        write_bundle(out, name=f"steady-f{F}", version="0.0-test", features=features,
                     weights=steady_weights(F, H, sigma), calibration=_calibration(F, warmup),
                     golden_x=np.zeros((8, 2, F), np.float32))
        _bundle_cache[key] = out
        return out

    return make


@pytest.fixture
def drawn(monkeypatch):
    """The figures saved during the test (kept open for inspection)."""
    import matplotlib.figure
    import matplotlib.pyplot as plt

    figures = []
    real = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: (figures.append(self), real(self, *a, **k)))
    monkeypatch.setattr(plt, "close", lambda *a: None)
    return figures


def _kernel_modes() -> list[str]:
    from edgernn import kernel

    return ["installed", "plain"] if kernel.COMPILED else ["installed"]


@pytest.fixture(params=_kernel_modes())
def each_kernel_mode(request, monkeypatch):
    """A test with the kernel as installed (compiled where the build had a C compiler) and, when that
    is compiled, again with kernel.py as plain Python (what runs without a C compiler): use it with
    ``pytestmark = pytest.mark.usefixtures("each_kernel_mode")``, or by name for the mode."""
    from edgernn import detector as detector_module
    from unit_helpers import plain_kernel_module

    if request.param == "plain":
        monkeypatch.setattr(detector_module, "kernel", plain_kernel_module())
    return request.param


@pytest.fixture(scope="module")
def univariate():
    """The shipped univariate bundle (firmware_models/univariate), loaded once per module."""
    from edgernn.bundle import load_bundle

    return load_bundle(REPO / "firmware_models" / "univariate")
