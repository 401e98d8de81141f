"""LiteRT (TFLite) backend: ``model.tflite`` (float32) or ``model.int8.tflite`` (int8, float I/O).

Runtime: ``ai_edge_litert`` (pip install 'edgernn[tflite]'); falls back to ``tflite_runtime``, which
only works with numpy < 2 (with numpy 2 every Interpreter fails with "_ARRAY_API not found").

Batching: one interpreter per power-of-two bucket (1, 2, 4, ... 256), created on first use and
kept allocated, so a detector whose batch size changes every call never re-allocates. A batch is
zero-padded up to its bucket (rows are independent); batches above 256 run in chunks of 256.

A graph with an input ``j`` is a model with jump inputs (backends/base.py): ``jump`` is True and
step takes x [B, 2F] = [c | j], fed to the graph's inputs x and j.
"""

from __future__ import annotations

import numpy as np

from ..logs import first_line
from .base import BackendUnavailable, components_of_width, fixed_width

MAX_BUCKET = 256


def _interpreter_class():
    """(Interpreter class, runtime label) or BackendUnavailable naming the extra."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError as litert_exc:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise BackendUnavailable(
                f"TFLite backend needs ai-edge-litert ({litert_exc}): pip install 'edgernn[tflite]'"
            ) from None
        if int(np.__version__.split(".")[0]) >= 2:
            raise BackendUnavailable(
                "found only tflite_runtime, which cannot run with numpy "
                f"{np.__version__} (it needs numpy < 2): pip install 'edgernn[tflite]' (ai-edge-litert)"
            )
        return Interpreter, "tflite-runtime"


class _Slot:
    """One interpreter allocated for a fixed batch size, with its padded input buffers."""

    def __init__(self, interp, batch: int, features: int, hidden: int):
        self.interp, self.batch = interp, batch
        ins = {d["name"]: d["index"] for d in interp.get_input_details()}
        interp.resize_tensor_input(ins["x"], [batch, features], strict=False)
        interp.resize_tensor_input(ins["h"], [batch, hidden], strict=False)
        if "j" in ins:  # jump inputs: j [bucket, F]
            interp.resize_tensor_input(ins["j"], [batch, features], strict=False)
        interp.allocate_tensors()
        outs = {d["name"]: d["index"] for d in interp.get_output_details()}
        self.ix, self.ih, self.ij = ins["x"], ins["h"], ins.get("j")
        self.opred, self.oh = outs["pred"], outs["h_next"]
        self.x = np.zeros((batch, features), np.float32)  # [bucket, F]
        self.h = np.zeros((batch, hidden), np.float32)  # [bucket, H]
        self.j = np.zeros((batch, features), np.float32) if "j" in ins else None  # [bucket, F]
        # The wrapper's own SetTensor / Invoke / GetTensor (copying in, copying out), bound once: the
        # public methods add a Python frame each, and invoke() a check for numpy views of the
        # interpreter's buffers, which this class never makes (it uses no tensor() views)
        raw = getattr(interp, "_interpreter", None)
        if raw is not None and all(hasattr(raw, n) for n in ("SetTensor", "Invoke", "GetTensor")):
            self._set, self._invoke, self._get = raw.SetTensor, raw.Invoke, raw.GetTensor
        else:  # another wrapper layout: the public methods
            self._set, self._invoke, self._get = interp.set_tensor, interp.invoke, interp.get_tensor

    def run(self, x: np.ndarray, h: np.ndarray, j: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """x [B, F], h [B, H] (and j [B, F] for jump inputs), B <= the bucket."""
        B = x.shape[0]
        if j is not None:  # (copied into the padded buffer: x and j are views of [c | j])
            self.j[:B], self.j[B:] = j, 0.0
            self._set(self.ij, self.j)
        if B == self.batch and x.dtype == np.float32 and h.dtype == np.float32 and x.flags.c_contiguous:
            # SetTensor copies them as they are
            self._set(self.ix, x)
            self._set(self.ih, h)
        else:  # converted, or padded: rows are independent, the padded rows are discarded
            self.x[:B], self.x[B:] = x, 0.0
            self.h[:B], self.h[B:] = h, 0.0
            self._set(self.ix, self.x)
            self._set(self.ih, self.h)
        self._invoke()
        pred, h_next = self._get(self.opred), self._get(self.oh)  # copies
        if B != self.batch:
            pred, h_next = pred[:B].copy(), h_next[:B].copy()
        return pred, h_next


class TfliteGRU:
    """Stateless cell on a .tflite file. ``step(x[B,F], h[B,H]) -> (pred[B,P], h_next[B,H])`` (P = 2F, or
    3KF for a K-component head: read from the graph's output shape; x [B, 2F] = [c | j] for a graph
    with jump inputs)."""

    h_bound = 1.0  # a GRU: |h| < 1, kept as int16 Q15 by the state store

    def __init__(self, path, name: str = "tflite", num_threads: int = 1):
        self._Interpreter, self.runtime = _interpreter_class()
        self.name = name
        self.path = str(path)
        with open(path, "rb") as fh:
            self._model = fh.read()
        self._num_threads = int(num_threads)
        probe = self._new_interpreter()
        shapes = {d["name"]: tuple(d["shape"]) for d in probe.get_input_details()}
        if set(shapes) not in ({"x", "h"}, {"x", "j", "h"}):
            raise ValueError(f"{path}: expected inputs x and h (or x, j and h), found {sorted(shapes)}")
        self.features, self.hidden = fixed_width(shapes["x"], "input x", path), fixed_width(shapes["h"], "input h", path)
        self.jump = "j" in shapes  # a model with jump inputs: x [B, 2F] = [c | j]
        if self.jump and fixed_width(shapes["j"], "input j", path) != self.features:
            raise ValueError(f"{path}: input j has shape {list(shapes['j'])} but input x {list(shapes['x'])}")
        outs = {d["name"]: tuple(d["shape"]) for d in probe.get_output_details()}
        if set(outs) != {"pred", "h_next"}:
            raise ValueError(f"{path}: expected outputs pred and h_next, found {sorted(outs)}")
        if fixed_width(outs["h_next"], "output h_next", path) != self.hidden:
            raise ValueError(f"{path}: output h_next has shape {list(outs['h_next'])} but input h {list(shapes['h'])}")
        self.components = components_of_width(fixed_width(outs["pred"], "output pred", path), self.features, path)
        types = {d["name"]: np.dtype(d["dtype"]) for d in [*probe.get_input_details(), *probe.get_output_details()]}
        odd = [f"{n} is {t}" for n, t in sorted(types.items()) if t != np.float32]
        if odd:  # the int8 graphs too take and give float32 (edgernn export)
            raise ValueError(f"{path}: {', '.join(odd)}: expected float32 inputs and outputs")
        self._slots: dict[int, _Slot] = {}

    def _new_interpreter(self):
        try:
            return self._Interpreter(model_content=self._model, num_threads=self._num_threads)
        except Exception as exc:  # e.g. tflite_runtime built against numpy 1.x, unknown op version
            first = first_line(exc)  # LiteRT: one line per bad op
            raise BackendUnavailable(f"{self.path}: the TFLite runtime cannot load this model: {first}") from None

    def _slot(self, B: int) -> _Slot:
        bucket = 1 << max(0, (B - 1).bit_length())  # next power of two >= B
        slot = self._slots.get(bucket)
        if slot is None:
            try:
                slot = _Slot(self._new_interpreter(), bucket, self.features, self.hidden)
            except (RuntimeError, ValueError) as exc:  # a graph whose ops do not fit together ("failed to prepare")
                first = first_line(exc)
                raise BackendUnavailable(f"{self.path}: the TFLite runtime cannot run this model: {first}") from None
            self._slots[bucket] = slot
        return slot

    def step(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        B, F = x.shape[0], self.features
        width = 2 * F if self.jump else F  # x: [B, F], or [B, 2F] = [c | j]
        if x.shape != (B, width) or h.shape != (B, self.hidden):
            raise ValueError(f"expected x[B,{width}] and h[B,{self.hidden}], got {x.shape} and {h.shape}")
        x, j = (x[:, :F], x[:, F:]) if self.jump else (x, None)  # [B, F], [B, F] or None
        if B <= MAX_BUCKET:
            return self._slot(B).run(x, h, j)
        parts = [self._slot(MAX_BUCKET if s + MAX_BUCKET <= B else B - s).run(
                     x[s : s + MAX_BUCKET], h[s : s + MAX_BUCKET], None if j is None else j[s : s + MAX_BUCKET])
                 for s in range(0, B, MAX_BUCKET)]
        return np.concatenate([p for p, _ in parts]), np.concatenate([q for _, q in parts])
