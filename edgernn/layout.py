"""The per-stream slab, declared once: an ordered list of (column, width, what it holds).

Everything that knows where a number lives in a stream's row derives from ``columns(F)``:
``Layout`` (the offsets: a slice per vector column, an int per scalar column), the kernel's
parameters (``Layout.offsets``, one int per column name), the snapshot format (``Layout.signature``
is stored in every snapshot; a snapshot with another signature is not restored) and the tests'
whole-state comparison (``Layout.named``: a row as {column: values}).

Widths are in slab entries (float64). A width of ``None`` is one scalar column (an int offset);
an int (also 1) is a vector column (a slice). Columns of width 0 exist in name only: the seasonal
look's columns are there for univariate models only.
"""

from __future__ import annotations

import json
import zlib

import numpy as np

N_LOOKS = 7  # scoring.ALL_LOOKS: instant, smoothed, level, spread, stuck, reference, seasonal
N_LEVELS = 24  # scoring.ONSET_LEVELS
SEAS_K = 32  # buckets over the day of the seasonal look's profile


def columns(F: int) -> tuple[tuple[str, int | None, str], ...]:
    """The slab's columns for a model with F features, in order: (name, width | None, meaning)."""
    seasonal = F == 1
    K = SEAS_K if seasonal else 0
    seas_scalars = (
        ("seas_cyc0", "completed weekdays seen by the seasonal profile"),
        ("seas_cyc1", "completed weekend days seen by the seasonal profile"),
        ("seas_day", "the last reading's day number, floor((ts + day_offset_s) / 86400)"),
        ("seas_dt", "EW sampling interval, seconds (0: not known yet)"),
        ("seas_s2", "global EW mean square profile residual (NaN until the profile has a value)"),
        ("seas_zb", "short EW mean of the profile residual z"),
        ("seas_zb2", "EW mean square of that short mean (NaN until the profile has a value)"),
        ("seas_lev", "level of x tracking on the day scale (EW over one cycle)"),
        ("seas_vg", "EW variance of x - level (the trust ratio's denominator)"),
        ("seas_vr", "EW variance of the profile residual (the trust ratio's numerator)"),
    )
    return (
        ("norm_mean", F, "stream normalisation mean (Welford during warm-up, then EW or frozen)"),
        ("norm_var", F, "stream normalisation variance"),
        ("pred", 2 * F, "the prediction stored for the next reading: mean | logvar (normalised units)"),
        ("last_x", F, "last raw value"),
        ("run", F, "its run of exact repeats"),
        ("reps", F, "EW count of repeats (the stuck look's repeat rate)"),
        ("fast_mean", F, "short EW mean of the raw values (level look)"),
        ("fast_var", F, "short EW variance of the raw values (spread look)"),
        ("lvl_mean", F, "the stream's own EW mean of the level deviation d"),
        ("lvl_var", F, "... and its EW variance"),
        ("spr_mean", F, "the stream's own EW mean of the log spread ratio v"),
        ("spr_var", F, "... and its EW variance"),
        ("ref_mean", F, "reference look: mean of x over the first reference_rows readings"),
        ("ref_fast", F, "reference look: short EW mean of x"),
        ("ref_fmean", F, "reference look: Welford mean of ref_fast over those readings"),
        ("ref_fm2", F, "reference look: Welford sum of squares of ref_fast over those readings"),
        ("ref_tx", F, "reference look: co-moment of (reading index, x): the drift allowance"),
        ("ref_peak", F, "reference look: the largest z since it froze, fading (the peak gate)"),
        ("range_lo", F, "smallest raw value the stream has had (the onset's range look)"),
        ("range_hi", F, "largest raw value the stream has had"),
        ("count", None, "readings accepted since the stream (re)started"),
        ("since_reset", None, "readings since the hidden state was reset (gap, new stream, restore)"),
        ("last_ts", None, "timestamp of the last accepted reading, epoch seconds (capped at now + clock_skew_s)"),
        ("smoothed", None, "EWMA of the score"),
        ("trials", None, "EW count of readings the repeat rate was learned from"),
        ("nstat", None, "readings the level / spread statistics were learned from"),
        ("held", None, "readings in a row at or above the clear level (learning paused)"),
        ("active", None, "alert machine: an alert is active"),
        ("hist", None, "alert machine: bit history of readings over the threshold (k of n)"),
        ("below", None, "alert machine: readings in a row below the clear level"),
        ("cooldown", None, "alert machine: readings left before a new alert can be raised"),
        ("seq", None, "alert machine: alerts raised on this stream (the alert id's number)"),
        ("peak", None, "alert machine: score of the alert's last event"),
        ("since_event", None, "alert machine: readings since the alert's last event"),
        ("start_ts", None, "alert machine: timestamp the alert was raised"),
        ("duration", None, "alert machine: readings the alert has been active"),
        ("onset_ref", N_LOOKS, "per look, the surprise of its last onset (decaying)"),
        ("onset_quiet", N_LOOKS, "per look, scored readings in a row below onset_quiet (re-arming)"),
        ("onset_rates", N_LEVELS, "EW rate of the stream's onsets with surprise >= ONSET_LEVELS[j]"),
        ("seas_m", 2 * K, "time-of-day profile of x: weekday buckets | weekend buckets (NaN: unseen)"),
        ("seas_v", K, "per-bucket EW mean square of the profile residual (NaN: unseen)"),
        *((name, None if seasonal else 0, doc) for name, doc in seas_scalars),
    )


def initial_row(layout: "Layout") -> np.ndarray:
    """What a new stream's row starts with: zeros, except where 'nothing seen yet' is not 0."""
    row = np.zeros(layout.width, np.float64)
    row[layout.last_ts] = -np.inf
    row[layout.range_lo] = np.inf  # an empty range
    row[layout.range_hi] = -np.inf
    if layout.has_seasonal:  # an empty profile, no scale
        for name in ("seas_m", "seas_v", "seas_s2", "seas_zb2"):
            row[getattr(layout, name)] = np.nan
    return row


class Layout:
    """Offsets of ``columns(F)``: ``layout.count`` is an int, ``layout.norm_mean`` a slice, ..."""

    def __init__(self, n_features: int):
        self.F = n_features
        self.has_seasonal = n_features == 1
        self.columns = columns(n_features)
        self.offsets: dict[str, int] = {}  # column -> first entry (-1: a zero-width scalar)
        start = 0
        for name, width, _doc in self.columns:
            n = 1 if width is None else width
            self.offsets[name] = start if n else -1
            setattr(self, name, (start if n else -1) if width is None else slice(start, start + n))
            start += n
        self.width = start  # entries per row

    def signature(self) -> str:
        """The declaration as stored in snapshots: [[name, width], ...] (JSON)."""
        return json.dumps([[name, width] for name, width, _ in self.columns])

    def version(self) -> int:
        """A short number derived from the declaration (crc32 of the signature)."""
        return zlib.crc32(self.signature().encode())

    def named(self, row: np.ndarray) -> dict[str, np.ndarray]:
        """A row (float[width]) as {column: float64[width of that column]}: whole-state comparisons."""
        out = {}
        for name, width, _ in self.columns:
            where = getattr(self, name)
            if width is None and where >= 0:
                out[name] = np.asarray(row[where : where + 1], np.float64)
            elif width:
                out[name] = np.asarray(row[where], np.float64)
        return out
