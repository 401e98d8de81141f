"""Per-stream run state in slab arrays: hidden state, pending prediction, statistics, alerts.

Rows are assigned to stream ids on first sight; when the store is full the least recently seen
stream is evicted (LRU; its id goes to ``evicted_ids`` for the caller to log). All per-stream
numbers except the hidden state live in two slabs, ``num[capacity, width]`` (float64) and
``num4[capacity, width4]`` (float32), whose columns are declared once in layout.py; the kernel
works on their rows in place.

The hidden state ``h[capacity, H]`` is stored as the backend declares it (``h_bound``): a GRU's
h' = (1 - z) n + z h with n = tanh(.) stays in (-1, 1), so GRU backends declare ``h_bound = 1.0``
and h is kept as int16 Q15 (round(h / h_bound * 32767), as TFLite Micro keeps its int16 LSTM
state: half the bytes, error <= h_bound / 65534); a backend with unbounded state in h (the
persistence baseline: a value, a variance, a count) declares None and h stays float32.
The Q15 conversion is compiled with the kernel, one rule each way (``kernel._h_load`` /
``kernel._h_store``): the detector's waves load and store a Q15 h inside ``kernel.step_wave`` /
``kernel.finish_wave`` (on ``hq``, with ``h_load`` / ``h_store``); ``gather_h`` / ``scatter_h`` /
``zero_h`` do it for every other caller and for a float32 state.

Snapshots are one atomic, pickle-free ``.npz``: the live rows of both slabs and of h, with
the layout's declaration (its signature) and the model's sha256 as the header; the h member's
dtype (int16 Q15 or float32, in its npy header) says how h is stored. A snapshot made with
another model, another layout or the other h dtype is not restored (refused, not converted); its members' dtypes, shapes and sizes are checked
against the layout and the file before anything is allocated, and its rows before any is restored
(ids unique, numbers finite where a live row's are, counters not negative: ``_check_rows``). Restored streams re-settle: their
scores are held back for ``settle`` readings (the state may be older than the stream's last
readings, e.g. after a SIGKILL), as after a gap.
"""

from __future__ import annotations

import ast
import logging
import math
import zipfile
from pathlib import Path

import numpy as np

from . import kernel
from .fileio import save_npz
from .layout import LM_HOLD, LM_STAY0, LM_V_MIN, LM_W_MAX, LM_W_MIN, Layout, initial_rows
from .scoring import QUIET_BITS, QUIET_PER_WORD, TREND_GRACE

log = logging.getLogger(__name__)
SNAPSHOT_FORMAT = 7  # 7: two slabs (float64, float32) and the layout's declaration (6 and older: not restored)
TICK_LIMIT = 2**32 - 2  # last_seen is uint32: at this tick the live rows' ticks are renumbered (_renumber)
Q15 = 32767  # a bounded h is stored as round(h / h_bound * Q15) in int16
_MEMBERS = ("format", "layout", "model_sha256", "ids", "num", "num4", "h", "last_seen")
# the columns that count (readings, alerts, repeats, onsets: EW counts too), the calm step's and the calm trend's mean
# squares: never negative (calm_since: not below -TREND_GRACE, _check_rows)
_COUNTS = frozenset(("run", "reps", "count", "since_reset", "trials", "nstat", "held", "hist", "phase_n",
                     "seq", "since_event", "duration", "onset_quiet", "onset_rates", "seas_cyc", "sample_dt",
                     "calm_var", "trend_v", "rstart"))


def _stay_bad(v: np.ndarray) -> np.ndarray:
    """lm_stay entries that layout's packing cannot hold: flags x 64 + run + 32, flags 0-3, |run| <= LM_HOLD."""
    run = v - 64.0 * np.floor(v / 64.0) - LM_STAY0
    return (v != np.floor(v)) | (v < 0) | (v >= 256) | (np.abs(run) > LM_HOLD)


_LEVEL_MEMORY = {  # level_memory's columns: what the kernel cannot write there (float32: a bound within 1e-6)
    "lm_w": lambda v: (v < LM_W_MIN * (1 - 1e-6)) | (v > LM_W_MAX * (1 + 1e-6)),
    "lm_v": lambda v: v < LM_V_MIN * (1 - 1e-6),
    "lm_stay": _stay_bad,
}


class StateStore:
    def __init__(self, n_features: int, hidden: int, capacity: int = 10_000, reference: bool = True,
                 seasonal: bool = True, components: int = 1, h_bound: float | None = None, relation: bool = False,
                 wbias: bool = False, jump: bool = False, calm: bool = False, runs: bool = False, lmem: bool = False):
        """reference / seasonal / relation / wbias / jump / calm / runs / lmem: whether the rows hold those
        looks' columns, the mixture's weight correction, the jump rate, the calm step's statistics, the
        stuck look's runs and the level memory (layout.columns);
        components: the head's Gaussians per feature (the width of the pred column);
        h_bound: the backend's bound on |h| (int16 Q15 storage), None for float32 storage."""
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.layout = Layout(n_features, reference, seasonal, components, relation, wbias, jump, calm, runs, lmem)
        self.capacity = capacity
        self.hidden = hidden
        if h_bound is not None and not (math.isfinite(h_bound) and h_bound > 0):
            raise ValueError("h_bound must be a positive number or None")
        self.h_bound = None if h_bound is None else float(h_bound)
        # [capacity, H]: int16 Q15 (h = stored * h_bound / Q15) for a bounded state, else float32
        self.h = np.zeros((capacity, hidden), np.float32 if h_bound is None else np.int16)
        # The Q15 scales as float32 values, (stored -> h, h -> stored); 0.0 for a float32 state. The
        # kernel's wave functions take them with ``hq`` (kernel.step_wave / finish_wave load and store
        # a Q15 h with the wave); gather_h / scatter_h use them for every other caller
        self.h_load, self.h_store = ((0.0, 0.0) if h_bound is None else
                                     tuple(float(np.float32(v)) for v in (self.h_bound / Q15, Q15 / self.h_bound)))
        self._row1 = np.zeros(1, np.intp)  # the row of a batch of one
        self._h_bufs: dict[int, tuple] = {}  # batch size -> (gather, scatter) buffers float32[B, H]
        self.num = np.zeros((capacity, self.layout.width), np.float64)  # [capacity, width]
        self.num4 = np.zeros((capacity, self.layout.width4), np.float32)  # [capacity, width4]
        self.last_seen = np.zeros(capacity, np.uint32)  # tick of last use, for LRU (renumbered before it wraps)
        self.ids: dict[str, int] = {}
        self.names: list[str | None] = [None] * capacity
        self._free = list(range(capacity - 1, -1, -1))
        self._tick = 0
        self._first = 0  # the first tick of the current call (rows_for / row_for / reserve_ticks)
        self.evictions = 0
        self.evicted_ids: list[str] = []  # evicted since the caller last cleared it (the daemon logs them)
        self._init = initial_rows(self.layout)  # templates for a new stream: (num row, num4 row)

    def set_initial(self, name: str, value) -> None:
        """Set what a new stream's column ``name`` starts with (e.g. fixed normalisation)."""
        self._init[self.layout.storage[name] == "f4"][getattr(self.layout, name)] = value

    def bytes_per_stream(self) -> float:
        """Resident bytes per stream of every per-stream array the store holds (one row per stream:
        slabs, hidden state, LRU ticks) / its capacity; fixed scratch buffers aside. (The id -> row
        dict and the names list are Python objects beside them: ``edgernn bench`` prints the
        process's RSS growth per stream as the cross-check.)"""
        return sum(v.nbytes for v in vars(self).values()
                   if isinstance(v, np.ndarray) and v.shape[:1] == (self.capacity,)) / self.capacity

    @property
    def hq(self) -> np.ndarray | None:
        """The int16 Q15 hidden state for the kernel's wave functions; None for a float32 state."""
        return None if self.h_bound is None else self.h

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def free(self) -> int:
        """Rows a new stream can take without evicting one."""
        return len(self._free)

    def reserve_ticks(self, n: int) -> int:
        """n consecutive LRU ticks for a batch of n readings, one per position (``rows_for``'s
        ``ticks``: the LRU order is then the arrival order, as one reading at a time); the first."""
        if self._tick + n >= TICK_LIMIT:
            self._renumber()
        self._first = self._tick + 1
        self._tick += n
        return self._first

    def rows_for(self, streams: list[str], ticks: np.ndarray | None = None) -> np.ndarray:
        """Row index per stream id (unique ids expected), creating rows and evicting LRU ones.
        ticks: intp[b] each stream's tick of use (from ``reserve_ticks``); None: one new tick."""
        if ticks is None:
            self._tick += 1
            if self._tick >= TICK_LIMIT:
                self._renumber()
            self._first = ticks = self._tick
        try:  # every stream known (the common case): no list, no scan for new ones
            rows = np.fromiter(map(self.ids.__getitem__, streams), np.intp, len(streams))
        except KeyError:
            found = list(map(self.ids.get, streams))
            self.last_seen[[row for row in found if row is not None]] = self._first  # this call's: never evicted for it
            for i, row in enumerate(found):
                if row is None:
                    found[i] = self._new_row(streams[i])
            rows = np.array(found, np.intp)
        self.last_seen[rows] = ticks
        return rows

    def row_for(self, sid: str) -> int:
        """``rows_for`` for a single stream (the batch-of-one path)."""
        self._tick += 1
        if self._tick >= TICK_LIMIT:
            self._renumber()
        self._first = self._tick
        row = self.ids.get(sid)
        if row is None:
            row = self._new_row(sid)
        self.last_seen[row] = self._tick
        return row

    def _renumber(self) -> None:
        """Replace the ticks by their dense ranks (ties stay ties, the order is kept, so the LRU
        choice is the same) and continue counting after them: uint32 ticks never wrap."""
        _, rank = np.unique(self.last_seen, return_inverse=True)
        self.last_seen[:] = rank.reshape(-1)
        self._tick = int(self.last_seen.max()) + 1

    def _new_row(self, sid: str) -> int:
        if self._free:
            row = self._free.pop()
        else:
            row = int(np.argmin(self.last_seen))
            if self.last_seen[row] >= self._first:  # a stream of this very call
                raise OverflowError("more distinct streams in one batch than the store's capacity")
            del self.ids[self.names[row]]
            self.evictions += 1
            self.evicted_ids.append(self.names[row])
        self.ids[sid] = row
        self.names[row] = sid
        self.reset_row(row)
        self.last_seen[row] = self._tick
        return row

    def reset_row(self, row: int) -> None:
        """The stream on ``row`` starts over (a new stream, or one whose state went non-finite)."""
        self.num[row], self.num4[row] = self._init
        self.h[row] = 0

    # -- the hidden state: the one place it is stored and loaded ------------------------------
    def gather_h(self, rows) -> np.ndarray:
        """float32[B, H]: the hidden state of ``rows`` (intp[B], or a slice), for the backend's step.
        Q15: into a buffer reused per batch size (valid until the next gather of that size)."""
        if self.h_bound is None:
            return self.h[rows] if isinstance(rows, slice) else self.h.take(rows, axis=0)  # take: faster than h[rows]
        rows = self._rows(rows)
        out = self._h_buf(len(rows))[0]
        kernel.q15_load(self.h, rows, self.h_load, out)  # int16 -> float32 * h_bound / Q15
        return out

    def scatter_h(self, rows, h_next: np.ndarray) -> None:
        """Store the backend's h_next float32[B, H] on ``rows``. Q15: clip to [-h_bound, h_bound]
        (the GRU never leaves it; a backend rounding error might), scale, round to nearest, int16."""
        if self.h_bound is None:
            self.h[rows] = h_next
            return
        kernel.q15_store(np.ascontiguousarray(h_next, np.float32), self.h_store, self._rows(rows), self.h)

    def _rows(self, rows) -> np.ndarray:
        """intp[B] of ``rows`` (an intp array, or a slice: one row without a new array)."""
        if not isinstance(rows, slice):
            return rows
        if rows.stop - rows.start == 1:
            self._row1[0] = rows.start
            return self._row1
        return np.arange(rows.start, rows.stop, dtype=np.intp)

    def _h_buf(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """The (gather, scatter) float32[b, H] buffers of batch size b (made once per size)."""
        bufs = self._h_bufs.get(b)
        if bufs is None:
            bufs = self._h_bufs[b] = (np.empty((b, self.hidden), np.float32), np.empty((b, self.hidden), np.float32))
        return bufs

    def zero_h(self, rows) -> None:
        """The hidden state of ``rows`` starts over (a gap)."""
        self.h[rows] = 0

    def get(self, sid: str) -> dict | None:
        """A readable view of one stream's state: {column: float64 array} (layout.columns) + h."""
        row = self.ids.get(sid)
        if row is None:
            return None
        out = self.layout.named(self.num[row], self.num4[row])
        for name, width, _, _ in self.layout.columns:
            if width is None and name in out:  # scalar columns as floats
                out[name] = float(out[name][0])
        out["h"] = self.gather_h(slice(row, row + 1))[0].copy()
        return out

    # -- snapshots ---------------------------------------------------------------------------
    def snapshot(self, path: str | Path, model_sha256: str) -> int:
        """Atomically write the live rows to ``path``; returns the number of streams saved."""
        names = list(self.ids)
        rows = np.array([self.ids[n] for n in names], np.intp)
        save_npz(path, {
            "format": np.array(SNAPSHOT_FORMAT),
            "layout": np.array(self.layout.signature()),
            "model_sha256": np.array(model_sha256),
            "ids": np.array(names, dtype=np.str_) if names else np.zeros(0, "<U1"),
            "num": self.num[rows] if names else np.zeros((0, self.layout.width)),
            "num4": self.num4[rows] if names else np.zeros((0, self.layout.width4), np.float32),
            "h": self.h[rows] if names else np.zeros((0, self.hidden), self.h.dtype),  # as stored: restore is exact
            "last_seen": self.last_seen[rows] if names else np.zeros(0, np.uint32),
        })
        return len(names)

    def restore(self, path: str | Path, model_sha256: str, resettle: bool = True) -> tuple[bool, str]:
        """Load a snapshot if it was made with this model and layout; returns (restored, reason).
        resettle: every restored stream re-settles (since_reset = 0: its scores are held back for
        ``settle`` readings, as after a gap); False continues exactly where the snapshot was taken."""
        path = Path(path)
        if path.is_dir():
            return False, f"snapshot path {path} is a directory, not a file; starting fresh"
        if path.exists() and not path.is_file():  # a FIFO, a socket, a device: never opened
            return False, f"snapshot path {path} is not a regular file; starting fresh"
        if not path.is_file():
            return False, f"no snapshot at {path}"
        problem = self._check_members(path)
        if problem:
            return False, f"snapshot {path} {problem}; starting fresh"
        try:
            with np.load(path, allow_pickle=False) as data:
                snap = {k: data[k] for k in _MEMBERS}
            if int(snap["format"].item()) != SNAPSHOT_FORMAT or str(snap["layout"].item()) != self.layout.signature():
                return False, f"snapshot {path} has another format or state layout; starting fresh"
            if str(snap["model_sha256"].item()) != model_sha256:
                return False, f"snapshot {path} was made with another model; starting fresh"
        except Exception as exc:  # corrupt file: start fresh, say why
            return False, f"snapshot {path} unreadable ({exc}); starting fresh"
        ids, num, num4, h, seen = snap["ids"].tolist(), snap["num"], snap["num4"], snap["h"], snap["last_seen"]
        problem = self._check_rows(ids, num, num4, h)
        if problem:
            return False, f"snapshot {path} {problem}; starting fresh"
        order = np.argsort(seen)[::-1][: self.capacity]  # keep the most recent
        self._first = self._tick  # (as before: a row restored here is not evicted for another)
        for i in order:
            row = self._new_row(str(ids[i]))
            self.num[row], self.num4[row], self.h[row] = num[i], num4[i], h[i]
            if resettle:
                self.num4[row, self.layout.since_reset] = 0.0
        return True, f"restored {len(order)} stream(s) from {path}" + (" (each re-settles before it scores)"
                                                                        if resettle else "")

    def _check_members(self, path: Path) -> str:
        """'' if the npz's members are what this store writes, with shapes that fit the layout and
        sizes that fit the file; else what is wrong. Reads only the zip directory and npy headers."""
        try:
            with zipfile.ZipFile(path) as zf:
                infos = {i.filename.removesuffix(".npy"): i for i in zf.infolist()}
                if set(infos) != set(_MEMBERS):
                    return f"has members {sorted(infos)}, not {sorted(_MEMBERS)}"
                headers = {name: _npy_header(zf, info) for name, info in infos.items()}
        except (OSError, zipfile.BadZipFile, ValueError, SyntaxError) as exc:
            return f"is not a readable snapshot ({exc})"
        n = headers["ids"][0][:1] or (0,)
        want = {"format": (), "layout": (), "model_sha256": (), "ids": n, "num": (*n, self.layout.width),
                "num4": (*n, self.layout.width4), "h": (*n, self.hidden), "last_seen": n}
        for name, kinds in (("format", "iu"), ("last_seen", "iu"), ("layout", "U"), ("model_sha256", "U"), ("ids", "U")):
            if headers[name][3].kind not in kinds:  # what snapshot() writes (h: below, with why)
                return f"member {name} holds {headers[name][3]}, not {'integers' if kinds == 'iu' else 'text'}"
        for name in ("num", "num4"):
            if headers[name][3] != getattr(self, name).dtype:
                return f"member {name} holds {headers[name][3]}, not {getattr(self, name).dtype}"
        if headers["h"][3] != self.h.dtype:
            return (f"holds the hidden state as {headers['h'][3]}, this backend keeps it as {self.h.dtype} "
                    f"({'int16 Q15: a bounded GRU state' if self.h_bound is not None else 'float32: an unbounded state'})")
        for name, (shape, nbytes, size, _) in headers.items():
            if shape != want[name]:
                return f"member {name} has shape {shape}, this state layout needs {want[name]}"
            if nbytes > size:
                return f"member {name} declares {nbytes} bytes of data in {size}"
        total = sum(i.file_size for i in infos.values())
        limit = 64 * 2**20 + 4 * max(n[0], 1) * (self.layout.row_bytes + self.h.itemsize * self.hidden + 1024)
        if total > limit or n[0] > 100 * self.capacity:
            return f"holds {n[0]} streams in {total / 2**20:.1f} MiB, more than this store will load"
        return ""

    def _check_rows(self, ids: list, num: np.ndarray, num4: np.ndarray, h: np.ndarray) -> str:
        """'' if the rows could have been written by this store, else what is wrong with the first
        bad one: ids unique and what the decoder accepts as a stream id; every number finite or what a
        new stream's row holds there (the kernel resets a stream whose statistics go non-finite; a new
        row's inf are an empty range and no reading yet), any value in the seasonal profile's columns
        (NaN in a new row: unseen; float32 raw units, inf beyond ~3e38); the counters not negative
        (calm_since down to -TREND_GRACE); the packed quiet counts an integer under 2**24.
        (A NaN count never scored, an inf last_ts rejected every reading, an inf duration raised in
        every batch that held its stream.)"""
        from .decode import stream_id_problem

        seen: set[str] = set()
        for s in ids:
            if s in seen:
                return f"lists stream {s[:40]!r} more than once"
            problem = stream_id_problem(s)
            if problem:
                return f"holds stream id {s[:40]!r}, which {problem}"
            seen.add(s)
        L = self.layout
        for slab, rows, init in (("f8", num, self._init[0]), ("f4", num4, self._init[1])):
            for name, width, storage, _ in L.columns:
                if storage != slab or width == 0 or not len(rows):
                    continue
                at = getattr(L, name)
                vals, new = rows[:, at].reshape(len(rows), -1), np.atleast_1d(init[at])  # [n, width], [width]
                bad = ~(np.isfinite(vals) | (vals == new) | np.isnan(new))  # NaN new: the seasonal profile (may overflow)
                if name in _COUNTS:
                    bad |= vals < 0
                if name == "rval":  # stuck_runs: a reading's value (finite), or NaN before the first run
                    bad |= np.isinf(vals)
                if name in _LEVEL_MEMORY:  # level_memory: a weight, spreads, a packed run and flags in their range
                    bad |= _LEVEL_MEMORY[name](vals)
                if name == "jrate":  # a rate of jumps per reading
                    bad |= (vals < 0) | (vals > 1)
                if name == "calm_since":  # counts up from -TREND_GRACE after a step that ended a calm stretch
                    bad |= vals < -TREND_GRACE
                if name == "onset_quiet":  # QUIET_PER_WORD counts of QUIET_BITS bits: an integer under 2**24
                    bad |= (vals >= 2.0 ** (QUIET_BITS * QUIET_PER_WORD)) | (vals != np.floor(vals))
                if bad.any():
                    i = int(np.flatnonzero(bad.any(axis=1))[0])
                    return (f"holds {name} = {vals[i][bad[i]][0]:g} for stream {ids[i][:40]!r} "
                            f"(not a value this store writes)")
        bad_h = ~np.isfinite(h).all(axis=1) if h.dtype.kind == "f" else np.zeros(len(h), bool)
        if bad_h.any():
            return f"holds a non-finite hidden state for stream {ids[int(np.flatnonzero(bad_h)[0])][:40]!r}"
        return ""


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple, int, int, np.dtype]:
    """(shape, data bytes it declares, bytes the member holds after its header, dtype) of one .npy
    member, from its first bytes only."""
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"unknown npy version {version}")
        hlen_size = 2 if version == (1, 0) else 4
        raw = fh.read(hlen_size)
        hlen = int.from_bytes(raw, "little")
        if hlen > 65536:
            raise ValueError("npy header too long")
        header = ast.literal_eval(fh.read(hlen).decode("latin1"))
    shape = tuple(int(v) for v in header["shape"])
    dtype = np.dtype(header["descr"])
    if dtype.hasobject:
        raise ValueError("object arrays are not snapshots")
    nbytes = int(np.prod(shape, dtype=np.float64) * dtype.itemsize)
    return shape, nbytes, info.file_size - 8 - hlen_size - hlen, dtype
