"""Generate ONNX / TFLite / TFLite Micro artifacts from a model bundle, check each against the
bundle's golden.npz and record it (sha256, size, tolerance) in manifest.yaml.

examples:
  edgernn export firmware_models/univariate
  edgernn export my_model --formats onnx,tflite-int8
  edgernn export my_model --formats tflite-int8 --tflite-activations int16
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..export.exporter import FORMATS

    parser.add_argument("bundle", metavar="DIR", help="model bundle directory (manifest.yaml, weights.npz, golden.npz)")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help=f"comma-separated subset of {','.join(FORMATS)} (default: all)")
    parser.add_argument("--tflite-activations", choices=("int8", "int16"), default="int16",
                        help="activation type of model.int8.tflite (weights are int8 either way; "
                             "int16 is ~5x more accurate, slower at large batches)")
    parser.add_argument("--onnx-int8", choices=("static16", "static", "dynamic"), default="static16",
                        help="onnxruntime quantization of model.int8.onnx (weights int8 in every mode). static16 "
                             "(default): fixed scales, 16-bit activations, rows of a batch independent. static: "
                             "8-bit activations, ~2x faster, far less accurate on long rollouts. dynamic: scales "
                             "per call, so a row's result depends on the other rows of its batch")
    parser.add_argument("--quiet", action="store_true", help="print only the parity table")


def run(args: argparse.Namespace) -> int:
    from ..backends.base import BackendUnavailable
    from ..bundle import BundleError
    from ..export.exporter import ExportError, export_bundle
    from ..export.parity import render_markdown

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    log = None if args.quiet else (lambda msg: print(f"export: {msg}", file=sys.stderr, flush=True))
    try:
        report = export_bundle(args.bundle, formats, tflite_activation_bits=16 if args.tflite_activations == "int16" else 8,
                               onnx_int8=args.onnx_int8, log=log)
    except (BundleError, BackendUnavailable, ExportError, ValueError) as exc:
        print(f"edgernn export: {exc}", file=sys.stderr)
        return 2
    print(render_markdown(report))
    for note in report["notes"]:
        print(f"\n{note}")
    if not report["ok"]:
        print("edgernn export: some artifacts exceed the accepted error (marked NO above)", file=sys.stderr)
        return 1
    return 0
