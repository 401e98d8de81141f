"""The firmware example normalises a stream-normalised model's readings as training does: its
StreamNormalise (the code between the edgernn-stream-norm markers, compiled on its own: the TFLite
Micro headers are not here) against train/data.py's stream_normalise, and model_data.h carries the
bundle's warm-up, adapt rate and std floors (a fixed-normalised bundle's header is as it was)."""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from contract_helpers import ROOT, export_formats

from edgernn.bundle import load_bundle, write_manifest
from edgernn.settings import resolve
from edgernn.train.data import stream_normalise

UNIVARIATE = ROOT / "firmware_models" / "univariate"  # normalisation.mode stream
SKAB = ROOT / "firmware_models" / "skab-pump"  # normalisation.mode fixed

HARNESS = """#include <cmath>
#include <cstdio>
{constants}
constexpr int kF = 3;
{block}
int main() {{
  float raw[kF];
  double z[kF], sd[kF];
  while (std::scanf("%f %f %f", &raw[0], &raw[1], &raw[2]) == 3) {{
    const bool warming = StreamNormalise(raw, z, sd);
    std::printf("%d", warming ? 1 : 0);
    for (int i = 0; i < kF; ++i) std::printf(" %.17g %.17g", z[i], sd[i]);
    std::printf("\\n");
  }}
  return 0;
}}
"""


def _stream_bundle(warmup: int, adapt: float | None):
    """What _stream_norm_lines reads of a bundle."""
    norm = {"mode": "stream"} if adapt is None else {"mode": "stream", "adapt": adapt}
    return SimpleNamespace(norm_mode="stream", calibration=SimpleNamespace(warmup=warmup),
                           manifest={"normalisation": norm})


def _series(T: int, warmup: int, seed: int) -> np.ndarray:
    """float32[T, 3] readings in sensor units: 500 + 20 noise with a step of +150 after warm-up;
    -3 + 0.01 noise (a small scale); 7.0 constant (its std floored at 1e-3 |mean|), then 8.0."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    a = 500.0 + 20.0 * rng.standard_normal(T) + 150.0 * (t >= warmup + 40)
    b = -3.0 + 0.01 * rng.standard_normal(T)
    c = np.where(t >= warmup + 80, 8.0, 7.0)
    return np.stack([a, b, c], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """harness(warmup, adapt) -> the path of the compiled harness for those constants."""
    cxx = shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    from edgernn.export.tflm_export import TEMPLATES, _stream_norm_lines

    text = (TEMPLATES / "firmware_example.cc").read_text()
    block = text[text.index("// edgernn-stream-norm-begin") : text.index("// edgernn-stream-norm-end")]
    root = tmp_path_factory.mktemp("streamnorm")

    def build(warmup: int, adapt: float | None) -> str:
        name = f"norm_{warmup}_{adapt}".replace(".", "p")
        src = root / f"{name}.cc"
        src.write_text(HARNESS.format(constants=_stream_norm_lines(_stream_bundle(warmup, adapt)), block=block))
        proc = subprocess.run([cxx, "-std=c++17", "-Wall", "-Wextra", "-Werror", src.name, "-o", name], cwd=root,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return str(root / name)

    return build


@pytest.mark.parametrize(("warmup", "adapt"), [(256, 0.0005), (64, 0.02), (50, 0.0), (40, None)])
def test_stream_normalise_in_c_matches_training(compiled, warmup, adapt):
    """Over 400 readings (warm-up, then EW updates, a step in level): the normalised values, the std
    each was normalised with and the warm-up flag, as stream_normalise's (float64)."""
    raw = _series(400, warmup, seed=warmup)
    lines = "\n".join(" ".join(f"{v:.9g}" for v in row) for row in raw) + "\n"
    run = subprocess.run([compiled(warmup, adapt)], input=lines, capture_output=True, text=True, check=True)
    out = np.array([[float(v) for v in line.split()] for line in run.stdout.splitlines()])  # [T, 1 + 2F]
    assert out.shape == (len(raw), 7)
    got_z, got_sd = out[:, 1::2], out[:, 2::2]  # [T, F] each
    stds = np.empty(raw.shape)
    want_z = stream_normalise(raw.astype(np.float64), warmup, adapt or 0.0, stds=stds)
    np.testing.assert_allclose(got_z, want_z, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got_sd, stds, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(out[:, 0], np.arange(1, len(raw) + 1) <= warmup)
    assert np.abs(want_z[warmup:, 0]).max() > 3.0  # the step shows (the test can tell)
    assert stds[warmup - 1, 2] == pytest.approx(7e-3)  # the constant's std: the relative floor


def test_floors_are_the_detectors_and_by_default_trainings():
    """model_data.h's std floors are the detector's on the bundle: for a bundle that does not set them in
    its detector_defaults, the ones training normalises with (stream_normalise's defaults); for one
    that does, its own."""
    from edgernn.export.tflm_export import _stream_norm_lines

    params = inspect.signature(stream_normalise).parameters
    header = _stream_norm_lines(_stream_bundle(10, 0.001))
    assert _constant(header, "MinStd") == params["min_std"].default
    assert _constant(header, "MinRelStd") == params["min_rel_std"].default
    own = _stream_bundle(10, 0.001)
    own.manifest["detector_defaults"] = {"min_rel_std": 1e-4, "min_std": 1e-5}
    header = _stream_norm_lines(own)
    assert _constant(header, "MinStd") == 1e-5 and _constant(header, "MinRelStd") == 1e-4


@pytest.mark.parametrize("name", ["univariate", "skab-pump"])
def test_shipped_model_data_floors_as_its_detector_does(name):
    """A shipped bundle's model_data.h carries the normalisation and jump lines the exporter would write
    now: a detector default changed without a re-export (write_model_defaults) would show here."""
    from edgernn.export.tflm_export import _jump_lines, _stream_norm_lines

    bundle = load_bundle(ROOT / "firmware_models" / name)
    header = (ROOT / "firmware_models" / name / "model_data.h").read_text()
    for lines in (_stream_norm_lines(bundle), _jump_lines(bundle)):
        assert lines in header, lines
    assert (bundle.norm_mode == "stream") == ("EDGERNN_STREAM_NORM" in header)


def _constant(header: str, name: str) -> float:
    match = re.search(rf"constexpr (?:int|double) kEdgernnNorm{name} = ([^;]+);", header)
    assert match, f"kEdgernnNorm{name} not in model_data.h"
    return float(match.group(1))


def _export_tflm(src, out):
    if "tflm" not in export_formats():
        pytest.skip("no TFLite Micro export here (tflite-micro not installed)")
    from edgernn.export import export_bundle

    shutil.copytree(src, out)
    assert export_bundle(out, ["tflm"])["ok"]
    return (out / "model_data.h").read_text()


def test_model_data_of_a_stream_bundle_defines_its_normalisation(tmp_path):
    """univariate (a copy) with its warm-up and adapt changed: model_data.h carries the new values."""
    manifest = yaml.safe_load((UNIVARIATE / "manifest.yaml").read_text(encoding="utf-8"))
    manifest["calibration"]["warmup"], manifest["normalisation"]["adapt"] = 123, 0.0025
    src = tmp_path / "src"
    shutil.copytree(UNIVARIATE, src)
    write_manifest(src, manifest)
    bundle = load_bundle(src)
    assert bundle.norm_mode == "stream"
    header = _export_tflm(src, tmp_path / "out")
    assert "#define EDGERNN_STREAM_NORM 1" in header
    assert _constant(header, "Warmup") == bundle.calibration.warmup == 123
    assert _constant(header, "Adapt") == bundle.manifest["normalisation"]["adapt"] == 0.0025
    floors = resolve(bundle)  # univariate 2.4.0 floors a stream's std at 1e-4 |mean| (its detector_defaults)
    assert _constant(header, "MinStd") == floors.min_std == 1e-6
    assert _constant(header, "MinRelStd") == floors.min_rel_std == 1e-4


def test_model_data_of_a_fixed_bundle_is_unchanged(tmp_path):
    """skab-pump (fixed normalisation) re-exported: model_data.h is the shipped one (but for the
    measured arena, which depends on the host's TFLite Micro)."""
    assert load_bundle(SKAB).norm_mode == "fixed"
    header = _export_tflm(SKAB, tmp_path / "out")
    assert "STREAM_NORM" not in header and "kEdgernnNormWarmup" not in header

    def arena_masked(text: str) -> str:
        return re.sub(r"kEdgernnArenaBytes = \d+;", "kEdgernnArenaBytes = N;", text)

    assert arena_masked(header) == arena_masked((SKAB / "model_data.h").read_text())
