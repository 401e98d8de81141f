"""One BLAS thread per process: the hot path is many small GEMMs, and OpenBLAS threads fighting
over a Pi's (or a shared machine's) cores cost 10-100x per reading at large batches (measured: a
numpy GRU step at batch 256 took ~9 ms instead of ~0.5 ms with default threads on 2 busy cores).

``pin_blas()`` is called by the CLI entry (``edgernn.cli.main``: every command, ``serve`` included,
and the systemd unit's ``edgernn serve``) before numpy is imported, so the environment variables
decide OpenBLAS's pool size; and again by bench, replay and eval when they start: when numpy was
already loaded -- a library caller, a test -- threadpoolctl (the ``blas`` extra: pip install
edgernn[blas]) shrinks the live pools. No hard dependency: without
threadpoolctl only the environment is set. This module imports nothing heavy.
"""

from __future__ import annotations

import os
import sys

_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def pin_blas() -> str:
    """Ask for one BLAS thread; return how it was done (for bench's machine info).

    A thread count the user set in the environment is respected (set it to 1 or unset it)."""
    for var in _VARS:
        os.environ.setdefault(var, "1")
    wanted = int(os.environ["OPENBLAS_NUM_THREADS"]) if os.environ["OPENBLAS_NUM_THREADS"].isdigit() else 1
    if "numpy" not in sys.modules:
        return "environment (set before numpy was imported)"
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return "environment only (numpy already loaded; pip install 'edgernn[blas]' to pin its live pool)"
    threadpool_limits(limits=wanted, user_api="blas")  # stays in force (not used as a context manager)
    return f"threadpoolctl ({wanted} thread{'s' if wanted != 1 else ''})"


def blas_threads() -> dict:
    """Live BLAS pools: {library: threads} (threadpoolctl), or {} when it is not installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {}
    return {f"{p.get('internal_api')} ({p.get('threading_layer', '?')})": p.get("num_threads")
            for p in threadpool_info() if p.get("user_api") == "blas"}
