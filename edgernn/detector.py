"""The pure detector core: ``Detector.process(batch) -> Result``. No threads, no I/O, no MQTT.

Per reading, in arrival order per stream (test-then-train):

  1. reject non-finite values / timestamps and readings older than the stream's last one
  2. gap longer than ``max_gap_s`` -> hidden state reset, scores held back for ``settle`` readings
  3. normalise: per-stream Welford statistics during warm-up (``stream`` models), then frozen or
     adapted slowly (EW, only from readings that are not alerting); ``fixed`` models use the
     manifest's mean/std
  4. score x_t against the prediction stored at t-1: five looks (six with ``reference_rows``;
     univariate models also have the seasonal look and its AND-gate, acting where the stream's
     time-of-day profile is trusted) -> likelihood (scoring.py), onset, alert machine
     (alerts.py); learn from x_t unless it is at or above the clear level (the seasonal profile
     learns from every reading, test-then-train, residuals Huber-clipped)
  5. step the GRU with x_t -> h_t and the prediction for t+1, stored for the next reading

A batch is split into waves so that a stream that appears several times is stepped in order;
batched and one-at-a-time processing give identical results. Two implementations of steps 1-4,
checked equal by the tests: ``_wave`` on numpy columns, and kernel.py one reading at a time
(compiled with Cython at install: every wave then takes it, with one GRU call per wave; as
plain Python it takes waves of at most ``SCALAR_WAVE`` readings).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from . import alerts, kernel, scoring
from .alerts import AlertSettings
from .scoring import (DAY, SEAS_CLIP, SEAS_DAYS, SEAS_DT_RATE, SEAS_MEMORY, SEAS_MIN_DAYS, SEAS_PHI, SEAS_SPAN,
                      SEAS_ZMAX)
from .state import StateStore


# where kernel.py leaves each look's statistic in its per-reading outputs
_SCALAR_OUT = {"instant": kernel.O_SCORE, "smoothed": kernel.O_SMOOTHED, "level": kernel.O_LEVEL,
               "spread": kernel.O_SPREAD, "stuck": kernel.O_STUCK, scoring.REFERENCE: kernel.O_REF,
               scoring.SEASONAL: kernel.O_SEAS}
SCALAR_WAVE = 4  # waves of at most this many readings take the plain-Python path (measured)


@dataclass(frozen=True)
class DetectorSettings:
    threshold: float | None = None  # likelihood threshold; None = the model's calibrated one
    alerts: AlertSettings = field(default_factory=AlertSettings)
    max_streams: int = 10_000  # live streams kept; least recently seen evicted beyond
    warmup: int | None = None  # readings before scores count; None = the model's
    settle: int = 16  # readings after a hidden-state reset before scores count again
    max_gap_s: float | None = None  # a longer silence resets the stream's hidden state
    adapt: float | None = None  # EW rate of normalisation after warm-up (stream models); None = model's
    min_std: float = 1e-6  # floor on a stream's std (absolute) ...
    min_rel_std: float = 1e-3  # ... and relative to |mean|
    repeat_memory: float = 1000.0  # readings a stream's own statistics remember (stuck, level, spread)
    relearn_after: int = 256  # readings a stream may stay above the clear level before its normal
    #                           statistics learn again (accepts a genuine change of regime)
    fast_window: float = 128.0  # readings in the short EW window of the level and spread looks
    onset_ratio: float = 2.0  # a look's surprise must exceed this multiple of its last onset's
    #                           (decaying) surprise to be an onset again (see Detector._wave)
    onset_rearm: int = 225  # a look quiet (surprise < onset_quiet) for this many scored readings in a
    onset_quiet: float = 1.5  # row has ended its episode: its onset reference goes back to 0 (0: never)
    onset_memory: float = 5000.0  # scored readings over which a stream's rates of onsets are remembered
    onset_weight: float = 0.99  # weight of the stream's own onset rate against the model's tail (0..1)
    range_surprise: float = 100.0  # onset surprise per unit of excess beyond the stream's range (0: off)
    reference_rows: int = 0  # > 0: the reference look, against the stream's first reference_rows
    #                          readings (a known-good start; frozen after). 0: off (five looks)
    reference_window: float = 8.0  # readings in the reference look's short EW mean
    reference_drift: float = 0.0  # > 0: the reference look allows each feature to drift on at this
    #                               multiple of its least-squares slope over the reference rows:
    #                               s_eff = sqrt(s^2 + (reference_drift * b * (n - reference_rows))^2)
    reference_peak: float = 0.0  # > 0: after the reference froze, a feature counts only while its z
    #                              is at least this fraction of its peak z (fading over repeat_memory):
    #                              a change that relaxed to a small part of its excursion is its end
    seasonal: bool = True  # the seasonal (time-of-day) look and its AND-gate, univariate models only
    #                        (no effect on F > 1); it acts only where the stream's profile is trusted
    seasonal_trust: float = 0.5  # trusted while EW var(profile residual) / EW var(x - day-scale level)
    #                              is below this (and that day type has >= 3 completed days), in (0, 1]
    day_offset_s: float = 0.0  # seconds added to timestamps before the time of day and the weekday
    #                            are taken (local time for a UTC stream: e.g. 3600 for CET)


def _weekend(day: np.ndarray) -> np.ndarray:
    """1.0 where day number ``day`` (days since 1970-01-01, a Thursday) is a Saturday or Sunday."""
    w = day + 3.0
    return (w - 7.0 * np.floor(w / 7.0) >= 5.0).astype(np.float64)


@dataclass
class Batch:
    """Readings in arrival order: stream ids, epoch-second timestamps, raw values [B, F]."""

    streams: list[str]
    ts: np.ndarray  # float64[B]
    x: np.ndarray  # float64[B, F] in the model's feature order, raw units (NaN = missing)

    def __len__(self) -> int:
        return len(self.streams)


@dataclass(frozen=True)
class Reading:
    stream: str
    ts: float
    values: tuple[float, ...]


def batch_from_readings(readings: list[Reading], n_features: int) -> Batch:
    x = np.full((len(readings), n_features), np.nan)
    for i, r in enumerate(readings):
        if len(r.values) == n_features:
            x[i] = r.values
    return Batch([r.stream for r in readings], np.array([r.ts for r in readings], np.float64), x)


@dataclass
class Event:
    kind: str  # raised | update | cleared
    stream: str
    alert_id: str
    ts: float
    score: float
    likelihood: float
    threshold: float
    features: tuple[str, ...]
    values: tuple[float, ...]  # what was measured (raw units)
    expected: tuple[float, ...]  # the model's prediction (raw units)
    sigma: tuple[float, ...]  # predicted std (raw units): expected +- k sigma is the normal band
    contributions: tuple[float, ...]  # per-feature share of the score (sums to score)
    started: float  # timestamp the alert was raised
    reason: str = ""  # the look that fired: instant | smoothed | level | spread | stuck | reference | seasonal
    position: int = 0  # index of the reading in its batch
    feature: int = -1  # index of the feature that look blames (-1: the largest contribution)

    @property
    def top_feature(self) -> str:
        return self.features[self._top()]

    def _top(self) -> int:
        return self.feature if self.feature >= 0 else int(np.argmax(self.contributions))

    def describe(self) -> str:
        i = self._top()
        return (f"{self.kind:7s} {self.alert_id}: {self.features[i]}={self.values[i]:.6g} "
                f"expected {self.expected[i]:.6g} ± {2 * self.sigma[i]:.3g} "
                + (f"[{self.reason}] " if self.kind != "cleared" else "")
                + f"(score {self.score:.3g}, likelihood {self.likelihood:.6f})")

    def to_dict(self) -> dict:
        return {
            "event": self.kind, "stream": self.stream, "alert_id": self.alert_id, "ts": self.ts,
            "started": self.started, "score": self.score, "likelihood": self.likelihood,
            "threshold": self.threshold, "reason": self.reason, "top_feature": self.top_feature,
            "value": dict(zip(self.features, self.values)),
            "expected": dict(zip(self.features, self.expected)),
            "sigma": dict(zip(self.features, self.sigma)),
            "contributions": dict(zip(self.features, self.contributions)),
        }


_BLANK: dict = {}  # (B, F) -> blank (block, accepted) arrays that Result copies, for B <= 64


class Result:
    """Per-reading outputs, aligned with the batch. Rejected readings: accepted False, NaN scores.

    The floats live in one block [B, 3 + 2F] (score | likelihood | onset | expected | sigma) and
    the flags in one int8 block [B, 2] (alert | event); the named outputs are views of them, made
    when asked for (building them all costs more than the rest of a batch of one).
    """

    __slots__ = ("block", "flags", "accepted", "reject_reason", "events", "threshold", "looks", "_F")

    def __init__(self, B: int, F: int, threshold: float):
        blank = _BLANK.get((B, F))
        if blank is None:  # np.full / np.ones cost ~1.5 µs of Python; a copy of a blank ~0.2 µs
            blank = (np.full((B, 3 + 2 * F), np.nan), np.ones(B, bool))
            if B <= 64:
                _BLANK[(B, F)] = blank
        self.block = blank[0].copy()  # float64[B, 3 + 2F]
        self.flags = np.zeros((B, 2), np.int8)  # int8[B, 2]
        self.accepted = blank[1].copy()  # bool[B]
        self.reject_reason: list = [None] * B  # str | None per reading
        self.events: list[Event] = []
        self.threshold = threshold
        self.looks: dict | None = None  # look name -> float64[B], only when Detector.record_looks is set
        self._F = F

    score = property(lambda self: self.block[:, 0], doc="float64[B]")
    likelihood = property(lambda self: self.block[:, 1], doc="float64[B] calibrated: 1 - tail probability")
    onset = property(lambda self: self.block[:, 2],
                     doc="float64[B] likelihood of the rise in surprise over the stream's recent peak")
    expected = property(lambda self: self.block[:, 3 : 3 + self._F], doc="float64[B, F] predicted value, raw units")
    sigma = property(lambda self: self.block[:, 3 + self._F :], doc="float64[B, F] predicted std, raw units")
    alert = property(lambda self: self.flags[:, 0].view(bool), doc="bool[B] an alert is active after this reading")
    event = property(lambda self: self.flags[:, 1], doc="int8[B] alerts.NONE / RAISED / UPDATE / CLEARED")


class Detector:
    def __init__(self, bundle, backend=None, settings: DetectorSettings | None = None, tables: dict | None = None):
        """``tables``: look name -> tail table {x, log10_sf, tail_scale} replacing the bundle's
        calibration table of that look (e.g. fitted on a recording's own normal start, see
        ``train.calibrate.fit_tables_on``); looks not named keep the bundle's. None: the bundle's tables."""
        if backend is None:
            from .backends.numpy_gru import NumpyGRU

            backend = NumpyGRU(bundle.weights)
        self.bundle, self.backend = bundle, backend
        self.settings = s = settings or DetectorSettings()
        cal = bundle.calibration
        self.threshold = float(s.threshold if s.threshold is not None else cal.threshold)
        p_thr = max(1.0 - self.threshold, 1e-300)
        self.clear_level = scoring.threshold_for_rate(min(p_thr * s.alerts.clear_factor, 0.5))
        self.warmup = int(s.warmup if s.warmup is not None else cal.warmup)
        self.adapt = float(s.adapt if s.adapt is not None else bundle.manifest.get("normalisation", {}).get("adapt", 0.0))
        self.cal = cal
        self.stream_norm = bundle.norm_mode == "stream"
        self.repeat_memory = 1.0 / s.repeat_memory
        self.fast_rate = 1.0 / s.fast_window
        self.onset_decay = 1.0 - self.repeat_memory  # the onset's references fade over the same memory
        self.onset_ratio = float(s.onset_ratio)
        if s.onset_memory < 1.0 or not 0.0 <= s.onset_weight < 1.0 or s.range_surprise < 0.0:
            raise ValueError("onset_memory must be >= 1, onset_weight in [0, 1) and range_surprise >= 0")
        if s.onset_rearm < 0 or s.onset_quiet < 0.0:
            raise ValueError("onset_rearm and onset_quiet must be >= 0")
        self.onset_rearm = int(s.onset_rearm)
        self.onset_quiet = float(s.onset_quiet)
        self.onset_rate = 1.0 / s.onset_memory
        self.onset_weight = float(s.onset_weight)
        self.range_surprise = float(s.range_surprise)
        if s.reference_rows < 0 or s.reference_window < 1.0:
            raise ValueError("reference_rows must be >= 0 and reference_window >= 1")
        if s.reference_drift < 0.0 or not 0.0 <= s.reference_peak < 1.0:
            raise ValueError("reference_drift must be >= 0 and reference_peak in [0, 1)")
        self.reference_drift = float(s.reference_drift)
        self.reference_peak = float(s.reference_peak)
        self.reference_rows = int(s.reference_rows)
        self.reference_rate = 1.0 / s.reference_window
        if not 0.0 < s.seasonal_trust <= 1.0 or not math.isfinite(s.day_offset_s):
            raise ValueError("seasonal_trust must be in (0, 1] and day_offset_s a finite number of seconds")
        self.features = bundle.features
        self.F = bundle.n_features
        self._log10_F = math.log10(self.F)
        self.state = StateStore(self.F, bundle.hidden, capacity=s.max_streams)
        L = self.state.layout
        self.seasonal = bool(s.seasonal) and L.has_seasonal  # univariate models only
        self.seasonal_trust = float(s.seasonal_trust)
        self.day_offset = float(s.day_offset_s)
        self.looks = (*scoring.LOOKS, *((scoring.REFERENCE,) if self.reference_rows else ()),
                      *((scoring.SEASONAL,) if self.seasonal else ()))  # the looks in use
        # each look's onset_ref column (scoring.ALL_LOOKS order)
        self._onset_cols = np.array([L.onset_ref.start + scoring.ALL_LOOKS.index(n) for n in self.looks])
        self._quiet_cols = np.array([L.onset_quiet.start + scoring.ALL_LOOKS.index(n) for n in self.looks])
        if bundle.norm_mode == "fixed":  # new streams start warm with the model's statistics
            self.state.set_initial(L.norm_mean, bundle.norm_mean)
            self.state.set_initial(L.norm_var, bundle.norm_std**2)
        # the batch-of-one path (kernel.py) and its buffers: outputs, per-feature outputs, GRU input
        self._out = np.zeros(kernel.N_OUT) if kernel.COMPILED else [0.0] * kernel.N_OUT
        self._work = np.zeros(self.F * kernel.W) if kernel.COMPILED else [0.0] * (self.F * kernel.W)
        self._xin = np.zeros((1, self.F), np.float32)  # [1, F]
        self.set_tables(tables or {})
        # waves larger than this take the numpy path (_wave); smaller ones the scalar path, which is
        # faster at every size when compiled and up to a few readings when not (measured)
        self.vector_from = 1 << 30 if kernel.COMPILED else SCALAR_WAVE
        self.record_looks = False  # calibration/diagnostics: keep each look's statistic per reading
        self.rejects: Counter[str] = Counter()
        self.accepted = 0

    # -- public ------------------------------------------------------------------------------
    def set_tables(self, tables: dict) -> None:
        """Score with these calibration tables from now on (look name -> {x, log10_sf,
        tail_scale}; looks not named: the bundle's). Both paths (numpy waves and the scalar path)
        use them; the streams' state is kept (a fresh Detector starts from a clean one)."""
        unknown = set(tables) - set(scoring.TABLE_LOOKS)
        if unknown:
            raise ValueError(f"no calibration table for look(s) {sorted(unknown)}: tables are {scoring.TABLE_LOOKS}")
        merged = {**self.cal.tables, **tables}
        self.tables = {name: {k: merged[name][k] for k in ("x", "log10_sf", "tail_scale")}
                       for name in scoring.TABLE_LOOKS}  # the raw tables in use
        self._tables = {name: scoring.prepare_table(t) for name, t in self.tables.items()}
        self._scalar = kernel.OneReading(self, self.state.layout, [self._tables[n] for n in scoring.TABLE_LOOKS],
                                         self._out, self._work, self._xin[0])

    def process(self, batch: Batch) -> Result:
        B, F = len(batch), self.F
        res = Result(B, F, self.threshold)
        vals = res.block
        if self.record_looks:
            res.looks = {name: np.full(B, np.nan) for name in (*self.looks, "log10p")}
        if B == 1:  # the common case at low load: the scalar path, no array maths until the GRU
            x1 = np.asarray(batch.x, dtype=np.float64).reshape(F)
            values = x1.tolist()
            t = float(np.asarray(batch.ts).reshape(1)[0])
            if not (math.isfinite(t) and all(map(math.isfinite, values))):
                self._reject(res, 0, "missing_value" if any(v != v for v in values) else "non_finite")
            elif self._one(0, batch.streams[0], t, x1, res, vals[0]):
                self.accepted += 1
            return res
        x = np.asarray(batch.x, dtype=np.float64).reshape(B, F)
        ts = np.asarray(batch.ts, dtype=np.float64).reshape(B)
        ok = np.isfinite(x).all(axis=1) & np.isfinite(ts)
        if not ok.all():
            for i in np.flatnonzero(~ok):
                self._reject(res, i, "missing_value" if np.isnan(x[i]).any() else "non_finite")
        # Waves: the k-th occurrence of each stream in this batch goes into wave k.
        streams = batch.streams
        if len(set(streams)) == B:
            if ok.all() and B > self.vector_from:  # the common case: one wave, the whole batch as it is
                self._wave(np.arange(B), streams, ts, x, res)
                self.accepted += int(res.accepted.sum())  # _wave may reject out-of-order readings
                return res
            waves = [np.arange(B)]
        else:
            seen: dict[str, int] = {}
            occurrence = []
            for sid in streams:
                k = seen.get(sid, 0)
                occurrence.append(k)
                seen[sid] = k + 1
            occ = np.array(occurrence)
            waves = np.split(np.argsort(occ, kind="stable"), np.cumsum(np.bincount(occ))[:-1])
        for idx in waves:
            idx = idx[res.accepted[idx]]
            # the whole batch as one wave (distinct streams, all valid): its streams as they are
            wave_streams = streams if idx.size == B else [streams[i] for i in idx.tolist()]
            if idx.size > self.vector_from:
                self._wave(idx, wave_streams, ts[idx], x[idx], res)
            elif kernel.COMPILED and idx.size > 1:  # the scalar maths in C over the wave, one GRU call
                self._scalar_wave(idx, wave_streams, ts[idx], x[idx], res, vals)
            else:  # a few readings: plain Python per reading beats numpy's per-call overhead
                for i in idx.tolist():
                    self._one(i, streams[i], float(ts[i]), x[i], res, vals[i])
        if len(res.events) > 1:  # waves append out of arrival order
            res.events.sort(key=lambda e: e.position)
        self.accepted += int(res.accepted.sum())
        return res

    # -- internals -----------------------------------------------------------------------------
    def _reject(self, res: Result, i: int, reason: str) -> None:
        res.accepted[i] = False
        res.reject_reason[i] = reason
        self.rejects[reason] += 1

    def _wave(self, idx, streams, ts, x, res: Result) -> None:
        """One reading per stream: idx int[b] positions in the batch, x float64[b, F]."""
        st, L, F, s = self.state, self.state.layout, self.F, self.settings
        rows = st.rows_for(streams)
        S = st.num[rows]  # [b, K] gathered copy, written back at the end

        stale = ts < S[:, L.last_ts]
        if stale.any():  # older than what the stream already has: reject, do not touch its state
            for j in np.flatnonzero(stale):
                self._reject(res, int(idx[j]), "out_of_order")
            keep = ~stale
            idx, ts, x, rows, S = idx[keep], ts[keep], x[keep], rows[keep], S[keep]
            streams = [sid for sid, k in zip(streams, keep) if k]
            if not idx.size:
                return

        # 2. gap -> reset hidden state, hold scores back while it settles
        if s.max_gap_s is not None:
            gap = (ts - S[:, L.last_ts]) > s.max_gap_s
            gap &= S[:, L.count] > 0
            if gap.any():
                st.h[rows[gap]] = 0.0
                S[gap, L.since_reset] = 0
                S[gap, L.smoothed] = 0.0

        # 3. normalisation statistics (Welford while warming up)
        count = S[:, L.count] + 1  # [b] readings including this one
        warming = count <= self.warmup
        mean, var = S[:, L.norm_mean], S[:, L.norm_var]  # views [b, F]
        if self.stream_norm and warming.any():
            d = x - mean
            w = warming[:, None]
            new_mean = mean + d / count[:, None]
            # running population variance: var_n = var_{n-1} + (d * (x - mean_n) - var_{n-1}) / n
            new_var = var + (d * (x - new_mean) - var) / count[:, None]
            mean[:] = np.where(w, new_mean, mean)
            var[:] = np.where(w, new_var, var)
        std = np.sqrt(np.maximum(var, np.maximum(s.min_std, s.min_rel_std * np.abs(mean)) ** 2))  # [b, F]
        xn = (x - mean) / std  # [b, F] normalised reading
        clip = self.bundle.input_clip
        xc = np.clip(xn, -clip, clip)  # what the GRU sees

        # 4. score against the prediction made at t-1, the four looks, likelihood, alerts
        pred = S[:, L.pred]  # [b, 2F]
        z, sigma_n = scoring.residuals(xc, pred, self.bundle.logvar_min, self.bundle.logvar_max)
        score, contrib = scoring.score_from_z(z)
        since = S[:, L.since_reset] + 1
        scored = (count > self.warmup) & (since > s.settle)
        # the steady state (every stream warm, scored, not just reset) skips the masked updates
        steady = not warming.any() and bool(scored.all())
        a = self.cal.smoothing
        smoothed = S[:, L.smoothed] + a * (score - S[:, L.smoothed])
        if not steady:
            fresh = since <= 1
            smoothed[fresh] = score[fresh]
        run = np.where(x == S[:, L.last_x], S[:, L.run] + 1, 0.0)  # [b, F] exact repeats
        q = (S[:, L.reps] + 1.0) / (S[:, L.trials] + 2.0)[:, None]  # [b, F] repeat rate (Laplace)

        # level / spread: a short EW window of the raw values against the stream's normal, each
        # standardised by the stream's own history of that statistic (so a random walk and a
        # clean sine are both judged against what is usual for them)
        af = self.fast_rate
        fm_old = S[:, L.fast_mean] if steady else np.where((count == 1)[:, None], x, S[:, L.fast_mean])
        fast_mean = fm_old + af * (x - fm_old)  # [b, F]
        fast_var = (1.0 - af) * (S[:, L.fast_var] + af * (x - fm_old) ** 2)  # [b, F]
        d = (fast_mean - mean) / std  # [b, F] level deviation
        v = np.log(fast_var / std**2 + 1e-4)  # [b, F] log spread ratio
        lm, lv, sm, sv = S[:, L.lvl_mean], S[:, L.lvl_var], S[:, L.spr_mean], S[:, L.spr_var]  # views
        level_f = np.abs(d - lm) / np.sqrt(lv + 1e-4)  # [b, F]
        spread_f = np.abs(v - sm) / np.sqrt(sv + 1e-2)  # [b, F]
        stuck_f = run * np.log10(q)  # [b, F] log10 P(a run this long)
        if F == 1:  # a reduction over one column is just the column (and ~1 µs cheaper)
            looks = {"instant": score, "smoothed": smoothed, "level": level_f[:, 0], "spread": spread_f[:, 0],
                     "stuck": stuck_f[:, 0]}
        else:
            looks = {"instant": score, "smoothed": smoothed, "level": level_f.max(axis=1),
                     "spread": spread_f.max(axis=1), "stuck": stuck_f.min(axis=1)}
        if self.reference_rows:
            # reference: a short EW mean r of the raw values against the stream's first
            # reference_rows readings (mean of x, std of r; Welford, this reading included, frozen
            # after), z = |r - m| / s, p = F * 2 Phi(-z) over the worst feature. It stays up for as
            # long as a change of regime lasts, where the GRU and the level look follow it.
            ar = self.reference_rate
            rf_old = np.where((count == 1)[:, None], x, S[:, L.ref_fast])
            ref_fast = rf_old + ar * (x - rf_old)  # [b, F]
            inref = (count <= self.reference_rows)[:, None]
            k = np.minimum(count, self.reference_rows)[:, None]
            rm, rfm, rfv = S[:, L.ref_mean], S[:, L.ref_fmean], S[:, L.ref_fm2]  # views
            dx = x - rm
            new_rm = rm + dx / k
            d2 = ref_fast - rfm
            new_rfm = rfm + d2 / k
            new_rfv = rfv + d2 * (ref_fast - new_rfm)
            rm[:] = np.where(inref, new_rm, rm)
            rfm[:] = np.where(inref, new_rfm, rfm)
            rfv[:] = np.where(inref, new_rfv, rfv)
            S[:, L.ref_fast] = ref_fast
            rfloor = np.maximum(s.min_std, s.min_rel_std * np.abs(rm))
            ref_var = np.maximum(rfv / np.maximum(k - 1.0, 1.0), rfloor * rfloor)
            if self.reference_drift:
                # drift allowance: the least-squares slope b of x on the reading index over the
                # reference rows (Welford co-moment C; sum of squares of 1..k is k(k^2-1)/12); after
                # them, the deviation may have grown by reference_drift * |b| per reading
                rtx = S[:, L.ref_tx]  # view
                rtx[:] = np.where(inref, rtx + 0.5 * k * (x - rm), rtx)
                slope = rtx / np.maximum(k * (k * k - 1.0) / 12.0, 1.0)
                grown = self.reference_drift * slope * np.maximum(count - self.reference_rows, 0.0)[:, None]
                ref_var = ref_var + grown * grown
            ref_z = np.abs(ref_fast - rm) / np.sqrt(ref_var)  # [b, F]
            if self.reference_peak:
                # peak gate (after the reference froze): a feature counts only while its z is at
                # least reference_peak times its fading peak z; a fault that ended leaves a residue
                # much smaller than its excursion (the rig does not return exactly to its start)
                rpk = S[:, L.ref_peak]  # view
                peak = np.where(inref, 0.0, np.maximum(ref_z, rpk * (1.0 - self.repeat_memory)))
                rpk[:] = peak
                ref_z = np.where(ref_z >= self.reference_peak * peak, ref_z, 0.0)
            ref_lp = scoring.gauss_tail_log10(ref_z)  # [b, F]
            looks[scoring.REFERENCE] = np.minimum(ref_lp.min(axis=1) + self._log10_F, 0.0)
        if self.seasonal:
            looks[scoring.SEASONAL], gate, trusted = self._seasonal_wave(S, ts, x[:, 0], count)
        lps = scoring.look_log10p(looks, self._tables)  # [n, b] each look's own log10 p
        if self.seasonal:
            # the AND-gate where the profile is trusted (gate = -inf elsewhere: no change), and the
            # live Bonferroni: the seasonal look counts as a look only on trusted rows
            np.maximum(lps[0], gate, out=lps[0])
            np.maximum(lps[1], gate, out=lps[1])
            n = len(self.looks)
            bonf = np.where(trusted, math.log10(n), math.log10(n - 1))  # [b]
            log10p = np.minimum(lps.min(axis=0) + bonf, 0.0)
            surprise = np.maximum(-(lps + bonf), 0.0).T  # [b, n]
        else:
            log10p = scoring.combine_log10p(lps)
            surprise = scoring.look_surprise(lps).T  # [b, n]
        lik = scoring.likelihood_from_log10p(log10p)
        # onset, per look: the look's surprise s_k = -log10(n p_k) is an onset when it exceeds
        # onset_ratio times the surprise of that look's last onset (which fades with onset_decay);
        # the onset output is the largest such s_k. High where an anomaly starts, 0 while the same
        # deviation persists, and a statistic that climbs for a while (stuck run, level drift)
        # marks its onset at each doubling, instead of only by its per-reading increment.
        if not steady:
            unscored = ~scored
            lik[unscored] = 0.0
            surprise[unscored] = 0.0
        onset_cols = self._onset_cols  # the columns of the looks in use
        ref = S[:, onset_cols]  # [b, n]
        fresh_onset = surprise > self.onset_ratio * ref
        top = np.where(fresh_onset, surprise, 0.0).max(axis=1)
        ref = np.where(fresh_onset, surprise, ref * self.onset_decay)
        if self.onset_rearm:
            # re-arm: a look whose surprise stayed below onset_quiet for onset_rearm scored readings
            # in a row has ended its episode; its next onset need not beat the old one's faded peak
            qcols = self._quiet_cols  # the same looks' quiet counters
            quiet = np.where(surprise < self.onset_quiet, S[:, qcols] + 1.0, 0.0)
            if not steady:
                quiet = np.where(scored[:, None], quiet, S[:, qcols])
            over = quiet >= self.onset_rearm
            S[:, qcols] = np.where(over, 0.0, quiet)
            ref = np.where(over, 0.0, ref)
        S[:, onset_cols] = ref
        # per-stream calibration: c_j, the stream's EW rate (per scored reading, memory
        # onset_memory) of onsets with top >= ONSET_LEVELS[j]; an onset is shown as
        # u = min(top + 1, -log10(w c + (1 - w) 10^-top)), c the rate at the highest level <= top
        # (1 below the first level): about as rare as it is on this stream, mixed with the
        # model's own tail, so a noisy real stream needs a larger onset to stand out and a quiet
        # one keeps (at most 1 more than) its own.
        rates = S[:, L.onset_rates]  # view [b, N_LEVELS]
        lvl = np.searchsorted(scoring.ONSET_LEVELS, top, side="right") - 1  # [b] highest level <= top
        c = np.where(lvl >= 0, rates[np.arange(len(idx)), np.maximum(lvl, 0)], 1.0)
        mixed = self.onset_weight * c + (1.0 - self.onset_weight) * 10.0 ** -top
        with np.errstate(divide="ignore"):
            u = np.where(top > 0.0, np.where(mixed > 0.0, np.minimum(top + 1.0, -np.log10(mixed)), top + 1.0), 0.0)
        # range look (HTM's "spatial anomaly", graded): how far the reading is outside the range
        # of raw values the stream has had, e = max(x - hi, lo - x, 0) / (hi - lo), worst feature,
        # shown as range_surprise * e (100: a reading 3 % beyond the range counts as surprise 3)
        lo, hi = S[:, L.range_lo], S[:, L.range_hi]  # views [b, F]
        width = hi - lo
        with np.errstate(invalid="ignore", divide="ignore"):  # a new stream: lo = +inf, hi = -inf
            e = np.where(width > 0.0, np.maximum(np.maximum(x - hi, lo - x), 0.0) / width, 0.0).max(axis=1)
        shown = np.maximum(u, self.range_surprise * e)
        if not steady:
            shown[~scored] = 0.0
        onset = scoring.likelihood_from_log10p(-shown)
        lo[:] = np.minimum(lo, x)
        hi[:] = np.maximum(hi, x)
        hit = top[:, None] >= scoring.ONSET_LEVELS  # [b, N_LEVELS]; unscored readings have top 0
        if steady:
            rates += (hit - rates) * self.onset_rate
        else:
            rates[:] = np.where(scored[:, None], rates + (hit - rates) * self.onset_rate, rates)
        if res.looks is not None:
            for name, values in (*looks.items(), ("log10p", log10p)):
                res.looks[name][idx] = np.where(scored, values, np.nan)
        over = scored & (lik >= self.threshold)
        high = lik >= self.clear_level
        if high.any() or S[:, L.active : L.cooldown + 1].any():  # active, hist, below, cooldown
            codes = alerts.step(S, L, s.alerts, over, high, score, ts)
        else:  # nothing to do for the alert machine: no alert, no cooldown, nothing over
            codes = np.zeros(len(idx), np.int8)

        expected = pred[:, :F] * std + mean  # [b, F] raw units
        sigma = sigma_n * std

        # 5. step the GRU, store h_t and the prediction for t+1
        new_pred, h_next = self.backend.step(xc.astype(np.float32), st.h[rows])
        st.h[rows] = h_next
        S[:, L.pred] = new_pred

        # learn the stream's normal behaviour: not from readings at or above the clear level ...
        # ... unless it has stayed that way for relearn_after readings: then accept the new normal
        any_high = bool(high.any())
        if any_high:
            held = np.where(high, S[:, L.held] + 1, 0.0)
            S[:, L.held] = held
            learn = ~high | (held > s.relearn_after)
        else:
            S[:, L.held] = 0.0
            learn = np.ones(len(idx), bool)
        steady &= not any_high  # ... and every stream learning
        if self.stream_norm and self.adapt > 0:
            dx = x - mean
            if steady:
                mean += self.adapt * dx
                var += self.adapt * (dx * dx - var)
            else:
                lw = (learn & ~warming)[:, None]
                mean[:] = np.where(lw, mean + self.adapt * dx, mean)
                var[:] = np.where(lw, var + self.adapt * (dx * dx - var), var)
        # the stream's own statistics of d and v: running mean while young, then EW (memory 1/M)
        if steady:
            nstat = S[:, L.nstat] + 1.0
            rate = np.maximum(1.0 / nstat, self.repeat_memory)[:, None]
        else:
            stat = learn & (count > self.warmup // 2)
            nstat = S[:, L.nstat] + stat
            rate = np.where(stat, np.maximum(1.0 / np.maximum(nstat, 1.0), self.repeat_memory), 0.0)[:, None]
        for m_, v_, val in ((lm, lv, d), (sm, sv, v)):
            delta = val - m_
            m_ += rate * delta
            v_ += rate * (delta * (val - m_) - v_)
        S[:, L.nstat] = nstat
        S[:, L.fast_mean] = fast_mean
        S[:, L.fast_var] = fast_var
        if steady:
            decay = 1.0 - self.repeat_memory
            S[:, L.reps] = S[:, L.reps] * decay + (run > 0)
            S[:, L.trials] = S[:, L.trials] * decay + 1.0
        else:
            decay = np.where(warming, 1.0, 1.0 - self.repeat_memory)[:, None]
            repeat = (run > 0) & (count > 1)[:, None]
            S[:, L.reps] = np.where(learn[:, None], S[:, L.reps] * decay + repeat, S[:, L.reps])
            S[:, L.trials] = np.where(learn & (count > 1), S[:, L.trials] * decay[:, 0] + 1.0, S[:, L.trials])
        S[:, L.run] = run
        S[:, L.last_x] = x
        S[:, L.count] = count
        S[:, L.since_reset] = since
        S[:, L.last_ts] = ts
        S[:, L.smoothed] = smoothed
        st.num[rows] = S

        out = slice(None) if len(idx) == len(res.score) else idx  # the whole batch: plain slice writes
        res.score[out] = score if steady else np.where(scored, score, np.nan)
        res.likelihood[out] = lik
        res.onset[out] = onset
        res.alert[out] = S[:, L.active] > 0
        res.event[out] = codes
        res.expected[out] = expected
        res.sigma[out] = sigma
        for j in np.flatnonzero(codes) if codes.any() else ():
            reason = scoring.which_look(looks, self._tables, int(j), float(gate[j]) if self.seasonal else -math.inf)
            per_feature = {"level": level_f[j], "spread": spread_f[j], "stuck": -stuck_f[j],
                           scoring.REFERENCE: ref_z[j] if self.reference_rows else None}.get(reason, contrib[j])
            res.events.append(Event(
                kind=alerts.EVENT_NAMES[int(codes[j])], stream=streams[j],
                alert_id=f"{streams[j]}#{int(S[j, L.seq])}", ts=float(ts[j]),
                score=float(score[j]), likelihood=float(lik[j]), threshold=self.threshold,
                features=self.features, values=tuple(map(float, x[j])),
                expected=tuple(map(float, expected[j])), sigma=tuple(map(float, sigma[j])),
                contributions=tuple(map(float, contrib[j])), started=float(S[j, L.start_ts]),
                reason=reason, position=int(idx[j]), feature=int(np.argmax(per_feature)),
            ))

    def _seasonal_wave(self, S, ts, x, count):
        """The seasonal look for a wave of univariate readings (x float64[b]), test-then-train;
        updates the streams' profile columns of S in place. Returns (log10 p of the look: 0 where
        not trusted, the AND-gate's log10 2 Phi(-|z|): -inf where not trusted, trusted bool[b]).

        Per reading, with P the readings per day (86400 / EW sampling interval; 288 until known):
          day type d = weekend of (ts + day_offset_s); phase q = time of day * K / 86400 - 0.5,
          bucket i = floor(q) (wrapping), f = q - i; the profile of day type d (the other day
          type's while d's has no value at i, i + 1) predicts (1 - f) m_i + f m_{i+1}
          r = x - prediction; s^2 = max((1 - f) v_i + f v_{i+1}, 0.02^2 vg); z = clip(r / s, +-30)
          zbar = EW mean of z (rate 1 / max(P / 8, 4)); u = zbar / sd(zbar) (EW over 4 days)
          trusted: completed days of type d >= 3 and R = vr / vg < seasonal_trust, vr and vg the
          EW variances (over 4 days, winsorised at 4 s) of r and of x - level (EW over 1 day)
          p = 2 Phi(-|u|); learn: m and v of the two buckets, weights (1 - f) and f, rate
          max(1 / (completed days + 1), 1 / 8), the residual clipped at +-4 s.
        """
        L, K = self.state.layout, self.state.layout.SEAS_K
        b = len(x)
        n = np.arange(b)
        prev = count > 1  # the stream has a previous reading (its ts is last_ts)
        step = ts - S[:, L.last_ts]
        dt0 = S[:, L.seas_dt]
        dt = np.where(prev & (step > 0), np.where(dt0 == 0.0, step, dt0 + SEAS_DT_RATE * (step - dt0)), dt0)
        S[:, L.seas_dt] = dt
        P = np.where(dt > 0.0, DAY / np.where(dt > 0.0, dt, 1.0), DAY / 300.0)  # readings per day
        lam_s = 1.0 / np.maximum(SEAS_MEMORY * P, 2.0)
        lam_b = 1.0 / np.maximum(SEAS_SPAN * P, 4.0)
        lam_l = 1.0 / np.maximum(P, 2.0)
        tt = ts + self.day_offset
        day = np.floor(tt / DAY)
        d = _weekend(day)  # [b] 0.0 weekday, 1.0 weekend
        last = S[:, L.seas_day]
        new_day = prev & (day != last)
        lt = _weekend(last)
        S[:, L.seas_cyc0] += new_day & (lt == 0.0)
        S[:, L.seas_cyc1] += new_day & (lt == 1.0)
        S[:, L.seas_day] = day
        cyc = np.where(d == 1.0, S[:, L.seas_cyc1], S[:, L.seas_cyc0])
        q = (tt - day * DAY) / DAY * K - 0.5
        i = np.floor(q)
        f = q - i
        i0 = np.where(i < 0.0, i + K, i).astype(np.intp)
        i1 = np.where(i0 + 1 >= K, 0, i0 + 1)
        m0 = L.seas_m.start
        own = m0 + (d * K).astype(np.intp)
        other = m0 + ((1.0 - d) * K).astype(np.intp)
        b0, b1 = S[n, own + i0], S[n, own + i1]
        own_ok = np.isfinite(b0) & np.isfinite(b1)
        s0 = np.where(own_ok, b0, S[n, other + i0])
        s1 = np.where(own_ok, b1, S[n, other + i1])
        have = np.isfinite(s0) & np.isfinite(s1)
        lev = np.where(count == 1, x, S[:, L.seas_lev])
        eg = x - lev
        vg = S[:, L.seas_vg]
        lp = np.zeros(b)
        gate = np.full(b, -np.inf)
        trusted = np.zeros(b, bool)
        g = 1.0 - f
        a = np.maximum(1.0 / (cyc + 1.0), 1.0 / SEAS_DAYS)  # the profile's learning rate
        clipv = np.full(b, np.inf)
        if have.any():
            r = x - (g * s0 + f * s1)
            s2g = S[:, L.seas_s2]
            first = have & np.isnan(s2g)
            s2g = np.where(first, r * r, s2g)
            vr = np.where(first, r * r, S[:, L.seas_vr])
            v0c, v1c = L.seas_v.start + i0, L.seas_v.start + i1
            v0, v1 = S[n, v0c], S[n, v1c]
            v0 = np.where(have & ~np.isfinite(v0), s2g, v0)
            v1 = np.where(have & ~np.isfinite(v1), s2g, v1)
            vp = g * v0 + f * v1
            fl = SEAS_PHI * SEAS_PHI * vg + 1e-12 * (1.0 + lev * lev)
            s2 = np.maximum(vp, fl)
            with np.errstate(invalid="ignore"):
                z = np.clip(r / np.sqrt(s2), -SEAS_ZMAX, SEAS_ZMAX)
                zb = S[:, L.seas_zb]
                zb = zb + lam_b * (z - zb)
                sfl = lam_b / (2.0 - lam_b)  # the variance of an EW mean of iid unit z
                zb2 = S[:, L.seas_zb2]
                zb2 = np.where(have & np.isnan(zb2), sfl, zb2)
                u = zb / np.sqrt(np.maximum(zb2, sfl))
                R = np.where(vg > 0.0, vr / np.where(vg > 0.0, vg, 1.0), np.inf)
                trusted = have & (cyc >= SEAS_MIN_DAYS) & (R < self.seasonal_trust)
            if trusted.any():
                lp = np.where(trusted, scoring.gauss_tail_log10(np.abs(np.where(trusted, u, 0.0))), 0.0)
                gate = np.where(trusted, scoring.gauss_tail_log10(np.abs(np.where(trusted, z, 0.0))), -np.inf)
            with np.errstate(invalid="ignore"):
                r2 = np.minimum(r * r, SEAS_CLIP * SEAS_CLIP * s2)
                S[:, L.seas_s2] = np.where(have, s2g + lam_s * (r2 - s2g), s2g)
                S[n, v0c] = np.where(have, v0 + a * g * (r2 - v0), v0)
                S[n, v1c] = np.where(have, v1 + a * f * (r2 - v1), v1)
                S[:, L.seas_vr] = np.where(have, vr + lam_s * (r2 - vr), vr)
                S[:, L.seas_zb] = np.where(have, zb, S[:, L.seas_zb])
                S[:, L.seas_zb2] = np.where(
                    have, zb2 + lam_s * (np.minimum(zb * zb, SEAS_CLIP * SEAS_CLIP * np.maximum(zb2, sfl)) - zb2), zb2)
                clipv = np.where(have, SEAS_CLIP * np.sqrt(s2), np.inf)
        S[:, L.seas_vg] = vg + lam_s * (np.where(vg > 0.0, np.minimum(eg * eg, SEAS_CLIP * SEAS_CLIP * vg), eg * eg) - vg)
        S[:, L.seas_lev] = lev + lam_l * eg
        with np.errstate(invalid="ignore"):
            e = x - (g * b0 + f * b1)
            e = np.where(have, np.maximum(-clipv, np.minimum(clipv, e)), e)
            S[n, own + i0] = np.where(own_ok, b0 + a * g * e, np.where(np.isfinite(b0), b0, x))
            S[n, own + i1] = np.where(own_ok, b1 + a * f * e, np.where(np.isfinite(b1), b1, x))
        return lp, gate, trusted

    def _one(self, pos: int, sid: str, ts: float, x: np.ndarray, res: Result, block: np.ndarray) -> bool:
        """``_wave`` for one reading (x float64[F]) in plain floats: kernel.py does the maths,
        writing the reading's row of the Result block (score | likelihood | onset | expected | sigma)."""
        st, k = self.state, self._scalar
        row = st.row_for(sid)
        r = st.num[row] if kernel.COMPILED else st.num[row].tolist()  # a view (compiled) or a copy
        code = k.step(r, x if kernel.COMPILED else x.tolist(), ts, block)
        if code == kernel.STALE:
            self._reject(res, pos, "out_of_order")
            return False
        out = self._out
        if out[kernel.O_GAP]:
            st.h[row] = 0.0
        new_pred, h_next = self.backend.step(self._xin, st.h[row : row + 1])
        st.h[row] = h_next[0]
        if not kernel.COMPILED:
            st.num[row] = r
        st.num[row, self.state.layout.pred] = new_pred[0]
        if r[self.state.layout.active]:
            res.flags[pos, 0] = 1
        if res.looks is not None and out[kernel.O_SCORED]:
            self._record_looks(res, pos, out)
        if code:
            res.flags[pos, 1] = code
            res.events.append(self._scalar_event(code, pos, sid, ts, x, r, out, self._work))
        return True

    def _scalar_wave(self, idx, streams, ts, x, res: Result, block: np.ndarray) -> None:
        """A wave (distinct streams, x float64[b, F]) through the compiled scalar maths, then one
        GRU call for the wave. block: the Result block [B, 3 + 2F] the readings write into."""
        st, L, F, b = self.state, self.state.layout, self.F, len(idx)
        rows = st.rows_for(streams)  # intp[b]
        outs, works = np.empty((b, kernel.N_OUT)), np.empty((b, F * kernel.W))
        xin, codes = np.empty((b, F), np.float32), np.empty(b, np.int8)
        idx = np.asarray(idx, np.intp)
        self._scalar.step_wave(st.num, rows, x, ts, block, idx, outs, works, xin, codes)
        if (codes == kernel.STALE).any():  # rejected: no GRU step, state untouched
            keep = codes != kernel.STALE
            for j in np.flatnonzero(~keep):
                self._reject(res, int(idx[j]), "out_of_order")
            idx, rows, outs, works, xin, codes, ts, x = (a[keep] for a in (idx, rows, outs, works, xin, codes, ts, x))
            streams = [sid for sid, k in zip(streams, keep) if k]
        gap = outs[:, kernel.O_GAP] != 0.0
        if gap.any():
            st.h[rows[gap]] = 0.0
        new_pred, h_next = self.backend.step(xin, st.h[rows])
        st.h[rows] = h_next
        st.num[rows, L.pred] = new_pred
        res.alert[idx] = st.num[rows, L.active] > 0
        res.event[idx] = codes
        if res.looks is not None:
            for j in np.flatnonzero(outs[:, kernel.O_SCORED]):
                self._record_looks(res, int(idx[j]), outs[j])
        for j in np.flatnonzero(codes):
            res.events.append(self._scalar_event(int(codes[j]), int(idx[j]), streams[j], float(ts[j]), x[j],
                                                 st.num[rows[j]], outs[j], works[j]))

    def _record_looks(self, res: Result, pos: int, out) -> None:
        for name in self.looks:
            res.looks[name][pos] = out[_SCALAR_OUT[name]]
        res.looks["log10p"][pos] = out[kernel.O_LOG10P]

    def _scalar_event(self, code: int, pos: int, sid: str, ts: float, x, r, out, work) -> Event:
        """The Event for a reading the scalar path stepped: out[N_OUT], work[F * W] its outputs,
        r its stream's slab row after the step."""
        L, F, W = self.state.layout, self.F, kernel.W
        looks = {name: np.array([float(out[_SCALAR_OUT[name]])]) for name in self.looks}
        reason = scoring.which_look(looks, self._tables, 0, float(out[kernel.O_GATE]))
        column = {"level": kernel.W_LEVEL, "spread": kernel.W_SPREAD, "stuck": kernel.W_STUCK,
                  scoring.REFERENCE: kernel.W_REF}.get(reason, kernel.W_CONTRIB)
        per = [[float(work[f * W + c]) for c in range(W)] for f in range(F)]  # [F][W]
        blame = [(-p[column] if column == kernel.W_STUCK else p[column]) for p in per]
        return Event(
            kind=alerts.EVENT_NAMES[code], stream=sid, alert_id=f"{sid}#{int(r[L.seq])}", ts=ts,
            score=float(out[kernel.O_SCORE]), likelihood=float(out[kernel.O_LIK]), threshold=self.threshold,
            features=self.features, values=tuple(map(float, x)), expected=tuple(p[kernel.W_EXPECTED] for p in per),
            sigma=tuple(p[kernel.W_SIGMA] for p in per), contributions=tuple(p[kernel.W_CONTRIB] for p in per),
            started=float(r[L.start_ts]), reason=reason, position=pos, feature=blame.index(max(blame)),
        )

    # -- convenience ----------------------------------------------------------------------------
    def process_readings(self, readings: list[Reading]) -> Result:
        return self.process(batch_from_readings(readings, self.F))

    def stats(self) -> dict:
        return {"accepted": self.accepted, "rejects": dict(self.rejects), "streams": len(self.state),
                "evictions": self.state.evictions}
