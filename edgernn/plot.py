"""Plots a person would rather look at than read. matplotlib is imported only here, lazily."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _shade(ax, t, active, color="tab:red", alpha=0.15, label=None):
    """Shade the spans where ``active`` is true."""
    edges = np.flatnonzero(np.diff(np.r_[0, active.astype(np.int8), 0]))
    for k, (a, b) in enumerate(zip(edges[::2], edges[1::2])):
        ax.axvspan(t[a], t[min(b, len(t) - 1)], color=color, alpha=alpha, lw=0, label=label if k == 0 else None)


def plot_replay(path: Path, rec, out, title: str = "", max_streams: int = 4, labels=None) -> None:
    """Per stream (up to ``max_streams``): each feature with the expected +-3 sigma band, then the
    likelihood with the threshold; alert spans shaded red, raised events marked, labelled
    windows (``labels``: list of (stream, start_ts, end_ts)) shaded grey."""
    plt = _pyplot()
    F = rec.x.shape[1]
    streams = list(dict.fromkeys(rec.streams))[:max_streams]
    n_rows = len(streams) * (F + 1)
    fig, axes = plt.subplots(n_rows, 1, figsize=(12, 1.8 * n_rows + 1), sharex=False, squeeze=False)
    axes = axes[:, 0]
    all_streams = np.array(rec.streams)
    for si, sid in enumerate(streams):
        m = all_streams == sid
        t = (rec.ts[m] - rec.ts[m][0]) / 3600.0
        alert = out.alert[m]
        raised = np.flatnonzero(out.event[m] == 1)
        for f in range(F):
            ax = axes[si * (F + 1) + f]
            exp, sig = out.expected[m, f], out.sigma[m, f]
            ax.fill_between(t, exp - 3 * sig, exp + 3 * sig, color="tab:blue", alpha=0.2, lw=0, label="expected ±3σ")
            ax.plot(t, rec.x[m, f], color="k", lw=0.6, label="value")
            ax.plot(t[raised], rec.x[m, f][raised], "v", color="tab:red", ms=7, label="alert raised")
            _shade(ax, t, alert, label="alert active")
            for lab_stream, a, b in labels or []:
                if lab_stream == sid:
                    ax.axvspan((a - rec.ts[m][0]) / 3600, (b - rec.ts[m][0]) / 3600, color="grey", alpha=0.2, lw=0)
            lo, hi = np.nanpercentile(rec.x[m, f], [0.5, 99.5])
            pad = (hi - lo) * 0.5 + 1e-9
            ax.set_ylim(lo - pad, hi + pad)
            ax.set_ylabel(f"{sid}\n{rec.features[f]}", fontsize=8)
            if si == 0 and f == 0:
                ax.legend(loc="upper left", fontsize=7, ncol=4)
        ax = axes[si * (F + 1) + F]
        lik = np.nan_to_num(out.likelihood[m])
        surprise = -np.log10(np.maximum(1.0 - lik, 1e-16))  # likelihood shown as -log10(1 - L)
        ax.plot(t, surprise, color="tab:purple", lw=0.7, label="-log10(1 - likelihood)")
        ax.axhline(-np.log10(max(1.0 - out.threshold, 1e-16)), color="tab:red", ls="--", lw=0.8, label="threshold")
        _shade(ax, t, alert)
        ax.set_ylabel("surprise", fontsize=8)
        ax.set_xlabel("hours since first reading", fontsize=8)
        if si == 0:
            ax.legend(loc="upper left", fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_losses(path: Path, train: list[float], val: list[float], title: str = "") -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(range(1, len(train) + 1), train, label="train NLL")
    ax.plot(range(1, len(val) + 1), val, label="validation NLL")
    best = int(np.argmin(val)) + 1 if val else 0
    if best:
        ax.axvline(best, color="grey", ls=":", label=f"best epoch {best}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("Gaussian NLL per reading")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
