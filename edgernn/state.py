"""Per-stream run state in slab arrays: hidden state, pending prediction, normalisation, alerts.

Rows are assigned to stream ids on first sight; when the store is full the least recently seen
stream is evicted (LRU). All per-stream numbers except the hidden state live in one float64 slab
``num[capacity, K]`` whose columns are named by ``Layout``; the detector gathers the rows of a
batch with one fancy index, computes on column views, and scatters them back with another.

Snapshots are one atomic, pickle-free ``.npz`` tagged with the model's sha256; a snapshot made
with another model (or another layout) is not restored.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .fileio import save_npz

log = logging.getLogger(__name__)
SNAPSHOT_VERSION = 6  # 2: onset_peak became the per-look onset_ref[5]; 3: reference look columns, onset_ref[6];
#                       4: onset_rate, onset_mean, onset_n (the onset's per-stream rarity cap);
#                       5: range_lo, range_hi, onset_rates[N_LEVELS] (the onset's per-stream calibration);
#                          ref_tx, ref_peak (the reference look's drift allowance and peak gate);
#                          onset_quiet[N_LOOKS] (the onset's re-arming);
#                       6: the seasonal look's per-stream time-of-day profile (seas_m, seas_v and its
#                          scalars, univariate models only) and onset_ref[7] (its own onset column)


class Layout:
    """Column slices of the float64 slab, for F features.

    norm_mean[F], norm_var[F]  stream normalisation (Welford during warm-up, then EW or frozen)
    pred[2F]                   the stored prediction for the next reading: mean | logvar
    last_x[F], run[F], reps[F] last raw value, its run of exact repeats, EW count of repeats
    fast_mean[F], fast_var[F]  short EW mean / variance of the raw values (level, spread looks)
    lvl_mean[F], lvl_var[F]    the stream's own EW mean / variance of the level deviation d
    spr_mean[F], spr_var[F]    the stream's own EW mean / variance of the log spread v
    ref_mean[F]                reference look: mean of x over the stream's first reference_rows readings
    ref_fast[F]                reference look: short EW mean of x
    ref_fmean[F], ref_fm2[F]   reference look: Welford mean / sum of squares of ref_fast over those readings
    ref_tx[F]                  reference look: Welford co-moment of (reading index, x) over those readings
                               (their least-squares slope: the drift allowance, reference_drift)
    ref_peak[F]                reference look: the largest z since the reference froze, fading over
                               repeat_memory (the peak gate, reference_peak)
    count                      readings accepted since the stream (re)started
    since_reset                readings since the hidden state was last reset (gap, new stream)
    last_ts                    timestamp of the last accepted reading (epoch seconds)
    smoothed                   EWMA of the score
    trials                     EW count of readings the repeat rate was learned from
    nstat                      readings the level / spread statistics were learned from
    held                       readings in a row at or above the clear level (learning paused)
    active ... duration        alert state machine (see alerts.py)
    range_lo[F], range_hi[F]   the smallest and largest raw value the stream has had (the onset's range look)
    onset_ref[N_LOOKS]         per look (scoring.ALL_LOOKS order), the surprise of its last onset
                               (decaying): the onset output
    onset_quiet[N_LOOKS]       per look, scored readings in a row with a surprise below onset_quiet: at
                               onset_rearm the episode is over and the look's onset_ref goes back to 0
    onset_rates[N_LEVELS]      EW rate (per scored reading, memory onset_memory) of the stream's onsets
                               with surprise >= ONSET_LEVELS[j]: the onset's per-stream calibration

    The seasonal look (univariate models only: F == 1; zero-width slices otherwise), see
    Detector._wave:
    seas_m[2 SEAS_K]           time-of-day profile of x, weekday buckets | weekend buckets (NaN: unseen)
    seas_v[SEAS_K]             per-bucket EW mean square of the profile residual (NaN: unseen)
    seas_cyc0, seas_cyc1       completed days of each day type (weekday, weekend)
    seas_day                   the last reading's day number (floor((ts + day_offset_s) / 86400))
    seas_dt                    EW sampling interval, seconds (0: not known yet)
    seas_s2                    global EW mean square residual (NaN until the profile has a value)
    seas_zb, seas_zb2          short EW mean of the residual z, and the EW mean square of that mean
    seas_lev                   level of x tracking on the day scale (EW over one cycle)
    seas_vg, seas_vr           EW variances of x - level and of the residual: the trust ratio R = vr / vg
    """

    # active, hist, below, cooldown stay adjacent: the detector tests them with one slice
    SCALARS = ("count", "since_reset", "last_ts", "smoothed", "trials", "nstat", "held", "active", "hist", "below",
               "cooldown", "seq", "peak", "since_event", "start_ts", "duration")
    N_LOOKS = 7  # scoring.ALL_LOOKS
    SEAS_K = 32  # buckets over the day of the seasonal look's profile
    SEAS_SCALARS = ("seas_cyc0", "seas_cyc1", "seas_day", "seas_dt", "seas_s2", "seas_zb", "seas_zb2", "seas_lev",
                    "seas_vg", "seas_vr")
    N_LEVELS = 24  # scoring.ONSET_LEVELS

    def __init__(self, n_features: int):
        F = n_features
        self.F = F
        self.norm_mean = slice(0, F)
        self.norm_var = slice(F, 2 * F)
        self.pred = slice(2 * F, 4 * F)
        self.last_x = slice(4 * F, 5 * F)
        self.run = slice(5 * F, 6 * F)
        self.reps = slice(6 * F, 7 * F)
        self.fast_mean = slice(7 * F, 8 * F)
        self.fast_var = slice(8 * F, 9 * F)
        self.lvl_mean = slice(9 * F, 10 * F)
        self.lvl_var = slice(10 * F, 11 * F)
        self.spr_mean = slice(11 * F, 12 * F)
        self.spr_var = slice(12 * F, 13 * F)
        self.ref_mean = slice(13 * F, 14 * F)
        self.ref_fast = slice(14 * F, 15 * F)
        self.ref_fmean = slice(15 * F, 16 * F)
        self.ref_fm2 = slice(16 * F, 17 * F)
        self.ref_tx = slice(17 * F, 18 * F)
        self.ref_peak = slice(18 * F, 19 * F)
        self.range_lo = slice(19 * F, 20 * F)
        self.range_hi = slice(20 * F, 21 * F)
        for i, name in enumerate(self.SCALARS):
            setattr(self, name, 21 * F + i)
        end = 21 * F + len(self.SCALARS)
        self.onset_ref = slice(end, end + self.N_LOOKS)
        self.onset_quiet = slice(end + self.N_LOOKS, end + 2 * self.N_LOOKS)
        self.onset_rates = slice(end + 2 * self.N_LOOKS, end + 2 * self.N_LOOKS + self.N_LEVELS)
        end += 2 * self.N_LOOKS + self.N_LEVELS
        # the seasonal look's columns exist for univariate models only (zero width otherwise)
        self.has_seasonal = F == 1
        K = self.SEAS_K if self.has_seasonal else 0
        self.seas_m = slice(end, end + 2 * K)
        self.seas_v = slice(end + 2 * K, end + 3 * K)
        end += 3 * K
        for i, name in enumerate(self.SEAS_SCALARS):
            setattr(self, name, end + i if self.has_seasonal else -1)
        self.width = end + (len(self.SEAS_SCALARS) if self.has_seasonal else 0)


class StateStore:
    def __init__(self, n_features: int, hidden: int, capacity: int = 10_000):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.layout = Layout(n_features)
        self.capacity = capacity
        self.hidden = hidden
        self.h = np.zeros((capacity, hidden), np.float32)  # [capacity, H]
        self.num = np.zeros((capacity, self.layout.width), np.float64)  # [capacity, K]
        self.last_seen = np.zeros(capacity, np.int64)  # tick of last use, for LRU
        self.ids: dict[str, int] = {}
        self.names: list[str | None] = [None] * capacity
        self._free = list(range(capacity - 1, -1, -1))
        self._tick = 0
        self.evictions = 0
        self.evicted_ids: list[str] = []  # stream ids evicted since the caller last cleared it
        self._init_row = np.zeros(self.layout.width, np.float64)  # template for a new stream
        self._init_row[self.layout.last_ts] = -np.inf
        self._init_row[self.layout.range_lo] = np.inf  # no value seen yet: an empty range
        self._init_row[self.layout.range_hi] = -np.inf
        L = self.layout
        if L.has_seasonal:  # nothing seen yet: an empty profile, no scale
            self._init_row[L.seas_m] = np.nan
            self._init_row[L.seas_v] = np.nan
            self._init_row[L.seas_s2] = np.nan
            self._init_row[L.seas_zb2] = np.nan

    def set_initial(self, column: slice | int, value) -> None:
        """Set what a new stream's row starts with (e.g. fixed normalisation)."""
        self._init_row[column] = value

    def __len__(self) -> int:
        return len(self.ids)

    def rows_for(self, streams: list[str]) -> np.ndarray:
        """Row index per stream id (unique ids expected), creating rows and evicting LRU ones."""
        self._tick += 1
        found = list(map(self.ids.get, streams))
        if None in found:
            for i, row in enumerate(found):
                if row is None:
                    found[i] = self._new_row(streams[i])
        rows = np.array(found, np.intp)
        self.last_seen[rows] = self._tick
        return rows

    def row_for(self, sid: str) -> int:
        """``rows_for`` for a single stream (the batch-of-one fast path)."""
        self._tick += 1
        row = self.ids.get(sid)
        if row is None:
            row = self._new_row(sid)
        self.last_seen[row] = self._tick
        return row

    def _new_row(self, sid: str) -> int:
        if self._free:
            row = self._free.pop()
        else:
            row = int(np.argmin(self.last_seen))
            if self.last_seen[row] == self._tick:
                raise OverflowError("more distinct streams in one batch than the store's capacity")
            del self.ids[self.names[row]]
            self.evicted_ids.append(self.names[row])
            self.evictions += 1
        self.ids[sid] = row
        self.names[row] = sid
        self.num[row] = self._init_row
        self.h[row] = 0.0
        self.last_seen[row] = self._tick
        return row

    def get(self, sid: str) -> dict | None:
        """A readable view of one stream's state (for inspection and tests)."""
        row = self.ids.get(sid)
        if row is None:
            return None
        L, r = self.layout, self.num[self.ids[sid]]
        out = {name: float(r[getattr(L, name)]) for name in L.SCALARS}
        out.update(norm_mean=r[L.norm_mean].copy(), norm_var=r[L.norm_var].copy(), pred=r[L.pred].copy(),
                   onset_ref=r[L.onset_ref].copy(), onset_rates=r[L.onset_rates].copy(),
                   range_lo=r[L.range_lo].copy(), range_hi=r[L.range_hi].copy(), h=self.h[row].copy())
        if L.has_seasonal:
            out.update(seas_m=r[L.seas_m].copy(), seas_v=r[L.seas_v].copy(),
                       **{name: float(r[getattr(L, name)]) for name in L.SEAS_SCALARS})
        return out

    # -- snapshots ---------------------------------------------------------------------------
    def snapshot(self, path: str | Path, model_sha256: str) -> int:
        """Atomically write the live rows to ``path``; returns the number of streams saved."""
        names = list(self.ids)
        rows = np.array([self.ids[n] for n in names], np.intp)
        save_npz(path, {
            "version": np.array(SNAPSHOT_VERSION),
            "model_sha256": np.array(model_sha256),
            "width": np.array(self.layout.width),
            "ids": np.array(names, dtype=np.str_) if names else np.zeros(0, "<U1"),
            "num": self.num[rows] if names else np.zeros((0, self.layout.width)),
            "h": self.h[rows] if names else np.zeros((0, self.hidden), np.float32),
            "last_seen": self.last_seen[rows] if names else np.zeros(0, np.int64),
        })
        return len(names)

    def restore(self, path: str | Path, model_sha256: str) -> tuple[bool, str]:
        """Load a snapshot if it was made with this model; returns (restored, reason)."""
        path = Path(path)
        if not path.is_file():
            return False, f"no snapshot at {path}"
        try:
            with np.load(path, allow_pickle=False) as data:
                snap = {k: data[k] for k in data.files}
        except Exception as exc:  # corrupt file: start fresh, say why
            return False, f"snapshot {path} unreadable ({exc}); starting fresh"
        try:
            if int(snap.get("version", np.array(-1)).item()) != SNAPSHOT_VERSION:  # .item(): scalars only
                return False, f"snapshot {path} has another format version; starting fresh"
            if str(snap.get("model_sha256", np.array("")).item()) != model_sha256:
                return False, f"snapshot {path} was made with another model; starting fresh"
            ids, num, h, seen = list(snap["ids"]), snap["num"], snap["h"], snap["last_seen"]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            return False, f"snapshot {path} is malformed ({exc!r}); starting fresh"
        if num.shape[1:] != (self.layout.width,) or h.shape[1:] != (self.hidden,) or not len(ids) == len(num) == len(h) == len(seen):
            return False, f"snapshot {path} does not match this model's shapes; starting fresh"
        order = np.argsort(seen)[::-1][: self.capacity]  # keep the most recent
        for i in order:
            row = self._new_row(str(ids[i]))
            self.num[row] = num[i]
            self.h[row] = h[i]
        return True, f"restored {len(order)} stream(s) from {path}"
