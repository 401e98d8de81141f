"""A missing runtime raises BackendUnavailable naming the pip extra (runtimes hidden via sys.modules)."""

from __future__ import annotations

import sys

import pytest

from edgernn.backends import BackendUnavailable
from edgernn.backends.onnx_gru import OnnxGRU
from edgernn.backends.tflite_gru import TfliteGRU


def test_onnx_runtime_missing_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(BackendUnavailable, match=r"pip install 'edgernn\[onnx\]'"):
        OnnxGRU(tmp_path / "model.onnx")


def test_tflite_runtime_missing_names_the_extra(monkeypatch, tmp_path):
    for mod in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(BackendUnavailable, match=r"pip install 'edgernn\[tflite\]'"):
        TfliteGRU(tmp_path / "model.tflite")


def test_importing_backends_and_export_loads_no_runtime():
    import subprocess

    code = ("import sys, edgernn.backends, edgernn.backends.onnx_gru, edgernn.backends.tflite_gru, edgernn.export, "
            "edgernn.commands.export, edgernn.export.parity, edgernn.export.exporter, edgernn.export.tflite_export; "
            "bad = [m for m in ('onnxruntime', 'onnx', 'ai_edge_litert', 'tflite_runtime', 'tflite_micro') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"imported at import time: {out}"
