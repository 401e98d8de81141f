"""Command line: ``edgernn <command> ...``. Each command lives in its own module, imported only
when that command runs, and exposes ``add_arguments(parser)`` and ``run(args) -> int``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__
from .threads import pin_blas

# command -> (module, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("edgernn.commands.demo", "run a self-contained demo (no broker or config needed)"),
    "serve": ("edgernn.commands.serve", "run the MQTT daemon: edgernn serve -c CONFIG.yaml"),
    "check-config": ("edgernn.commands.check_config", "validate a daemon config file and exit"),
    "decommission": ("edgernn.commands.decommission",
                     "remove a node's Home Assistant entities and retained state from the broker"),
    "replay": ("edgernn.commands.replay", "score a CSV recording through the detector, write alerts and a plot"),
    "eval": ("edgernn.commands.eval", "measure detection quality on labelled recordings (NAB, SKAB, your own)"),
    "train": ("edgernn.commands.train", "train a model bundle from CSVs of normal data (pip install 'edgernn[train]')"),
    "export": ("edgernn.commands.export", "generate ONNX / TFLite / TFLite Micro artifacts from a bundle"),
    "bench": ("edgernn.commands.bench", "measure microseconds per reading of the whole detector hot path"),
    "inspect": ("edgernn.commands.inspect", "show a model bundle: features, calibration, artifacts, provenance"),
}

EPILOG = """\
examples:
  edgernn demo                                            see it work, nothing to set up
  edgernn replay edgernn/data/demo_sensor.csv --model firmware_models/univariate --plot out.png
  edgernn train normal.csv --out my_model --features temp,pressure
  edgernn bench --model firmware_models/univariate --batch 1,64
  edgernn serve -c deploy/edgernn.example.yaml

Every command has its own --help.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgernn",
        description="Stateful single-step GRU anomaly detection for sensor streams at the edge.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edgernn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    pin_blas()  # one BLAS thread (see threads.py): must precede numpy's import
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        args = parser.parse_args(argv)  # prints help / version / "invalid choice" and exits
        parser.print_help()
        return 2
    name = argv[0]
    module_name, help_text = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        print(f"edgernn {name}: not available: {exc}", file=sys.stderr)
        return 2
    cmd = argparse.ArgumentParser(
        prog=f"edgernn {name}",
        description=(module.__doc__ or help_text).strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(cmd)
    args = cmd.parse_args(argv[1:])
    from .logs import setup_logging

    setup_logging("warning")  # one setup for every command; serve raises it to its config's log.level
    out = _WatchedStdout(sys.stdout)
    if sys.stdout is not None:  # (None: started with stdout closed, print() writes nothing)
        sys.stdout = out
    try:
        code = int(module.run(args) or 0)
        out.flush()  # a write error of the last buffered output is raised here, not at exit
        return code
    except KeyboardInterrupt:
        print(f"edgernn {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `edgernn ... | head`: the reader is gone, nothing more to say
        silence_stdout(out.stream)
        return 0
    except OSError as exc:
        if not out.failed:
            raise
        silence_stdout(out.stream)  # (`> /dev/full`: a traceback, exit 1)
        print(f"edgernn {name}: cannot write to standard output: {exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        if sys.stdout is out:
            sys.stdout = out.stream


class _WatchedStdout:
    """sys.stdout, noting whether a write to it failed (so that a full disk or a closed pipe behind
    stdout is told apart from any other OSError of a command): write, writelines, flush, and the same
    of its ``buffer`` (bytes)."""

    def __init__(self, stream, owner=None):
        self.stream, self.failed, self._owner = stream, False, owner  # owner: the text stream's watch
        self._buffer = None  # its binary buffer's watch, made when first asked for

    def _watched(self, method, *args):
        """``method(*args)`` of the stream; an OSError marks this watch (and its owner's) failed."""
        try:
            return method(*args)
        except OSError:
            self.failed = True
            if self._owner is not None:
                self._owner.failed = True
            raise

    def write(self, text):
        return self._watched(self.stream.write, text)

    def writelines(self, lines):
        return self._watched(self.stream.writelines, lines)

    def flush(self):
        if self.stream is not None:
            self._watched(self.stream.flush)

    @property
    def buffer(self):
        """The stream's binary buffer, watched the same way (AttributeError when it has none)."""
        if self._buffer is None:
            self._buffer = _WatchedStdout(self.stream.buffer, owner=self)
        return self._buffer

    def __getattr__(self, name):
        return getattr(self.stream, name)


def silence_stdout(stream) -> None:
    """Point stdout's file (``stream``) at /dev/null, so that the interpreter's flush at exit does not
    fail again after a full disk or a closed pipe."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, stream.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):
        pass
