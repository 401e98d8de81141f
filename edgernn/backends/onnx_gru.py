"""onnxruntime backend: ``model.onnx`` (float32) or ``model.int8.onnx`` (pip install edgernn[onnx]).

IOBinding with pre-bound numpy buffers: one binding per batch size seen (kept for the most recent
``MAX_BINDINGS`` sizes), so a call copies x and h into bound memory, runs, and copies the outputs
out. Plain ``run()`` costs ~1.5x more per call at batch 1 (DESIGN.md, measured).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .base import BackendUnavailable, components_of_width

MAX_BINDINGS = 16


class _Binding:
    """Input and output buffers for one batch size, bound once to the session."""

    def __init__(self, session, batch: int, features: int, hidden: int, width: int):
        self.x = np.zeros((batch, features), np.float32)  # [B, F]
        self.h = np.zeros((batch, hidden), np.float32)  # [B, H]
        self.pred = np.zeros((batch, width), np.float32)  # [B, 2F] or [B, 3KF] (backends/base.py)
        self.h_next = np.zeros((batch, hidden), np.float32)  # [B, H]
        io = session.io_binding()
        for name, arr in (("x", self.x), ("h", self.h)):
            io.bind_input(name, "cpu", 0, np.float32, list(arr.shape), arr.ctypes.data)
        for name, arr in (("pred", self.pred), ("h_next", self.h_next)):
            io.bind_output(name, "cpu", 0, np.float32, list(arr.shape), arr.ctypes.data)
        self.io = io


class OnnxGRU:
    """Stateless cell on an .onnx file. ``step(x[B,F], h[B,H]) -> (pred[B,P], h_next[B,H])`` (P = 2F, or
    3KF for a K-component head: read from the graph's output shape)."""

    h_bound = 1.0  # a GRU: |h| < 1, kept as int16 Q15 by the state store

    def __init__(self, path, name: str = "onnx", intra_op_threads: int = 1):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailable(f"ONNX backend needs onnxruntime ({exc}): pip install edgernn[onnx]") from None
        self.name = name
        self.path = str(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(intra_op_threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # no warnings on stderr for every session
        try:
            self._session = ort.InferenceSession(self.path, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendUnavailable(f"{path}: onnxruntime cannot load this model: {str(exc).splitlines()[0]}") from None
        ins = {i.name: i.shape for i in self._session.get_inputs()}
        outs = {o.name: o.shape for o in self._session.get_outputs()}
        if set(ins) != {"x", "h"} or set(outs) != {"pred", "h_next"}:
            raise ValueError(f"{path}: expected inputs x, h and outputs pred, h_next")
        self.features, self.hidden = int(ins["x"][-1]), int(ins["h"][-1])
        self._width = int(outs["pred"][-1])
        self.components = components_of_width(self._width, self.features, path)
        self._bindings: OrderedDict[int, _Binding] = OrderedDict()

    def _binding(self, B: int) -> _Binding:
        b = self._bindings.get(B)
        if b is None:
            b = self._bindings[B] = _Binding(self._session, B, self.features, self.hidden, self._width)
            if len(self._bindings) > MAX_BINDINGS:
                self._bindings.popitem(last=False)
        else:
            self._bindings.move_to_end(B)
        return b

    def step(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        B = x.shape[0]
        if x.shape != (B, self.features) or h.shape != (B, self.hidden):
            raise ValueError(f"expected x[B,{self.features}] and h[B,{self.hidden}], got {x.shape} and {h.shape}")
        b = self._binding(B)
        np.copyto(b.x, x)
        np.copyto(b.h, h)
        self._session.run_with_iobinding(b.io)
        return b.pred.copy(), b.h_next.copy()
