"""Calibration data and the TFLite quantization plan (written by hand with the schema API).

Calibration pairs ``(x_t, h_{t-1})`` come from the numpy reference run over the calibration
sequences in two ways, because short or warm-only calibration clips ranges and wrecks rollouts:

* long runs: every sequence from h = 0 to its end (cold start *and* the settled regime);
* cold starts: from h = 0 at every ``cold_every``-th step, for ``cold_len`` steps (the transient
  after a restart or a gap reset, on many different inputs).

Ranges are the min/max of every tensor over all pairs (no percentile clipping), widened by
``margin``. Fixed ranges where the math gives them: sigmoid outputs use scale 1/256 (int8) and
tanh 1/128 as TFLite requires; the hidden state (in and out) uses [-1, 1], its exact bound, so a
rollout never clips it.

TFLite scheme: weights int8 symmetric per channel (one scale per FULLY_CONNECTED output row,
op version 12; runs in LiteRT 2.3 and TFLite Micro, int8 and 16x8) or per tensor; biases int32
(int64 with 16-bit activations) at scale s_in * s_w[row], optionally bias-corrected by
(W - Wq) E[input] over the calibration pairs; activations int8 asymmetric, or int16 symmetric
("16x8" mode). Measured on firmware_models/univariate (synthetic replay, alerts differing from
float per 10k readings): int8 activations ~9 whatever the weight scheme (8-bit h and gate
pre-activations dominate); int16 + per-tensor 0.18; int16 + per-channel 0.06. 8-bit recurrent
weights alone (float activations) still give ~0.1 mean logvar error on long rollouts. The residual
tail (pred = [x | 0] + head) stays float32 in the model (tflite_export.FLOAT_TAIL), so x_pad and
pred need no parameters.

With jump inputs (backends/base.py) the calibration inputs are x [N, 2F] = [c | j] (run_ops splits
them); j, a graph input of its own, has its range pinned to [0, 1], all it can take.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .cell_graph import Op, cell_ops, graph_inputs, run_ops

CALIBRATION_MAX_PAIRS = 200_000


def calibration_sequences(bundle) -> tuple[np.ndarray, str]:
    """``x: float32[T, B, F]`` (2F with jump inputs) for calibration: representative.npz if listed,
    else golden.npz (checked by Bundle.golden). A one-line BundleError naming the file for an
    unreadable representative.npz, a missing ``x``, a wrong shape or a value that is NaN, inf or
    beyond float32 (it would wreck the scales)."""
    from ..bundle import BundleError, read_npz

    path = bundle.artifact_path("representative.npz")
    if path is None:
        return np.asarray(bundle.golden()["x"], np.float32), "golden.npz"
    x = read_npz(path, ("x",), "the calibration sequences")["x"]
    F = bundle.input_width  # F, or 2F: [c | j]
    if x.ndim != 3 or x.shape[2] != F or x.shape[0] < 1 or x.shape[1] < 1:
        raise BundleError(f"{path}: x must be float32[T, B, {F}] with T, B >= 1, got {list(x.shape)}")
    with np.errstate(over="ignore"):
        x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise BundleError(f"{path}: x: contains NaN or inf (or values beyond float32)")
    return x, "representative.npz"


def calibration_pairs(weights, xs: np.ndarray, cold_len: int = 32, cold_every: int = 16,
                      max_pairs: int = CALIBRATION_MAX_PAIRS) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(x[N, F], h_prev[N, H])`` seen on long runs and on cold starts from h = 0 (x [N, 2F]
    = [c | j] with jump inputs, as ``xs``)."""
    from ..backends.numpy_gru import NumpyGRU

    cell = NumpyGRU(weights)
    T, B, F = xs.shape
    xs_out, hs_out = [], []
    h = np.zeros((B, cell.hidden), np.float32)
    for t in range(T):  # long runs from a cold start
        xs_out.append(xs[t])
        hs_out.append(h)
        _, h = cell.step(xs[t], h)
    starts = list(range(cold_every, T, cold_every))
    if starts:  # all cold starts advance together as one batch
        L = min(cold_len, T - starts[0])
        h = np.zeros((len(starts) * B, cell.hidden), np.float32)
        for k in range(L):
            idx = np.minimum(np.asarray(starts) + k, T - 1)
            x = xs[idx].reshape(-1, F)  # [S*B, F]
            xs_out.append(x)
            hs_out.append(h)
            _, h = cell.step(x, h)
    X, Hp = np.concatenate(xs_out), np.concatenate(hs_out)
    if len(X) > max_pairs:  # deterministic thinning, keeps both kinds of pairs
        keep = np.linspace(0, len(X) - 1, max_pairs).astype(np.int64)
        X, Hp = X[keep], Hp[keep]
    return X.astype(np.float32), Hp.astype(np.float32)


EXTREMES = 4096  # calibration pairs added with x at the detector's clip (tflite_plan's x_clip)


def _with_clipped_extremes(X: np.ndarray, Hp: np.ndarray, x_clip: float,
                           jump: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(X, Hp) [N, F], [N, H] plus EXTREMES pairs: the hidden states of randomly chosen pairs with
    every feature of x at +-x_clip (random signs, a fixed seed: the same plan every export). With
    jump inputs X is [N, 2F] = [c | j]: c at +-x_clip, j at 0 or 1 (its corners, random)."""
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(X), EXTREMES)  # [E]
    F = X.shape[1] // 2 if jump else X.shape[1]
    Xe = (x_clip * rng.choice([-1.0, 1.0], size=(EXTREMES, F))).astype(X.dtype)  # [E, F]
    if jump:
        Xe = np.concatenate([Xe, rng.choice([0.0, 1.0], size=(EXTREMES, F)).astype(X.dtype)], axis=1)  # [E, 2F]
    return np.concatenate([X, Xe]), np.concatenate([Hp, Hp[pick]])


def tensor_ranges(ops: list[Op], X: np.ndarray, Hp: np.ndarray, chunk: int = 8192) -> dict[str, tuple[float, float]]:
    """min/max of every tensor of the cell over the calibration pairs (X [N, 2F] = [c | j] with
    jump inputs)."""
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    for s in range(0, len(X), chunk):
        for name, v in run_ops(ops, X[s : s + chunk], Hp[s : s + chunk]).items():
            lo[name] = min(lo.get(name, np.inf), float(v.min()))
            hi[name] = max(hi.get(name, -np.inf), float(v.max()))
    return {k: (lo[k], hi[k]) for k in lo}


def _affine(lo: float, hi: float, bits: int, margin: float) -> tuple[float, int]:
    """(scale, zero_point) covering [lo, hi] (widened by margin, always containing 0)."""
    width = hi - lo
    lo, hi = min(lo - margin * width, 0.0), max(hi + margin * width, 0.0)
    if bits == 16:  # symmetric, zero point 0
        return max(abs(lo), abs(hi), 1e-6) / 32767.0, 0
    scale = max(hi - lo, 1e-6) / 255.0
    zp = int(np.clip(round(-128 - lo / scale), -128, 127))
    return scale, zp


@dataclass
class TflitePlan:
    """Quantization parameters for every tensor of ``cell_ops``: what build_tflite needs."""

    bits: int  # activation bits: 8 or 16 (weights are always int8)
    act: dict[str, tuple[float, int]]  # tensor -> (scale, zero_point)
    ops: dict[str, Op] = field(repr=False)  # fc output name -> op
    per_channel: bool = True  # one weight scale per output row (else one per gate tensor)
    bias_correction: bool = False
    input_mean: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # fc input -> mean

    @property
    def label(self) -> str:
        return "int8 weights + int8 activations" if self.bits == 8 else "int8 weights + int16 activations"

    @property
    def weight_label(self) -> str:
        return ("int8 symmetric, per channel (one scale per output row)" if self.per_channel
                else "int8 symmetric, per tensor (one tensor per gate)")

    def weight(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(int8 weight[out, in], float scales[out]) -- per-tensor plans repeat one scale."""
        w = self.ops[name].weight
        if self.per_channel:
            scale = np.abs(w).max(axis=1) / 127.0
        else:
            scale = np.full(w.shape[0], np.abs(w).max() / 127.0)
        scale = np.where(scale > 0, scale, 1.0).astype(np.float64)
        return np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int8), scale

    def bias(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        op = self.ops[name]
        s_in = self.act[op.inputs[0]][0]
        wq, s_w = self.weight(name)
        s_b = s_in * s_w
        b = op.bias.astype(np.float64)
        if self.bias_correction and op.inputs[0] in self.input_mean:
            # fold the mean effect of weight rounding into the bias: (W - Wq) E[input]
            err = op.weight.astype(np.float64) - wq.astype(np.float64) * s_w[:, None]
            b = b + err @ self.input_mean[op.inputs[0]]
        dtype = np.int64 if self.bits == 16 else np.int32
        info = np.iinfo(np.int32)
        return np.clip(np.round(b / s_b), info.min, info.max).astype(dtype), s_b


def tflite_plan(weights, X: np.ndarray, Hp: np.ndarray, bits: int = 8, margin: float = 0.05,
                per_channel: bool = True, bias_correction: bool = False, x_clip: float | None = None) -> TflitePlan:
    """Calibrate every activation of the cell on ``(X, Hp)`` and fix the TFLite constraints.
    ``x_clip``: the detector clips x to +-x_clip; the ranges also cover x anywhere in it (the
    calibration pairs plus EXTREMES of them with every feature at +-x_clip, random signs), not just
    what the calibration saw (x = -10 was a 0.65 error at a 0.09 tolerance, x saturating at 5.2)."""
    ops, F, H = cell_ops(weights)
    jump = "j" in graph_inputs(ops)
    ranges = tensor_ranges(ops, *(_with_clipped_extremes(X, Hp, x_clip, jump) if x_clip is not None else (X, Hp)))
    act = {name: _affine(lo, hi, bits, margin) for name, (lo, hi) in ranges.items()}
    unit = (1.0 / 32767.0, 0) if bits == 16 else (1.0 / 127.0, 0)  # [-1, 1] symmetric
    act["h"] = act["h_next"] = unit
    if jump:  # j in [0, 1], all of it
        act["j"] = _affine(0.0, 1.0, bits, 0.0)
    for op in ops:
        if op.kind == "logistic":  # required by the TFLite kernels
            act[op.out] = (1.0 / 32768.0, 0) if bits == 16 else (1.0 / 256.0, -128)
        elif op.kind == "tanh":
            act[op.out] = (1.0 / 32768.0, 0) if bits == 16 else (1.0 / 128.0, 0)
    means = {}
    if bias_correction:
        t = run_ops(ops, X[:50000], Hp[:50000])
        means = {op.inputs[0]: t[op.inputs[0]].astype(np.float64).mean(axis=0) for op in ops if op.kind == "fc"}
    return TflitePlan(bits=bits, act=act, ops={op.out: op for op in ops if op.kind == "fc"},
                      per_channel=per_channel, bias_correction=bias_correction, input_mean=means)
