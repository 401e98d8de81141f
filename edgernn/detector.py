"""The pure detector core: ``Detector.process(batch) -> Result``. No threads, no I/O, no MQTT.

Per reading, in arrival order per stream (test-then-train):

  1. reject non-finite values / timestamps and readings older than the stream's last one
  2. gap longer than ``max_gap_s`` -> hidden state reset, scores held back for ``settle`` readings
  3. normalise: per-stream Welford statistics during warm-up (``stream`` models), then frozen or
     adapted slowly (EW, only from readings that are not alerting); ``fixed`` models use the
     manifest's mean/std
  4. score x_t against the prediction stored at t-1, four looks -> likelihood (scoring.py),
     alert machine (alerts.py)
  5. step the GRU with x_t -> h_t and the prediction for t+1, stored for the next reading

A batch is split into waves so that a stream that appears several times is stepped in order;
batched and one-at-a-time processing give identical results.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from . import alerts, scoring
from .alerts import AlertSettings
from .state import StateStore


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
    reason: str = ""  # the look that fired: instant | smoothed | level | spread | stuck
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


@dataclass
class Result:
    """Per-reading outputs, aligned with the batch. Rejected readings: accepted False, NaN scores."""

    accepted: np.ndarray  # bool[B]
    score: np.ndarray  # float64[B]
    likelihood: np.ndarray  # float64[B]
    onset: np.ndarray  # float64[B] likelihood of the rise in surprise over the stream's recent peak
    alert: np.ndarray  # bool[B] an alert is active for the stream after this reading
    event: np.ndarray  # int8[B] alerts.NONE / RAISED / UPDATE / CLEARED
    expected: np.ndarray  # float64[B, F]
    sigma: np.ndarray  # float64[B, F]
    reject_reason: list  # str | None per reading
    events: list[Event]
    threshold: float
    looks: dict | None = None  # look name -> float64[B], only when Detector.record_looks is set


class Detector:
    def __init__(self, bundle, backend=None, settings: DetectorSettings | None = None):
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
        self.onset_decay = 1.0 - self.repeat_memory  # the onset's reference peak fades over the same memory
        self.features = bundle.features
        self.F = bundle.n_features
        self.state = StateStore(self.F, bundle.hidden, capacity=s.max_streams)
        L = self.state.layout
        if bundle.norm_mode == "fixed":  # new streams start warm with the model's statistics
            self.state.set_initial(L.norm_mean, bundle.norm_mean)
            self.state.set_initial(L.norm_var, bundle.norm_std**2)
        self._tables = {name: scoring.prepare_table(t) for name, t in cal.tables.items()}
        self._starts = tuple(getattr(L, n).start for n in ("norm_mean", "norm_var", "pred", "last_x", "run", "reps",
                                                           "fast_mean", "fast_var", "lvl_mean", "lvl_var",
                                                           "spr_mean", "spr_var"))
        self._consts = (bundle.input_clip, bundle.logvar_min, bundle.logvar_max, self.fast_rate, s.min_std, s.min_rel_std)
        self.record_looks = False  # calibration/diagnostics: keep each look's statistic per reading
        self.rejects: Counter[str] = Counter()
        self.accepted = 0

    # -- public ------------------------------------------------------------------------------
    def process(self, batch: Batch) -> Result:
        B, F = len(batch), self.F
        vals = np.full((B, 3 + 2 * F), np.nan)  # one block: score | likelihood | onset | expected | sigma
        flags = np.zeros((B, 2), np.int8)  # alert | event
        res = Result(
            accepted=np.ones(B, bool), score=vals[:, 0], likelihood=vals[:, 1], onset=vals[:, 2],
            alert=flags[:, 0].view(bool), event=flags[:, 1], expected=vals[:, 3 : 3 + F], sigma=vals[:, 3 + F :],
            reject_reason=[None] * B, events=[], threshold=self.threshold,
        )
        if self.record_looks:
            res.looks = {name: np.full(B, np.nan) for name in (*scoring.LOOKS, "log10p")}
        if B == 1:  # the common case at low load: no arrays at all until the GRU
            values = np.asarray(batch.x, dtype=np.float64).reshape(F).tolist()
            t = float(np.asarray(batch.ts).reshape(1)[0])
            if not (math.isfinite(t) and all(map(math.isfinite, values))):
                self._reject(res, 0, "missing_value" if any(v != v for v in values) else "non_finite")
            else:
                self._one(0, batch.streams[0], t, values, res)
            self.accepted += int(res.accepted[0])
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
            if ok.all() and B > SCALAR_WAVE:  # the common case: one wave, the whole batch as it is
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
            if idx.size > SCALAR_WAVE:
                self._wave(idx, [streams[i] for i in idx], ts[idx], x[idx], res)
            else:  # a few readings: plain Python per reading beats numpy's per-call overhead
                for i in idx.tolist():
                    self._one(i, streams[i], float(ts[i]), x[i].tolist(), res)
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
        log10p = scoring.combined_log10p(looks, self._tables)
        lik = scoring.likelihood_from_log10p(log10p)
        # onset: how far the surprise s = -log10 p rises above the stream's recent (decaying) peak;
        # high where an anomaly starts, back near 0 while the same deviation persists
        surprise = -log10p
        if not steady:
            unscored = ~scored
            lik[unscored] = 0.0
            surprise[unscored] = 0.0
        onset = scoring.likelihood_from_log10p(-np.maximum(surprise - S[:, L.onset_peak], 0.0))
        if not steady:
            onset[unscored] = 0.0
        S[:, L.onset_peak] = np.maximum(surprise, S[:, L.onset_peak] * self.onset_decay)
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
            reason = scoring.which_look(looks, self._tables, int(j))
            per_feature = {"level": level_f[j], "spread": spread_f[j], "stuck": -stuck_f[j]}.get(reason, contrib[j])
            res.events.append(Event(
                kind=alerts.EVENT_NAMES[int(codes[j])], stream=streams[j],
                alert_id=f"{streams[j]}#{int(S[j, L.seq])}", ts=float(ts[j]),
                score=float(score[j]), likelihood=float(lik[j]), threshold=self.threshold,
                features=self.features, values=tuple(map(float, x[j])),
                expected=tuple(map(float, expected[j])), sigma=tuple(map(float, sigma[j])),
                contributions=tuple(map(float, contrib[j])), started=float(S[j, L.start_ts]),
                reason=reason, position=int(idx[j]), feature=int(np.argmax(per_feature)),
            ))

    def _one(self, pos: int, sid: str, ts: float, x: list, res: Result) -> None:
        """``_wave`` for a batch of one reading, in plain Python floats: same maths, same order
        (numpy's per-call overhead would dominate at b = 1). Tests check the two paths agree."""
        st, L, F, s = self.state, self.state.layout, self.F, self.settings
        row = st.row_for(sid)
        r = st.num[row].tolist()  # the stream's slab row
        if ts < r[L.last_ts]:
            self._reject(res, pos, "out_of_order")
            return
        if s.max_gap_s is not None and ts - r[L.last_ts] > s.max_gap_s and r[L.count] > 0:
            st.h[row] = 0.0
            r[L.since_reset] = 0.0
            r[L.smoothed] = 0.0
        m0, v0, p0, lx0, run0, rep0, fm0, fv0, lm0, lv0, sm0, sv0 = self._starts
        clip, lvmin, lvmax, af, min_std, min_rel = self._consts
        count = r[L.count] + 1
        warming = count <= self.warmup
        stream_warming = warming and self.stream_norm
        exp, log, sqrt = math.exp, math.log, math.sqrt
        q_log = -math.log10(r[L.trials] + 2.0)
        score = level = spread = 0.0
        stuck = 0.0
        per_f = []  # per feature: (xc, std, mean, sigma_n, contribution, run, d, v, fast_mean, fast_var,
        #                          level, spread, stuck)
        for f in range(F):
            xf = x[f]
            mean, var = r[m0 + f], r[v0 + f]
            if stream_warming:
                d = xf - mean
                new_mean = mean + d / count
                var = var + (d * (xf - new_mean) - var) / count
                mean = new_mean
                r[m0 + f], r[v0 + f] = mean, var
            floor = max(min_std, min_rel * abs(mean))
            std = sqrt(max(var, floor * floor))
            xn = (xf - mean) / std
            c = -clip if xn < -clip else clip if xn > clip else xn
            sigma_n = exp(0.5 * min(max(r[p0 + F + f], lvmin), lvmax))
            z = (c - r[p0 + f]) / sigma_n
            contrib = min(z * z, 1e12) / F
            score += contrib
            run = r[run0 + f] + 1 if xf == r[lx0 + f] else 0.0
            stuck_f = run * (math.log10(r[rep0 + f] + 1.0) + q_log) if run else 0.0
            stuck = min(stuck, stuck_f)
            fm_old = xf if count == 1 else r[fm0 + f]
            fm = fm_old + af * (xf - fm_old)
            fv = (1.0 - af) * (r[fv0 + f] + af * (xf - fm_old) ** 2)
            dl = (fm - mean) / std
            vs = log(fv / (std * std) + 1e-4)
            level_f = abs(dl - r[lm0 + f]) / sqrt(r[lv0 + f] + 1e-4)
            spread_f = abs(vs - r[sm0 + f]) / sqrt(r[sv0 + f] + 1e-2)
            level, spread = max(level, level_f), max(spread, spread_f)
            per_f.append((c, std, mean, sigma_n, contrib, run, dl, vs, fm, fv, level_f, spread_f, stuck_f))
        since = r[L.since_reset] + 1
        scored = count > self.warmup and since > s.settle
        smoothed = r[L.smoothed] + self.cal.smoothing * (score - r[L.smoothed]) if since > 1 else score
        t1, tail = self._tables, scoring.tail_log10_one
        log10p = min(stuck, tail(score, t1["instant"]), tail(smoothed, t1["smoothed"]),
                     tail(level, t1["level"]), tail(spread, t1["spread"]))
        log10p = min(log10p + scoring._LOG10_LOOKS, 0.0)
        lik = scoring.likelihood_one(log10p) if scored else 0.0
        surprise = -log10p if scored else 0.0
        onset = scoring.likelihood_one(-max(surprise - r[L.onset_peak], 0.0)) if scored else 0.0
        r[L.onset_peak] = max(surprise, r[L.onset_peak] * self.onset_decay)
        if res.looks is not None and scored:
            for name, value in (("instant", score), ("smoothed", smoothed), ("level", level), ("spread", spread),
                                ("stuck", stuck), ("log10p", log10p)):
                res.looks[name][pos] = value
        high = lik >= self.clear_level
        code = alerts.NONE
        if high or r[L.active] or r[L.cooldown] or r[L.hist]:  # else nothing for the machine to do
            code = alerts.step_one(r, L, s.alerts, scored and lik >= self.threshold, high, score, ts)
        expected = [r[p0 + f] * p[1] + p[2] for f, p in enumerate(per_f)]
        sigma = [p[3] * p[1] for p in per_f]

        # step the GRU, store h_t and the prediction for t+1
        new_pred, h_next = self.backend.step(np.array([[p[0] for p in per_f]], np.float32), st.h[row : row + 1])
        st.h[row] = h_next[0]
        r[p0 : p0 + 2 * F] = new_pred[0].tolist()

        held = r[L.held] + 1 if high else 0.0
        r[L.held] = held
        learn = not high or held > s.relearn_after
        stat = learn and count > self.warmup // 2
        nstat = r[L.nstat] + stat
        rate = max(1.0 / max(nstat, 1.0), self.repeat_memory) if stat else 0.0
        decay = 1.0 if warming else 1.0 - self.repeat_memory
        adapt = self.adapt if (self.stream_norm and learn and not warming) else 0.0
        for f, (_, _, _, _, _, run, dl, vs, fm, fv, _, _, _) in enumerate(per_f):
            if adapt:
                d = x[f] - r[m0 + f]
                r[m0 + f] += adapt * d
                r[v0 + f] += adapt * (d * d - r[v0 + f])
            if rate:
                for mi, vi, val in ((lm0 + f, lv0 + f, dl), (sm0 + f, sv0 + f, vs)):
                    delta = val - r[mi]
                    r[mi] += rate * delta
                    r[vi] += rate * (delta * (val - r[mi]) - r[vi])
            if learn:
                r[rep0 + f] = r[rep0 + f] * decay + (run > 0 and count > 1)
            r[fm0 + f], r[fv0 + f], r[run0 + f], r[lx0 + f] = fm, fv, run, x[f]
        if learn and count > 1:
            r[L.trials] = r[L.trials] * decay + 1.0
        r[L.nstat] = nstat
        r[L.count], r[L.since_reset], r[L.last_ts], r[L.smoothed] = count, since, ts, smoothed
        st.num[row] = r

        res.score[pos] = score if scored else math.nan
        res.likelihood[pos] = lik
        res.onset[pos] = onset
        res.alert[pos] = r[L.active] > 0
        res.event[pos] = code
        res.expected[pos] = expected
        res.sigma[pos] = sigma
        if code:
            looks = {"instant": np.array([score]), "smoothed": np.array([smoothed]), "level": np.array([level]),
                     "spread": np.array([spread]), "stuck": np.array([stuck])}
            reason = scoring.which_look(looks, self._tables, 0)
            column = {"level": 10, "spread": 11, "stuck": 12}.get(reason, 4)  # which per_f entry blames
            blame = [(-p[12] if column == 12 else p[column]) for p in per_f]
            res.events.append(Event(
                kind=alerts.EVENT_NAMES[code], stream=sid, alert_id=f"{sid}#{int(r[L.seq])}", ts=ts,
                score=score, likelihood=lik, threshold=self.threshold, features=self.features,
                values=tuple(x), expected=tuple(expected), sigma=tuple(sigma),
                contributions=tuple(p[4] for p in per_f), started=r[L.start_ts],
                reason=reason, position=pos, feature=blame.index(max(blame)),
            ))

    # -- convenience ----------------------------------------------------------------------------
    def process_readings(self, readings: list[Reading]) -> Result:
        return self.process(batch_from_readings(readings, self.F))

    def stats(self) -> dict:
        return {"accepted": self.accepted, "rejects": dict(self.rejects), "streams": len(self.state),
                "evictions": self.state.evictions}
