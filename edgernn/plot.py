"""Plots a person would rather look at than read. matplotlib is imported only here, lazily."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np

from .readings import BAND_SIGMAS, describe_threshold, surprise_from_likelihood


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# epoch seconds in this range (1973 .. 2100) are drawn as dates; anything else as plain seconds
_EPOCH_RANGE = (1e8, 4.1e9)


def time_axis(ts) -> np.ndarray:
    """float64[N] epoch seconds -> the x values to draw: datetime64[ms] (wall clock, UTC) when every
    finite stamp is a plausible date, else the seconds themselves (synthetic or relative times)."""
    ts = np.asarray(ts, np.float64)
    finite = ts[np.isfinite(ts)]
    if finite.size and _EPOCH_RANGE[0] < finite.min() and finite.max() < _EPOCH_RANGE[1]:
        return (np.nan_to_num(ts, nan=finite.min()) * 1e3).astype("datetime64[ms]")
    return ts


def format_time_axis(ax, t: np.ndarray) -> None:
    """Dates on the x axis (concise: the day once, then hours) or a "seconds" label."""
    if len(t) and t.min() < t.max():
        ax.set_xlim(t.min(), t.max())
    elif len(t):  # one instant: a minute either side (matplotlib's default around a date is years)
        pad = np.timedelta64(60, "s") if np.issubdtype(t.dtype, np.datetime64) else 60.0
        ax.set_xlim(t.min() - pad, t.max() + pad)
    if np.issubdtype(t.dtype, np.datetime64):
        import matplotlib.dates as mdates

        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_xlabel("time (UTC)", fontsize=8)
    else:
        ax.set_xlabel("time (s)", fontsize=8)


# matplotlib's transforms overflow on spans near 1e308: values beyond this are drawn at it
DRAWABLE = 1e150


def drawable(values) -> np.ndarray:
    """float64[...] with finite values clipped to ±DRAWABLE (NaN and ±inf left for matplotlib to skip)."""
    v = np.asarray(values, np.float64)
    return np.where(np.isfinite(v), np.clip(v, -DRAWABLE, DRAWABLE), v)


def finite_limits(*arrays, pad: float = 0.08):
    """(lo, hi) covering every finite value of ``arrays`` plus ``pad`` of the span, or None when
    there is none (matplotlib refuses NaN/Inf limits: leave the axis on its defaults then)."""
    vals = np.concatenate([np.asarray(a, np.float64).ravel() for a in arrays]) if arrays else np.empty(0)
    vals = vals[np.isfinite(vals)]
    if not vals.size:
        return None
    lo, hi = float(vals.min()), float(vals.max())
    margin = (hi / 2 - lo / 2) * 2 * pad or max(abs(hi) * pad, 1e-9)  # halves: no overflow at ±1e308
    below, above = lo - margin, hi + margin  # Python floats: inf on overflow, never an error
    return (below if math.isfinite(below) else lo), (above if math.isfinite(above) else hi)


def spans(mask) -> list[tuple[int, int]]:
    """Inclusive index runs where ``mask`` (bool[N]) is true."""
    edges = np.flatnonzero(np.diff(np.r_[0, np.asarray(mask, bool).astype(np.int8), 0]))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def shade(ax, t, active, color="tab:red", alpha=0.15, label=None) -> None:
    """Shade the spans where ``active`` is true (the first one carries ``label``)."""
    for k, (a, b) in enumerate(spans(active)):
        ax.axvspan(t[a], t[b], color=color, alpha=alpha, lw=0, label=label if k == 0 else None)


# a stream with fewer readings than this gets a dot on each (a line through one point draws nothing)
FEW = 50


def _dots(t) -> dict:
    return dict(marker=".", ms=5) if len(t) < FEW else {}


def _feature_panel(ax, t, values, expected, sigma, alert, raised, name: str) -> None:
    """One feature of one stream: the value, the expected band, alert spans and raised markers.
    values/expected/sigma float64[n]; alert/raised bool[n]. Every finite value is inside the axis."""
    values, expected, band = drawable(values), drawable(expected), drawable(BAND_SIGMAS * sigma)
    ax.fill_between(t, expected - band, expected + band, color="tab:blue", alpha=0.2, lw=0,
                    label=f"expected ±{BAND_SIGMAS:g}σ")
    ax.plot(t, values, color="k", lw=0.6, label="value", **_dots(t))
    ax.plot(t[raised], values[raised], "v", color="tab:red", ms=7, label="alert raised")
    if alert.any():
        shade(ax, t, alert, label="alert active")
    else:  # the legend still explains the red spans of the other streams
        ax.fill_between(t[:0], 0.0, 0.0, color="tab:red", alpha=0.15, lw=0, label="alert active")
    limits = finite_limits(values, expected)
    if limits is None:
        ax.text(0.5, 0.5, "no numeric values", transform=ax.transAxes, ha="center", va="center", color="grey")
    else:
        ax.set_ylim(*limits)
    ax.set_ylabel(name, fontsize=8)


def _surprise_panel(ax, t, likelihood, threshold, alert, legend: bool) -> None:
    """``likelihood`` float64[n], NaN where a reading was not scored (warm-up, settling, rejected)."""
    surprise = surprise_from_likelihood(likelihood)  # float64[n]; NaN where not scored (a gap, not a zero)
    ax.plot(t, surprise, color="tab:purple", lw=0.7, label="surprise = -log10(tail probability)", **_dots(t))
    line = surprise_from_likelihood(threshold)
    ax.axhline(line, color="tab:red", ls="--", lw=0.8, label=f"threshold: {describe_threshold(threshold)}")
    shade(ax, t, alert)
    limits = finite_limits(surprise, [0.0, line])
    ax.set_ylim(*limits)
    if not np.isfinite(surprise).any():
        ax.text(0.5, 0.5, "no reading scored", transform=ax.transAxes, ha="center", va="center", color="grey")
    ax.set_ylabel("surprise", fontsize=8)
    if legend:
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=7, ncol=2, frameon=False)


def plot_replay(path: Path, rec, out, title: str = "", max_streams: int = 4, labels=None) -> str:
    """Per stream (up to ``max_streams``): each feature with the expected ± BAND_SIGMAS σ band, then
    the surprise with the threshold; alert spans shaded red, raised events marked, labelled windows
    (``labels``: list of (stream, start_ts, end_ts)) shaded grey; wall-clock time on the x axis.
    Returns '' or, for a file with more streams, which ones were drawn (also under the title)."""
    plt = pyplot()
    F = rec.x.shape[1]
    streams, note = streams_to_draw(rec.streams, out, max_streams)
    n_rows = max(len(streams), 1) * (F + 1)
    fig, axes = plt.subplots(n_rows, 1, figsize=(12, 1.8 * n_rows + 1), squeeze=False)
    axes = axes[:, 0]
    all_streams = np.array(rec.streams)
    t_all = time_axis(rec.ts)
    for si, sid in enumerate(streams):
        m = all_streams == sid
        t, raised = t_all[m], out.event[m] == 1
        for f in range(F):
            ax = axes[si * (F + 1) + f]
            _feature_panel(ax, t, rec.x[m, f], out.expected[m, f], out.sigma[m, f], out.alert[m], raised,
                           f"{sid}\n{rec.features[f]}")
            for lab_stream, a, b in labels or []:
                if lab_stream == sid:
                    lo, hi = time_axis([a, b]) if np.issubdtype(t.dtype, np.datetime64) else (a, b)
                    ax.axvspan(lo, hi, color="grey", alpha=0.2, lw=0)
            if si == 0 and f == 0:  # above the axes: inside, it would hide the readings it explains
                ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=7, ncol=4, frameon=False)
            format_time_axis(ax, t)
        ax = axes[si * (F + 1) + F]
        scored = np.where(np.isnan(out.score[m]), np.nan, out.likelihood[m])  # (warm-up: likelihood 0, not scored)
        _surprise_panel(ax, t, scored, out.threshold, out.alert[m], legend=si == 0)
        format_time_axis(ax, t)
    fig.suptitle("\n".join(filter(None, (title, note))))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return note


def streams_to_draw(streams: list, out, k: int) -> tuple[list, str]:
    """Up to ``k`` of the recording's streams (``streams``: id per row), those that raised the most
    alerts first, else in file order; and '' when that is all of them, or which ones they are."""
    order = list(dict.fromkeys(streams))  # every stream, in order of first appearance
    if len(order) <= k:
        return order, ""
    raised = Counter(streams[e.position] for e in out.events if e.kind == "raised")
    pick = set(sorted(order, key=lambda s: -raised[s])[:k])  # (stable: file order among equals)
    drawn = [s for s in order if s in pick]
    why = (f"the {min(len(raised), k)} with the most alerts" + ("" if len(raised) >= k else ", then the first ones")
           if raised else "the first ones in the file; none raised an alert")
    return drawn, f"{k} of {len(order):,} streams drawn: {why}"


def plot_losses(path: Path, train: list[float], val: list[float], title: str = "") -> None:
    plt = pyplot()
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
