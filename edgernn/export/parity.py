"""Parity and speed numbers for the model cards (and for ``edgernn bench``).

    measure(backend, golden)           max abs error vs golden.npz: one step (fed the reference h)
                                       and the rollout (fed its own h), for pred and h
    parity_report(bundle)              the above for every backend that runs here + file sizes
    render_markdown(report)            the table
    time_backend(backend, batch, n)    µs per step() call (median of 5 blocks, after warm-up)
    benchmark(bundle, backends, ...)   time_backend for several backends and batch sizes
"""

from __future__ import annotations

import time

import numpy as np

from ..backends.base import with_random_jumps

# Per artifact: (one-step, rollout) max abs error allowed vs golden.npz, over pred and h.
# Float graphs reorder float32 sums only. int8 budgets are set from measurements on the test
# bundles and trained models (see the export report); an export that exceeds them says so.
TOLERANCES: dict[str, tuple[float, float]] = {
    "model.onnx": (1e-5, 1e-5),
    "model.tflite": (1e-5, 1e-5),
    "model.int8.onnx": (0.1, 0.25),
    "model.int8.tflite": (0.1, 0.25),
}


def golden_step_inputs(golden: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Every golden step as one batch: ``x[T*B, F]`` (2F with jump inputs) and the reference
    ``h_prev[T*B, H]``."""
    x, h = golden["x"], golden["h"]  # [T, B, F], [T, B, H]
    h_prev = np.concatenate([golden["h0"][None], h[:-1]])  # [T, B, H]
    return x.reshape(-1, x.shape[-1]), h_prev.reshape(-1, h.shape[-1])


def measure(backend, golden: dict[str, np.ndarray]) -> dict[str, float]:
    """Max abs errors of ``backend`` vs golden: one step and the full rollout, pred and h."""
    T, B = golden["x"].shape[:2]  # x [T, B, F], or [T, B, 2F] = [c | j]
    xs, hs = golden_step_inputs(golden)
    pred, h_next = backend.step(xs, hs)  # stateless: all T*B steps in one batch
    step_pred = float(np.abs(pred - golden["pred"].reshape(T * B, -1)).max())
    step_h = float(np.abs(h_next - golden["h"].reshape(T * B, -1)).max())
    h = golden["h0"].copy()
    roll_pred = roll_h = 0.0
    for t in range(T):
        pred, h = backend.step(golden["x"][t], h)
        roll_pred = max(roll_pred, float(np.abs(pred - golden["pred"][t]).max()))
        roll_h = max(roll_h, float(np.abs(h - golden["h"][t]).max()))
    return {"step_pred": step_pred, "step_h": step_h, "rollout_pred": roll_pred, "rollout_h": roll_h,
            "step": max(step_pred, step_h), "rollout": max(roll_pred, roll_h), "rollout_steps": T}


def tolerances(bundle, artifact: str | None) -> tuple[float, float]:
    """(one-step, rollout) tolerance the manifest states for ``artifact`` (numpy: golden's own)."""
    meta = bundle.manifest["artifacts"].get(artifact or "golden.npz", {})
    default = TOLERANCES.get(artifact or "", (1e-5, 1e-5))
    step = float(meta.get("tolerance", default[0]))
    return step, float(meta.get("rollout_tolerance", meta.get("tolerance", default[1])))


def parity_report(bundle, backends: list[str] | None = None) -> dict:
    """Parity of every (available) backend of ``bundle`` against its golden.npz.

    Returns ``{"model", "rollout_steps", "rows": [{backend, artifact, size_bytes, step_pred, step_h,
    rollout_pred, rollout_h, tolerance, rollout_tolerance, ok}], "skipped": {backend: reason}}``.
    """
    from ..backends import GRU_BACKENDS, BackendUnavailable, backend_artifact, create_backend

    golden = bundle.golden()
    rows, skipped = [], {}
    for name in backends or GRU_BACKENDS:  # the baselines run no GRU: nothing to check against golden
        try:
            backend = create_backend(name, bundle)
        except (BackendUnavailable, ValueError) as exc:  # (ValueError: refused at load, base.check_*)
            skipped[name] = str(exc)
            continue
        rows.append(_row(bundle, name, backend_artifact(name), backend, golden))
    if backends is None and bundle.artifact_path("model_data.cc") is not None:  # TFLite Micro sources
        from .tflm_export import TflmGRU

        try:
            micro = TflmGRU(bundle.artifact_path("model.int8.tflite").read_bytes())
        except BackendUnavailable as exc:
            skipped["tflm"] = str(exc)
        else:
            rows.append(_row(bundle, "tflm", "model_data.cc", micro, golden))
    return {"model": bundle.name, "rollout_steps": int(golden["x"].shape[0]), "rows": rows, "skipped": skipped}


def _row(bundle, name: str, artifact: str | None, backend, golden) -> dict:
    err = measure(backend, golden)
    tol_step, tol_roll = tolerances(bundle, artifact)
    size = (bundle.path / (artifact or "weights.npz")).stat().st_size
    ok = err["step"] <= tol_step and err["rollout"] <= tol_roll
    return {"backend": name, "artifact": artifact or "weights.npz", "size_bytes": size, **err,
            "tolerance": tol_step, "rollout_tolerance": tol_roll, "ok": ok}


def render_markdown(report: dict) -> str:
    """Markdown table of a ``parity_report`` (errors are max abs, normalised units)."""
    T = report.get("rollout_steps", "?")
    lines = [
        f"| backend | artifact | size (bytes) | 1-step pred | 1-step h | {T}-step pred | {T}-step h | tolerance (1-step / rollout) | ok |",
        "|---|---|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['backend']} | {r['artifact']} | {r['size_bytes']:,} | {r['step_pred']:.2e} | {r['step_h']:.2e} "
            f"| {r['rollout_pred']:.2e} | {r['rollout_h']:.2e} | {r['tolerance']:.0e} / {r['rollout_tolerance']:.0e} "
            f"| {'yes' if r['ok'] else '**NO**'} |"
        )
    for name, reason in report.get("skipped", {}).items():
        lines.append(f"| {name} | — | — | — | — | — | — | skipped: {reason} | |")
    return "\n".join(lines)


def time_backend(backend, batch: int, n: int = 2000, warmup: int | None = None, seed: int = 0) -> float:
    """Microseconds per ``backend.step`` call at ``batch`` (median of 5 blocks of n/5 calls).

    onnxruntime runs its first ~3,000 calls after session creation ~2x slower (DESIGN.md), so
    ``warmup`` defaults to 3,000 calls for onnx backends and 200 for the others.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, backend.features)).astype(np.float32)
    h = np.tanh(rng.standard_normal((batch, backend.hidden))).astype(np.float32)
    if getattr(backend, "jump", False):  # x [B, 2F] = [c | j], j in [0, 1]
        x = with_random_jumps(x, rng)
    if warmup is None:
        warmup = 3000 if str(getattr(backend, "name", "")).startswith("onnx") else 200
    step = backend.step
    for _ in range(warmup):
        step(x, h)
    per_block = max(1, n // 5)
    blocks = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(per_block):
            step(x, h)
        blocks.append((time.perf_counter() - t0) / per_block)
    return float(np.median(blocks) * 1e6)


def benchmark(bundle, backends: list[str] | None = None, batches=(1, 64), n: int = 2000) -> dict:
    """``{backend: {batch: µs per call}}`` for every available backend; skipped ones map to a reason."""
    from ..backends import BACKEND_NAMES, BackendUnavailable, create_backend

    out: dict = {}
    for name in backends or BACKEND_NAMES:
        try:
            backend = create_backend(name, bundle)
        except (BackendUnavailable, ValueError) as exc:  # (ValueError: refused at load, base.check_*)
            out[name] = str(exc)
            continue
        out[name] = {b: time_backend(backend, b, n=n) for b in batches}
    return out


def render_benchmark(results: dict, batches=(1, 64)) -> str:
    head = "| backend | " + " | ".join(f"µs/call @B={b} | µs/reading @B={b}" for b in batches) + " |"
    lines = [head, "|---|" + "---:|---:|" * len(batches)]
    for name, res in results.items():
        if isinstance(res, str):
            lines.append(f"| {name} | skipped: {res} |")
            continue
        lines.append(f"| {name} | " + " | ".join(f"{res[b]:.1f} | {res[b] / b:.2f}" for b in batches) + " |")
    return "\n".join(lines)
