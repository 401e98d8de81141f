"""Explicit backend registry. Runtimes are imported only when their backend is created.

    create_backend("numpy", bundle)        reference numpy cell (always available)
    create_backend("onnx", bundle)         onnxruntime on model.onnx        (pip install edgernn[onnx])
    create_backend("onnx-int8", bundle)    onnxruntime on model.int8.onnx   (pip install edgernn[onnx])
    create_backend("tflite", bundle)       LiteRT on model.tflite           (pip install edgernn[tflite])
    create_backend("tflite-int8", bundle)  LiteRT on model.int8.tflite      (pip install edgernn[tflite])
    create_backend("persistence", bundle)  the baseline: last value, running variance of changes
                                           (no weights; every quality figure is compared with it)
"""

from __future__ import annotations

import importlib

from .base import Backend, BackendUnavailable, check_finite, check_shapes

# name -> (module, factory, artifact key in the manifest, or None for weights only, or BUNDLE for a
# baseline built from the bundle's dimensions alone: factory.from_bundle(bundle))
BUNDLE = "<bundle>"
_REGISTRY: dict[str, tuple[str, str, str | None]] = {
    "numpy": ("edgernn.backends.numpy_gru", "NumpyGRU", None),
    "onnx": ("edgernn.backends.onnx_gru", "OnnxGRU", "model.onnx"),
    "onnx-int8": ("edgernn.backends.onnx_gru", "OnnxGRU", "model.int8.onnx"),
    "tflite": ("edgernn.backends.tflite_gru", "TfliteGRU", "model.tflite"),
    "tflite-int8": ("edgernn.backends.tflite_gru", "TfliteGRU", "model.int8.tflite"),
    "persistence": ("edgernn.backends.persistence", "Persistence", BUNDLE),
}

BACKEND_NAMES = tuple(_REGISTRY)
BASELINES = tuple(n for n, entry in _REGISTRY.items() if entry[2] == BUNDLE)  # no weights: not the GRU
GRU_BACKENDS = tuple(n for n in BACKEND_NAMES if n not in BASELINES)  # run the bundle's GRU (parity-checked)
BASELINE = "persistence"  # what eval and the quality benchmarks compare the GRU with

__all__ = ["Backend", "BackendUnavailable", "BACKEND_NAMES", "BASELINE", "BASELINES", "GRU_BACKENDS", "create_backend",
           "backend_artifact"]


def backend_artifact(name: str) -> str | None:
    """Manifest artifact a backend runs (``"model.onnx"``…), or None for the numpy reference and
    the baselines (which run no artifact: see ``BASELINES``)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(BACKEND_NAMES)}")
    artifact = _REGISTRY[name][2]
    return None if artifact == BUNDLE else artifact


def create_backend(name: str, bundle, **options) -> Backend:
    """Build backend ``name`` for ``bundle`` (an ``edgernn.bundle.Bundle``).

    Raises ``ValueError`` for an unknown name, an artifact whose F, H or K are not the bundle's or
    a cell whose output is not finite (``base.check_finite``),
    ``BackendUnavailable`` when the runtime or the artifact is missing or cannot be loaded (the
    message says what to install or which export to run).
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(BACKEND_NAMES)}")
    module_name, factory, artifact = _REGISTRY[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:  # the backend module itself not shipped yet
        raise BackendUnavailable(f"backend {name!r} is not available: {exc}") from None
    cls = getattr(module, factory)
    if artifact == BUNDLE:
        return cls.from_bundle(bundle)
    if artifact is None:
        backend = cls(bundle.weights)
        check_finite(backend, bundle.input_clip, bundle.path / "weights.npz")
        return backend
    path = bundle.artifact_path(artifact)
    if path is None:
        raise BackendUnavailable(
            f"model {bundle.name!r} has no {artifact}; run: edgernn export {bundle.path}"
        )
    backend = cls(path, name=name, **options)
    check_shapes(backend, bundle, path)  # an artifact of another model: refused here, not mid-run
    check_finite(backend, bundle.input_clip, path)
    return backend
