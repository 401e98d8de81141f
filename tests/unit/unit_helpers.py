"""Plain helpers shared by the unit tests (fixtures live in conftest.py). A uniquely named
module, so that `from unit_helpers import ...` cannot pick up another folder's conftest."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edgernn.backends.base import GRU_WEIGHT_SHAPES, MIXTURE_WEIGHT_SHAPES

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[2]


def random_weights(F: int, H: int, seed: int = 0, gain: float = 1.0, K: int = 1) -> dict[str, np.ndarray]:
    """Random weights of a GRU with a head of K Gaussians per feature (head rows K F)."""
    rng = np.random.default_rng(seed)
    dims = {"F": F, "H": H}
    shapes = {**GRU_WEIGHT_SHAPES, **(MIXTURE_WEIGHT_SHAPES if K > 1 else {})}
    return {k: (gain / np.sqrt(H) * rng.standard_normal(
                [dims[d] * (K if k.startswith("head.") and i == 0 else 1) for i, d in enumerate(spec)])).astype(np.float32)
            for k, spec in shapes.items()}


def steady_weights(F: int, H: int, sigma: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Small random GRU, head that ignores h: mean = x_t, logvar = log(sigma^2) (normalised units)."""
    w = random_weights(F, H, seed, gain=0.3)
    w["head.W_mean"] = np.zeros((F, H), np.float32)
    w["head.b_mean"] = np.zeros(F, np.float32)
    w["head.W_logvar"] = np.zeros((F, H), np.float32)
    w["head.b_logvar"] = np.full(F, 2.0 * np.log(sigma), np.float32)
    return w


def sine_series(n: int, seed: int = 0, F: int = 1, period: float = 80.0, noise: float = 0.02) -> np.ndarray:
    """float64[n, F]: smooth sines (one per feature, own phase, offset and scale) + small noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)[:, None]
    phase = rng.uniform(0, 2 * np.pi, F)
    scale = rng.uniform(1.0, 5.0, F)
    offset = rng.uniform(-50, 50, F)
    x = np.sin(2 * np.pi * t / period + phase) + noise * rng.standard_normal((n, F))
    return offset + scale * x


def plain_kernel_module(block_cython: bool = True):
    """edgernn/kernel.py loaded from its source as plain Python (whether or not the installed
    package is the compiled extension); with block_cython, as on a machine without Cython, so
    the stand-in decorators of edgernn/_cython_shim.py are what runs."""
    import importlib.util

    import edgernn

    path = Path(edgernn.__file__).with_name("kernel.py")
    spec = importlib.util.spec_from_file_location("edgernn._kernel_plain", path)
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("cython", ...)
    if block_cython:
        sys.modules["cython"] = None  # `import cython` raises ImportError
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is ...:
            sys.modules.pop("cython", None)
        else:
            sys.modules["cython"] = saved
    assert module.COMPILED is False
    return module


# -- naive references (the oracle for the kernel's one-value functions) ---------------------------
def naive_tail_log10(values, table: dict) -> np.ndarray:
    """log10 P(stat >= value) from a calibration table with its exponential tail: np.interp on the
    table plus one far point where log10 sf has fallen linearly by TAIL_SPAN / ln 10."""
    from edgernn.scoring import TAIL_SPAN

    xs = np.append(np.asarray(table["x"], np.float64), table["x"][-1] + TAIL_SPAN * table["tail_scale"])
    ls = np.append(np.asarray(table["log10_sf"], np.float64), table["log10_sf"][-1] - TAIL_SPAN / np.log(10.0))
    return np.interp(values, xs, ls)


def naive_gauss_tail_log10(z) -> np.ndarray:
    """log10 P(|N(0, 1)| >= z) = log10 erfc(z / sqrt 2), its asymptotic series where erfc underflows."""
    import math

    from edgernn.scoring import GAUSS_SWITCH

    out = []
    for v in np.asarray(z, np.float64):
        y = v / math.sqrt(2.0)
        out.append(math.log10(math.erfc(y)) if y < GAUSS_SWITCH else
                   (-y * y - math.log(y * math.sqrt(math.pi)) + math.log1p(-0.5 / (y * y))) / math.log(10.0))
    return np.array(out)


def load_benchmark(name: str):
    """benchmarks/NAME.py as module NAME (benchmarks/ is not a package; registered in sys.modules,
    so that one benchmark importing another by name gets this same module)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
