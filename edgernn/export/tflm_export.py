"""TensorFlow Lite Micro: the int8 model as C source, a firmware example, and a Python check.

    write_tflm(bundle, model_bytes, out_dir)   model_data.h / model_data.cc / firmware_example.cc
    min_arena_bytes(model_bytes)               smallest tensor arena TFLite Micro accepts (host)
    TflmGRU(model_bytes)                       Backend-shaped wrapper around the tflite_micro Python
                                               interpreter (batch 1 per invoke; rows run in turn)

TFLite Micro ignores shape_signature and runs the stored batch of 1; the hidden state is an
explicit input and output, so the application owns it (see templates/firmware_example.cc).

A model with jump inputs (backends/base.py) has three inputs, x, j and h (in that order):
model_data.h then defines EDGERNN_JUMP_INPUTS and the definition of j (in.jump), and the firmware
example computes j per feature from the readings.

A bundle normalised per stream (normalisation.mode 'stream') has no fixed mean / std (0 / 1 in
model_data.h): model_data.h then defines EDGERNN_STREAM_NORM and the parameters of
train/data.py's stream_normalise, which the firmware example runs per stream, with the std floors
the detector uses on the bundle (its detector_defaults over the schema's; training's are the
schema's).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import numpy as np

from ..backends.base import BackendUnavailable, components_of_width, floored_std, jump_params
from ..settings import resolve

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


def _runs(model_bytes: bytes, arena: int, F: int, H: int, jump: bool = False) -> bool:
    runtime = _runtime()
    try:
        it = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena)
        for i, width in enumerate((F, F, H) if jump else (F, H)):  # x, (j,) h
            it.set_input(np.zeros((1, width), np.float32), i)
        it.invoke()
    except RuntimeError:
        return False
    return True


def min_arena_bytes(model_bytes: bytes, F: int, H: int, granularity: int = 256, jump: bool = False) -> int:
    """Smallest arena (bytes, multiple of ``granularity``) the host TFLite Micro runs the model in
    (``jump``: a model with jump inputs, inputs x, j, h).

    Host pointers are 64-bit, so this slightly over-estimates a 32-bit MCU's need.
    """
    lo, hi = granularity, 1 << 16
    with _quiet_stderr():
        while not _runs(model_bytes, hi, F, H, jump):
            lo, hi = hi, hi * 2
            if hi > 1 << 26:
                raise RuntimeError("TFLite Micro cannot run the model with a 64 MiB arena")
        while hi - lo > granularity:
            mid = (lo + hi) // 2 // granularity * granularity
            lo, hi = (lo, mid) if _runs(model_bytes, mid, F, H, jump) else (mid, hi)
    return hi


def _input_count(it) -> int:
    """Inputs of a TFLite Micro interpreter: 2 (x, h) or 3 (x, j, h: jump inputs). Its details carry
    no names: the count tells (the index past the last raises, after a line on fd 2)."""
    with _quiet_stderr():
        try:
            it.get_input_details(2)
        except (IndexError, RuntimeError, ValueError):
            return 2
    return 3


class TflmGRU:
    """The int8 model under the TFLite Micro interpreter, with the Backend ``step`` contract (x [B, 2F]
    = [c | j] for a model with jump inputs: ``jump``)."""

    h_bound = 1.0  # a GRU: |h| < 1, kept as int16 Q15 by the state store

    def __init__(self, model_bytes: bytes, name: str = "tflm", arena_size: int | None = None):
        runtime = _runtime()
        self.name = name
        self._it = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_size or 64 * 1024)
        self.jump = _input_count(self._it) == 3  # inputs x, j, h (else x, h)
        self._ih = 2 if self.jump else 1  # h's input index
        self.features = int(self._it.get_input_details(0)["shape"][-1])
        self.hidden = int(self._it.get_input_details(self._ih)["shape"][-1])
        if self.jump and int(self._it.get_input_details(1)["shape"][-1]) != self.features:
            raise ValueError("TFLite Micro model: input j is not as wide as input x")
        self._width = int(self._it.get_output_details(0)["shape"][-1])  # 2F, or 3KF for a mixture head
        self.components = components_of_width(self._width, self.features, "TFLite Micro model")

    def step(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        B, F = x.shape[0], self.features
        width = 2 * F if self.jump else F  # x: [B, F], or [B, 2F] = [c | j]
        if x.shape != (B, width) or h.shape != (B, self.hidden):
            raise ValueError(f"expected x[B,{width}] and h[B,{self.hidden}], got {x.shape} and {h.shape}")
        pred = np.empty((B, self._width), np.float32)  # [B, 2F] or [B, 3KF]
        h_next = np.empty((B, self.hidden), np.float32)  # [B, H]
        it = self._it
        for i in range(B):  # TFLite Micro has a fixed batch of 1
            it.set_input(np.ascontiguousarray(x[i : i + 1, :F], np.float32), 0)
            if self.jump:  # j: x's second half [1, F]
                it.set_input(np.ascontiguousarray(x[i : i + 1, F:], np.float32), 1)
            it.set_input(np.ascontiguousarray(h[i : i + 1], np.float32), self._ih)
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


def _c_double(v: float) -> str:
    """A C++ double literal, exact (Python's shortest round-trip text): 0.0005, 1e-06, 0.0."""
    return repr(float(v))


def _components_line(K: int) -> str:
    """model_data.h's line for a mixture head (none for K = 1: the header is as it always was)."""
    if K == 1:
        return ""
    return (f"#define EDGERNN_COMPONENTS {K}  // mixture head: pred is float32[1, 3KF] = "
            "[means | logvars | logits], K F each, component-major\n")


def _fixed_norm(bundle) -> tuple[np.ndarray, np.ndarray]:
    """(mean[F], std[F]) model_data.h normalises with: the bundle's fixed ones, or 0 / 1 ('stream')."""
    F = bundle.n_features
    if bundle.norm_mode == "fixed":
        return bundle.norm_mean, bundle.norm_std
    return np.zeros(F), np.ones(F)


def _jump_lines(bundle) -> str:
    """model_data.h's lines for a model with jump inputs (none without: the header is as it always
    was): the flag the firmware example tests and in.jump, the definition of j (backends/base.py's
    jump_rates and jump_input)."""
    if not bundle.jump:
        return ""
    threshold, memory, floor = jump_params(bundle.weights)
    mean, std = _fixed_norm(bundle)
    floored = floored_std(std, mean, *_std_floors(bundle))  # kernel._std
    return ("#define EDGERNN_JUMP_INPUTS 1  // inputs x, j, h: j float32[1, F] the readings' jump rate (log scale, [0, 1])\n"
            f"constexpr float kEdgernnJumpThreshold = {_c_float(threshold)};  // a jump: |raw_t - raw_t-1| > threshold std\n"
            f"constexpr float kEdgernnJumpMemory = {_c_float(memory)};  // rate: running mean, then EW 1 / memory\n"
            f"constexpr float kEdgernnJumpFloor = {_c_float(floor)};  // j = min(1 + log10(rate + floor) / -log10(floor), 1)\n"
            f"constexpr float kEdgernnJumpStd[kEdgernnFeatures] = {{{_c_floats(floored)}}};  "
            "// fixed normalisation: its std floored as the detector floors it (max(min_std, min_rel_std |mean|))\n")


def _std_floors(bundle) -> tuple[float, float]:
    """(min_std, min_rel_std) the detector floors a stream's std with on this bundle: the schema's,
    or the bundle's detector_defaults (univariate 2.4.0: min_rel_std 1e-4)."""
    s = resolve(bundle)
    return float(s.min_std), float(s.min_rel_std)


def _stream_norm_lines(bundle) -> str:
    """model_data.h's lines for a bundle normalised per stream (none for 'fixed': the header is as it
    always was): the flag the firmware example tests and train/data.py stream_normalise's warmup and
    adapt, and the std floors the detector uses on this bundle (_std_floors), as exact doubles."""
    if bundle.norm_mode != "stream":
        return ""
    warmup, adapt = int(bundle.calibration.warmup), float(bundle.manifest["normalisation"].get("adapt", 0.0))
    min_std, min_rel_std = _std_floors(bundle)
    return ("#define EDGERNN_STREAM_NORM 1  // normalisation per stream, learned by the firmware (not the 0 / 1 above)\n"
            f"constexpr int kEdgernnNormWarmup = {warmup};  // readings: running mean / variance, not scored\n"
            f"constexpr double kEdgernnNormAdapt = {_c_double(adapt)};  // after warm-up: EW at this rate (0: frozen)\n"
            f"constexpr double kEdgernnNormMinStd = {_c_double(min_std)};  // std floored at max(MinStd, MinRelStd |mean|)\n"
            f"constexpr double kEdgernnNormMinRelStd = {_c_double(min_rel_std)};\n")


def c_sources(model_bytes: bytes, bundle, arena_bytes: int, source_name: str) -> tuple[str, str]:
    """(model_data.h, model_data.cc) text for ``model_bytes``."""
    F, H = bundle.n_features, bundle.hidden
    mean, std = _fixed_norm(bundle)
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
{_stream_norm_lines(bundle)}constexpr float kEdgernnInputClip = {_c_float(bundle.input_clip)};
constexpr float kEdgernnLogvarMin = {_c_float(bundle.logvar_min)};
constexpr float kEdgernnLogvarMax = {_c_float(bundle.logvar_max)};
{_jump_lines(bundle)}
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
    measured = min_arena_bytes(model_bytes, F, H, jump=bundle.jump)
    arena = int(-(-int(measured * 1.25 + 1024) // 1024) * 1024)  # margin for other TFLM builds
    header, source = c_sources(model_bytes, bundle, arena, source_name)
    (out_dir / "model_data.h").write_text(header, encoding="utf-8")
    (out_dir / "model_data.cc").write_text(source, encoding="utf-8")
    shutil.copyfile(TEMPLATES / "firmware_example.cc", out_dir / "firmware_example.cc")
    return {"arena_bytes": arena, "arena_bytes_measured_host": measured, "model_bytes": len(model_bytes)}
