"""The cell as an ONNX graph of MatMul + elementwise ops, and its int8 variants.

Not the ONNX ``GRU`` operator: onnxruntime cannot quantize it, and a single-step cell with the
state as an explicit input/output is what the daemon needs.

    gi = x @ Wi + bi                   Wi: [F, 3H] packed r|z|n     gi: [B, 3H]
    gh = h @ Wh + bh                   Wh: [H, 3H]                   gh: [B, 3H]
    r, z = split(sigmoid(gi[:, :2H] + gh[:, :2H]))
    n = tanh(gi[:, 2H:] + r * gh[:, 2H:])
    h_next = n + z * (h - n)                                         [B, H]
    pred = h_next @ Wo + bo + pad(x, [0, F])                         [B, 2F] = [mean | logvar]

A head of K > 1 Gaussians per feature: Wo [H, 3KF] = [means | logvars | logits] (backends/base.py)
and pred = h_next @ Wo + bo + pad(concat(x, ..., x), [0, 2KF]) (Concat stays float in the int8
graphs: only the MatMuls are quantized, so x reaches every mean exactly).

Inputs ``x`` float32[B, F], ``h`` float32[B, H]; outputs ``pred``, ``h_next``; B is dynamic.

A model with jump inputs (backends/base.py) has a third input ``j`` float32[B, F] (inputs x, j, h),
read by one more MatMul added to the input part of the gates (pred reads x alone):

    gi = x @ Wi + bi + j @ Wj          Wj: [F, 3H] packed r|z|n     gi: [B, 3H]
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np

from ..backends.base import check_weights, components, has_jump, pred_width

OPSET = 17
IR_VERSION = 8  # readable by onnxruntime >= 1.10 (Raspberry Pi wheels lag behind)


def build_onnx(weights: dict[str, np.ndarray]):
    """``onnx.ModelProto`` of the cell (checked with onnx.checker)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    F, H = check_weights(weights)
    K = components(weights)
    P = pred_width(F, K)
    jump = has_jump(weights)
    logit = ("head.W_logit", "head.b_logit") if K > 1 else ()
    w = {k: np.asarray(v, np.float32) for k, v in weights.items()}
    inits = {
        "Wi": np.concatenate([w["gru.W_ir"], w["gru.W_iz"], w["gru.W_in"]]).T,  # [F, 3H]
        "bi": np.concatenate([w["gru.b_ir"], w["gru.b_iz"], w["gru.b_in"]]),  # [3H]
        "Wh": np.concatenate([w["gru.W_hr"], w["gru.W_hz"], w["gru.W_hn"]]).T,  # [H, 3H]
        "bh": np.concatenate([w["gru.b_hr"], w["gru.b_hz"], w["gru.b_hn"]]),  # [3H]
        "Wo": np.concatenate([w["head.W_mean"], w["head.W_logvar"], *(w[n] for n in logit[:1])]).T,  # [H, P]
        "bo": np.concatenate([w["head.b_mean"], w["head.b_logvar"], *(w[n] for n in logit[1:])]),  # [P]
        "split_3h": np.array([2 * H, H], np.int64),
        "split_2h": np.array([H, H], np.int64),
        "x_pads": np.array([0, 0, 0, P - K * F], np.int64),  # pad x (tiled K times) on the right of axis 1: [x | 0]
    }
    if jump:
        inits["Wj"] = np.concatenate([w["gru.W_jr"], w["gru.W_jz"], w["gru.W_jn"]]).T  # [F, 3H]
    N = helper.make_node
    gi_x = "gi_x" if jump else "gi"  # with jump inputs: gi = (x Wi + bi) + j Wj
    nodes = [
        N("MatMul", ["x", "Wi"], ["xWi"], name="matmul_x"), N("Add", ["xWi", "bi"], [gi_x]),  # [B, 3H]
        *([N("MatMul", ["j", "Wj"], ["jWj"], name="matmul_j"), N("Add", [gi_x, "jWj"], ["gi"])] if jump else []),
        N("MatMul", ["h", "Wh"], ["hWh"], name="matmul_h"), N("Add", ["hWh", "bh"], ["gh"]),  # [B, 3H]
        N("Split", ["gi", "split_3h"], ["gi_rz", "gi_n"], axis=1),
        N("Split", ["gh", "split_3h"], ["gh_rz", "gh_n"], axis=1),
        N("Add", ["gi_rz", "gh_rz"], ["rz_pre"]), N("Sigmoid", ["rz_pre"], ["rz"]),  # [B, 2H]
        N("Split", ["rz", "split_2h"], ["r", "z"], axis=1),
        N("Mul", ["r", "gh_n"], ["r_hn"]), N("Add", ["gi_n", "r_hn"], ["n_pre"]), N("Tanh", ["n_pre"], ["n"]),
        N("Sub", ["h", "n"], ["h_minus_n"]), N("Mul", ["z", "h_minus_n"], ["z_h_minus_n"]),
        N("Add", ["n", "z_h_minus_n"], ["h_next"]),  # [B, H]
        N("MatMul", ["h_next", "Wo"], ["hWo"], name="matmul_head"), N("Add", ["hWo", "bo"], ["head"]),  # [B, 2F]
        *([N("Concat", ["x"] * K, ["x_tile"], axis=1)] if K > 1 else []),  # [B, KF]
        N("Pad", ["x_tile" if K > 1 else "x", "x_pads"], ["x_pad"], mode="constant"),
        N("Add", ["head", "x_pad"], ["pred"]),
    ]
    graph = helper.make_graph(
        nodes, "edgernn_gru_cell",
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", F]),
                *([helper.make_tensor_value_info("j", TensorProto.FLOAT, ["B", F])] if jump else []),
                helper.make_tensor_value_info("h", TensorProto.FLOAT, ["B", H])],
        outputs=[helper.make_tensor_value_info("pred", TensorProto.FLOAT, ["B", P]),
                 helper.make_tensor_value_info("h_next", TensorProto.FLOAT, ["B", H])],
        initializer=[numpy_helper.from_array(np.ascontiguousarray(v), name=k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgernn")
    model.ir_version = IR_VERSION
    model.doc_string = (f"edgernn single-step GRU cell F={F} H={H}; pred = [mean | logvar]" if K == 1 else
                        f"edgernn single-step GRU cell F={F} H={H}; pred = [means | logvars | logits], K={K}")
    if jump:
        model.doc_string += "; jump inputs j [B, F] (inputs x, j, h)"
    onnx.checker.check_model(model, full_check=True)
    return model


@contextlib.contextmanager
def _quiet_logging():
    """onnxruntime.quantization warns through the root logger; keep export output readable."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def write_onnx(weights, path: Path) -> None:
    path.write_bytes(build_onnx(weights).SerializeToString())


def quantize_dynamic_onnx(float_path: Path, out_path: Path, per_channel: bool = False) -> None:
    """int8 weights, activations quantized per call (DynamicQuantizeLinear + MatMulInteger).

    Not shipped by default: the activation scale is computed over the whole batch, so a row's
    result depends on the other rows in its batch (1-3e-3 measured; one outlier stream coarsens
    every other stream's quantization) -- that breaks "same inputs, same outputs, any batch size".
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_logging():  # "consider pre-processing": shape inference adds nothing to this graph
        quantize_dynamic(float_path, out_path, weight_type=QuantType.QInt8, per_channel=per_channel,
                         op_types_to_quantize=["MatMul"])


def _has_input(path: Path, name: str) -> bool:
    """True when the ONNX graph at ``path`` has a graph input ``name``."""
    import onnx

    return any(i.name == name for i in onnx.load(str(path), load_external_data=False).graph.input)


def quantize_static_onnx(float_path: Path, out_path: Path, X: np.ndarray, Hp: np.ndarray,
                         per_channel: bool = False, chunk: int = 4096, activation_bits: int = 8,
                         x_clip: float | None = None) -> None:
    """Static QDQ int8 on the three MatMuls, calibrated (MinMax) on the pairs ``(X[N, F], Hp[N, H])``.
    A graph with jump inputs (an input j) has a fourth MatMul, and X is [N, 2F] = [c | j]: split into
    its inputs x and j, j's range pinned to [0, 1].

    Inputs of each MatMul are quantized with fixed scales (rows stay independent), weights int8
    per tensor; MatMul outputs stay float (MatMulIntegerToFloat), and so do the gates: quantizing
    every op (full QDQ) measured 2x the error and 1.5x the time. The hidden state's range is
    pinned to [-1, 1], its exact bound, so long rollouts never clip it.
    """
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)

    jump = _has_input(float_path, "j")
    F = X.shape[1] // 2 if jump else X.shape[1]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{"x": X[s : s + chunk, :F], "h": Hp[s : s + chunk],
                              **({"j": X[s : s + chunk, F:]} if jump else {})} for s in range(0, len(X), chunk)])

        def get_next(self):
            return next(self._it, None)

    unit = [{"rmin": np.float32(-1.0), "rmax": np.float32(1.0)}]
    overrides = {"h": unit, "h_next": unit}
    if x_clip is not None:  # the detector clips x to +-x_clip: cover all of it, not just what calibration saw
        overrides["x"] = [{"rmin": np.float32(-x_clip), "rmax": np.float32(x_clip)}]
    if jump:  # j in [0, 1], all of it
        overrides["j"] = [{"rmin": np.float32(0.0), "rmax": np.float32(1.0)}]
    with _quiet_logging():
        quantize_static(float_path, out_path, Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt16 if activation_bits == 16 else QuantType.QInt8,
                        weight_type=QuantType.QInt8, per_channel=per_channel,
                        op_types_to_quantize=["MatMul"], calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"OpTypesToExcludeOutputQuantization": ["MatMul"],
                                       "TensorQuantOverrides": overrides})
