"""``edgernn export`` on a bundle whose golden.npz or representative.npz is bad: exit 2 and one line
naming the file, before any artifact is written (were a KeyError traceback, a message about pickled
data naming no file, and onnxruntime's AssertionError 'scale issue')."""

from __future__ import annotations

import numpy as np
import pytest

from edgernn.bundle import register_artifact
from edgernn.cli import main


@pytest.fixture
def bdir(tiny_bundle):
    return tiny_bundle(F=2, H=8, seed=3, fresh=True)


def _export_refused(bdir, capsys, formats, *needles) -> str:
    before = set(p.name for p in bdir.iterdir())
    rc = main(["export", str(bdir), "--formats", formats, "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    assert set(p.name for p in bdir.iterdir()) == before  # nothing written
    return err


def _replace(bdir, name, arrays=None, raw=None):
    if raw is not None:
        (bdir / name).write_bytes(raw)
    else:
        np.savez(bdir / name, **arrays)
    register_artifact(bdir, name)  # a valid sha256: only the content check can catch it


def test_empty_golden(bdir, capsys):
    _replace(bdir, "golden.npz", {})
    _export_refused(bdir, capsys, "onnx", "golden.npz", "missing array(s) x, h0, pred, h")


def test_plain_text_golden(bdir, capsys):
    _replace(bdir, "golden.npz", raw=b"this is not an npz\n")
    err = _export_refused(bdir, capsys, "onnx", "golden.npz", "not an .npz")
    assert "pickle" not in err


def _representative(bdir, x):
    _replace(bdir, "representative.npz", {"x": x})


def test_representative_with_nan(bdir, capsys):
    x = np.random.default_rng(0).standard_normal((64, 2, 2)).astype(np.float32)
    x[10, 1, 0] = np.nan
    _representative(bdir, x)
    _export_refused(bdir, capsys, "onnx,onnx-int8", "representative.npz", "NaN")


def test_representative_beyond_float32(bdir, capsys):
    x = np.random.default_rng(0).standard_normal((64, 2, 2))
    x[5, 0, 1] = 1e300
    _representative(bdir, x)
    _export_refused(bdir, capsys, "tflite-int8", "representative.npz", "beyond float32")


@pytest.mark.parametrize("arrays, raw, needle", [
    ({"y": np.zeros((4, 1, 2))}, None, "missing array(s) x"),
    ({"x": np.zeros((4, 2))}, None, "x must be float32[T, B, 2]"),
    ({"x": np.zeros((0, 1, 2))}, None, "x must be float32[T, B, 2]"),
    ({"x": np.array(["a", "b"])}, None, "x: expected numbers"),
    (None, b"1,2,3\n", "not an .npz"),
])
def test_bad_representative(bdir, capsys, arrays, raw, needle):
    _replace(bdir, "representative.npz", arrays, raw)
    _export_refused(bdir, capsys, "onnx-int8", "representative.npz", needle)
