"""Shared helpers for the contract tests: the model list, runtimes, tiny weights, inputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import yaml

from edgernn.backends import BACKEND_NAMES, backend_artifact
from edgernn.backends.base import GRU_WEIGHT_SHAPES, MIXTURE_WEIGHT_SHAPES

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIRS = sorted(p.parent for p in (ROOT / "firmware_models").glob("*/manifest.yaml"))
# id -> (F, H, seed, K): K Gaussians per feature in the head (3: a real mixture bundle, every format)
TINY = {"tiny-f2-h8": (2, 8, 11, 1), "tiny-f1-h32": (1, 32, 12, 1), "tiny-f2-h8-k3": (2, 8, 13, 3)}

# backend -> (python modules that can run it, the extra to install)
RUNTIMES = {
    "onnx": (("onnxruntime",), "onnx"),
    "onnx-int8": (("onnxruntime",), "onnx"),
    "tflite": (("ai_edge_litert", "tflite_runtime"), "tflite"),
    "tflite-int8": (("ai_edge_litert", "tflite_runtime"), "tflite"),
}


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def runtime_missing(backend_name: str) -> str | None:
    """Why ``backend_name`` cannot run here, or None."""
    if backend_name not in RUNTIMES:
        return None
    modules, extra = RUNTIMES[backend_name]
    found = [m for m in modules if has_module(m)]
    if found == ["tflite_runtime"] and int(np.__version__.split(".")[0]) >= 2:
        return f"only tflite_runtime is installed and it cannot run with numpy {np.__version__} (pip install edgernn[{extra}])"
    if found:
        return None
    return f"{' / '.join(modules)} not installed (pip install edgernn[{extra}])"


def random_weights(F: int, H: int, seed: int, gain: float = 1.0, K: int = 1) -> dict[str, np.ndarray]:
    """Random weights of a GRU with a head of K Gaussians per feature (head rows K F)."""
    rng = np.random.default_rng(seed)
    dims = {"F": F, "H": H}
    shapes = {**GRU_WEIGHT_SHAPES, **(MIXTURE_WEIGHT_SHAPES if K > 1 else {})}
    return {k: (gain / np.sqrt(H) * rng.standard_normal(
                [dims[d] * (K if k.startswith("head.") and i == 0 else 1) for i, d in enumerate(spec)])).astype(np.float32)
            for k, spec in shapes.items()}


def export_formats() -> list[str]:
    """Formats the tiny bundles can be exported to on this machine (writer + runtime to check it)."""
    fmts = []
    if has_module("onnx") and has_module("onnxruntime"):
        fmts += ["onnx", "onnx-int8"]
    if has_module("ai_edge_litert"):
        fmts += ["tflite", "tflite-int8"]
        if has_module("tflite_micro"):
            fmts.append("tflm")
    return fmts


def _firmware_id(path: Path) -> str:
    return f"firmware/{path.name}"


MODEL_IDS = list(TINY) + [_firmware_id(p) for p in FIRMWARE_DIRS]


def _listed_artifacts(model_id: str) -> set[str] | None:
    """Artifacts a firmware manifest lists (None for tiny models: every format is exported)."""
    if model_id in TINY:
        return None
    path = ROOT / "firmware_models" / model_id.split("/", 1)[1] / "manifest.yaml"
    try:
        manifest = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return set((manifest.get("artifacts") or {}).keys())
    except (OSError, yaml.YAMLError, AttributeError):
        return set()  # the load_bundle check reports the broken manifest


def backend_cases() -> list[tuple[str, str]]:
    cases = []
    for model_id in MODEL_IDS:
        listed = _listed_artifacts(model_id)
        for name in BACKEND_NAMES:
            artifact = backend_artifact(name)
            if artifact is None or listed is None or artifact in listed:
                cases.append((model_id, name))
    return cases


def in_distribution_inputs(bundle, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``x[n, F]``, ``h[n, H]`` drawn from golden.npz (inside the int8 calibration ranges)."""
    g = bundle.golden()
    xs = g["x"].reshape(-1, g["x"].shape[-1])
    h_prev = np.concatenate([g["h0"][None], g["h"][:-1]]).reshape(-1, g["h"].shape[-1])
    idx = np.random.default_rng(seed).integers(0, len(xs), n)
    return np.ascontiguousarray(xs[idx]), np.ascontiguousarray(h_prev[idx])
