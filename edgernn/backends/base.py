"""The Backend protocol and the weight-name contract shared by every runtime.

A backend maps ``(x: float32[B, F], h: float32[B, H])`` to ``(pred: float32[B, P],
h_next: float32[B, H])`` for any batch size B >= 1. It holds weights only, never per-stream state.

The head predicts a mixture of K Gaussians per feature (``components``: K; K = 1 is the plain
Gaussian head). ``pred`` is component-major, P = 2F (K = 1) or 3KF (K > 1):

    pred[:, k F + f]          mean of component k of feature f (normalised units)
    pred[:, K F + k F + f]    its log-variance (unclamped: the kernel clamps)
    pred[:, 2 K F + k F + f]  its mixture logit (K > 1 only; weights = softmax over k)

With K = 1 that is today's ``[mean | logvar]``. Every mean is residual: x_f + W_mean h + b_mean
(the x skip connection tiled K times).

A model with **jump inputs** (``jump``: its weights hold ``in.jump`` and ``gru.W_j*``) takes
``x: float32[B, 2F] = [c | j]``: c the normalised readings as above, j per feature the stream's
slow input, its rate of jumps on a log scale in [0, 1] (``jump_input``). j reaches the gates
only (its own input weights ``W_jr``, ``W_jz``, ``W_jn``); the skip connection and the head read
c alone. Graphs take it as a third input ``j: float32[B, F]`` (its own int8 range).
"""

from __future__ import annotations

import shlex
from typing import Protocol

import numpy as np

from ..logs import first_line


class Backend(Protocol):
    name: str
    features: int  # F
    hidden: int  # H
    components: int  # K (mixture components per feature; 1: the Gaussian head)
    jump: bool  # x is [B, 2F] = [c | j] (jump inputs), else [B, F]
    h_bound: float | None  # |h| <= h_bound always (a GRU: 1.0; the store keeps h as int16 Q15), or None (float32)

    def step(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class BackendUnavailable(RuntimeError):
    """The runtime a backend needs is not installed (the message names the pip extra)."""


# name -> shape in terms of F (features) and H (hidden). Weights are stored by these names. The head's
# rows ("head.*") are K F for a K-component head (component-major: row k F + f), F for K = 1.
GRU_WEIGHT_SHAPES: dict[str, tuple[str, ...]] = {
    "gru.W_ir": ("H", "F"), "gru.W_iz": ("H", "F"), "gru.W_in": ("H", "F"),
    "gru.W_hr": ("H", "H"), "gru.W_hz": ("H", "H"), "gru.W_hn": ("H", "H"),
    "gru.b_ir": ("H",), "gru.b_iz": ("H",), "gru.b_in": ("H",),
    "gru.b_hr": ("H",), "gru.b_hz": ("H",), "gru.b_hn": ("H",),
    "head.W_mean": ("F", "H"), "head.b_mean": ("F",),
    "head.W_logvar": ("F", "H"), "head.b_logvar": ("F",),
}
# only in a mixture head (K > 1): the mixture logits, K F rows as the other head weights
MIXTURE_WEIGHT_SHAPES: dict[str, tuple[str, ...]] = {"head.W_logit": ("F", "H"), "head.b_logit": ("F",)}
# only in a model with jump inputs: the j inputs' weights per gate, and the definition of j:
# in.jump = [threshold, memory, floor] (jump_input)
JUMP_WEIGHT_SHAPES: dict[str, tuple[str, ...]] = {
    "gru.W_jr": ("H", "F"), "gru.W_jz": ("H", "F"), "gru.W_jn": ("H", "F"), "in.jump": ("3",)}
JUMP_KEY = "in.jump"
JUMP_DEFAULT = (1.0, 200.0, 1e-3)  # a jump: |x_t - x_t-1| > 1 sd; EW memory 200 readings; log floor 1e-3
MAX_COMPONENTS = 16


def has_jump(weights: dict[str, np.ndarray]) -> bool:
    """True for a model with jump inputs (x is [c | j], backends/base.py's doc)."""
    return JUMP_KEY in weights


def jump_text(weights: dict[str, np.ndarray]) -> str:
    """What a jump model's GRU reads, for people (inspect, the model card)."""
    threshold, memory, floor = jump_params(weights)
    return (f"the normalised reading and its stream's rate of jumps (a change of more than {threshold:g} sd; over the "
            f"last ~{memory:g} readings; log scale, floor {floor:g})")


def jump_params(weights: dict[str, np.ndarray]) -> tuple[float, float, float]:
    """A jump model's (threshold, memory, floor): its in.jump as numbers."""
    threshold, memory, floor = (float(v) for v in weights[JUMP_KEY])
    return threshold, memory, floor


def jump_input(rate, floor: float):
    """j = min(1 + log10(rate + floor) / -log10(floor), 1): a jump rate in [0, 1] as the GRU's input,
    0 at rate 0 and 1 at rate ~1 (a log scale: one jump in 1000 readings and one in 10 are far
    apart). Training calls this on arrays; the kernel's _jump_input is the same expression per value."""
    return np.minimum(1.0 + np.log10(rate + floor) / -np.log10(floor), 1.0)


def with_random_jumps(x: np.ndarray, rng) -> np.ndarray:
    """x float32[..., F] -> [..., 2F] = [x | j], j uniform in [0, 1] (inputs for checks and timing)."""
    return np.concatenate([x, rng.uniform(0.0, 1.0, x.shape).astype(np.float32)], axis=-1)


def floored_std(std: np.ndarray, mean: np.ndarray, min_std: float, min_rel_std: float) -> np.ndarray:
    """std[F] floored as the detector floors a stream's (kernel._std): at max(min_std, min_rel_std |mean|)."""
    return np.maximum(std, np.maximum(min_std, min_rel_std * np.abs(mean)))


def jump_rates(x: np.ndarray, std: np.ndarray, threshold: float, memory: float) -> np.ndarray:
    """x float64[T, F] raw readings and std float64[T, F] the stream's std each was normalised with
    (train.data.stream_normalise) -> the jump rate after each reading, float64[T, F]: a jump at t
    is |x_t - x_t-1| > threshold std_t (none at t = 0); the rate is the running mean of jumps over
    the first ``memory`` readings, then their EW mean with weight 1 / memory. The kernel's
    _jump_input is the same recursion, reading by reading."""
    T, F = x.shape
    out = np.empty((T, F))
    rate = np.zeros(F)
    for t in range(T):
        jump = (np.abs(x[t] - x[t - 1]) > threshold * std[t]) if t > 0 else np.zeros(F, bool)
        rate += (jump - rate) / min(t + 1.0, memory)
        out[t] = rate
    return out


def components(weights: dict[str, np.ndarray]) -> int:
    """K, the head's mixture components per feature (1: the Gaussian head), from the weights'
    shapes (``check_weights`` validates them)."""
    F = int(np.shape(weights["gru.W_ir"])[1])
    return max(int(np.shape(weights["head.W_mean"])[0]) // max(F, 1), 1)


def head_layout(F: int, K: int) -> tuple[slice, slice, slice | None]:
    """Slices of ``pred`` (width 2F or 3KF) holding the means, the log-variances and the logits
    (None for K = 1)."""
    KF = K * F
    return slice(0, KF), slice(KF, 2 * KF), (slice(2 * KF, 3 * KF) if K > 1 else None)


def pred_width(F: int, K: int) -> int:
    """Entries of one prediction: mean | logvar (K = 1), means | logvars | logits (K > 1)."""
    return 2 * F if K == 1 else 3 * K * F


def components_of_width(width: int, F: int, where="model") -> int:
    """K from the width of a graph's ``pred`` output (2F: 1, 3KF: K); ValueError otherwise."""
    if width == 2 * F:
        return 1
    if F > 0 and width % (3 * F) == 0 and 2 <= width // (3 * F) <= MAX_COMPONENTS:
        return width // (3 * F)
    raise ValueError(f"{where}: output pred has {width} entries: expected 2F or 3KF (F={F})")


def fixed_width(shape, tensor: str, where) -> int:
    """The last dimension of a graph tensor's ``shape`` (``[B, n]``) as an int; ValueError naming
    ``where`` (the model file) when the graph leaves it symbolic or has no dimensions."""
    shape = [int(d) if isinstance(d, np.integer) else d for d in (shape if shape is not None else [])]
    last = shape[-1] if shape else None
    if len(shape) != 2 or not isinstance(last, int) or isinstance(last, bool) or last < 1:
        raise ValueError(f"{where}: {tensor} has shape {shape}: expected [B, n] with a fixed n >= 1")
    return int(last)


def check_shapes(backend, bundle, where) -> None:
    """A graph made for ``bundle``: F, H and K as its weights.npz (ValueError naming ``where`` otherwise:
    an artifact of another model, e.g. copied from another bundle)."""
    got = (backend.features, backend.hidden, backend.components)
    want = (bundle.n_features, bundle.hidden, bundle.components)
    jumps = (bool(getattr(backend, "jump", False)), has_jump(bundle.weights))
    if jumps[0] != jumps[1]:
        have = {True: "with jump inputs (x, j, h)", False: "without jump inputs"}
        raise ValueError(f"{where}: a graph {have[jumps[0]]} but the bundle's weights.npz is a model "
                         f"{have[jumps[1]]}: not this model's artifact (run: edgernn export {shlex.quote(str(bundle.path))})")
    if got != want:
        raise ValueError(f"{where}: a graph of F={got[0]} features, H={got[1]}, K={got[2]} but the bundle's "
                         f"weights.npz has F={want[0]}, H={want[1]}, K={want[2]}: not this model's artifact "
                         f"(run: edgernn export {shlex.quote(str(bundle.path))})")


def check_finite(backend, x_clip: float, where) -> None:
    """The cell runs and its outputs are finite at the corners of its input range (x = 0 and
    +-``x_clip``, the detector's input clip; h = 0 and +-1, a GRU's bound), in batches of one and
    all three in one batch: a graph or weights with NaN / inf (or large enough to overflow float32),
    or a graph that runs one batch size only, is refused here (ValueError naming ``where``), not
    turned into a state reset of every stream at every reading or a failure at the first batch."""
    F, H = backend.features, backend.hidden
    for signs in ((0.0,), (1.0,), (-1.0,), (0.0, 1.0, -1.0)):
        s = np.array(signs, np.float32)[:, None]  # [B, 1]
        x, h = np.repeat(s * np.float32(x_clip), F, axis=1), np.repeat(s, H, axis=1)  # [B, F], [B, H]
        if getattr(backend, "jump", False):  # and j at its own corners, 0 and 1: [B, 2F] = [c | j]
            x = np.concatenate([x, np.repeat(np.abs(s), F, axis=1)], axis=1)
        try:
            with np.errstate(all="ignore"):  # an overflow is reported below, as one line
                pred, h_next = backend.step(x, h)  # [B, P], [B, H]
        except BackendUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - the runtimes raise their own types
            first = first_line(exc)
            raise ValueError(f"{where}: the model cannot run a batch of {len(signs)}: {first}") from None
        if not (np.isfinite(pred).all() and np.isfinite(h_next).all()):
            at = ", ".join(f"x = {v * x_clip:g}, h = {v:g}" for v in signs)
            raise ValueError(f"{where}: the model's output is NaN or inf at {at}: "
                             "weights that are NaN, inf or too large for float32")


def check_weights(weights: dict[str, np.ndarray]) -> tuple[int, int]:
    """Validate names and shapes; return (F, H). Raises ValueError naming the offending key."""
    missing = sorted(set(GRU_WEIGHT_SHAPES) - set(weights))
    if missing:
        raise ValueError(f"missing weight(s): {', '.join(missing)}")
    if np.ndim(weights["gru.W_ir"]) != 2:
        raise ValueError(f"weight gru.W_ir has shape {tuple(np.shape(weights['gru.W_ir']))}, expected (H, F): 2 dimensions")
    H, F = np.shape(weights["gru.W_ir"])
    if H < 1:  # no hidden state: nothing for the cell to carry (the detector's kernel needs H >= 1)
        raise ValueError(f"weight gru.W_ir has shape {(H, F)}: needs H >= 1 hidden units")
    rows = np.shape(weights["head.W_mean"])[0] if np.ndim(weights["head.W_mean"]) else 0
    K = rows // F if F and rows % F == 0 else 0
    if not 1 <= K <= MAX_COMPONENTS:
        raise ValueError(f"weight head.W_mean has {rows} rows: expected K F (F={F}, K in 1..{MAX_COMPONENTS})")
    jump = has_jump(weights) or any(k.startswith("gru.W_j") for k in weights)
    shapes = {**GRU_WEIGHT_SHAPES, **(MIXTURE_WEIGHT_SHAPES if K > 1 else {}), **(JUMP_WEIGHT_SHAPES if jump else {})}
    missing = sorted(set(shapes) - set(weights))
    if missing:
        what = f"a head of K={K} components" + (" and jump inputs" if jump else "")
        raise ValueError(f"missing weight(s): {', '.join(missing)} ({what})")
    extra = sorted(set(weights) - set(shapes))
    if extra:
        raise ValueError(f"unexpected weight(s): {', '.join(extra)}")
    dims = {"H": H, "F": F, "3": 3}
    for key, spec in shapes.items():
        want = tuple(dims[d] * (K if key.startswith("head.") and i == 0 else 1) for i, d in enumerate(spec))
        got = tuple(np.shape(weights[key]))
        if got != want:
            raise ValueError(f"weight {key} has shape {got}, expected {want}")
        if not np.all(np.isfinite(weights[key])):
            raise ValueError(f"weight {key} contains NaN or inf")
    if jump:
        threshold, memory, floor = jump_params(weights)
        if not (threshold > 0 and memory >= 1 and 0 < floor <= 0.01):
            raise ValueError(f"weight {JUMP_KEY} is [{threshold:g}, {memory:g}, {floor:g}]: expected [threshold > 0, "
                             "memory >= 1, 0 < floor <= 0.01]")
    return F, H
