"""The shipped model bundles, found by name: ``--model univariate``, ``model: skab-pump``.

A wheel carries them as ``edgernn/models/<name>/`` (setup.py copies ``firmware_models/<name>/``
here at build time); a source checkout finds them in ``<repo>/firmware_models/<name>/``.
A path always works too (absolute, or relative to the working directory or the given bases).

>>> find_model("univariate").name
'univariate'
"""

from __future__ import annotations

import os
from pathlib import Path

from ..bundle import BundleError

PACKAGED = Path(__file__).resolve().parent  # wheel install: edgernn/models/<name>/
CHECKOUT = PACKAGED.parents[1] / "firmware_models"  # source checkout: <repo>/firmware_models/<name>/


class ModelNotFound(BundleError):
    """No bundle directory at that path and no shipped model of that name."""


def shipped_models() -> dict[str, Path]:
    """Name -> bundle directory of every shipped model (the packaged copy wins over a checkout's)."""
    found: dict[str, Path] = {}
    for root in (CHECKOUT, PACKAGED):
        if root.is_dir():
            found.update({d.name: d for d in sorted(root.iterdir()) if (d / "manifest.yaml").is_file()})
    return dict(sorted(found.items()))


def find_model(name_or_path: str | os.PathLike, *bases: Path) -> Path:
    """The bundle directory for a path or a shipped model's name; ModelNotFound names the choices.

    A relative path is tried against the working directory, then each base (e.g. the config
    file's folder). ``firmware_models/<name>`` (the paths the docs print) falls back to the
    shipped model ``<name>`` where the checkout is not at hand (a wheel install).
    """
    raw = str(name_or_path)
    p = Path(os.path.expanduser(raw))
    candidates = [p] if p.is_absolute() else [Path.cwd() / p, *(b / p for b in bases)]
    for c in candidates:
        if _is(c, Path.is_dir):
            return c.resolve()
    shipped = shipped_models()
    if not p.is_absolute() and (len(p.parts) == 1 or p.parts[:-1] == ("firmware_models",)):
        if p.name in shipped:
            return shipped[p.name]
    names = ", ".join(shipped) or "none installed"
    a_file = next((c for c in candidates if _is(c, Path.exists)), None)  # e.g. the bundle's manifest.yaml
    if a_file is not None:
        bundle = _is(a_file.parent / "manifest.yaml", Path.is_file)  # (/dev/null: /dev is no bundle)
        raise ModelNotFound(f"{raw}: a file, not a model bundle directory"
                            + (f" (give its directory: {a_file.parent})" if bundle and a_file.parent != Path.cwd() else ""))
    raise ModelNotFound(f"model bundle directory not found: {raw} (shipped models, usable by name: {names})")


def _is(path: Path, test) -> bool:
    """``test(path)`` (Path.is_dir, ...), False where the path cannot be looked at (a name too long
    for the file system: ENAMETOOLONG is not one of the errors pathlib takes as "no")."""
    try:
        return test(path)
    except OSError:
        return False


def example_config() -> str:
    """The example daemon config as a user can type it: the checkout's deploy/, else the wheel's copy."""
    for p in (Path("deploy/edgernn.example.yaml"), CHECKOUT.parent / "deploy" / "edgernn.example.yaml",
              PACKAGED / "edgernn.example.yaml"):
        if p.is_file():
            return str(p)
    return "deploy/edgernn.example.yaml"
