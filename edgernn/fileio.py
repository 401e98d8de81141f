"""Small file helpers shared by bundles, snapshots, reports and the commands' output checks."""

from __future__ import annotations

import io
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, fsync, rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write a pickle-free npz atomically (plain numeric / fixed-width string arrays only)."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in sorted(arrays.items())})
    atomic_write(path, buf.getvalue())


def target_problem(path: str | os.PathLike, *, replaced: bool = False, make_dirs: bool = False) -> str | None:
    """Why a file could not be written at ``path`` (a few words, the caller names the path and the
    option), or None: checked before a long run, so that it does not end in a traceback.

    "is a directory"; with ``replaced`` (a new file is renamed over it: a bundle's artifact, a
    snapshot) "is not a regular file" (a FIFO: opening it for writing waits for a reader for ever;
    a device), else a FIFO or device is taken as it is (/dev/null, /dev/stdout, a shell's process
    substitution); its directory missing or not one ("/x does not exist", "/x is not a directory";
    with ``make_dirs`` missing directories are made, so the nearest existing one must be a
    writable directory); "not writable" (a file written in place); "cannot create files in /x".
    A full disk is only found when written."""
    p = Path(path)
    try:
        return _target_problem(p, replaced, make_dirs)
    except OSError as exc:  # a name too long for the file system, a directory we may not look into
        return f"cannot check: {exc.strerror or exc}"


def _target_problem(p: Path, replaced: bool, make_dirs: bool) -> str | None:
    if p.is_dir():
        return "is a directory"
    if p.exists() and not p.is_file():
        return "is not a regular file" if replaced else None
    parent = p.parent
    if make_dirs:
        parent = next((q for q in p.parents if q.exists()), parent)
    if not parent.is_dir():
        return f"{parent} " + ("is not a directory" if parent.exists() else "does not exist")
    if p.exists() and not replaced and not os.access(p, os.W_OK):
        return "not writable"
    if (replaced or not p.exists()) and not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create files in {parent}"
    return None


@contextmanager
def signals_deferred():
    """Hold back SIGINT (Ctrl-C) and SIGTERM for the block and raise the first one after it, so that
    an interrupt cannot stop a set of renames halfway (train's bundle beside --out, export's artifacts).
    (Outside the main thread, where handlers cannot be set: no deferral.)"""
    import signal

    got: list[int] = []
    saved = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            saved[sig] = signal.signal(sig, lambda num, _frame: got.append(num))
    except ValueError:  # not the main thread
        pass
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        if got:
            signal.raise_signal(got[0])
