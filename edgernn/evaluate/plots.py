"""One figure per evaluated file: values, surprise (-log10 of the tail probability), alerts, labelled
windows, wall-clock time on the x axis.

matplotlib is imported when a plot is drawn, never at import time (pip install edgernn[plot]).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..readings import describe_threshold, surprise_from_likelihood


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "plot"


def plot_file(path: str | Path, title: str, ts: np.ndarray, values: np.ndarray, features,
              likelihood: np.ndarray, threshold: float, alert: np.ndarray, raised: np.ndarray,
              labelled: np.ndarray, train_end: int | None = None, label_name: str = "labelled",
              split_name: str = "train | test") -> Path:
    """Write a PNG. ts float64[n] epoch s; values float[n, F]; alert/raised/labelled bool[n];
    threshold on likelihood (drawn as surprise). NaN/Inf anywhere leave gaps, never an error."""
    from ..plot import drawable, format_time_axis, pyplot, shade, time_axis

    plt = pyplot()
    t = time_axis(ts)
    values = drawable(values).reshape(len(t), -1)  # float64[n, F]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(14, 6), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    if values.shape[1] == 1:
        ax1.plot(t, values[:, 0], lw=0.7, color="tab:blue", label=features[0])
    else:  # several sensors: standardise each so they share an axis
        finite = np.where(np.isfinite(values), values, np.nan)
        with np.errstate(all="ignore"):
            mu, sd = np.nanmean(finite, axis=0), np.nanstd(finite, axis=0)  # [F]
        for j, name in enumerate(features):
            ax1.plot(t, (finite[:, j] - mu[j]) / (sd[j] if sd[j] > 0 else 1.0), lw=0.6, label=name)
        ax1.set_ylabel("standardised")
    surprise = surprise_from_likelihood(likelihood)  # float64[n], NaN where not scored
    ax2.plot(t, surprise, lw=0.7, color="tab:gray", label="surprise = -log10(tail probability)")
    ax2.axhline(surprise_from_likelihood(threshold), color="tab:red", ls="--", lw=0.8,
                label=f"threshold: {describe_threshold(threshold)}")
    ax2.set_yscale("symlog", linthresh=1.0)
    for ax in (ax1, ax2):
        shade(ax, t, labelled, color="tab:green", alpha=0.15, label=label_name if ax is ax1 else None)
        shade(ax, t, alert, alpha=0.12, label="alert active" if ax is ax1 else None)
        if train_end is not None and 0 < train_end < len(t):
            ax.axvline(t[train_end], color="k", lw=0.8, ls=":", label=split_name if ax is ax1 else None)
    r = np.flatnonzero(raised)
    if r.size:
        ax2.scatter(t[r], surprise[r], marker="v", color="tab:red", s=30, zorder=3, label="alert raised")
    ax1.set_title(title)
    ax1.legend(loc="upper left", fontsize=7, ncol=4)
    ax2.legend(loc="upper left", fontsize=7, ncol=4)
    format_time_axis(ax2, t)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
