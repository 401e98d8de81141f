"""``export_bundle``: canonical bundle -> ONNX / TFLite / TFLite Micro artifacts, each parity-checked
against golden.npz and recorded in the manifest (sha256, size, tolerances, measured errors).

    report = export_bundle("firmware_models/univariate")                   # every format
    report = export_bundle(path, ["tflite-int8"], tflite_activation_bits=16)

Formats imply what they are made from: ``onnx-int8`` also writes ``model.onnx``, ``tflm`` also
writes ``model.int8.tflite``. A model with jump inputs (backends/base.py) gets graphs with a third
input j; golden.npz and representative.npz then hold x [T, B, 2F] = [c | j].

Tolerances written to the manifest (``tolerance`` = one step, ``rollout_tolerance`` = the golden
rollout; max abs error over pred and h): 1e-5 for the float graphs. For int8 artifacts twice the
error measured here (rounded up to one significant digit, at least 0.02 / 0.05), so the check on
another machine catches a runtime that computes differently; an int8 error above the ceiling
(0.25 / 1.0) marks the export failed and records the ceiling, so the artifact's parity test fails.

The export is all or nothing: every file is written and checked in a hidden directory inside the
bundle (``.export-*``), then renamed into place (``os.replace``) and only then recorded in
manifest.yaml (itself replaced atomically, in one write). An export that fails (a converter error,
a full disk) or is interrupted before the renames leaves the bundle as it was; Ctrl-C during them
waits for them to end -- never a half-written artifact, nor a manifest whose sha256 entries disagree
with the files. An export that is killed outright (SIGKILL, power loss) leaves its staging directory
(``.export-*``); the next export of the bundle removes it: each export holds a lock (flock) on a file
in its own, which the kernel drops when the process dies.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..backends.base import check_finite
from ..backends.numpy_gru import NumpyGRU
from ..bundle import load_bundle, register_artifacts
from ..fileio import signals_deferred, target_problem
from ..settings import resolve

try:  # flock: what tells a killed export's staging directory from a running one's (none on Windows)
    import fcntl
except ImportError:
    fcntl = None

FORMATS = ("onnx", "onnx-int8", "tflite", "tflite-int8", "tflm")
ARTIFACTS = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx", "tflite": "model.tflite",
             "tflite-int8": "model.int8.tflite", "tflm": "model_data.cc"}
_REQUIRES = {"onnx-int8": "onnx", "tflm": "tflite-int8"}
FLOAT_TOLERANCE = 1e-5
INT8_FLOOR = (0.02, 0.05)  # (one step, rollout)
INT8_CEILING = (0.25, 1.0)


class ExportError(RuntimeError):
    """An export could not be produced (message is one line)."""


def resolve_formats(formats: Iterable[str] | None) -> list[str]:
    """Validated formats plus their prerequisites, in build order."""
    wanted = set(FORMATS if formats is None else formats)
    unknown = sorted(wanted - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown export format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    for fmt in list(wanted):
        if fmt in _REQUIRES:
            wanted.add(_REQUIRES[fmt])
    return [f for f in FORMATS if f in wanted]


def written_files(fmts: Iterable[str]) -> list[str]:
    """The bundle's files an export of the resolved formats ``fmts`` writes (manifest.yaml last)."""
    fmts = list(fmts)
    return [ARTIFACTS[f] for f in fmts] + (["model_data.h", "firmware_example.cc"] if "tflm" in fmts else []) \
        + ["manifest.yaml"]


def bundle_write_problem(root: Path, fmts: Iterable[str]) -> str | None:
    """Why the export of ``fmts`` could not write its files into the bundle ``root`` (one line), or
    None: checked before any work, so that a long export does not end in a traceback (a directory
    where an artifact goes), hang (a FIFO there: opening it for writing waits for a reader) or
    overwrite a file outside the bundle (a symbolic link there, e.g. to a shipped bundle's artifact)."""
    if not os.access(root, os.W_OK | os.X_OK):
        return f"{root}: cannot create files in the bundle directory"
    for name in written_files(fmts):
        path = root / name
        if path.is_symlink() and name != "manifest.yaml":  # (manifest.yaml is replaced, not written through)
            return (f"{path}: is a symbolic link; export would write its {name} through it into "
                    f"{os.path.realpath(path)} (replace it with a copy, or remove it)")
        why = target_problem(path, replaced=True)  # (regular files only: no FIFO, no device)
        if why in ("is a directory", "is not a regular file"):
            return f"{path}: {why}; export writes its {name} there (move it away)"
        if why is None and path.exists() and name != "manifest.yaml" and not os.access(path, os.W_OK):
            return f"{path}: not writable"  # (all are replaced; a read-only artifact is taken as one to keep)
        if why:
            return f"{path}: {why}"
    return None


def _round_up(v: float) -> float:
    """Round up to one significant digit: 0.0173 -> 0.02."""
    if v <= 0:
        return 0.0
    e = math.floor(math.log10(v))
    return math.ceil(v / 10**e) * 10**e


def stated_tolerances(quantized: bool, err: dict) -> tuple[float, float, bool]:
    """(one-step, rollout) tolerance to record for measured ``err``, and whether it is acceptable."""
    if not quantized:
        ok = err["step"] <= FLOAT_TOLERANCE and err["rollout"] <= FLOAT_TOLERANCE
        return FLOAT_TOLERANCE, FLOAT_TOLERANCE, ok
    step = max(INT8_FLOOR[0], _round_up(2 * err["step"]))
    roll = max(INT8_FLOOR[1], _round_up(2 * err["rollout"]))
    ok = err["step"] <= INT8_CEILING[0] and err["rollout"] <= INT8_CEILING[1]
    if not ok:
        step, roll = min(step, INT8_CEILING[0]), min(roll, INT8_CEILING[1])
    return float(f"{step:.1g}"), float(f"{roll:.1g}"), ok


def _errors_meta(err: dict) -> dict:
    keys = ("step_pred", "step_h", "rollout_pred", "rollout_h")
    return {k: float(f"{err[k]:.3g}") for k in keys} | {"rollout_steps": int(err["rollout_steps"])}


@dataclass
class _ExportContext:
    """What every per-format writer needs: the bundle, its golden rollout, the calibration pairs
    (None without an int8 format), the options and the report being filled. Writers write into
    ``stage`` (a hidden directory in the bundle) and add ``(file, manifest metadata)`` to ``pending``;
    export_bundle moves them into the bundle and registers them once all are made."""

    stage: Path
    bundle: object
    golden: dict
    report: dict
    say: Callable[[str], None]
    X: np.ndarray | None
    Hp: np.ndarray | None
    tflite_activation_bits: int
    onnx_int8: str
    tflite_per_channel: bool
    tflite_bias_correction: bool
    pending: list

    @property
    def weights(self) -> dict:
        return self.bundle.weights

    def out(self, name: str) -> Path:
        """Where this export writes (and reads back) the bundle's file ``name`` until it is committed."""
        return self.stage / name


def _record(ctx: _ExportContext, fmt: str, artifact: str, backend, quantized: bool, **extra) -> dict:
    """Measure ``backend`` against the golden rollout, queue ``artifact``'s registration with its
    tolerances and errors, append the report row and log it."""
    from .parity import measure

    err = measure(backend, ctx.golden)
    tol, roll_tol, ok = stated_tolerances(quantized, err)
    ctx.pending.append((artifact, dict(tolerance=tol, rollout_tolerance=roll_tol, parity=_errors_meta(err),
                                       parity_ok=ok, **extra)))
    size = ctx.out(artifact).stat().st_size
    row = {"backend": fmt, "artifact": artifact, "size_bytes": size, **err,
           "tolerance": tol, "rollout_tolerance": roll_tol, "ok": ok}
    ctx.report["rows"].append(row)
    ctx.report["ok"] &= ok
    ctx.say(f"{artifact}: {size:,} bytes, max error one step {err['step']:.2e}, rollout {err['rollout']:.2e}"
            + ("" if ok else "  ** above the accepted error **"))
    return row


def _export_onnx(ctx: _ExportContext, fmt: str, artifact: str) -> None:
    from ..backends.onnx_gru import OnnxGRU
    from . import onnx_export

    path = ctx.out(artifact)
    onnx_export.write_onnx(ctx.weights, path)
    _record(ctx, fmt, artifact, OnnxGRU(path), False, format="onnx", opset=onnx_export.OPSET,
            runtime="onnxruntime", graph="MatMul + elementwise single-step cell")


def _export_onnx_int8(ctx: _ExportContext, fmt: str, artifact: str) -> None:
    from ..backends.onnx_gru import OnnxGRU
    from . import onnx_export

    path, float_path, mode = ctx.out(artifact), ctx.out("model.onnx"), ctx.onnx_int8  # (onnx is made first)
    j = ", the jump inputs j over [0, 1]" if ctx.bundle.jump else ""
    if mode == "static16":
        onnx_export.quantize_static_onnx(float_path, path, ctx.X, ctx.Hp, per_channel=True, activation_bits=16,
                                         x_clip=ctx.bundle.input_clip)
        how = ("onnxruntime quantize_static, QDQ on the MatMuls: int8 weights per output channel, 16-bit "
               f"inputs with fixed scales (x over the detector's input clip, h over [-1, 1]{j}, h_next "
               "calibrated), float outputs and gates")
    elif mode == "static":
        onnx_export.quantize_static_onnx(float_path, path, ctx.X, ctx.Hp)
        how = ("onnxruntime quantize_static, QDQ on the MatMuls: int8 weights per tensor, int8 inputs "
               f"with fixed calibrated scales (h pinned to [-1, 1]{j}), float outputs and gates")
    else:
        onnx_export.quantize_dynamic_onnx(float_path, path, per_channel=True)
        how = ("onnxruntime quantize_dynamic: int8 per-channel weights, activations quantized per call "
               "over the whole batch (rows of a batch are not independent)")
    cal_meta = ctx.report["calibration"] if mode != "dynamic" else None
    _record(ctx, fmt, artifact, OnnxGRU(path, name="onnx-int8"), True, format="onnx", runtime="onnxruntime",
            quantization={"mode": mode, "how": how, "calibration": cal_meta})


def _export_tflite(ctx: _ExportContext, fmt: str, artifact: str) -> None:
    from ..backends.tflite_gru import TfliteGRU
    from . import tflite_export

    path = ctx.out(artifact)
    path.write_bytes(tflite_export.build_tflite(ctx.weights))
    _record(ctx, fmt, artifact, TfliteGRU(path), False, format="tflite", runtime="ai-edge-litert",
            writer="ai_edge_litert.schema_py_generated object API")


def _export_tflite_int8(ctx: _ExportContext, fmt: str, artifact: str) -> None:
    from ..backends.tflite_gru import TfliteGRU
    from . import quantize, tflite_export

    path, bits = ctx.out(artifact), ctx.tflite_activation_bits
    plan = quantize.tflite_plan(ctx.weights, ctx.X, ctx.Hp, bits=bits, per_channel=ctx.tflite_per_channel,
                                bias_correction=ctx.tflite_bias_correction, x_clip=ctx.bundle.input_clip)
    path.write_bytes(tflite_export.build_tflite(ctx.weights, plan=plan))
    weights_label = plan.weight_label + (", bias-corrected for the mean weight rounding error"
                                         if plan.bias_correction else "")
    _record(ctx, fmt, artifact, TfliteGRU(path, name="tflite-int8"), True, format="tflite", runtime="ai-edge-litert",
            quantization={"weights": weights_label, "activations": f"int{bits} static", "io": "float32",
                          "calibration": ctx.report["calibration"]})


def _export_tflm(ctx: _ExportContext, fmt: str, artifact: str) -> None:
    from ..backends.tflite_gru import TfliteGRU
    from . import tflm_export
    from .parity import golden_step_inputs

    int8_path = ctx.out("model.int8.tflite")  # (tflite-int8 is made first)
    model_bytes = int8_path.read_bytes()
    facts = tflm_export.write_tflm(ctx.bundle, model_bytes, ctx.stage)
    tflm = tflm_export.TflmGRU(model_bytes, arena_size=facts["arena_bytes"])
    xs_step, hs_step = golden_step_inputs(ctx.golden)
    lit_pred, lit_h = TfliteGRU(int8_path, name="tflite-int8").step(xs_step, hs_step)
    mic_pred, mic_h = tflm.step(xs_step, hs_step)
    diff = float(max(np.abs(lit_pred - mic_pred).max(), np.abs(lit_h - mic_h).max()))
    _record(ctx, fmt, artifact, tflm, True, format="c-array", runtime="tflite-micro",
            source="model.int8.tflite", max_diff_vs_litert=float(f"{diff:.3g}"), **facts)
    ctx.pending.append(("model_data.h", {"format": "c-header", "source": "model.int8.tflite"}))
    ctx.pending.append(("firmware_example.cc", {"format": "c++", "note": "explicit-state step loop for TFLite Micro"}))
    ctx.report["notes"].append(f"TFLite Micro runs model.int8.tflite; max |TFLM - LiteRT| = {diff:.2e} "
                               f"on the golden steps; arena {facts['arena_bytes']:,} bytes")


_EXPORTERS: dict[str, Callable[[_ExportContext, str, str], None]] = {
    "onnx": _export_onnx, "onnx-int8": _export_onnx_int8, "tflite": _export_tflite,
    "tflite-int8": _export_tflite_int8, "tflm": _export_tflm,
}


def export_bundle(bundle_dir, formats: Iterable[str] | None = None, *, tflite_activation_bits: int = 16,
                  onnx_int8: str = "static16", tflite_per_channel: bool = True, tflite_bias_correction: bool = True,
                  log: Callable[[str], None] | None = None) -> dict:
    """Generate and register artifacts; return the report.

    Report: ``{"model", "dir", "ok", "calibration": {...} | None, "rows": [{"backend" (format),
    "artifact", "size_bytes", "step_pred", "step_h", "rollout_pred", "rollout_h", "tolerance",
    "rollout_tolerance", "ok"}], "notes": [...]}``. Raises ``BundleError`` for a bad bundle,
    ``ValueError`` for a bad argument, ``BackendUnavailable`` when a needed runtime is missing.
    """
    from . import quantize

    say = log or (lambda _msg: None)
    if tflite_activation_bits not in (8, 16):
        raise ValueError("tflite_activation_bits must be 8 or 16")
    if onnx_int8 not in ("static16", "static", "dynamic"):
        raise ValueError("onnx_int8 must be 'static16', 'static' or 'dynamic'")
    root = Path(bundle_dir)
    bundle = load_bundle(root)
    # weights whose cell overflows float32: one line naming the file, not NaN scales mid-export
    check_finite(NumpyGRU(bundle.weights), bundle.input_clip, root / "weights.npz")
    fmts = resolve_formats(formats)
    problem = bundle_write_problem(root, fmts)
    if problem:
        raise ExportError(problem)
    if "tflm" in fmts:  # model_data.h floors as the detector does on this bundle: its settings must hold,
        resolve(bundle)  # else one line now (ValueError: file, line, key), not after every other format
    weights, golden = bundle.weights, bundle.golden()
    report: dict = {"model": bundle.name, "dir": str(root), "ok": True, "calibration": None,
                    "rollout_steps": int(golden["x"].shape[0]), "rows": [], "notes": []}

    X = Hp = None
    if {"onnx-int8", "tflite-int8"} & set(fmts):
        xs, source = quantize.calibration_sequences(bundle)
        X, Hp = quantize.calibration_pairs(weights, xs)
        report["calibration"] = {"source": source, "sequences": list(xs.shape), "pairs": int(len(X)),
                                 "method": "min/max over long runs and cold starts from h = 0"}
        say(f"calibration: {len(X):,} ({'x, j, h' if bundle.jump else 'x, h'}) pairs from {source} {list(xs.shape)}")

    _remove_stale_stages(root, say)
    stage = Path(tempfile.mkdtemp(dir=root, prefix=STAGE_PREFIX))  # same file system: os.replace is a rename
    lock = None
    try:
        lock = _hold_stage(stage)
        ctx = _ExportContext(stage, bundle, golden, report, say, X, Hp, tflite_activation_bits, onnx_int8,
                             tflite_per_channel, tflite_bias_correction, [])
        for fmt in fmts:
            _EXPORTERS[fmt](ctx, fmt, ARTIFACTS[fmt])
        _commit(root, stage, ctx.pending)
    except OSError as exc:  # (a full disk): name the bundle's file, not the staging copy that is removed
        if isinstance(exc.filename, (str, bytes)) and Path(os.fsdecode(exc.filename)).parent == stage:
            exc.filename = str(root / Path(os.fsdecode(exc.filename)).name)
        raise
    finally:  # (after a failure: what was made so far; after success: the empty directory)
        shutil.rmtree(stage, ignore_errors=True)
        if lock is not None:
            os.close(lock)
    return report


STAGE_PREFIX = ".export-"  # the staging directory (tempfile.mkdtemp's name after it)
STAGE_LOCK = ".lock"  # in it: locked (flock) for as long as its export runs; the kernel lets go when it dies
STAGE_GRACE_S = 60.0  # a stage younger than this is never removed (its export may not have locked it yet)


def _hold_stage(stage: Path) -> int | None:
    """Lock ``stage``'s lock file for this export's life: the descriptor to close at its end. None
    where there is no flock (Windows: no export cleans up stages there) or it fails (NFS without
    locks: the export goes on, its stage as unprotected from another's clean-up as an older version's)."""
    if fcntl is None:
        return None
    fd = os.open(stage / STAGE_LOCK, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _remove_stale_stages(root: Path, say: Callable[[str], None]) -> None:
    """Remove the staging directories of exports that were killed outright (SIGKILL, power loss: no
    ``finally`` ran): older than STAGE_GRACE_S and with a lock file nobody holds (or none: older
    versions). A running export holds its stage's lock, across pid namespaces too: never removed."""
    if fcntl is None:
        return
    for stage in root.glob(STAGE_PREFIX + "*"):
        try:
            if stage.is_symlink() or not stage.is_dir() or time.time() - stage.stat().st_mtime < STAGE_GRACE_S:
                continue
        except OSError:  # (gone meanwhile: another export cleaned it up)
            continue
        try:
            fd = os.open(stage / STAGE_LOCK, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:  # an older version's stage (no lock file), or gone meanwhile
            if not stage.is_dir():
                continue
            fd = None
        except OSError:  # not ours to judge (a symlinked lock, no permission)
            continue
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: its export still runs
            shutil.rmtree(stage, ignore_errors=True)
            say(f"removed {stage.name}: left by an export that was killed" if not stage.exists()
                else f"could not remove {stage.name} (left by an export that was killed)")
        except OSError:  # BlockingIOError: its export still runs; another error: not ours to judge
            pass
        finally:
            if fd is not None:
                os.close(fd)


def _commit(root: Path, stage: Path, pending: list[tuple[str, dict]]) -> None:
    """Move the staged files into the bundle, then record them in manifest.yaml in one atomic write:
    the manifest names a file's new sha256 only once the file is in place. Ctrl-C and SIGTERM wait
    for the renames and the manifest (fileio.signals_deferred); should a rename fail (an OSError
    partway), the files already moved are recorded all the same, so the manifest still matches every
    file it lists."""
    for name, _meta in pending:
        with open(stage / name, "rb") as fh:  # on disk before the rename makes it the bundle's file
            os.fsync(fh.fileno())
    moved: set[str] = set()
    with signals_deferred():
        try:
            for name, _meta in pending:
                os.replace(stage / name, root / name)
                moved.add(name)
        finally:
            if moved:
                register_artifacts(root, [(name, meta) for name, meta in pending if name in moved])
