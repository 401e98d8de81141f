"""Generate ONNX / TFLite / TFLite Micro artifacts from a model bundle, check each against the
bundle's golden.npz and record it (sha256, size, tolerance) in manifest.yaml.

The bundle (weights.npz) stays the one source: every artifact is generated from it and must
reproduce golden.npz (the numpy cell's own rollout) within its tolerance, one step at a time and
over the whole rollout; the table printed at the end shows the errors measured.

formats (onnx-int8 also writes model.onnx; tflm also writes model.int8.tflite):
  onnx          model.onnx: float32 cell for onnxruntime (`--backend onnx`)
  onnx-int8     model.int8.onnx: int8 weights (see --onnx-int8)
  tflite        model.tflite: float32 cell for LiteRT (`--backend tflite`)
  tflite-int8   model.int8.tflite: int8 weights, 16-bit activations by default
  tflm          model_data.cc/.h: TFLite Micro C source + a firmware example
Tolerances: 1e-5 for the float graphs; for int8, twice the error measured here (at least
0.02 one step / 0.05 rollout); an int8 error above 0.25 / 1.0 fails the export. The int8
formats fix their scales on the bundle's representative.npz (held-out inputs), else golden.npz.
Written files are 0644, like the rest of the bundle. A model card written by `edgernn train`
(README.md) is rewritten with the new artifacts and their parity; a hand-made one is left alone.

exit codes: 0 every artifact within tolerance; 1 some exceed it (marked NO); 2 bad bundle, a file it
cannot write (checked first; a full disk when written) or missing runtime (one line).

examples:
  edgernn export firmware_models/univariate
  edgernn export my_model --formats onnx,tflite-int8
  edgernn export my_model --formats tflite-int8 --tflite-activations int16
"""

from __future__ import annotations

import argparse
import sys

from ..logs import first_line
from .common import fail


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
    from ..export.exporter import FORMATS, ExportError, export_bundle
    from ..export.parity import render_markdown

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if not formats:
        return fail("export", f"--formats {args.formats!r}: no format named; choose from {', '.join(FORMATS)}")
    log = None if args.quiet else (lambda msg: print(f"export: {msg}", file=sys.stderr, flush=True))
    try:
        report = export_bundle(args.bundle, formats, tflite_activation_bits=16 if args.tflite_activations == "int16" else 8,
                               onnx_int8=args.onnx_int8, log=log)
    except (BundleError, BackendUnavailable, ExportError, ValueError) as exc:
        print(f"edgernn export: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only file system: found when written
        return fail("export", f"{exc.filename or args.bundle}: cannot write: {exc.strerror or exc}")
    print(render_markdown(report))
    from ..train.card import refresh_card

    try:  # the card is documentation: the artifacts are written and registered either way
        if refresh_card(args.bundle):
            print(f"\nmodel card {args.bundle}/README.md rewritten with the new artifacts")
    except Exception as exc:  # noqa: BLE001 - a hand-made README.md (not UTF-8), an odd manifest block
        print(f"edgernn export: model card {args.bundle}/README.md not rewritten ({type(exc).__name__}: "
              f"{first_line(exc)})", file=sys.stderr)
    for note in report["notes"]:
        print(f"\n{note}")
    if not report["ok"]:
        print("edgernn export: some artifacts exceed the accepted error (marked NO above)", file=sys.stderr)
        return 1
    return 0
