"""A model with jump inputs (backends/base.py: x = [c | j], graphs with a third input j) through every
export: each backend agrees with NumpyGRU with j varied, j changes every graph's outputs, an artifact
of a jump model is refused for a plain bundle, and the firmware example's j is base.jump_rates +
base.jump_input (its code compiled on its own: the TFLite Micro headers are not here)."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from contract_helpers import ROOT, export_formats

from edgernn.backends import create_backend
from edgernn.backends.base import check_shapes, jump_input, jump_rates
from edgernn.backends.numpy_gru import NumpyGRU
from edgernn.backends.persistence import Persistence
from edgernn.bundle import load_bundle, register_artifact, write_bundle
from edgernn.export.parity import measure, tolerances

UNIVARIATE = ROOT / "firmware_models" / "univariate"
JUMP = np.array([1.0, 200.0, 1e-3], np.float32)  # in.jump: threshold, memory, floor
# backend -> the artifact whose manifest tolerance applies (numpy: golden's own)
GRAPHS = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx", "tflite": "model.tflite",
          "tflite-int8": "model.int8.tflite", "tflm": "model_data.cc"}
FORMAT_OF = {"onnx": "onnx", "onnx-int8": "onnx-int8", "tflite": "tflite", "tflite-int8": "tflite-int8", "tflm": "tflm"}


def _jump_weights(seed: int = 7) -> dict[str, np.ndarray]:
    """The univariate model's weights plus jump inputs: W_j* [H, 1] random, in.jump."""
    w = dict(load_bundle(UNIVARIATE).weights)
    H, F = w["gru.W_ir"].shape
    rng = np.random.default_rng(seed)
    for g in "rzn":
        w[f"gru.W_j{g}"] = (0.5 * rng.standard_normal((H, F))).astype(np.float32)
    w["in.jump"] = JUMP.copy()
    return w


@pytest.fixture(scope="module")
def jump_export(tmp_path_factory):
    """(bundle directory, export report): the jump bundle with a representative.npz [T, B, 2F],
    exported to every format whose runtime is installed here."""
    from edgernn.export import export_bundle

    src = load_bundle(UNIVARIATE)
    out = tmp_path_factory.mktemp("jump") / "m"
    write_bundle(out, name="jump-test", version="0.0-test", features=list(src.features), weights=_jump_weights(),
                 units=list(src.units), norm_mode=src.norm_mode, norm_mean=list(src.norm_mean),
                 norm_std=list(src.norm_std), logvar_min=src.logvar_min, logvar_max=src.logvar_max,
                 input_clip=src.input_clip)
    rng = np.random.default_rng(1)
    c = rng.standard_normal((300, 6, 1)).cumsum(axis=0) * 0.1  # [T, B, F] wandering readings
    j = rng.uniform(0.0, 1.0, (300, 6, 1))  # [T, B, F]
    np.savez(out / "representative.npz", x=np.concatenate([c, j], axis=2).astype(np.float32))
    register_artifact(out, "representative.npz")
    report = export_bundle(out, export_formats())
    return out, report


def _backend(name: str, bundle):
    if name == "numpy":
        return create_backend("numpy", bundle)
    if FORMAT_OF[name] not in export_formats():
        pytest.skip(f"the runtime for {name} is not installed")
    if name == "tflm":
        from edgernn.export.tflm_export import TflmGRU

        return TflmGRU(bundle.artifact_path("model.int8.tflite").read_bytes(),
                       arena_size=int(bundle.manifest["artifacts"]["model_data.cc"]["arena_bytes"]))
    return create_backend(name, bundle)


def _inputs(bundle, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x [n, 2F] = [c | j]: c and h from golden's steps, j drawn anew in [0, 1]; h [n, H]."""
    g = bundle.golden()
    F = bundle.n_features
    xs = g["x"].reshape(-1, 2 * F)
    hs = np.concatenate([g["h0"][None], g["h"][:-1]]).reshape(-1, bundle.hidden)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(xs), n)
    x = xs[idx].copy()
    x[:, F:] = rng.uniform(0.0, 1.0, (n, F))
    return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(hs[idx], np.float32)


def test_export_writes_every_format_within_tolerance(jump_export):
    out, report = jump_export
    bundle = load_bundle(out)
    assert bundle.jump and bundle.input_width == 2 * bundle.n_features
    assert report["ok"], report["rows"]
    assert report["calibration"] is None or report["calibration"]["source"] == "representative.npz"
    for fmt in export_formats():
        assert GRAPHS[fmt] in bundle.manifest["artifacts"], fmt
    if "tflm" in export_formats():
        header = (out / "model_data.h").read_text()
        assert "#define EDGERNN_JUMP_INPUTS 1" in header
        for name, value in zip(("Threshold", "Memory", "Floor"), JUMP):
            got = float(re.search(rf"kEdgernnJump{name} = ([^f;]+)f;", header).group(1))
            assert np.float32(got) == value, name


@pytest.mark.parametrize("name", ["numpy", *GRAPHS])
def test_backend_matches_numpy_with_j_varied(jump_export, name):
    bundle = load_bundle(jump_export[0])
    backend = _backend(name, bundle)
    assert backend.jump is True
    assert (backend.features, backend.hidden, backend.components) == (bundle.n_features, bundle.hidden,
                                                                        bundle.components)
    tol_step, tol_roll = tolerances(bundle, GRAPHS.get(name))
    oracle = NumpyGRU(bundle.weights)
    for B in (1, 5, 300):  # 300: above LiteRT's largest bucket (chunks), 5: padded
        x, h = _inputs(bundle, B, seed=B)
        pred, h_next = backend.step(x, h)
        want_pred, want_h = oracle.step(x, h)
        assert pred.shape == want_pred.shape and h_next.shape == want_h.shape
        err = max(np.abs(pred - want_pred).max(), np.abs(h_next - want_h).max())
        assert err <= tol_step, f"B={B}: one-step error {err:.3g} > {tol_step}"
    err = measure(backend, bundle.golden())  # golden x is [T, B, 2F], j uniform in [0, 1]
    assert err["step"] <= tol_step and err["rollout"] <= tol_roll, err


@pytest.mark.parametrize("name", ["numpy", *GRAPHS])
def test_j_changes_every_graph(jump_export, name):
    """Same c and h, j at 0 and at 1: the outputs move as the oracle's do (a graph that ignored j
    would not move at all)."""
    bundle = load_bundle(jump_export[0])
    backend = _backend(name, bundle)
    F = bundle.n_features
    x, h = _inputs(bundle, 16, seed=3)
    x0, x1 = x.copy(), x.copy()
    x0[:, F:], x1[:, F:] = 0.0, 1.0
    tol_step, _ = tolerances(bundle, GRAPHS.get(name))
    oracle = NumpyGRU(bundle.weights)
    want = np.abs(oracle.step(x1, h)[1] - oracle.step(x0, h)[1]).max()
    assert want > 4 * tol_step, "the test's W_j are too small to tell"
    moved = np.abs(backend.step(x1, h)[1] - backend.step(x0, h)[1]).max()  # h_next [16, H]
    assert moved > want - 2 * tol_step, f"{name}: j moved h_next by {moved:.3g}, the oracle by {want:.3g}"


def test_run_ops_and_int8_plan_take_j(jump_export):
    """cell_graph.run_ops takes x [B, 2F] (split) or j apart, as NumpyGRU; the int8 plan pins j to
    [0, 1]."""
    from edgernn.export import quantize
    from edgernn.export.cell_graph import JUMP_INPUTS, cell_ops, graph_inputs, run_ops

    bundle = load_bundle(jump_export[0])
    F = bundle.n_features
    ops, _, _ = cell_ops(bundle.weights)
    assert graph_inputs(ops) == JUMP_INPUTS
    x, h = _inputs(bundle, 32, seed=4)
    joined, apart = run_ops(ops, x, h), run_ops(ops, x[:, :F], h, x[:, F:])
    want_pred, want_h = NumpyGRU(bundle.weights).step(x, h)
    for t in (joined, apart):
        np.testing.assert_allclose(t["pred"], want_pred, atol=1e-5)
        np.testing.assert_allclose(t["h_next"], want_h, atol=1e-5)
    plan = quantize.tflite_plan(bundle.weights, x, h, bits=8, x_clip=bundle.input_clip)
    scale, zp = plan.act["j"]
    assert np.isclose((-128 - zp) * scale, 0.0, atol=1e-9) and np.isclose((127 - zp) * scale, 1.0)


def test_persistence_reads_c_only(jump_export):
    bundle = load_bundle(jump_export[0])
    base = Persistence.from_bundle(bundle)
    assert base.jump is False
    x, _ = _inputs(bundle, 8, seed=5)
    h = np.zeros((8, base.hidden), np.float32)
    full, c_only = base.step(x, h), base.step(x[:, : bundle.n_features].copy(), h)
    for a, b in zip(full, c_only):
        np.testing.assert_array_equal(a, b)


def test_jump_artifacts_refused_for_a_plain_bundle(jump_export, tmp_path):
    """The jump model's graphs copied into a plain bundle (re-signed): refused on load, naming the
    file; a plain graph in the jump bundle likewise (base.check_shapes)."""
    out = jump_export[0]
    plain = tmp_path / "plain"
    shutil.copytree(UNIVARIATE, plain)
    for name in ("onnx", "onnx-int8", "tflite", "tflite-int8"):
        if name not in export_formats():
            continue
        artifact = GRAPHS[name]
        shutil.copyfile(out / artifact, plain / artifact)
        register_artifact(plain, artifact)
        with pytest.raises(ValueError, match="with jump inputs") as info:
            create_backend(name, load_bundle(plain))
        assert str(plain / artifact) in str(info.value)
    if "tflm" in export_formats():
        from edgernn.export.tflm_export import TflmGRU

        micro = TflmGRU((out / "model.int8.tflite").read_bytes())
        with pytest.raises(ValueError, match="with jump inputs"):
            check_shapes(micro, load_bundle(plain), plain / "model_data.cc")
        plain_micro = TflmGRU((UNIVARIATE / "model.int8.tflite").read_bytes())
        assert plain_micro.jump is False
        with pytest.raises(ValueError, match="without jump inputs"):
            check_shapes(plain_micro, load_bundle(out), out / "model_data.cc")
    if "onnx" in export_formats():  # and the other way: a plain graph for the jump bundle
        from edgernn.backends.onnx_gru import OnnxGRU

        with pytest.raises(ValueError, match="without jump inputs"):
            check_shapes(OnnxGRU(UNIVARIATE / "model.onnx"), load_bundle(out), UNIVARIATE / "model.onnx")


def test_model_data_of_a_jump_model_compiles(jump_export, tmp_path):
    if "tflm" not in export_formats():
        pytest.skip("no TFLite Micro export here (tflite-micro not installed)")
    cxx = shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    for name in ("model_data.cc", "model_data.h"):
        shutil.copy(jump_export[0] / name, tmp_path / name)
    proc = subprocess.run([cxx, "-std=c++17", "-Wall", "-Werror", "-c", "model_data.cc", "-o", "model_data.o"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


HARNESS = """#include <cmath>
#include <cstdio>
constexpr int kEdgernnFeatures = 2;
{constants}
constexpr int kF = 2;
{block}
int main() {{
  const float sd[kF] = {{0.5f, 2.0f}};
  float raw[kF], j[kF];
  while (std::scanf("%f %f", &raw[0], &raw[1]) == 2) {{
    JumpInputs(raw, sd, j);
    std::printf("%.9g %.9g\\n", static_cast<double>(j[0]), static_cast<double>(j[1]));
  }}
  return 0;
}}
"""


def test_firmware_example_j_is_jump_rates_and_jump_input(tmp_path):
    """The firmware example's JumpInputs (its code between the edgernn-jump-inputs markers, with the
    constants model_data.h defines for in.jump) on two features over 600 readings (past memory's
    200: both the running and the EW mean) against base.jump_rates + base.jump_input."""
    cxx = shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    from edgernn.export.tflm_export import TEMPLATES, _jump_lines

    text = (TEMPLATES / "firmware_example.cc").read_text()
    block = text[text.index("// edgernn-jump-inputs-begin") : text.index("// edgernn-jump-inputs-end")]

    class _Jumpy:  # what _jump_lines reads of a bundle
        jump, weights = True, {"in.jump": np.array([0.8, 200.0, 1e-3], np.float32)}
        n_features, norm_mode, norm_mean, norm_std = 2, "fixed", np.zeros(2), np.array([0.5, 2.0])

    (tmp_path / "jump.cc").write_text(HARNESS.format(constants=_jump_lines(_Jumpy), block=block))
    proc = subprocess.run([cxx, "-std=c++17", "-Wall", "-Werror", "jump.cc", "-o", "jump"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rng = np.random.default_rng(2)
    T = 600
    steps = rng.standard_normal((T, 2)) * np.array([0.2, 0.8]) + (rng.random((T, 2)) < 0.05) * 5.0
    raw = np.cumsum(steps, axis=0).astype(np.float32)  # [T, 2] random walks with jumps
    lines = "\n".join(f"{a:.9g} {b:.9g}" for a, b in raw) + "\n"
    run = subprocess.run([str(tmp_path / "jump")], input=lines, capture_output=True, text=True, check=True)
    got = np.array([[float(v) for v in line.split()] for line in run.stdout.splitlines()])  # [T, 2]
    thr, mem, floor = (float(v) for v in _Jumpy.weights["in.jump"])
    std = np.broadcast_to(np.array([0.5, 2.0], np.float32).astype(np.float64), raw.shape)
    want = jump_input(jump_rates(raw.astype(np.float64), std, thr, mem), floor).astype(np.float32)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert 0.0 <= got.min() and got.max() <= 1.0 and np.ptp(got[:, 0]) > 0.1  # j in [0, 1], and it moves


def test_firmware_jump_std_is_floored_as_the_detector_floors_it():
    """A fixed-normalised jump model whose std is under 0.1 % of its mean (a pressure in Pa): the
    firmware's jump test uses the detector's floored std (kernel._std; training's too), not the raw one."""
    from edgernn.export.tflm_export import _jump_lines
    from edgernn.train.pipeline import normalise
    from edgernn.train.data import Series

    class _Fixed:
        jump, weights = True, {"in.jump": np.array([1.0, 200.0, 1e-3], np.float32)}
        n_features, norm_mode, norm_mean, norm_std = 2, "fixed", np.array([101325.0, 20.0]), np.array([50.0, 2.0])

    line = next(v for v in _jump_lines(_Fixed).splitlines() if v.startswith("constexpr float kEdgernnJumpStd"))
    got = [float(v.rstrip("f")) for v in line.split("{")[1].split("}")[0].split(",")]
    assert got == pytest.approx([101.325, 2.0], rel=1e-6)
    # training's j tests against the same floored std: a change of 80 Pa (> 50, < 101.3) is no jump
    x = np.stack([101325.0 + 80.0 * (np.arange(400) % 2), 20.0 + 5.0 * (np.arange(400) % 2)], axis=1)
    kinds = {"p": {"kind": "continuous"}, "t": {"kind": "continuous"}}
    normed = normalise([Series("s", x, 300)], "fixed", 64, 0.0, kinds, ("p", "t"), (1.0, 200.0, 1e-3))[0][0]
    assert normed[:, 2].max() == 0.0 and normed[-1, 3] > 0.99  # (t: a jump at every reading but the first)
