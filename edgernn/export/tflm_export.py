"""TensorFlow Lite Micro: the int8 model as C source, a firmware example, and a Python check.

    write_tflm(bundle, model_bytes, out_dir)   model_data.h / model_data.cc / firmware_example.cc
    min_arena_bytes(model_bytes)               smallest tensor arena TFLite Micro accepts (host)
    TflmGRU(model_bytes)                       Backend-shaped wrapper around the tflite_micro Python
                                               interpreter (batch 1 per invoke; rows run in turn)

TFLite Micro ignores shape_signature and runs the stored batch of 1; the hidden state is an
explicit input and output, so the application owns it (see templates/firmware_example.cc).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import numpy as np

from ..backends.base import BackendUnavailable, components_of_width

TEMPLATES = Path(__file__).with_name("templates")
SYMBOL = "g_edgernn_model"


def _runtime():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as exc:
        raise BackendUnavailable(f"TFLite Micro checks need the tflite-micro package ({exc}): pip install 'edgernn[dev]'") from None
    return runtime


@contextlib.contextmanager
def _quiet_stderr():
    """TFLite Micro reports allocation failures on fd 2; silence it while probing sizes."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _runs(model_bytes: bytes, arena: int, F: int, H: int) -> bool:
    runtime = _runtime()
    try:
        it = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena)
        it.set_input(np.zeros((1, F), np.float32), 0)
        it.set_input(np.zeros((1, H), np.float32), 1)
        it.invoke()
    except RuntimeError:
        return False
    return True


def min_arena_bytes(model_bytes: bytes, F: int, H: int, granularity: int = 256) -> int:
    """Smallest arena (bytes, multiple of ``granularity``) the host TFLite Micro runs the model in.

    Host pointers are 64-bit, so this slightly over-estimates a 32-bit MCU's need.
    """
    lo, hi = granularity, 1 << 16
    with _quiet_stderr():
        while not _runs(model_bytes, hi, F, H):
            lo, hi = hi, hi * 2
            if hi > 1 << 26:
                raise RuntimeError("TFLite Micro cannot run the model with a 64 MiB arena")
        while hi - lo > granularity:
            mid = (lo + hi) // 2 // granularity * granularity
            lo, hi = (lo, mid) if _runs(model_bytes, mid, F, H) else (mid, hi)
    return hi


class TflmGRU:
    """The int8 model under the TFLite Micro interpreter, with the Backend ``step`` contract."""

    h_bound = 1.0  # a GRU: |h| < 1, kept as int16 Q15 by the state store

    def __init__(self, model_bytes: bytes, name: str = "tflm", arena_size: int | None = None):
        runtime = _runtime()
        self.name = name
        self._it = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_size or 64 * 1024)
        self.features = int(self._it.get_input_details(0)["shape"][-1])
        self.hidden = int(self._it.get_input_details(1)["shape"][-1])
        self._width = int(self._it.get_output_details(0)["shape"][-1])  # 2F, or 3KF for a mixture head
        self.components = components_of_width(self._width, self.features, "TFLite Micro model")

    def step(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        B = x.shape[0]
        pred = np.empty((B, self._width), np.float32)  # [B, 2F] or [B, 3KF]
        h_next = np.empty((B, self.hidden), np.float32)  # [B, H]
        it = self._it
        for i in range(B):  # TFLite Micro has a fixed batch of 1
            it.set_input(np.ascontiguousarray(x[i : i + 1], np.float32), 0)
            it.set_input(np.ascontiguousarray(h[i : i + 1], np.float32), 1)
            it.invoke()
            pred[i], h_next[i] = it.get_output(0)[0], it.get_output(1)[0]
        return pred, h_next


def _c_float(v: float) -> str:
    """A C++ float literal: 1 -> 1.0f, 2.5e-06 -> 2.5e-06f."""
    text = f"{float(v):.9g}"
    if not any(c in text for c in ".en"):  # "nan"/"inf" cannot occur: the bundle checks finiteness
        text += ".0"
    return text + "f"


def _c_floats(values) -> str:
    return ", ".join(_c_float(v) for v in values)


def _components_line(K: int) -> str:
    """model_data.h's line for a mixture head (none for K = 1: the header is as it always was)."""
    if K == 1:
        return ""
    return (f"#define EDGERNN_COMPONENTS {K}  // mixture head: pred is float32[1, 3KF] = "
            "[means | logvars | logits], K F each, component-major\n")


def c_sources(model_bytes: bytes, bundle, arena_bytes: int, source_name: str) -> tuple[str, str]:
    """(model_data.h, model_data.cc) text for ``model_bytes``."""
    F, H = bundle.n_features, bundle.hidden
    mean = bundle.norm_mean if bundle.norm_mode == "fixed" else np.zeros(F)
    std = bundle.norm_std if bundle.norm_mode == "fixed" else np.ones(F)
    header = f"""// Generated by `edgernn export` from {source_name} of model "{bundle.name}" {bundle.version}. Do not edit.
#ifndef EDGERNN_MODEL_DATA_H_
#define EDGERNN_MODEL_DATA_H_

extern const unsigned char {SYMBOL}[];
extern const unsigned int {SYMBOL}_len;

constexpr int kEdgernnFeatures = {F};  // x: float32[1, F], pred: float32[1, 2F] = [mean | logvar]
{_components_line(bundle.components)}constexpr int kEdgernnHidden = {H};    // h, h_next: float32[1, H]
constexpr int kEdgernnArenaBytes = {arena_bytes};  // measured on the host TFLite Micro, + margin
constexpr float kEdgernnNormMean[kEdgernnFeatures] = {{{_c_floats(mean)}}};  // normalisation: {bundle.norm_mode}
constexpr float kEdgernnNormStd[kEdgernnFeatures] = {{{_c_floats(std)}}};
constexpr float kEdgernnInputClip = {_c_float(bundle.input_clip)};
constexpr float kEdgernnLogvarMin = {_c_float(bundle.logvar_min)};
constexpr float kEdgernnLogvarMax = {_c_float(bundle.logvar_max)};

#endif  // EDGERNN_MODEL_DATA_H_
"""
    rows = []
    for s in range(0, len(model_bytes), 12):
        rows.append("  " + ", ".join(f"0x{b:02x}" for b in model_bytes[s : s + 12]) + ",")
    body = "\n".join(rows)
    source = f"""// Generated by `edgernn export` from {source_name} of model "{bundle.name}" {bundle.version}. Do not edit.
#include "model_data.h"

alignas(16) const unsigned char {SYMBOL}[] = {{
{body}
}};
const unsigned int {SYMBOL}_len = {len(model_bytes)};
"""
    return header, source


def write_tflm(bundle, model_bytes: bytes, out_dir: Path, source_name: str = "model.int8.tflite") -> dict:
    """Write model_data.h/.cc and firmware_example.cc into ``out_dir``; return facts for the manifest."""
    F, H = bundle.n_features, bundle.hidden
    measured = min_arena_bytes(model_bytes, F, H)
    arena = int(-(-int(measured * 1.25 + 1024) // 1024) * 1024)  # margin for other TFLM builds
    header, source = c_sources(model_bytes, bundle, arena, source_name)
    (out_dir / "model_data.h").write_text(header, encoding="utf-8")
    (out_dir / "model_data.cc").write_text(source, encoding="utf-8")
    shutil.copyfile(TEMPLATES / "firmware_example.cc", out_dir / "firmware_example.cc")
    return {"arena_bytes": arena, "arena_bytes_measured_host": measured, "model_bytes": len(model_bytes)}
