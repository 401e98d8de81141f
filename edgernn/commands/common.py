"""Arguments and loading shared by the commands that run a detector."""

from __future__ import annotations

import sys


def fail(command: str, message) -> int:
    """One clear line on stderr, exit code 2."""
    print(f"edgernn {command}: {message}", file=sys.stderr)
    return 2


def add_model_arguments(p, default_model: str | None = "univariate") -> None:
    from ..backends import BACKEND_NAMES

    p.add_argument("--model", default=default_model, help="model bundle directory, or a shipped model's name (default: %(default)s)")
    p.add_argument("--backend", default="numpy", choices=BACKEND_NAMES, help="inference backend (default: numpy)")
    p.add_argument("--threshold", type=float, help="likelihood threshold (default: the model's calibrated one)")
    p.add_argument("--warmup", type=int, help="readings per stream before scores count (default: the model's)")


def load_detector(args, command: str = "replay", **settings):
    """Bundle + backend + Detector from the common arguments; exits with one line on failure."""
    from ..backends import BackendUnavailable, create_backend
    from ..bundle import BundleError, load_bundle
    from ..detector import Detector, DetectorSettings

    try:
        bundle = load_bundle(resolve_model(args.model))
        backend = create_backend(args.backend, bundle)
        # a setting out of range (e.g. --seasonal-trust 2) is one line too: the detector checks them
        return Detector(bundle, backend, DetectorSettings(threshold=args.threshold, warmup=args.warmup, **settings))
    except (BundleError, BackendUnavailable, ValueError) as exc:
        raise SystemExit(fail(command, exc)) from None


def resolve_model(path: str):
    """A bundle directory from a path or a shipped model's name (ModelNotFound lists the names)."""
    from ..models import find_model

    return find_model(path)
