"""onnxruntime backend: ``model.onnx`` (float32) or ``model.int8.onnx`` (pip install 'edgernn[onnx]').

IOBinding with pre-bound numpy buffers: one binding per batch size seen (kept for the most recent
``MAX_BINDINGS`` sizes), so a call copies x and h into bound memory, runs, and copies the outputs
out. Plain ``run()`` costs ~1.5x more per call at batch 1 (DESIGN.md, measured).

A graph with an input ``j`` is a model with jump inputs (backends/base.py): ``jump`` is True and
step takes x [B, 2F] = [c | j], fed to the graph's inputs x and j.
"""

from __future__ import annotations

import mmap
import shlex
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..logs import first_line
from .base import BackendUnavailable, components_of_width, fixed_width

MAX_BINDINGS = 16


class _Binding:
    """Input and output buffers for one batch size, bound once to the session."""

    def __init__(self, session, batch: int, features: int, hidden: int, width: int, jump: bool = False):
        self.x = np.zeros((batch, features), np.float32)  # [B, F]
        self.h = np.zeros((batch, hidden), np.float32)  # [B, H]
        self.j = np.zeros((batch, features), np.float32) if jump else None  # [B, F] jump inputs
        self.pred = np.zeros((batch, width), np.float32)  # [B, 2F] or [B, 3KF] (backends/base.py)
        self.h_next = np.zeros((batch, hidden), np.float32)  # [B, H]
        io = session.io_binding()
        for name, arr in (("x", self.x), ("h", self.h), *((("j", self.j),) if jump else ())):
            io.bind_input(name, "cpu", 0, np.float32, list(arr.shape), arr.ctypes.data)
        for name, arr in (("pred", self.pred), ("h_next", self.h_next)):
            io.bind_output(name, "cpu", 0, np.float32, list(arr.shape), arr.ctypes.data)
        self.io = io


def external_data(path) -> str | None:
    """The first file name a graph reads tensors from besides ``path`` itself (ONNX external data),
    or None. Such a file is not listed in the manifest, so its sha256 is never checked. (Needs the
    onnx package, part of edgernn[onnx]; without it, or for a file onnx cannot parse, None: the
    session reports a broken file.) A graph whose bytes lack the key every external tensor names,
    "location", has none: onnx (seconds to import) is only loaded for the others."""
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
            if view.find(b"location") < 0:  # (mapped: a large graph is not read into memory)
                return None
        import onnx
        from onnx.external_data_helper import uses_external_data

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - no onnx package, or not a model: onnxruntime says what is wrong
        return None
    graphs, tensors = [model.graph], []
    while graphs:  # initializers and constant tensors, subgraphs (If / Loop / Scan bodies) included
        g = graphs.pop()
        tensors += list(g.initializer)
        for attr in (a for node in g.node for a in node.attribute):
            tensors += ([attr.t] if attr.HasField("t") else []) + list(attr.tensors)
            graphs += ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
    for t in tensors:
        if uses_external_data(t):
            return next((e.value for e in t.external_data if e.key == "location"), "?")
    return None


def _io_widths(session, path) -> tuple[int, int, int, bool]:
    """(F, H, pred's width, jump inputs) of a session's inputs x [B, F], h [B, H] (and j [B, F]: a
    model with jump inputs) and outputs pred [B, P], h_next [B, H]: ValueError naming ``path`` for
    other names, a fixed batch dimension (every batch size is bound: a graph for B = 1 failed at the
    first batch of 2), an h_next not as wide as h or a j not as wide as x."""
    ins = {i.name: i.shape for i in session.get_inputs()}
    outs = {o.name: o.shape for o in session.get_outputs()}
    if set(ins) not in ({"x", "h"}, {"x", "j", "h"}) or set(outs) != {"pred", "h_next"}:
        raise ValueError(f"{path}: expected inputs x, h (or x, j, h) and outputs pred, h_next")
    widths = {}
    for kind, name, shape in [("input", n, ins[n]) for n in sorted(ins, key="xjh".index)] + \
            [("output", n, outs[n]) for n in ("pred", "h_next")]:
        widths[name] = fixed_width(shape, f"{kind} {name}", path)
        if isinstance(shape[0], int):
            raise ValueError(f"{path}: {kind} {name} has shape {list(shape)}: expected a free batch dimension "
                             "(a name such as B), not a fixed one")
    if widths["h_next"] != widths["h"]:
        raise ValueError(f"{path}: output h_next has {widths['h_next']} entries but input h {widths['h']}")
    if widths.get("j", widths["x"]) != widths["x"]:
        raise ValueError(f"{path}: input j has {widths['j']} entries but input x {widths['x']}")
    return widths["x"], widths["h"], widths["pred"], "j" in widths


class OnnxGRU:
    """Stateless cell on an .onnx file. ``step(x[B,F], h[B,H]) -> (pred[B,P], h_next[B,H])`` (P = 2F, or
    3KF for a K-component head: read from the graph's output shape; x [B, 2F] = [c | j] for a graph
    with jump inputs)."""

    h_bound = 1.0  # a GRU: |h| < 1, kept as int16 Q15 by the state store

    def __init__(self, path, name: str = "onnx", intra_op_threads: int = 1):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailable(f"ONNX backend needs onnxruntime ({exc}): pip install 'edgernn[onnx]'") from None
        self.name = name
        self.path = str(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(intra_op_threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 4  # no warnings on stderr for every session, nor a second copy of an error it raises
        outside = external_data(path)
        if outside is not None:
            raise ValueError(f"{path}: the graph reads tensors from another file ({outside}), which no sha256 "
                             f"covers (run: edgernn export {shlex.quote(str(Path(path).parent))}: it writes one file)")
        try:
            self._session = ort.InferenceSession(self.path, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendUnavailable(f"{path}: onnxruntime cannot load this model: {first_line(exc)}") from None
        self.features, self.hidden, self._width, self.jump = _io_widths(self._session, path)
        self.components = components_of_width(self._width, self.features, path)
        self._bindings: OrderedDict[int, _Binding] = OrderedDict()

    def _binding(self, B: int) -> _Binding:
        b = self._bindings.get(B)
        if b is None:
            b = self._bindings[B] = _Binding(self._session, B, self.features, self.hidden, self._width, self.jump)
            if len(self._bindings) > MAX_BINDINGS:
                self._bindings.popitem(last=False)
        else:
            self._bindings.move_to_end(B)
        return b

    def step(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        B, F = x.shape[0], self.features
        width = 2 * F if self.jump else F  # x: [B, F], or [B, 2F] = [c | j]
        if x.shape != (B, width) or h.shape != (B, self.hidden):
            raise ValueError(f"expected x[B,{width}] and h[B,{self.hidden}], got {x.shape} and {h.shape}")
        b = self._binding(B)
        if self.jump:
            np.copyto(b.x, x[:, :F])
            np.copyto(b.j, x[:, F:])
        else:
            np.copyto(b.x, x)
        np.copyto(b.h, h)
        self._session.run_with_iobinding(b.io)
        return b.pred.copy(), b.h_next.copy()
