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

``run_ops`` evaluates the list in numpy and returns every intermediate tensor by name: the
calibration pass records their ranges, and the tests check it against ``NumpyGRU``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends.base import check_weights, components

INPUTS = ("x", "h")  # float32[B, F], float32[B, H]
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
    ops = [
        Op("fc", "ir", ("x",), w["gru.W_ir"], w["gru.b_ir"] + w["gru.b_hr"]),  # [B, H]
        Op("fc", "hr", ("h",), w["gru.W_hr"], zeros),  # [B, H]
        Op("add", "r_pre", ("ir", "hr")),
        Op("logistic", "r", ("r_pre",)),
        Op("fc", "iz", ("x",), w["gru.W_iz"], w["gru.b_iz"] + w["gru.b_hz"]),
        Op("fc", "hz", ("h",), w["gru.W_hz"], zeros),
        Op("add", "z_pre", ("iz", "hz")),
        Op("logistic", "z", ("z_pre",)),
        Op("fc", "in", ("x",), w["gru.W_in"], w["gru.b_in"]),
        Op("fc", "hn", ("h",), w["gru.W_hn"], w["gru.b_hn"]),
        Op("mul", "r_hn", ("r", "hn")),
        Op("add", "n_pre", ("in", "r_hn")),
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


def run_ops(ops: list[Op], x: np.ndarray, h: np.ndarray) -> dict[str, np.ndarray]:
    """Evaluate ``ops`` on ``x: float32[B, F]``, ``h: float32[B, H]``; every tensor by name."""
    t: dict[str, np.ndarray] = {"x": np.asarray(x, np.float32), "h": np.asarray(h, np.float32)}
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
