"""The single-step cell as a flat list of primitive ops, shared by the TFLite writer and calibration.

One gate per fully-connected op (r, z, n kept apart) so that per-tensor int8 weight scales are
per gate, and no SPLIT/CONCATENATION is needed (int8 CONCATENATION forces one scale on x and h).

    r      = sigmoid(W_ir x + (b_ir + b_hr) + W_hr h)
    z      = sigmoid(W_iz x + (b_iz + b_hz) + W_hz h)
    n      = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h_next = n + z * (h - n)                      == (1 - z) * n + z * h
    pred   = W_o h_next + b_o + pad(x, [0, F])    W_o = [W_mean; W_logvar]  -> [mean | logvar]

A head of K > 1 Gaussians per feature (backends/base.py): W_o = [W_mean; W_logvar; W_logit] with
K F rows each, and the skip connection tiles x K times with a CONCATENATION before the pad:

    pred   = W_o h_next + b_o + pad(concat(x, ..., x), [0, 2 K F])  -> [means | logvars | logits]

(a concatenation of x with itself, not an fc with a 0/1 matrix: in the quantized models the
residual tail stays float32, so x reaches every mean exactly, as for K = 1.)

A model with jump inputs (backends/base.py) has a third input j [B, F] (its own int8 range, [0, 1]),
read by one more fc per gate, without bias, added to the input part of that gate:

    r      = sigmoid((W_ir x + (b_ir + b_hr) + W_jr j) + W_hr h)     likewise z
    n      = tanh((W_in x + b_in + W_jn j) + r * (W_hn h + b_hn))

``run_ops`` evaluates the list in numpy and returns every intermediate tensor by name: the
calibration pass records their ranges, and the tests check it against ``NumpyGRU``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends.base import check_weights, components, has_jump

INPUTS = ("x", "h")  # float32[B, F], float32[B, H]
JUMP_INPUTS = ("x", "j", "h")  # with jump inputs: float32[B, F], float32[B, F] in [0, 1], float32[B, H]
OUTPUTS = ("pred", "h_next")  # float32[B, 2F] (or [B, 3KF]), float32[B, H]


@dataclass(frozen=True)
class Op:
    kind: str  # "fc" | "add" | "sub" | "mul" | "logistic" | "tanh" | "pad" | "concat" (last axis)
    out: str
    inputs: tuple[str, ...]
    weight: np.ndarray | None = None  # fc: float32[out, in] (TFLite layout)
    bias: np.ndarray | None = None  # fc: float32[out]
    pad: int = 0  # pad: zeros appended to the last axis


def cell_ops(weights: dict[str, np.ndarray]) -> tuple[list[Op], int, int]:
    """The cell as ops, plus (F, H)."""
    F, H = check_weights(weights)
    K = components(weights)
    w = {k: np.asarray(v, np.float32) for k, v in weights.items()}
    zeros = np.zeros(H, np.float32)
    logit = ("head.W_logit", "head.b_logit") if K > 1 else ()
    jump = has_jump(weights)
    # a gate's input part: W_i x + b (name "i<g>"), with jump inputs + W_j j (fc "j<g>", sum "ij<g>")
    gate_in = {g: f"ij{g}" if jump else f"i{g}" for g in "rzn"}
    ops = [
        Op("fc", "ir", ("x",), w["gru.W_ir"], w["gru.b_ir"] + w["gru.b_hr"]),  # [B, H]
        *_jump_ops(w, "r", zeros),
        Op("fc", "hr", ("h",), w["gru.W_hr"], zeros),  # [B, H]
        Op("add", "r_pre", (gate_in["r"], "hr")),
        Op("logistic", "r", ("r_pre",)),
        Op("fc", "iz", ("x",), w["gru.W_iz"], w["gru.b_iz"] + w["gru.b_hz"]),
        *_jump_ops(w, "z", zeros),
        Op("fc", "hz", ("h",), w["gru.W_hz"], zeros),
        Op("add", "z_pre", (gate_in["z"], "hz")),
        Op("logistic", "z", ("z_pre",)),
        Op("fc", "in", ("x",), w["gru.W_in"], w["gru.b_in"]),
        *_jump_ops(w, "n", zeros),
        Op("fc", "hn", ("h",), w["gru.W_hn"], w["gru.b_hn"]),
        Op("mul", "r_hn", ("r", "hn")),
        Op("add", "n_pre", (gate_in["n"], "r_hn")),
        Op("tanh", "n", ("n_pre",)),
        Op("sub", "h_minus_n", ("h", "n")),
        Op("mul", "z_h_minus_n", ("z", "h_minus_n")),
        Op("add", "h_next", ("n", "z_h_minus_n")),  # [B, H]
        Op("fc", "head", ("h_next",),
           np.concatenate([w["head.W_mean"], w["head.W_logvar"], *(w[n] for n in logit[:1])]),
           np.concatenate([w["head.b_mean"], w["head.b_logvar"], *(w[n] for n in logit[1:])])),  # [B, P]
    ]
    if K == 1:
        ops.append(Op("pad", "x_pad", ("x",), pad=F))  # [B, 2F] = [x | 0]
    else:
        ops.append(Op("concat", "x_tile", ("x",) * K))  # [B, KF] = [x | ... | x]
        ops.append(Op("pad", "x_pad", ("x_tile",), pad=2 * K * F))  # [B, 3KF] = [x ... x | 0]
    ops.append(Op("add", "pred", ("head", "x_pad")))  # [B, P]
    return ops, F, H


def _jump_ops(w: dict[str, np.ndarray], gate: str, zeros: np.ndarray) -> list[Op]:
    """With jump inputs (w holds gru.W_j<gate>): j's fc for ``gate`` and its sum with the gate's x
    part, "ij<gate>" [B, H]; none otherwise."""
    if f"gru.W_j{gate}" not in w:
        return []
    return [Op("fc", f"j{gate}", ("j",), w[f"gru.W_j{gate}"], zeros),  # [B, H]
            Op("add", f"ij{gate}", (f"i{gate}", f"j{gate}"))]


def graph_inputs(ops: list[Op]) -> tuple[str, ...]:
    """The graph's inputs, in order: INPUTS, or JUMP_INPUTS when an op reads j."""
    return JUMP_INPUTS if any("j" in op.inputs for op in ops) else INPUTS


def run_ops(ops: list[Op], x: np.ndarray, h: np.ndarray, j: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Evaluate ``ops`` on ``x: float32[B, F]``, ``h: float32[B, H]`` (and ``j: float32[B, F]`` for
    jump inputs: given apart, or as x's second half, x [B, 2F] = [c | j]); every tensor by name."""
    if j is None and "j" in graph_inputs(ops):
        F = np.shape(x)[1] // 2
        x, j = x[:, :F], x[:, F:]  # [B, F], [B, F]
    t: dict[str, np.ndarray] = {"x": np.asarray(x, np.float32), "h": np.asarray(h, np.float32)}
    if j is not None:
        t["j"] = np.asarray(j, np.float32)
    for op in ops:
        a = [t[name] for name in op.inputs]
        if op.kind == "fc":
            y = a[0] @ op.weight.T + op.bias
        elif op.kind == "add":
            y = a[0] + a[1]
        elif op.kind == "sub":
            y = a[0] - a[1]
        elif op.kind == "mul":
            y = a[0] * a[1]
        elif op.kind == "logistic":
            y = 0.5 * (np.tanh(0.5 * a[0]) + 1.0)
        elif op.kind == "tanh":
            y = np.tanh(a[0])
        elif op.kind == "pad":
            y = np.pad(a[0], ((0, 0), (0, op.pad)))
        elif op.kind == "concat":
            y = np.concatenate(a, axis=1)
        else:  # pragma: no cover - the list above is closed
            raise ValueError(f"unknown op kind {op.kind!r}")
        t[op.out] = y.astype(np.float32, copy=False)
    return t
