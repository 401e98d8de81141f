"""Exporters: bundle -> ONNX / TFLite / TFLite Micro artifacts, with parity checks.

    from edgernn.export import export_bundle
    report = export_bundle("firmware_models/univariate")   # every format; see exporter.py

Modules: cell_graph (the cell as primitive ops), onnx_export, tflite_export, quantize
(calibration + TFLite int8 plan), tflm_export (C array, firmware example), parity (numbers for
model cards, micro-benchmarks), exporter (export_bundle), cli (``edgernn export``).
Nothing heavy is imported until a function runs.
"""

__all__ = ["export_bundle", "FORMATS"]


def __getattr__(name):
    if name in ("export_bundle", "FORMATS"):
        from . import exporter

        return getattr(exporter, name)
    raise AttributeError(name)
