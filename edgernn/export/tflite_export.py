"""Write the cell as a .tflite flatbuffer with the official schema bindings (no TensorFlow).

    build_tflite(weights)                  float32 model: x[B,F], h[B,H] -> pred[B,2F], h_next[B,H]
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

from .cell_graph import INPUTS, OUTPUTS, cell_ops, run_ops

SIGNATURE_KEY = "serving_default"
# In quantized models the residual mean = x + head stays float32 (PAD and ADD after DEQUANTIZE):
# x reaches pred exactly instead of through an 8-bit x whose calibrated range a level shift or a
# spike exceeds (measured: int8 x clipped the mean and changed alerts on 8% of readings).
FLOAT_TAIL = ("x_pad", "pred")

# Op versions as tensorflow/lite/tools/versioning/op_version.cc assigns them.
# kind -> (float32, int8 activations, int16 activations)
_VERSIONS = {
    "fc": (1, 4, 7), "add": (1, 2, 3), "sub": (1, 2, 5), "mul": (1, 2, 4),
    "logistic": (1, 2, 3), "tanh": (1, 2, 3), "pad": (1, 2, 3),
    "quantize": (1, 1, 2), "dequantize": (1, 2, 3),
}


# FULLY_CONNECTED with per-channel (per output row) weight scales (op_version.cc: 12).
_FC_PER_CHANNEL_VERSION = 12


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(f"writing .tflite needs ai-edge-litert (pip install edgernn[tflite]): {exc}") from None
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


def build_tflite(weights: dict[str, np.ndarray], plan=None, description: str = "") -> bytes:
    """Serialise the cell. ``plan`` is a ``quantize.TflitePlan`` or None for float32."""
    import flatbuffers

    schema = _schema()
    ops, F, H = cell_ops(weights)
    shapes = {k: v.shape[1] for k, v in run_ops(ops, np.zeros((1, F), np.float32), np.zeros((1, H), np.float32)).items()}
    TT = schema.TensorType
    bits = plan.bits if plan is not None else 0
    act_type = {0: TT.FLOAT32, 8: TT.INT8, 16: TT.INT16}[bits]
    vcol = {0: 0, 8: 1, 16: 2}[bits]

    buffers = [schema.BufferT()]  # buffer 0: the empty sentinel every tensor without data uses
    tensors: list = []
    index: dict[str, int] = {}

    def qp(scale, zero_point, axis=None):
        q = schema.QuantizationParametersT()
        if axis is None:
            q.scale, q.zeroPoint = [float(scale)], [int(zero_point)]
        else:  # per-axis (per output channel of a FULLY_CONNECTED weight / bias)
            scale = np.asarray(scale, np.float64).ravel()
            q.scale, q.zeroPoint, q.quantizedDimension = [float(v) for v in scale], [0] * len(scale), axis
        return q

    def tensor(name, shape, ttype, quant=None, data: np.ndarray | None = None):
        t = schema.TensorT()
        t.name, t.type, t.shape, t.buffer, t.quantization = name, ttype, list(shape), 0, quant
        if data is None:  # activation: dynamic batch
            t.shapeSignature = [-1] + list(shape[1:])
        else:
            buffers.append(_aligned_buffer(schema, np.ascontiguousarray(data).tobytes()))
            t.buffer = len(buffers) - 1
        tensors.append(t)
        index[name] = len(tensors) - 1
        return index[name]

    def internal(name):  # quantized models keep the float names for the float tensors
        return f"{name}_q" if plan is not None and name in INPUTS + OUTPUTS + ("head",) else name

    def act(name, float_domain=False):
        if float_domain:  # a float32 tensor of a quantized model (I/O and the residual tail)
            if name not in index:
                tensor(name, [1, shapes[name]], TT.FLOAT32)
            return index[name]
        if internal(name) not in index:
            quant = qp(*plan.act[name]) if plan is not None else None
            tensor(internal(name), [1, shapes[name]], act_type, quant)
        return index[internal(name)]

    opcodes: dict[int, int] = {}
    codes: list = []
    operators: list = []

    def operator(code, version, inputs, outputs, opt_type=0, options=None):
        if code not in opcodes:
            oc = schema.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), version
            codes.append(oc)
            opcodes[code] = len(codes) - 1
        oc = codes[opcodes[code]]
        oc.version = max(oc.version, version)
        o = schema.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = opcodes[code], list(inputs), list(outputs)
        o.builtinOptionsType, o.builtinOptions = opt_type, options
        operators.append(o)

    BO, BOpt = schema.BuiltinOperator, schema.BuiltinOptions
    graph_in = [tensor(n, [1, shapes[n]], TT.FLOAT32) for n in INPUTS]
    if plan is not None:
        for n, t in zip(INPUTS, graph_in):
            operator(BO.QUANTIZE, _VERSIONS["quantize"][vcol], [t], [act(n)])

    for op in ops:
        fdom = plan is not None and op.out in FLOAT_TAIL
        col = 0 if fdom else vcol
        out = act(op.out, fdom)
        if op.kind == "fc":
            x_in = act(op.inputs[0])
            if plan is None:
                w = tensor(f"{op.out}/weight", op.weight.shape, TT.FLOAT32, data=op.weight.astype(np.float32))
                b = tensor(f"{op.out}/bias", op.bias.shape, TT.FLOAT32, data=op.bias.astype(np.float32))
            else:
                wq, w_scale = plan.weight(op.out)
                bq, b_scale = plan.bias(op.out)
                per_axis = plan.per_channel
                w = tensor(f"{op.out}/weight", wq.shape, TT.INT8,
                           qp(w_scale, 0, 0) if per_axis else qp(w_scale[0], 0), data=wq)
                btype = TT.INT64 if bq.dtype == np.int64 else TT.INT32
                b = tensor(f"{op.out}/bias", bq.shape, btype,
                           qp(b_scale, 0, 0) if per_axis else qp(b_scale[0], 0), data=bq)
            fc_version = _VERSIONS["fc"][vcol]
            if plan is not None and plan.per_channel:
                fc_version = max(fc_version, _FC_PER_CHANNEL_VERSION)
            operator(BO.FULLY_CONNECTED, fc_version, [x_in, w, b], [out],
                     BOpt.FullyConnectedOptions, schema.FullyConnectedOptionsT())
            if plan is not None and op.out == "head":  # the residual tail adds in float
                operator(BO.DEQUANTIZE, _VERSIONS["dequantize"][vcol], [out], [act("head", True)])
        elif op.kind in ("add", "sub"):
            opts = schema.AddOptionsT() if op.kind == "add" else schema.SubOptionsT()
            opts.potScaleInt16 = False  # general int16 scales (ignored for float32 / int8)
            code, otype = (BO.ADD, BOpt.AddOptions) if op.kind == "add" else (BO.SUB, BOpt.SubOptions)
            operator(code, _VERSIONS[op.kind][col], [act(i, fdom) for i in op.inputs], [out], otype, opts)
        elif op.kind == "mul":
            version = _VERSIONS["mul"][vcol]
            if bits == 8:
                (s1, _), (s2, _), (so, _) = (plan.act[n] for n in (*op.inputs, op.out))
                version = 3 if s1 * s2 / so >= 1.0 else 2
            operator(BO.MUL, version, [act(i) for i in op.inputs], [out], BOpt.MulOptions, schema.MulOptionsT())
        elif op.kind in ("logistic", "tanh"):
            code = BO.LOGISTIC if op.kind == "logistic" else BO.TANH
            operator(code, _VERSIONS[op.kind][vcol], [act(op.inputs[0])], [out])
        elif op.kind == "pad":
            pads = tensor(f"{op.out}/paddings", [2, 2], TT.INT32, data=np.array([[0, 0], [0, op.pad]], np.int32))
            operator(BO.PAD, _VERSIONS["pad"][col], [act(op.inputs[0], fdom), pads], [out], BOpt.PadOptions, schema.PadOptionsT())
        else:  # pragma: no cover
            raise ValueError(f"no TFLite mapping for op kind {op.kind!r}")

    if plan is not None:
        operator(BO.DEQUANTIZE, _VERSIONS["dequantize"][vcol], [act("h_next")], [act("h_next", True)])
    graph_out = [index[n] for n in OUTPUTS]

    sub = schema.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs, sub.operators, sub.name = tensors, graph_in, graph_out, operators, "main"
    sig = schema.SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = SIGNATURE_KEY, 0
    sig.inputs = [_tensor_map(schema, n, i) for n, i in zip(INPUTS, graph_in)]
    sig.outputs = [_tensor_map(schema, n, i) for n, i in zip(OUTPUTS, graph_out)]

    model = schema.ModelT()
    model.version = 3
    model.operatorCodes, model.subgraphs, model.buffers, model.signatureDefs = codes, [sub], buffers, [sig]
    model.description = description or f"edgernn GRU cell F={F} H={H} ({'float32' if plan is None else plan.label})"
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _tensor_map(schema, name: str, idx: int):
    m = schema.TensorMapT()
    m.name, m.tensorIndex = name, idx
    return m


__all__ = ["build_tflite", "SIGNATURE_KEY", "FLOAT_TAIL"]
