"""Write the cell as a .tflite flatbuffer with the official schema bindings (no TensorFlow).

    build_tflite(weights)                  float32 model: x[B,F], h[B,H] -> pred[B,2F] (K Gaussians:
                                           [B,3KF]), h_next[B,H]; with jump inputs x[B,F], j[B,F], h[B,H]
    build_tflite(weights, plan=plan)       quantized model with float32 I/O: QUANTIZE at the inputs,
                                           DEQUANTIZE at the outputs, int8 weights, int8 or int16
                                           activations as ``plan`` says (see quantize.py); the
                                           residual add pred = [x | 0] + head is float32

The batch dimension is dynamic (shape [1, d], shape_signature [-1, d]): LiteRT resizes it, TFLite
Micro uses the stored batch of 1. Constant buffers are 16-byte aligned (TFLite Micro reads int32
biases in place).
"""

from __future__ import annotations

import numpy as np

from .cell_graph import JUMP_INPUTS, OUTPUTS, cell_ops, graph_inputs, run_ops

SIGNATURE_KEY = "serving_default"
# In quantized models the residual mean = x + head stays float32 (PAD and ADD after DEQUANTIZE):
# x reaches pred exactly instead of through an 8-bit x whose calibrated range a level shift or a
# spike exceeds (measured: int8 x clipped the mean and changed alerts on 8% of readings).
FLOAT_TAIL = ("x_tile", "x_pad", "pred")  # x_tile: a mixture head's x tiled K times

# Op versions as tensorflow/lite/tools/versioning/op_version.cc assigns them.
# kind -> (float32, int8 activations, int16 activations)
_VERSIONS = {
    "fc": (1, 4, 7), "add": (1, 2, 3), "sub": (1, 2, 5), "mul": (1, 2, 4),
    "logistic": (1, 2, 3), "tanh": (1, 2, 3), "pad": (1, 2, 3), "concat": (1, 1, 3),
    "quantize": (1, 1, 2), "dequantize": (1, 2, 3),
}


# FULLY_CONNECTED with per-channel (per output row) weight scales (op_version.cc: 12).
_FC_PER_CHANNEL_VERSION = 12


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(f"writing .tflite needs ai-edge-litert (pip install 'edgernn[tflite]'): {exc}") from None
    return schema


def _aligned_buffer(schema, data: bytes):
    """A BufferT whose bytes start on a 16-byte boundary (the generated Pack aligns to 1)."""

    class AlignedBufferT(schema.BufferT):
        def Pack(self, builder):
            n = len(data)
            builder.StartVector(1, n, 16)
            builder.head -= n
            builder.Bytes[builder.head : builder.head + n] = data
            try:
                vec = builder.EndVector()
            except TypeError:  # flatbuffers < 2 needs the length
                vec = builder.EndVector(n)
            schema.BufferStart(builder)
            schema.BufferAddData(builder, vec)
            return schema.BufferEnd(builder)

    return AlignedBufferT()


class _GraphWriter:
    """The flatbuffer object tables of one subgraph, appended to in creation order.

    ``buffers[0]`` is the empty sentinel every tensor without data uses; ``index`` maps a tensor
    name to its position in ``tensors``; ``opcodes`` maps a builtin code to its position in ``codes``.
    """

    def __init__(self, schema, plan, shapes: dict[str, int]):
        self.schema, self.plan, self.shapes = schema, plan, shapes
        self.bits = plan.bits if plan is not None else 0
        TT = schema.TensorType
        self.act_type = {0: TT.FLOAT32, 8: TT.INT8, 16: TT.INT16}[self.bits]
        self.vcol = {0: 0, 8: 1, 16: 2}[self.bits]  # column of _VERSIONS
        self.buffers = [schema.BufferT()]
        self.tensors: list = []
        self.index: dict[str, int] = {}
        self.opcodes: dict[int, int] = {}
        self.codes: list = []
        self.operators: list = []

    def qp(self, scale, zero_point, axis=None):
        q = self.schema.QuantizationParametersT()
        if axis is None:
            q.scale, q.zeroPoint = [float(scale)], [int(zero_point)]
        else:  # per-axis (per output channel of a FULLY_CONNECTED weight / bias)
            scale = np.asarray(scale, np.float64).ravel()
            q.scale, q.zeroPoint, q.quantizedDimension = [float(v) for v in scale], [0] * len(scale), axis
        return q

    def tensor(self, name, shape, ttype, quant=None, data: np.ndarray | None = None) -> int:
        t = self.schema.TensorT()
        t.name, t.type, t.shape, t.buffer, t.quantization = name, ttype, list(shape), 0, quant
        if data is None:  # activation: dynamic batch
            t.shapeSignature = [-1] + list(shape[1:])
        else:
            self.buffers.append(_aligned_buffer(self.schema, np.ascontiguousarray(data).tobytes()))
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        self.index[name] = len(self.tensors) - 1
        return self.index[name]

    def internal(self, name: str) -> str:  # quantized models keep the float names for the float tensors
        return f"{name}_q" if self.plan is not None and name in JUMP_INPUTS + OUTPUTS + ("head",) else name

    def act(self, name: str, float_domain: bool = False) -> int:
        """Index of activation ``name`` ([1, d]), created on first use."""
        if float_domain:  # a float32 tensor of a quantized model (I/O and the residual tail)
            if name not in self.index:
                self.tensor(name, [1, self.shapes[name]], self.schema.TensorType.FLOAT32)
            return self.index[name]
        key = self.internal(name)
        if key not in self.index:
            quant = self.qp(*self.plan.act[name]) if self.plan is not None else None
            self.tensor(key, [1, self.shapes[name]], self.act_type, quant)
        return self.index[key]

    def operator(self, code, version, inputs, outputs, opt_type=0, options=None) -> None:
        if code not in self.opcodes:
            oc = self.schema.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), version
            self.codes.append(oc)
            self.opcodes[code] = len(self.codes) - 1
        oc = self.codes[self.opcodes[code]]
        oc.version = max(oc.version, version)
        o = self.schema.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.opcodes[code], list(inputs), list(outputs)
        o.builtinOptionsType, o.builtinOptions = opt_type, options
        self.operators.append(o)


def _fc_params(g: _GraphWriter, op) -> tuple[int, int]:
    """Weight [out, in] and bias [out] tensors of a FULLY_CONNECTED: float32, or int8 weights with
    int32 / int64 biases scaled per tensor or per output channel as the plan says."""
    TT, plan = g.schema.TensorType, g.plan
    if plan is None:
        w = g.tensor(f"{op.out}/weight", op.weight.shape, TT.FLOAT32, data=op.weight.astype(np.float32))
        b = g.tensor(f"{op.out}/bias", op.bias.shape, TT.FLOAT32, data=op.bias.astype(np.float32))
        return w, b
    wq, w_scale = plan.weight(op.out)
    bq, b_scale = plan.bias(op.out)
    per_axis = plan.per_channel
    w = g.tensor(f"{op.out}/weight", wq.shape, TT.INT8,
                 g.qp(w_scale, 0, 0) if per_axis else g.qp(w_scale[0], 0), data=wq)
    btype = TT.INT64 if bq.dtype == np.int64 else TT.INT32
    b = g.tensor(f"{op.out}/bias", bq.shape, btype,
                 g.qp(b_scale, 0, 0) if per_axis else g.qp(b_scale[0], 0), data=bq)
    return w, b


def _emit_fc(g: _GraphWriter, op, out: int, fdom: bool) -> None:
    """out[B, n_out] = x[B, n_in] @ weight.T + bias; the head is dequantized for the float tail."""
    BO, BOpt = g.schema.BuiltinOperator, g.schema.BuiltinOptions
    x_in = g.act(op.inputs[0])
    w, b = _fc_params(g, op)
    fc_version = _VERSIONS["fc"][g.vcol]
    if g.plan is not None and g.plan.per_channel:
        fc_version = max(fc_version, _FC_PER_CHANNEL_VERSION)
    g.operator(BO.FULLY_CONNECTED, fc_version, [x_in, w, b], [out],
               BOpt.FullyConnectedOptions, g.schema.FullyConnectedOptionsT())
    if g.plan is not None and op.out == "head":  # the residual tail adds in float
        g.operator(BO.DEQUANTIZE, _VERSIONS["dequantize"][g.vcol], [out], [g.act("head", True)])


def _emit_add_sub(g: _GraphWriter, op, out: int, fdom: bool) -> None:
    """out[B, d] = a[B, d] +/- b[B, d] (float32 in the residual tail of a quantized model)."""
    BO, BOpt = g.schema.BuiltinOperator, g.schema.BuiltinOptions
    opts = g.schema.AddOptionsT() if op.kind == "add" else g.schema.SubOptionsT()
    opts.potScaleInt16 = False  # general int16 scales (ignored for float32 / int8)
    code, otype = (BO.ADD, BOpt.AddOptions) if op.kind == "add" else (BO.SUB, BOpt.SubOptions)
    col = 0 if fdom else g.vcol
    g.operator(code, _VERSIONS[op.kind][col], [g.act(i, fdom) for i in op.inputs], [out], otype, opts)


def _emit_mul(g: _GraphWriter, op, out: int, fdom: bool) -> None:
    """out[B, H] = a[B, H] * b[B, H]; int8 MUL is version 3 when s1 * s2 / s_out >= 1."""
    BO, BOpt = g.schema.BuiltinOperator, g.schema.BuiltinOptions
    version = _VERSIONS["mul"][g.vcol]
    if g.bits == 8:
        (s1, _), (s2, _), (so, _) = (g.plan.act[n] for n in (*op.inputs, op.out))
        version = 3 if s1 * s2 / so >= 1.0 else 2
    g.operator(BO.MUL, version, [g.act(i) for i in op.inputs], [out], BOpt.MulOptions, g.schema.MulOptionsT())


def _emit_activation(g: _GraphWriter, op, out: int, fdom: bool) -> None:
    """out[B, d] = sigmoid(a[B, d]) or tanh(a[B, d])."""
    BO = g.schema.BuiltinOperator
    code = BO.LOGISTIC if op.kind == "logistic" else BO.TANH
    g.operator(code, _VERSIONS[op.kind][g.vcol], [g.act(op.inputs[0])], [out])


def _emit_pad(g: _GraphWriter, op, out: int, fdom: bool) -> None:
    """out[B, d + pad] = [a[B, d] | 0] (x padded to the width of pred)."""
    BO, BOpt = g.schema.BuiltinOperator, g.schema.BuiltinOptions
    pads = g.tensor(f"{op.out}/paddings", [2, 2], g.schema.TensorType.INT32,
                    data=np.array([[0, 0], [0, op.pad]], np.int32))
    col = 0 if fdom else g.vcol
    g.operator(BO.PAD, _VERSIONS["pad"][col], [g.act(op.inputs[0], fdom), pads], [out],
               BOpt.PadOptions, g.schema.PadOptionsT())


def _emit_concat(g: _GraphWriter, op, out: int, fdom: bool) -> None:
    """out[B, K d] = [a[B, d] | ... | a[B, d]] (a mixture head's x tiled K times, float32 tail)."""
    BO, BOpt = g.schema.BuiltinOperator, g.schema.BuiltinOptions
    opts = g.schema.ConcatenationOptionsT()
    opts.axis = 1
    col = 0 if fdom else g.vcol
    g.operator(BO.CONCATENATION, _VERSIONS["concat"][col], [g.act(i, fdom) for i in op.inputs], [out],
               BOpt.ConcatenationOptions, opts)


_EMITTERS = {"fc": _emit_fc, "add": _emit_add_sub, "sub": _emit_add_sub, "mul": _emit_mul,
             "logistic": _emit_activation, "tanh": _emit_activation, "pad": _emit_pad,
             "concat": _emit_concat}


def _emit_cell(g: _GraphWriter, ops) -> tuple[list[int], list[int]]:
    """All operators: [QUANTIZE x, (j,) h] -> the cell's ops -> [DEQUANTIZE h_next]; (graph inputs, outputs)."""
    BO, TT, quantized = g.schema.BuiltinOperator, g.schema.TensorType, g.plan is not None
    inputs = graph_inputs(ops)
    graph_in = [g.tensor(n, [1, g.shapes[n]], TT.FLOAT32) for n in inputs]  # x [1, F], (j [1, F],) h [1, H]
    if quantized:
        for n, t in zip(inputs, graph_in):
            g.operator(BO.QUANTIZE, _VERSIONS["quantize"][g.vcol], [t], [g.act(n)])
    for op in ops:
        if op.kind not in _EMITTERS:  # pragma: no cover
            raise ValueError(f"no TFLite mapping for op kind {op.kind!r}")
        fdom = quantized and op.out in FLOAT_TAIL
        out = g.act(op.out, fdom)
        _EMITTERS[op.kind](g, op, out, fdom)
    if quantized:
        g.operator(BO.DEQUANTIZE, _VERSIONS["dequantize"][g.vcol], [g.act("h_next")], [g.act("h_next", True)])
    return graph_in, [g.index[n] for n in OUTPUTS]  # pred [1, 2F], h_next [1, H]


def _assemble_model(g: _GraphWriter, inputs: tuple[str, ...], graph_in: list[int], graph_out: list[int],
                    description: str) -> bytes:
    """One subgraph "main" with a serving_default signature, packed with the TFL3 identifier."""
    import flatbuffers

    schema = g.schema
    sub = schema.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs, sub.operators, sub.name = g.tensors, graph_in, graph_out, g.operators, "main"
    sig = schema.SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = SIGNATURE_KEY, 0
    sig.inputs = [_tensor_map(schema, n, i) for n, i in zip(inputs, graph_in)]
    sig.outputs = [_tensor_map(schema, n, i) for n, i in zip(OUTPUTS, graph_out)]

    model = schema.ModelT()
    model.version = 3
    model.operatorCodes, model.subgraphs, model.buffers, model.signatureDefs = g.codes, [sub], g.buffers, [sig]
    model.description = description
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def build_tflite(weights: dict[str, np.ndarray], plan=None, description: str = "") -> bytes:
    """Serialise the cell. ``plan`` is a ``quantize.TflitePlan`` or None for float32."""
    schema = _schema()
    ops, F, H = cell_ops(weights)
    inputs = graph_inputs(ops)
    j = np.zeros((1, F), np.float32) if "j" in inputs else None  # [1, F] with jump inputs
    zeros = run_ops(ops, np.zeros((1, F), np.float32), np.zeros((1, H), np.float32), j)
    shapes = {k: v.shape[1] for k, v in zeros.items()}  # tensor name -> width d of [B, d]
    g = _GraphWriter(schema, plan, shapes)
    graph_in, graph_out = _emit_cell(g, ops)
    jump = " with jump inputs" if j is not None else ""
    description = description or f"edgernn GRU cell F={F} H={H}{jump} ({'float32' if plan is None else plan.label})"
    return _assemble_model(g, inputs, graph_in, graph_out, description)


def _tensor_map(schema, name: str, idx: int):
    m = schema.TensorMapT()
    m.name, m.tensorIndex = name, idx
    return m


__all__ = ["build_tflite", "SIGNATURE_KEY", "FLOAT_TAIL"]
