"""The detector: ``Detector.process(batch, now=None) -> Result``. Routing only: no maths, no
threads, no I/O, no MQTT.

A batch is split into waves (the k-th occurrence of each stream in the batch goes into wave k) so
that a stream that appears several times is stepped in arrival order; batched and one-at-a-time
processing give identical results (a batch whose new streams would evict others from a full
store is stepped one reading at a time, so the LRU choice is the one-at-a-time one too). Per wave:

  1. readings with a non-finite value or timestamp, or (when ``now`` is given) a timestamp more
     than ``max_future_s`` ahead of it, are rejected on arrival (missing_value / non_finite / future)
  2. kernel.step_wave: the per-reading maths (kernel.py, the only copy) on the wave's slab rows
     (stale -> out_of_order; the same timestamp and values again -> duplicate; non-finite state
     -> state_reset: the stream starts over); it also loads the stepped streams' Q15 h for the GRU
  3. ONE batched backend.step for the wave: h_t and the prediction for t+1, stored per stream
     with the Result's flags by kernel.finish_wave (a batch of one: step_one / finish_one)
  4. alert events, built from the kernel's outputs (which look fired, which feature it blames)

The clock: with ``now`` (the daemon passes wall-clock time) no reading moves a stream's clock
beyond now + ``clock_skew_s``, so one far-future timestamp cannot lock the stream out; replay and
eval pass no ``now`` and take timestamps as they are.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from . import alerts, kernel, scoring
from .alerts import AlertSettings
from .backends import BASELINES
from .backends.base import jump_params
from .readings import Batch, Reading, batch_from_readings  # noqa: F401 - moved there: decode uses them without the detector
from .bundle import SHAPELESS_KINDS, STUCK_KINDS
from .settings import DetectorSettings, resolve  # noqa: F401 - declared once, with every other setting
from .state import StateStore

CARRY_SHARE = 0.5  # a feature carries an alert when its own surprise is >= this share of the top feature's ...
CARRY_FLOOR = 2.0  # ... and >= this (p <= 1 %), the top feature always
K = SimpleNamespace(**kernel.constants())  # output indices and codes (the same in both kernel modes)

# where kernel.py leaves each look's statistic in its per-reading outputs (record_looks)
_LOOK_OUT = {"instant": K.O_SCORE, "smoothed": K.O_SMOOTHED, "level": K.O_LEVEL,
             "spread": K.O_SPREAD, "stuck": K.O_STUCK, scoring.REFERENCE: K.O_REF,
             scoring.SEASONAL: K.O_SEAS, scoring.PEAK: K.O_PEAK, scoring.RELATION: K.O_REL}
_REJECT = {K.STALE: "out_of_order", K.DUPLICATE: "duplicate", K.RESET: "state_reset"}
R = K.N_RES  # first expected column of a Result block row
_ARANGE: dict[int, np.ndarray] = {}  # B -> arange(B): the positions of a clean batch (never written)


def surprise_text(s: float) -> str:
    """A surprise s = -log10 p for people: 'surprise 9.5 (1 in 3.2e9)'."""
    if not s == s:
        return "surprise n/a"
    if s > 300:
        return f"surprise {s:.3g} (beyond 1 in 1e300)"
    odds = f"{10.0 ** s:.0f}" if s < 4 else f"{10.0 ** s:.2g}".replace("e+0", "e").replace("e+", "e")
    return f"surprise {s:.3g} (1 in {odds})"




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
    reason: str = ""  # the look that fired: instant | smoothed | level | spread | stuck | reference | seasonal | peak | relation
    position: int = 0  # index of the reading in its batch
    feature: int = -1  # index of the feature that look blames (-1: the largest contribution)
    surprise: float = math.nan  # -log10 of the reading's tail probability (Bonferroni over the looks)
    duration: int = 0  # readings the alert had been active (cleared: its whole length)
    carrying: tuple[str, ...] = ()  # features whose own surprise is >= CARRY_SHARE of the top one's, top first

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
                + (f"carried by {', '.join(self.carrying)} " if len(self.carrying) > 1 and self.kind != "cleared" else "")
                + f"(score {self.score:.3g}, {surprise_text(self.surprise)})")

    def to_dict(self) -> dict:
        return {
            "event": self.kind, "stream": self.stream, "alert_id": self.alert_id, "ts": self.ts,
            "started": self.started, "score": self.score, "surprise": self.surprise,
            "likelihood": self.likelihood, "duration": self.duration,
            "threshold": self.threshold, "reason": self.reason, "top_feature": self.top_feature,
            "features_carrying": list(self.carrying),
            "value": dict(zip(self.features, self.values)),
            "expected": dict(zip(self.features, self.expected)),
            "sigma": dict(zip(self.features, self.sigma)),
            "contributions": dict(zip(self.features, self.contributions)),
        }


_BLANK: dict = {}  # (B, F) -> blank (block, accepted) arrays that Result copies, for B <= 64


class Result:
    """Per-reading outputs, aligned with the batch. Rejected readings: accepted False, NaN scores.

    The floats live in one block [B, 4 + 2F] (score | likelihood | onset | surprise | expected |
    sigma: the kernel writes a reading's row) and the flags in one int8 block [B, 2] (alert |
    event); the named outputs are views of them, made when asked for.
    """

    __slots__ = ("block", "flags", "accepted", "reject_reason", "events", "threshold", "looks", "_F")

    def __init__(self, B: int, F: int, threshold: float):
        blank = _BLANK.get((B, F))
        if blank is None:  # np.full / np.ones cost ~1.5 µs of Python; a copy of a blank ~0.2 µs
            blank = (np.full((B, R + 2 * F), np.nan), np.ones(B, bool))
            if B <= 64:
                _BLANK[(B, F)] = blank
        self.block = blank[0].copy()  # float64[B, 4 + 2F]
        self.flags = np.zeros((B, 2), np.int8)  # int8[B, 2]
        self.accepted = blank[1].copy()  # bool[B]
        self.reject_reason: list = [None] * B  # str | None per reading
        self.events: list[Event] = []
        self.threshold = threshold
        self.looks: dict | None = None  # look name -> float64[B], only when Detector.record_looks is set
        self._F = F

    score = property(lambda self: self.block[:, 0], doc="float64[B]")
    likelihood = property(lambda self: self.block[:, 1], doc="float64[B] 1 - tail probability (kept for compatibility)")
    onset = property(lambda self: self.block[:, 2],
                     doc="float64[B] likelihood of the rise in surprise over the stream's recent peak")
    surprise = property(lambda self: self.block[:, 3], doc="float64[B] -log10 tail probability (0: not scored)")
    expected = property(lambda self: self.block[:, R : R + self._F], doc="float64[B, F] predicted value, raw units")
    sigma = property(lambda self: self.block[:, R + self._F :], doc="float64[B, F] predicted std, raw units")
    alert = property(lambda self: self.flags[:, 0].view(bool), doc="bool[B] an alert is active after this reading")
    event = property(lambda self: self.flags[:, 1], doc="int8[B] alerts.NONE / RAISED / UPDATE / CLEARED")


def _float64(values) -> np.ndarray:
    """``np.asarray(values, float64)``; a Python int beyond float64 (10**400) becomes +-inf, so it is
    rejected non_finite on arrival like any other non-finite number instead of raising OverflowError."""
    try:
        return np.asarray(values, dtype=np.float64)
    except OverflowError:
        obj = np.asarray(values, dtype=object)  # same shape, the numbers as they came
        return np.array([_float_or_inf(v) for v in obj.ravel()], np.float64).reshape(obj.shape)


def _float_or_inf(v) -> float:
    try:
        return float(v)
    except OverflowError:  # an int beyond float64
        return math.inf if v > 0 else -math.inf


def surprise_of_likelihood(threshold: float) -> float:
    """The surprise -log10(1 - threshold) of a likelihood threshold (1 -> inf: never)."""
    p = 1.0 - float(threshold)
    return math.inf if p <= 0.0 else -math.log10(p)


def _jump_of(bundle, backend) -> bool:
    """Whether ``backend`` takes jump inputs; ValueError unless it does exactly when the bundle's GRU
    does (a baseline, which reads c alone, may run a jump model's bundle). create_backend's backends
    always agree; a caller's own may not say, or be another model's."""
    name, jump = getattr(backend, "name", type(backend).__name__), getattr(backend, "jump", None)
    if bundle.jump and jump is None:
        raise ValueError(f"{bundle.path}: a model with jump inputs, but backend {name!r} does not say whether it takes "
                         "them (its attribute jump)")
    if jump and not bundle.jump:
        raise ValueError(f"{bundle.path}: backend {name!r} takes jump inputs, but the bundle's weights define none")
    if bundle.jump and jump is False and name not in BASELINES:
        raise ValueError(f"{bundle.path}: a model with jump inputs, but backend {name!r} does not take them")
    return bool(jump)


class Detector:
    def __init__(self, bundle, backend=None, settings: DetectorSettings | None = None, tables: dict | None = None):
        """``tables``: look name -> tail table {x, log10_sf, tail_scale} replacing the bundle's
        calibration table of that look (e.g. fitted on a recording's own normal start, see
        ``train.calibrate.fit_tables_on``); looks not named keep the bundle's. None: the bundle's tables.
        ``settings`` None: the bundle's own (its detector_defaults over the schema's defaults)."""
        if backend is None:
            from .backends.numpy_gru import NumpyGRU

            backend = NumpyGRU(bundle.weights)
        self.bundle, self.backend = bundle, backend
        self.settings = s = settings or resolve(bundle)
        self.cal = cal = bundle.calibration
        self._resolve_threshold(s, bundle)
        self.warmup = int(s.warmup if s.warmup is not None else cal.warmup)
        self.adapt = float(s.adapt if s.adapt is not None else bundle.manifest.get("normalisation", {}).get("adapt", 0.0))
        # every setting was range-checked when DetectorSettings was built (settings.py)
        self.reference_rows = int(s.reference_rows)
        self.features = bundle.features
        self.F = bundle.n_features
        self.seasonal = bool(s.seasonal) and self.F == 1  # univariate models only
        self.components = int(getattr(backend, "components", 1))  # the backend's head: K Gaussians per feature
        # the training reference: the reference look against the model's own mean / std (F > 1,
        # fixed normalisation, reference_rows 0); its ref_mean column holds the stream's warm-up mean
        self.tref_stat = self.F > 1 and bundle.norm_mode != "stream" and not self.reference_rows
        # the relation look: each feature against the others at the same reading (a bundle with a
        # relation.npz, fixed normalisation); its rel_mean column holds the stream's warm-up mean residual
        self.rel_stat = self.F > 1 and bundle.norm_mode != "stream" and bundle.relation is not None
        # the mixture's weights corrected per stream (weight_memory; a mixture head only): its wbias column
        self.wb_on = s.weight_memory > 0 and self.components > 1
        # a model with jump inputs: the GRU reads [c | j], the kernel keeps each stream's jump rate (jrate)
        self.jump = _jump_of(bundle, backend)
        self.n_in = self.F * (2 if self.jump else 1)  # the GRU input's width (xin)
        self.calm = s.calm_memory > 0 and self.F == 1  # the calm step (univariate models): its calm_* columns
        self.runs = bool(s.stuck_runs)  # the stuck look's runs as a chain: its rstart, rval columns
        self.lm_on = s.level_memory > 0 and self.components > 1  # the level memory (a mixture head only)
        self.hidden = int(getattr(backend, "hidden", bundle.hidden))  # each stream's h: the backend's (persistence: >= 2F + 1)
        self.state = StateStore(self.F, self.hidden, capacity=s.max_streams,
                                reference=self.reference_rows > 0 or self.tref_stat,
                                seasonal=self.seasonal, components=self.components,  # only the looks' columns in use
                                h_bound=getattr(backend, "h_bound", None),  # int16 Q15 h for a bounded GRU state
                                relation=self.rel_stat, wbias=self.wb_on, jump=self.jump, calm=self.calm,
                                runs=self.runs, lmem=self.lm_on)
        self.seasonal_trust, self.day_offset = float(s.seasonal_trust), float(s.day_offset_s)
        self.peak = False  # the peak look: in use for F > 1 with a peak table (set_tables)
        self.tref = False  # the training reference: in use with a reference table (set_tables)
        self.rel = False  # the relation look: in use with a relation table (set_tables)
        if bundle.norm_mode == "fixed":  # new streams start warm with the model's statistics
            self.state.set_initial("norm_mean", bundle.norm_mean)
            self.state.set_initial("norm_var", bundle.norm_std**2)
        self._one = (np.zeros(K.N_OUT), np.zeros(self.F * K.W), np.zeros((1, self.n_in), np.float32))  # out, work, xin
        self._hin1 = np.zeros((1, self.hidden), np.float32)  # a batch of one's h for the GRU
        self._one_k = kernel.One(self.state.num, self.state.num4, self.state.hq, *self._one, self._hin1)  # (the store's arrays stay put)
        self._bufs: dict[int, tuple] = {}  # wave size -> the kernel's output buffers (_run_kernel)
        self.set_tables(tables or {})
        self.record_looks = False  # calibration/diagnostics: keep each look's statistic per reading
        self.rejects: Counter[str] = Counter()
        self.accepted = 0

    def _resolve_threshold(self, s: DetectorSettings, bundle) -> None:
        """The raise threshold as a surprise: the setting (a likelihood) if given, else the
        manifest's ``calibration.threshold_surprise``, else its likelihood threshold converted;
        the clear level sits clear_factor x higher in tail probability (hysteresis)."""
        cal_s = (bundle.manifest.get("calibration") or {}).get("threshold_surprise")
        if s.threshold is not None:
            self.threshold, self.threshold_surprise = float(s.threshold), surprise_of_likelihood(s.threshold)
        elif cal_s is not None:
            self.threshold_surprise = float(cal_s)
            self.threshold = float(kernel.likelihood(-self.threshold_surprise))
        else:
            self.threshold, self.threshold_surprise = float(bundle.calibration.threshold), surprise_of_likelihood(
                bundle.calibration.threshold)
        self.clear_surprise = max(self.threshold_surprise - math.log10(s.alerts.clear_factor), math.log10(2.0))
        # What a stream learns from: readings below the clear level of learn_surprise (the setting,
        # else the manifest's calibration.learn_surprise, else the alert threshold: bundles
        # calibrated before it learn exactly as before, the gate following the threshold).
        cal_l = (bundle.manifest.get("calibration") or {}).get("learn_surprise")
        self.learn_surprise = float(s.learn_surprise if s.learn_surprise is not None
                                    else cal_l if cal_l is not None else self.threshold_surprise)
        self.learn_clear = max(self.learn_surprise - math.log10(s.alerts.clear_factor), math.log10(2.0))

    def _params(self) -> dict:
        """The kernel's resolved settings and bundle constants (kernel.Params), slab offsets aside."""
        s, b, a = self.settings, self.bundle, self.settings.alerts
        lvmin, lvmax = getattr(self.backend, "logvar_range", (b.logvar_min, b.logvar_max))  # persistence: its own cap
        n_looks = len(self.looks) - (1 if self.seasonal else 0)  # the seasonal look counts only where trusted
        return dict(
            F=self.F, K=self.components, stream_norm=b.norm_mode == "stream", warmup=float(self.warmup), settle=float(s.settle),
            adapt=self.adapt, max_gap=-1.0 if s.max_gap_s is None else float(s.max_gap_s), clip=b.input_clip,
            lvmin=lvmin, lvmax=lvmax, fast_rate=1.0 / s.fast_window, min_std=s.min_std,
            min_rel_std=s.min_rel_std, smoothing=self.cal.smoothing, repeat_memory=1.0 / s.repeat_memory,
            relearn_after=float(s.relearn_after), thr_s=self.threshold_surprise, clear_s=self.clear_surprise,
            learn_s=self.learn_clear,
            log10_looks=math.log10(n_looks), log10_looks_seas=math.log10(n_looks + 1), log10_F=math.log10(self.F),
            onset_decay=1.0 - 1.0 / s.repeat_memory, onset_ratio=float(s.onset_ratio), rearm=float(s.onset_rearm),
            quiet_level=float(s.onset_quiet), on_rate=1.0 / s.onset_memory, on_weight=float(s.onset_weight),
            al_weight=float(s.alert_rate_weight), echo_decades=float(s.echo_decades),
            looks_mask=sum(1 << scoring.ALL_LOOKS.index(name) for name in self.looks),
            lvl_settle=float(s.level_settle) * float(s.fast_window),
            wb_rate=1.0 / s.weight_memory if self.wb_on else 0.0, calm_mem=float(s.calm_memory) if self.calm else 0.0,
            jump_on=self.jump, runs_on=self.runs, **self._jump_params(),
            lm_rate=1.0 / s.level_memory if self.lm_on else 0.0,
            range_surprise=float(s.range_surprise), ref_rows=float(self.reference_rows),
            ref_rate=1.0 / s.reference_window, ref_drift=float(s.reference_drift), ref_peak_gate=float(s.reference_peak),
            seasonal=self.seasonal, peak_on=self.peak, tref_on=self.tref, tref_stat=self.tref_stat,
            rel_on=self.rel, rel_stat=self.rel_stat, seas_trust=self.seasonal_trust, day_offset=self.day_offset,
            a_k=a.k, a_mask=(1 << a.n) - 1, a_clear_after=float(a.clear_after), a_min_duration=float(a.min_duration),
            a_cooldown=float(a.cooldown), a_max_duration=float(a.max_duration), a_update_factor=float(a.update_factor),
            a_update_gap=float(a.update_gap),
        )

    def _jump_params(self) -> dict:
        """The kernel's j_thr, j_mem, j_floor, j_lfloor: the bundle's in.jump (backends/base.py), or inert values."""
        thr, mem, floor = jump_params(self.bundle.weights) if self.jump else (1.0, 1.0, 0.01)
        return {"j_thr": thr, "j_mem": mem, "j_floor": floor, "j_lfloor": -math.log10(floor)}

    # -- public ------------------------------------------------------------------------------
    def set_tables(self, tables: dict) -> None:
        """Score with these calibration tables from now on (look name -> {x, log10_sf,
        tail_scale}; looks not named: the bundle's); the streams' state is kept."""
        unknown = set(tables) - set(scoring.KERNEL_TABLES)
        if unknown:
            raise ValueError(f"no calibration table for look(s) {sorted(unknown)}: tables are {scoring.KERNEL_TABLES}")
        merged = {**self.cal.tables, **tables}
        self.peak = self.F > 1 and scoring.PEAK in merged  # a bundle calibrated before the peak look: off
        self.tref = self.tref_stat and scoring.REFERENCE in merged  # ... before the training reference: off
        self.rel = self.rel_stat and scoring.RELATION in merged  # ... before the relation look: off
        self.tables = {name: {k: merged[name][k] for k in ("x", "log10_sf", "tail_scale")}
                       for name in scoring.KERNEL_TABLES if name in merged}  # the raw tables in use
        self.looks = (*scoring.LOOKS, *((scoring.REFERENCE,) if self.reference_rows or self.tref else ()),
                      *((scoring.SEASONAL,) if self.seasonal else ()), *((scoring.PEAK,) if self.peak else ()),
                      *((scoring.RELATION,) if self.rel else ()))
        # recorded (record_looks): the looks in use, and the peak, training-reference and relation
        # statistics of any multivariate model that has them (calibration fits their tables from them)
        self.recorded = (*self.looks, *((scoring.PEAK,) if self.F > 1 and not self.peak else ()),
                         *((scoring.REFERENCE,) if self.tref_stat and not self.tref else ()),
                         *((scoring.RELATION,) if self.rel_stat and not self.rel else ()))
        prepared = [scoring.prepare_table(self.tables.get(n, self.tables["instant"]))  # unread when not in use
                    for n in scoring.KERNEL_TABLES]
        offsets = {name: max(at, 0) for name, at in self.state.layout.offsets.items()}
        used, stuck, shape = self._kind_masks()
        zcap = self._flip_caps()
        sm = self.tables["smoothed"]  # its median on normal data: where settling restarts the smoothed look
        typ = float(np.interp(-math.log10(2.0), np.asarray(sm["log10_sf"])[::-1], np.asarray(sm["x"])[::-1]))
        self.params = kernel.Params({**offsets, **self._params(), "smooth_typ": typ}, scoring.ONSET_LEVELS.tolist(),
                                    prepared, used, stuck, shape, self._reference_gate(), zcap,
                                    self.bundle.relation if self.rel_stat else None)

    def _reference_gate(self) -> list[float] | None:
        """The calibration's reference_gate (per feature, training sd; train.calibrate.reference_gate):
        how far a stream's warm-up mean must sit from the model's mean before the training reference
        measures that feature from it. None (bundles calibrated before it): 0, the warm-up mean
        wherever it is nearer, as before. (bundle.load_bundle checked it.)"""
        gate = (self.bundle.manifest.get("calibration") or {}).get("reference_gate")
        return None if gate is None else [float(g) for g in gate]

    def _flip_caps(self) -> list[float]:
        """Per feature, the most a residual |z| may count in the instant and peak looks: for a binary
        feature, the two-sided Gaussian z of its training share of changes (1 - repeat_share of its
        feature_kinds entry, where recorded; at least 1e-4): a flip of a two-valued feature is never more surprising
        than the rate at which training flipped it, however sure the Gaussian head was of the other
        value (measured: busy flags' flips raised every false alert of the synthetic telemetry's
        development files). Other kinds: no cap (inf)."""
        kinds = self.bundle.manifest.get("feature_kinds") or {}
        caps = []
        for name in self.features:
            k = kinds.get(name)
            if isinstance(k, dict) and k.get("kind") == "binary" and "repeat_share" in k:
                flips = max(1.0 - float(k["repeat_share"]), 1e-4)
                caps.append(float(kernel.gauss_tail_z(math.log(flips))))
            else:
                caps.append(math.inf)
        return caps

    def _kind_masks(self) -> tuple[list[float], list[float], list[float]]:
        """Per feature 1 / 0 from the manifest's feature_kinds ({name: {kind, ...}}, or bare kind
        names): in the score (every feature: the trainer gives a constant one a std of 1 % of its
        value, so any change from it is a calibrated finding) and in the stuck look (a kind where
        exact repeats are news: STUCK_KINDS; a feature with no kind recorded, as in bundles without
        kinds). Measured (benchmarks/train_multivariate.py data): leaving constants out of the
        score lost the faults that move them (best F1 0.424 -> 0.326) for no fewer false alerts.
        Third: in the level and spread looks (not SHAPELESS_KINDS: a binary or constant feature's
        EW level / spread statistics are degenerate and cried wolf in young streams)."""
        kinds = self.bundle.manifest.get("feature_kinds") or {}
        kind = [(kinds.get(n) or {}).get("kind") if isinstance(kinds.get(n), dict) else kinds.get(n)
                for n in self.features]
        return ([1.0] * len(kind), [1.0 if k is None or k in STUCK_KINDS else 0.0 for k in kind],
                [0.0 if k in SHAPELESS_KINDS else 1.0 for k in kind])

    def process(self, batch: Batch, now: float | None = None) -> Result:
        """Score a batch of readings in arrival order. ``now``: the wall clock (epoch seconds) in a
        live daemon: readings more than max_future_s ahead of it are rejected 'future' and none
        moves a stream's clock beyond now + clock_skew_s. None (replay, eval): timestamps as they are."""
        B, F = len(batch), self.F
        res = Result(B, F, self.threshold)
        if self.record_looks:
            res.looks = {name: np.full(B, np.nan) for name in (*self.recorded, "log10p")}
        if B == 1:  # the common case at low load: no array maths until the GRU
            self._one_reading(batch, res, now)
            return res
        x = _float64(batch.x).reshape(B, F)
        ts = _float64(batch.ts).reshape(B)
        cap = math.inf if now is None else float(now) + self.settings.clock_skew_s
        clean = kernel.clean_batch(x, ts, math.inf if now is None else float(now) + self.settings.max_future_s)
        if not clean:
            self._screen(res, x, ts, now)
        if B > self.state.free and self._evicts(batch.streams, res.accepted):
            self._one_by_one(batch.streams, ts, x, res, now)
            return res
        first = self.state.reserve_ticks(B)  # LRU tick of position i: first + i (the arrival order)
        for idx in self._waves(batch.streams, res.accepted, clean):
            if len(idx) == B and x.flags.writeable and ts.flags.writeable:  # the whole batch: no copies
                self._wave(idx, batch.streams, ts, x, cap, res, first)  # (the kernel's buffers must be writable)
            else:
                self._wave(idx, [batch.streams[i] for i in idx.tolist()], ts[idx], x[idx], cap, res, first)
        if len(res.events) > 1:  # waves append out of arrival order
            res.events.sort(key=lambda e: e.position)
        self.accepted += int(np.count_nonzero(res.accepted))
        return res

    def _screen(self, res: Result, x: np.ndarray, ts: np.ndarray, now: float | None) -> None:
        """Reject readings with a non-finite value or timestamp, or (with ``now``) a timestamp
        more than max_future_s ahead of it."""
        ok = np.isfinite(x).all(axis=1) & np.isfinite(ts)
        if now is not None:
            with np.errstate(invalid="ignore"):
                future = ts > float(now) + self.settings.max_future_s
            for i in np.flatnonzero(future & ok):
                self._reject(res, int(i), "future")
            ok &= ~future
        for i in np.flatnonzero(~ok & res.accepted):
            self._reject(res, int(i), "missing_value" if np.isnan(x[i]).any() else "non_finite")

    def _evicts(self, streams: list[str], accepted: np.ndarray) -> bool:
        """The accepted readings bring more new streams than the store has free rows."""
        ids = self.state.ids
        if all(map(ids.__contains__, streams)):  # every stream known (a full store's common case): none
            return False
        return len({sid for sid, ok in zip(streams, accepted.tolist()) if ok and sid not in ids}) > self.state.free

    def _one_by_one(self, streams: list[str], ts: np.ndarray, x: np.ndarray, res: Result, now: float | None) -> None:
        """A batch whose new streams evict others: its accepted readings one at a time, in arrival
        order (so which stream is evicted, and when, is the same however the readings are batched;
        a wave would evict by its own order, or raise with more new streams than the store holds)."""
        for i in np.flatnonzero(res.accepted).tolist():
            one = Result(1, self.F, self.threshold)
            if res.looks is not None:
                one.looks = {name: np.full(1, np.nan) for name in res.looks}
            self._one_reading(Batch([streams[i]], ts[i : i + 1].copy(), x[i : i + 1].copy()), one, now)
            res.block[i], res.flags[i] = one.block[0], one.flags[0]
            res.accepted[i], res.reject_reason[i] = one.accepted[0], one.reject_reason[0]
            for name, v in (one.looks or {}).items():
                res.looks[name][i] = v[0]
            for e in one.events:
                e.position = i
                res.events.append(e)

    # -- internals -----------------------------------------------------------------------------
    def _waves(self, streams: list[str], accepted: np.ndarray, clean: bool) -> list[np.ndarray]:
        """Positions of the accepted readings (clean: all of them), split so that the k-th occurrence
        of each stream goes into wave k (each wave: distinct streams, in arrival order)."""
        distinct = len(set(streams)) == len(streams)
        if clean and distinct:  # the common case: every position, an array made once per batch size
            idx = _ARANGE.get(len(streams))
            if idx is None:
                idx = np.arange(len(streams), dtype=np.intp)
                if len(streams) <= 1024:
                    _ARANGE[len(streams)] = idx
            return [idx]
        idx = np.flatnonzero(accepted)
        if not idx.size:
            return []
        if distinct:
            return [idx]
        seen: dict[str, int] = {}
        occurrence = []
        for i in idx.tolist():
            k = seen.get(streams[i], 0)
            occurrence.append(k)
            seen[streams[i]] = k + 1
        occ = np.array(occurrence, np.intp)
        order = np.argsort(occ, kind="stable")
        return [idx[part] for part in np.split(order, np.cumsum(np.bincount(occ))[:-1])]

    def _reject(self, res: Result, i: int, reason: str) -> None:
        res.accepted[i] = False
        res.reject_reason[i] = reason
        self.rejects[reason] += 1

    def _run_kernel(self, rows, x, ts, cap, idx, res: Result):
        """kernel.step_wave on a wave; returns (readings whose code is not NONE, (outs [b, N_OUT],
        works [b, F * W], xin float32[b, F] (2F with jump inputs), codes int8[b], hin float32[b, H]: the stepped streams' h for the GRU, loaded by the kernel
        from a Q15 state, unset for a float32 one), the kernel.Wave holding typed views of those and
        of the store's arrays, made once per wave size). Compiled: on the slabs and the Result block in
        place. Plain Python: on list copies of the rows (list indexing is its fast path; F32Row
        rounds like a float32 store), written back after."""
        st, p, b, F = self.state, self.params, len(rows), self.F
        num, num4 = st.num, st.num4
        got = self._bufs.get(b)  # scratch reused wave after wave (one Detector, one thread)
        if got is None:
            bufs = (np.empty((b, K.N_OUT)), np.empty((b, F * K.W)), np.empty((b, self.n_in), np.float32), np.empty(b, np.int8),
                    np.empty((b, st.hidden), np.float32))
            got = (bufs, kernel.Wave(num, num4, st.hq, *bufs))  # typed views made once (the store's arrays stay put)
            if b <= 1024:
                self._bufs[b] = got
        bufs, wave = got
        if kernel.COMPILED:
            return kernel.step_wave(p, wave, rows, x, ts, cap, res.block, idx, rows, st.h_load), bufs, wave
        outs, works, xin, codes, hin = bufs
        slab, slab4, block = num[rows].tolist(), list(map(kernel.F32Row, num4[rows].tolist())), res.block[idx].tolist()
        louts, lworks = [[0.0] * K.N_OUT for _ in range(b)], [[0.0] * (F * K.W) for _ in range(b)]
        lxin, lcodes = [[0.0] * self.n_in for _ in range(b)], [0] * b
        near = range(b)
        marked = kernel.step_wave(p, kernel.Wave(slab, slab4, st.hq, louts, lworks, lxin, lcodes, hin), near,
                                  x.tolist(), ts.tolist(), cap, block, near, rows, st.h_load)
        num[rows], num4[rows], res.block[idx] = slab, slab4, block
        outs[:], works[:], xin[:], codes[:] = louts, lworks, lxin, lcodes
        return marked, bufs, wave

    def _wave(self, idx, streams, ts, x, cap: float, res: Result, first: int) -> None:
        """One wave (distinct streams; x float64[b, F]): the kernel, then ONE GRU call, then events.
        first: the batch's first LRU tick (reading idx[j] is used at first + idx[j])."""
        st = self.state
        rows = st.rows_for(streams, idx + first)  # intp[b]
        marked, (outs, works, xin, codes, hin), wave = self._run_kernel(rows, x, ts, cap, idx, res)
        if marked and codes.min() < 0:  # not stepped: no GRU step; a poisoned stream starts over
            keep = codes >= 0
            for j in np.flatnonzero(~keep).tolist():
                self._not_stepped(res, int(idx[j]), int(codes[j]), int(rows[j]))
            idx, rows, outs, works, xin, codes, ts, x, hin = (
                a[keep] for a in (idx, rows, outs, works, xin, codes, ts, x, hin))
            streams = [sid for sid, k in zip(streams, keep) if k]
            if not idx.size:
                return
        if st.hq is None:  # a float32 state: reset on a gap and gathered here (Q15: by the kernel)
            gap = outs[:, K.O_GAP]
            if gap.any():
                st.zero_h(rows[gap != 0.0])
            hin = st.gather_h(rows)
        new_pred, h_next = self.backend.step(xin, hin)  # h float32[b, H]
        self._finish(wave, rows, new_pred, h_next, res, idx, codes)
        if res.looks is not None:
            for j in np.flatnonzero(outs[:, K.O_SCORED]).tolist():
                self._record_looks(res, int(idx[j]), outs[j])
        for j in (np.flatnonzero(codes).tolist() if marked else ()):  # readings with an event
            res.events.append(self._event(int(codes[j]), int(idx[j]), streams[j], float(ts[j]), x[j],
                                          int(rows[j]), outs[j], works[j]))

    def _finish(self, wave, rows, new_pred, h_next, res: Result, idx, codes) -> None:
        """The GRU's outputs into the stepped streams' rows (kernel.finish_wave: prediction, Q15 h,
        the Result's alert / event flags); a float32 h through the store."""
        st = self.state
        kernel.finish_wave(self.params, wave, rows, np.asarray(new_pred, np.float32), res.flags, idx, codes,
                           h_next if st.hq is not None else None, st.h_store)
        if st.hq is None:
            st.scatter_h(rows, h_next)

    def _one_reading(self, batch: Batch, res: Result, now: float | None) -> None:
        """``process`` for a batch of one: the same kernel (step_one) and checks, on 1-D buffers."""
        F, st, p = self.F, self.state, self.params
        x1 = _float64(batch.x).reshape(F)
        try:
            t = float(batch.ts[0])  # an array or list of one (no array made)
        except (TypeError, IndexError):  # a bare number or a 0-d array
            t = float(_float64(batch.ts).reshape(1)[0])
        except OverflowError:  # an int beyond float64: rejected non_finite below
            t = math.inf
        values = x1.tolist()
        if not (math.isfinite(t) and all(map(math.isfinite, values))):
            return self._reject(res, 0, "missing_value" if any(v != v for v in values) else "non_finite")
        if now is not None and t > float(now) + self.settings.max_future_s:
            return self._reject(res, 0, "future")
        cap = math.inf if now is None else float(now) + self.settings.clock_skew_s
        sid = batch.streams[0]
        row = st.row_for(sid)
        (out, work, xin), hin, one = self._one, self._hin1, self._one_k
        if kernel.COMPILED:
            code = kernel.step_one(p, one, row, row, x1, t, cap, res.block, st.h_load)
        else:  # lists (F32Row: float32 stores), written back
            r, q, blk = st.num[row].tolist(), kernel.F32Row(st.num4[row].tolist()), res.block[0].tolist()
            o, w, xi = [0.0] * K.N_OUT, [0.0] * (F * K.W), [0.0] * self.n_in
            code = kernel.step_one(p, kernel.One([r], [q], st.hq, o, w, [xi], hin), 0, row, values, t, cap, [blk], st.h_load)
            st.num[row], st.num4[row], res.block[0], out[:], work[:], xin[0] = r, q, blk, o, w, xi
        if code < 0:
            return self._not_stepped(res, 0, code, row)
        if st.hq is None:  # a float32 state (Q15: step_one loaded it into hin)
            if out[K.O_GAP]:
                st.zero_h(row)
            hin = st.gather_h(slice(row, row + 1))
        new_pred, h_next = self.backend.step(xin, hin)  # h float32[1, H]
        kernel.finish_one(self.params, one, row, code, np.asarray(new_pred, np.float32), res.flags,
                          h_next if st.hq is not None else None, st.h_store)
        if st.hq is None:
            st.scatter_h(slice(row, row + 1), h_next)
        if res.looks is not None and out[K.O_SCORED]:
            self._record_looks(res, 0, out)
        if code:
            res.events.append(self._event(code, 0, sid, t, x1, row, out, work))
        self.accepted += 1

    def _not_stepped(self, res: Result, pos: int, code: int, row: int) -> None:
        """A reading the kernel did not step (stale, duplicate, or its stream's state went
        non-finite: that stream starts over)."""
        self._reject(res, pos, _REJECT[code])
        if code == K.RESET:
            self.state.reset_row(row)
            res.block[pos] = np.nan

    def _record_looks(self, res: Result, pos: int, out) -> None:
        for name in self.recorded:
            res.looks[name][pos] = out[_LOOK_OUT[name]]
        res.looks["log10p"][pos] = out[K.O_LOG10P]

    def _event(self, code: int, pos: int, sid: str, ts: float, x, row: int, out, work) -> Event:
        """The Event for a stepped reading: out[N_OUT], work[F * W] its kernel outputs, row its
        stream's slab row (read after the step)."""
        st, L, per = self.state, self.state.layout, work.reshape(self.F, K.W)  # [F, W]
        return Event(
            kind=alerts.EVENT_NAMES[code], stream=sid, alert_id=f"{sid}#{int(st.num4[row, L.seq])}", ts=ts,
            score=float(out[K.O_SCORE]), likelihood=float(out[K.O_LIK]), threshold=self.threshold,
            features=self.features, values=tuple(map(float, x)), expected=tuple(per[:, K.W_EXPECTED].tolist()),
            sigma=tuple(per[:, K.W_SIGMA].tolist()), contributions=tuple(per[:, K.W_CONTRIB].tolist()),
            started=float(st.num[row, L.start_ts]), position=pos, feature=int(out[K.O_FEATURE]),
            reason="new_normal" if code == K.NEW_NORMAL else scoring.ALL_LOOKS[int(out[K.O_LOOK])],
            surprise=float(out[K.O_SURPRISE]), duration=int(out[K.O_DURATION]), carrying=self._carrying(out, per),
        )

    def _carrying(self, out, per) -> tuple[str, ...]:
        """The features carrying a reading's alert: each feature's own surprise (-log10 p of its
        part of the look that fired: a two-sided Gaussian tail of its z for the instant, smoothed,
        peak and seasonal looks (z^2 = its contribution x features in use) and of its level / spread /
        reference / relation statistic; its own run's log10 p for stuck): the top one, and those with at least
        CARRY_SHARE of its surprise and CARRY_FLOOR, most surprising first. per: float64[F, W]
        kernel work."""
        look = scoring.ALL_LOOKS[int(out[K.O_LOOK])]
        if look == "stuck":
            own = -per[:, K.W_STUCK]  # [F] -log10 p of each feature's run
        else:
            col = {"level": K.W_LEVEL, "spread": K.W_SPREAD, "reference": K.W_REF, "relation": K.W_REL}.get(look)
            z = per[:, col] if col is not None else np.sqrt(per[:, K.W_CONTRIB] * self.params.n_used)  # [F]
            own = np.array([-kernel.gauss_tail_log10(abs(float(v))) for v in z])
        top = float(own.max()) if own.size else 0.0
        order = np.argsort(-own, kind="stable")
        keep = [i for i in order
                if own[i] > 0.0 and own[i] >= CARRY_SHARE * top and (own[i] >= CARRY_FLOOR or own[i] == top)]
        return tuple(self.features[i] for i in keep)

    # -- convenience ----------------------------------------------------------------------------
    def process_readings(self, readings: list[Reading], now: float | None = None) -> Result:
        return self.process(batch_from_readings(readings, self.F), now)

    def stats(self) -> dict:
        return {"accepted": self.accepted, "rejects": dict(self.rejects), "streams": len(self.state),
                "evictions": self.state.evictions, "state_resets": self.rejects.get("state_reset", 0)}
