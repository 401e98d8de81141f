"""One figure per evaluated file: values, likelihood (as -log10(1 - L)), alerts, labelled windows.

matplotlib is imported when a plot is drawn, never at import time (pip install edgernn[plot]).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "plot"


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive index runs where mask is True."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1))


def plot_file(path: str | Path, title: str, ts: np.ndarray, values: np.ndarray, features,
              likelihood: np.ndarray, threshold: float, alert: np.ndarray, raised: np.ndarray,
              labelled: np.ndarray, train_end: int | None = None, label_name: str = "labelled",
              split_name: str = "train | test") -> Path:
    """Write a PNG. values float[n, F]; alert/raised/labelled bool[n]; threshold on likelihood."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    t = np.asarray(ts, dtype="datetime64[s]") if np.nanmax(ts) > 1e8 else np.asarray(ts)
    values = np.asarray(values, dtype=np.float64).reshape(len(ts), -1)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(14, 6), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 2]})
    if values.shape[1] == 1:
        ax1.plot(t, values[:, 0], lw=0.7, color="tab:blue", label=features[0])
    else:  # several sensors: standardise each so they share an axis
        mu, sd = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
        for j, name in enumerate(features):
            ax1.plot(t, (values[:, j] - mu[j]) / (sd[j] or 1.0), lw=0.6, label=name)
        ax1.set_ylabel("standardised")
    surprise = -np.log10(np.maximum(1.0 - np.nan_to_num(likelihood, nan=0.0), 1e-300))
    ax2.plot(t, surprise, lw=0.7, color="tab:gray", label="-log10(1 - likelihood)")
    ax2.axhline(-np.log10(max(1.0 - threshold, 1e-300)), color="tab:red", ls="--", lw=0.8,
                label=f"threshold {threshold:.15g}")
    ax2.set_yscale("symlog", linthresh=1.0)
    for ax in (ax1, ax2):
        for k, (lo, hi) in enumerate(_spans(labelled)):
            ax.axvspan(t[lo], t[hi], color="tab:green", alpha=0.15, label=label_name if k == 0 and ax is ax1 else None)
        for k, (lo, hi) in enumerate(_spans(alert)):
            ax.axvspan(t[lo], t[hi], color="tab:red", alpha=0.12, label="alert active" if k == 0 and ax is ax1 else None)
        if train_end is not None and 0 < train_end < len(t):
            ax.axvline(t[train_end], color="k", lw=0.8, ls=":", label=split_name if ax is ax1 else None)
    r = np.flatnonzero(raised)
    if r.size:
        ax2.scatter(t[r], surprise[r], marker="v", color="tab:red", s=30, zorder=3, label="alert raised")
    ax1.set_title(title)
    ax1.legend(loc="upper left", fontsize=7, ncol=4)
    ax2.legend(loc="upper left", fontsize=7, ncol=4)
    if np.issubdtype(t.dtype, np.datetime64):
        ax2.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax2.xaxis.get_major_locator()))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
