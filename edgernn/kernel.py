"""One reading on one stream in plain floats: the detector's batch-of-one path.

``Detector._wave`` runs the maths on numpy columns for a wave of streams. At batch 1 numpy's
per-call overhead (~0.5-1 µs per operation) is most of the cost, so this module does the same
maths, in the same order, one float at a time, for one reading (see detector.py for the steps;
tests check the two paths give the same events and numbers to 1e-12).

It is plain Python that Cython compiles to C when the package is built (``pip install``; the build
needs a C compiler and falls back to this source without one). Same source, same numbers: the
tests run the compiled module and this file side by side. ``COMPILED`` says which one is loaded.

Per reading the buffers are 1-D, so the same code runs compiled on typed memoryviews of numpy
arrays (no copies) and as plain Python on lists (list indexing is the fast path without a compiler):

    r[K]        the stream's slab row (state.Layout columns), updated in place
    x[F]        the raw reading
    res[3+2F]   the reading's row of the Result block: score | likelihood | onset | expected | sigma
    out[N_OUT]  per-reading outputs (O_* below)
    work[F*W]   per-feature outputs (W_* below), feature f at f * W
    xin[F]      float32: the clipped, normalised reading the GRU steps with next

``step`` does one reading (batch of one); ``step_wave`` a wave of readings on distinct streams,
in C when compiled, so the caller makes one batched GRU call per wave.
"""

from __future__ import annotations

try:
    import cython
except ImportError:  # plain Python without Cython installed: the decorators do nothing
    from ._cython_shim import cython

import math

import numpy as np

from . import scoring as _sc  # the shared constants (ONSET_LEVELS, SEAS_*)

if cython.compiled:  # C's libm; plain Python: the math module (the same IEEE functions)
    from cython.cimports.libc.math import erfc, exp, expm1, floor, isfinite, log, log1p, log10, sqrt
else:
    from math import erfc, exp, expm1, floor, isfinite, log, log1p, log10, sqrt

# self.out: per reading
(O_SCORE, O_LIK, O_ONSET, O_SMOOTHED, O_LEVEL, O_SPREAD, O_STUCK, O_LOG10P, O_SCORED, O_GAP, O_REF,
 O_SEAS, O_GATE) = range(13)  # O_SEAS: the seasonal look's log10 p; O_GATE: its AND-gate (-inf: untrusted)
N_OUT = 13
# self.work: per feature
(W_XC, W_STD, W_MEAN, W_SIGMA_N, W_CONTRIB, W_RUN, W_D, W_V, W_FM, W_FV, W_LEVEL, W_SPREAD, W_STUCK,
 W_EXPECTED, W_SIGMA, W_REF) = range(16)
W = 16

NONE, RAISED, UPDATE, CLEARED, STALE = 0, 1, 2, 3, -1
P_FLOOR_LOG10 = -12.0  # scoring.P_FLOOR_LOG10
LN10 = 2.302585092994046
SQRT2 = 1.4142135623730951
SQRT_PI = 1.7724538509055159
GAUSS_SWITCH = 26.0  # scoring.GAUSS_SWITCH
NAN = math.nan
# the seasonal look's constants (scoring.SEAS_*), C globals when compiled
NEG_INF = cython.declare(cython.double, -math.inf)
INF = cython.declare(cython.double, math.inf)
DAY = cython.declare(cython.double, _sc.DAY)
SEAS_DT_RATE = cython.declare(cython.double, _sc.SEAS_DT_RATE)
SEAS_MEMORY = cython.declare(cython.double, _sc.SEAS_MEMORY)
SEAS_SPAN = cython.declare(cython.double, _sc.SEAS_SPAN)
SEAS_DAYS = cython.declare(cython.double, _sc.SEAS_DAYS)
SEAS_MIN_DAYS = cython.declare(cython.double, _sc.SEAS_MIN_DAYS)
SEAS_CLIP = cython.declare(cython.double, _sc.SEAS_CLIP)
SEAS_PHI = cython.declare(cython.double, _sc.SEAS_PHI)
SEAS_ZMAX = cython.declare(cython.double, _sc.SEAS_ZMAX)
SEAS_K = cython.declare(cython.int, 32)  # state.Layout.SEAS_K

COMPILED = cython.compiled


@cython.final
@cython.cclass
class OneReading:
    """The detector's constants, flattened for the per-reading loop (built once per Detector)."""

    F: cython.int
    # slab columns (state.Layout)
    m0: cython.int
    v0: cython.int
    p0: cython.int
    lx0: cython.int
    run0: cython.int
    rep0: cython.int
    fm0: cython.int
    fv0: cython.int
    lm0: cython.int
    lv0: cython.int
    sm0: cython.int
    sv0: cython.int
    i_count: cython.int
    i_since: cython.int
    i_last_ts: cython.int
    i_smoothed: cython.int
    i_trials: cython.int
    i_nstat: cython.int
    i_held: cython.int
    i_active: cython.int
    i_hist: cython.int
    i_below: cython.int
    i_cooldown: cython.int
    i_seq: cython.int
    i_peak: cython.int
    i_since_event: cython.int
    i_start_ts: cython.int
    i_duration: cython.int
    or0: cython.int  # onset_ref[7]: instant, smoothed, level, spread, stuck, reference, seasonal
    oq0: cython.int  # onset_quiet[7]: the onset's re-arming (same order)
    rearm: cython.double
    quiet_level: cython.double
    ors0: cython.int  # onset_rates[N_LEVELS]: the onset's per-stream calibration
    on_rate: cython.double
    on_weight: cython.double
    lo0: cython.int  # range look: range_lo[F], range_hi[F]
    hi0: cython.int
    range_surprise: cython.double
    levels: cython.double[:]  # scoring.ONSET_LEVELS
    n_levels: cython.int
    rm0: cython.int  # reference look: ref_mean, ref_fast, ref_fmean, ref_fm2
    rf0: cython.int
    rfm0: cython.int
    rfv0: cython.int
    rtx0: cython.int  # ref_tx, ref_peak: drift allowance and peak gate (see Detector._wave)
    rpk0: cython.int
    ref_drift: cython.double  # 0: off
    ref_peak: cython.double  # 0: off
    ref_decay: cython.double
    ref_rows: cython.double  # 0: no reference look
    ref_rate: cython.double
    log10_F: cython.double
    n_looks: cython.int
    # the seasonal look (state.Layout seas_*; see Detector._seasonal_wave)
    seasonal: cython.bint
    seas_trust: cython.double
    day_offset: cython.double
    log10_looks_seas: cython.double  # log10 of the number of looks on rows where it is trusted
    sem0: cython.int
    sev0: cython.int
    i_cyc0: cython.int
    i_cyc1: cython.int
    i_sday: cython.int
    i_sdt: cython.int
    i_s2: cython.int
    i_zb: cython.int
    i_zb2: cython.int
    i_lev: cython.int
    i_vg: cython.int
    i_vr: cython.int
    # detector settings
    warmup: cython.double
    settle: cython.double
    stream_norm: cython.bint
    adapt: cython.double
    max_gap: cython.double  # < 0: no gap reset
    clip: cython.double
    lvmin: cython.double
    lvmax: cython.double
    fast_rate: cython.double
    min_std: cython.double
    min_rel_std: cython.double
    smoothing: cython.double
    repeat_memory: cython.double
    onset_decay: cython.double
    onset_ratio: cython.double
    relearn_after: cython.double
    threshold: cython.double
    clear_level: cython.double
    log10_looks: cython.double
    # alert machine (alerts.AlertSettings)
    a_k: cython.int
    a_mask: cython.long
    a_clear_after: cython.double
    a_min_duration: cython.double
    a_cooldown: cython.double
    a_update_factor: cython.double
    a_update_gap: cython.double
    # calibration tables: 4 looks (instant, smoothed, level, spread), each xs[n] then log10_sf[n]
    tab_n: cython.int
    tab: cython.double[:]
    out: cython.double[:]
    work: cython.double[:]
    xin: cython.float[:]

    def __init__(self, det, layout, tables: list, out, work, xin):
        """det: the Detector (settings resolved); tables: the 4 prepared scoring tables, in the
        order instant, smoothed, level, spread; out[N_OUT], work[F * W] (float64 arrays when
        compiled, lists when not) and xin float32[F] (the GRU input): the caller's buffers."""
        L, s = layout, det.settings
        self.F = det.F
        (self.m0, self.v0, self.p0, self.lx0, self.run0, self.rep0, self.fm0, self.fv0, self.lm0, self.lv0,
         self.sm0, self.sv0) = (getattr(L, n).start for n in ("norm_mean", "norm_var", "pred", "last_x", "run", "reps",
                                                                "fast_mean", "fast_var", "lvl_mean", "lvl_var",
                                                                "spr_mean", "spr_var"))
        self.i_count, self.i_since, self.i_last_ts, self.i_smoothed = L.count, L.since_reset, L.last_ts, L.smoothed
        self.i_trials, self.i_nstat, self.i_held, self.or0 = L.trials, L.nstat, L.held, L.onset_ref.start
        self.i_active, self.i_hist, self.i_below, self.i_cooldown = L.active, L.hist, L.below, L.cooldown
        self.i_seq, self.i_peak, self.i_since_event = L.seq, L.peak, L.since_event
        self.i_start_ts, self.i_duration = L.start_ts, L.duration
        self.rm0, self.rf0, self.rfm0, self.rfv0 = L.ref_mean.start, L.ref_fast.start, L.ref_fmean.start, L.ref_fm2.start
        self.ref_rows, self.ref_rate = det.reference_rows, det.reference_rate
        self.rtx0, self.rpk0 = L.ref_tx.start, L.ref_peak.start
        self.ref_drift, self.ref_peak = det.reference_drift, det.reference_peak
        self.ref_decay = 1.0 - det.repeat_memory
        self.log10_F = math.log10(det.F)
        self.n_looks = 6 if det.reference_rows else 5
        self.warmup, self.settle = det.warmup, s.settle
        self.stream_norm, self.adapt = det.stream_norm, det.adapt
        self.max_gap = -1.0 if s.max_gap_s is None else s.max_gap_s
        b = det.bundle
        self.clip, self.lvmin, self.lvmax = b.input_clip, b.logvar_min, b.logvar_max
        self.fast_rate, self.min_std, self.min_rel_std = det.fast_rate, s.min_std, s.min_rel_std
        self.smoothing, self.repeat_memory, self.onset_decay = det.cal.smoothing, det.repeat_memory, det.onset_decay
        self.relearn_after = s.relearn_after
        self.onset_ratio = det.onset_ratio
        self.oq0, self.rearm, self.quiet_level = L.onset_quiet.start, det.onset_rearm, det.onset_quiet
        self.ors0, self.on_rate, self.on_weight = L.onset_rates.start, det.onset_rate, det.onset_weight
        self.lo0, self.hi0, self.range_surprise = L.range_lo.start, L.range_hi.start, det.range_surprise
        levels = [float(v) for v in _sc.ONSET_LEVELS]
        self.levels = np.array(levels, np.float64) if cython.compiled else levels
        self.n_levels = len(levels)
        self.threshold, self.clear_level = det.threshold, det.clear_level
        self.log10_looks = math.log10(self.n_looks)  # Bonferroni over the looks in use (scoring.combine_log10p)
        self.seasonal, self.seas_trust, self.day_offset = det.seasonal, det.seasonal_trust, det.day_offset
        self.log10_looks_seas = math.log10(self.n_looks + 1)
        self.sem0, self.sev0 = (L.seas_m.start, L.seas_v.start) if det.seasonal else (0, 0)
        (self.i_cyc0, self.i_cyc1, self.i_sday, self.i_sdt, self.i_s2, self.i_zb, self.i_zb2, self.i_lev, self.i_vg,
         self.i_vr) = (getattr(L, n) if det.seasonal else 0 for n in L.SEAS_SCALARS)
        a = s.alerts
        self.a_k, self.a_mask = a.k, (1 << a.n) - 1
        self.a_clear_after, self.a_min_duration, self.a_cooldown = a.clear_after, a.min_duration, a.cooldown
        self.a_update_factor, self.a_update_gap = a.update_factor, a.update_gap
        n = max(len(t["xs_list"]) for t in tables)
        flat = []
        for t in tables:  # pad by repeating the last point: np.interp clamps there anyway
            xs, ls = t["xs_list"], t["ls_list"]
            flat += xs + [xs[-1]] * (n - len(xs)) + ls + [ls[-1]] * (n - len(ls))
        self.tab_n = n
        self.tab = np.array(flat, np.float64) if cython.compiled else flat
        self.out, self.work, self.xin = out, work, xin

    @cython.ccall
    def gauss_tail_log10(self, z: cython.double) -> cython.double:
        """scoring.gauss_tail_log10 for one value: log10 erfc(z / sqrt 2), asymptotic far out."""
        y: cython.double = z / SQRT2
        if y < GAUSS_SWITCH:
            return log10(erfc(y))
        return (-y * y - log(y * SQRT_PI) + log1p(-0.5 / (y * y))) / LN10

    @cython.ccall
    @cython.boundscheck(False)
    @cython.wraparound(False)
    def tail(self, k: cython.int, value: cython.double) -> cython.double:
        """log10 P(look k >= value): np.interp on table k (linear, clamped at both ends)."""
        n: cython.int = self.tab_n
        base: cython.int = 2 * n * k
        lo: cython.int = 0
        hi: cython.int = n - 1
        mid: cython.int
        if value >= self.tab[base + hi]:
            return self.tab[base + n + hi]
        if value <= self.tab[base]:
            return self.tab[base + n]
        while hi - lo > 1:  # xs[lo] < value < xs[hi]; find the first xs > value
            mid = (lo + hi) // 2
            if self.tab[base + mid] > value:
                hi = mid
            else:
                lo = mid
        x0: cython.double = self.tab[base + hi - 1]
        x1: cython.double = self.tab[base + hi]
        if x1 == x0:
            return self.tab[base + n + hi]
        l0: cython.double = self.tab[base + n + hi - 1]
        return (self.tab[base + n + hi] - l0) / (x1 - x0) * (value - x0) + l0

    @cython.ccall
    def likelihood(self, log10p: cython.double) -> cython.double:
        """scoring.likelihood_from_log10p for one value."""
        if log10p >= P_FLOOR_LOG10:
            return 0.0 - expm1(log10p * LN10)
        return 1.0 - 10.0**P_FLOOR_LOG10 * (1.0 + log(max(log10p / P_FLOOR_LOG10, 1.0))) ** -0.2

    @cython.ccall
    def step(self, r: cython.double[:], x: cython.double[:], ts: cython.double, res: cython.double[:]) -> cython.int:
        """One reading x[F] at ts on the stream's row r[K]; see ``_step``. Outputs go to the
        buffers given at construction (out, work, xin)."""
        return self._step(r, x, ts, res, self.out, self.work, self.xin)

    @cython.ccall
    @cython.boundscheck(False)
    @cython.wraparound(False)
    def step_wave(self, num: cython.double[:, :], rows: cython.Py_ssize_t[:], x: cython.double[:, :],
                  ts: cython.double[:], block: cython.double[:, :], pos: cython.Py_ssize_t[:],
                  outs: cython.double[:, :], works: cython.double[:, :], xin: cython.float[:, :],
                  codes: cython.schar[:]) -> None:
        """``_step`` for a wave of b readings on b distinct streams: reading j (x[j], ts[j]) on
        slab row num[rows[j]], its Result row block[pos[j]], its outputs in outs[j], works[j],
        xin[j] and its event code in codes[j]. The caller then steps the GRU once for the wave."""
        j: cython.Py_ssize_t
        for j in range(rows.shape[0]):
            codes[j] = self._step(num[rows[j]], x[j], ts[j], block[pos[j]], outs[j], works[j], xin[j])

    @cython.cfunc
    @cython.boundscheck(False)
    @cython.wraparound(False)
    @cython.cdivision(True)
    def _step(self, r: cython.double[:], x: cython.double[:], ts: cython.double, res: cython.double[:],
              out: cython.double[:], work: cython.double[:], xin: cython.float[:]) -> cython.int:
        """Score reading x at ts against the stream's row r, advance its alert machine and learn
        from it; write score | likelihood | onset | expected[F] | sigma[F] to res (the reading's
        row of the Result block), the per-reading and per-feature outputs to out and work, and the
        GRU input to xin. Returns the event code (STALE: rejected, nothing touched). The caller
        steps the GRU (after resetting h when out[O_GAP] is set) and stores the new prediction."""
        F: cython.int = self.F
        f: cython.int
        o: cython.int
        if ts < r[self.i_last_ts]:
            return STALE
        out[O_GAP] = 0.0
        if self.max_gap >= 0.0 and ts - r[self.i_last_ts] > self.max_gap and r[self.i_count] > 0:
            out[O_GAP] = 1.0
            r[self.i_since] = 0.0
            r[self.i_smoothed] = 0.0
        count: cython.double = r[self.i_count] + 1
        warming: cython.bint = count <= self.warmup
        af: cython.double = self.fast_rate
        q_log: cython.double = -log10(r[self.i_trials] + 2.0)
        score: cython.double = 0.0
        level: cython.double = 0.0
        spread: cython.double = 0.0
        stuck: cython.double = 0.0
        xf: cython.double
        mean: cython.double
        var: cython.double
        d: cython.double
        std: cython.double
        c: cython.double
        sigma_n: cython.double
        z: cython.double
        contrib: cython.double
        run: cython.double
        stuck_f: cython.double
        fm_old: cython.double
        fm: cython.double
        fv: cython.double
        dl: cython.double
        vs: cython.double
        level_f: cython.double
        spread_f: cython.double
        floor: cython.double
        reference: cython.double = 0.0  # min over features of log10 P(|N(0,1)| >= z_f)
        rk: cython.double = min(count, self.ref_rows)
        in_ref: cython.bint = count <= self.ref_rows
        rf: cython.double
        rm: cython.double
        rfm: cython.double
        rfv: cython.double
        rz: cython.double
        rvar: cython.double
        grown: cython.double
        rpk: cython.double
        for f in range(F):  # 1-4: normalise, residual, the per-feature parts of the looks
            o = f * W
            xf = x[f]
            mean, var = r[self.m0 + f], r[self.v0 + f]
            if warming and self.stream_norm:  # Welford
                d = xf - mean
                mean = mean + d / count
                var = var + (d * (xf - mean) - var) / count
                r[self.m0 + f], r[self.v0 + f] = mean, var
            floor = max(self.min_std, self.min_rel_std * abs(mean))
            std = sqrt(max(var, floor * floor))
            c = (xf - mean) / std
            c = -self.clip if c < -self.clip else self.clip if c > self.clip else c
            sigma_n = exp(0.5 * min(max(r[self.p0 + F + f], self.lvmin), self.lvmax))
            z = (c - r[self.p0 + f]) / sigma_n
            contrib = min(z * z, 1e12) / F
            score += contrib
            run = r[self.run0 + f] + 1 if xf == r[self.lx0 + f] else 0.0
            stuck_f = run * (log10(r[self.rep0 + f] + 1.0) + q_log) if run != 0.0 else 0.0
            stuck = min(stuck, stuck_f)
            fm_old = xf if count == 1 else r[self.fm0 + f]
            fm = fm_old + af * (xf - fm_old)
            fv = (1.0 - af) * (r[self.fv0 + f] + af * (xf - fm_old) ** 2)
            dl = (fm - mean) / std
            vs = log(fv / (std * std) + 1e-4)
            level_f = abs(dl - r[self.lm0 + f]) / sqrt(r[self.lv0 + f] + 1e-4)
            spread_f = abs(vs - r[self.sm0 + f]) / sqrt(r[self.sv0 + f] + 1e-2)
            level, spread = max(level, level_f), max(spread, spread_f)
            if self.ref_rows > 0.0:  # the reference look (see Detector._wave)
                rf = xf if count == 1 else r[self.rf0 + f]
                rf = rf + self.ref_rate * (xf - rf)
                rm, rfm, rfv = r[self.rm0 + f], r[self.rfm0 + f], r[self.rfv0 + f]
                if in_ref:
                    rm = rm + (xf - rm) / rk
                    d = rf - rfm
                    rfm = rfm + d / rk
                    rfv = rfv + d * (rf - rfm)
                    r[self.rm0 + f], r[self.rfm0 + f], r[self.rfv0 + f] = rm, rfm, rfv
                r[self.rf0 + f] = rf
                floor = max(self.min_std, self.min_rel_std * abs(rm))
                rvar = max(rfv / max(rk - 1.0, 1.0), floor * floor)
                if self.ref_drift > 0.0:  # drift allowance (see Detector._wave)
                    if in_ref:
                        r[self.rtx0 + f] = r[self.rtx0 + f] + 0.5 * rk * (xf - rm)
                    grown = (self.ref_drift * r[self.rtx0 + f] / max(rk * (rk * rk - 1.0) / 12.0, 1.0)
                             * max(count - self.ref_rows, 0.0))
                    rvar = rvar + grown * grown
                rz = abs(rf - rm) / sqrt(rvar)
                if self.ref_peak > 0.0:  # peak gate (see Detector._wave)
                    rpk = 0.0 if in_ref else max(rz, r[self.rpk0 + f] * self.ref_decay)
                    r[self.rpk0 + f] = rpk
                    if rz < self.ref_peak * rpk:
                        rz = 0.0
                work[o + W_REF] = rz
                reference = min(reference, self.gauss_tail_log10(rz))
            xin[f] = c
            work[o + W_XC], work[o + W_STD], work[o + W_MEAN] = c, std, mean
            work[o + W_SIGMA_N], work[o + W_CONTRIB], work[o + W_RUN] = sigma_n, contrib, run
            work[o + W_D], work[o + W_V], work[o + W_FM], work[o + W_FV] = dl, vs, fm, fv
            work[o + W_LEVEL], work[o + W_SPREAD], work[o + W_STUCK] = level_f, spread_f, stuck_f
            work[o + W_EXPECTED] = r[self.p0 + f] * std + mean
            work[o + W_SIGMA] = sigma_n * std
            res[3 + f], res[3 + F + f] = work[o + W_EXPECTED], work[o + W_SIGMA]
        since: cython.double = r[self.i_since] + 1
        scored: cython.bint = count > self.warmup and since > self.settle
        smoothed: cython.double = score
        if since > 1:
            smoothed = r[self.i_smoothed] + self.smoothing * (score - r[self.i_smoothed])
        lp0: cython.double = self.tail(0, score)
        lp1: cython.double = self.tail(1, smoothed)
        lp2: cython.double = self.tail(2, level)
        lp3: cython.double = self.tail(3, spread)
        lp5: cython.double = 0.0
        if self.ref_rows > 0.0:
            lp5 = min(reference + self.log10_F, 0.0)
        lp6: cython.double = 0.0  # the seasonal look (0: not trusted)
        gate: cython.double = NEG_INF
        bonf: cython.double = self.log10_looks
        out[O_SEAS], out[O_GATE] = 0.0, NEG_INF
        if self.seasonal:
            if self.season(r, x[0], ts, count, out):  # trusted: the AND-gate and one more look
                lp6, gate, bonf = out[O_SEAS], out[O_GATE], self.log10_looks_seas
                lp0, lp1 = max(lp0, gate), max(lp1, gate)
        log10p: cython.double = min(stuck, lp0, lp1, lp2, lp3, lp5, lp6)
        log10p = min(log10p + bonf, 0.0)
        lik: cython.double = 0.0
        if scored:
            lik = self.likelihood(log10p)
        # onset, per look (see Detector._wave): the look's surprise -log10(5 p_k) is an onset when it
        # exceeds onset_ratio times that look's last onset surprise (fading with onset_decay)
        top: cython.double = 0.0
        sk: cython.double
        ref: cython.double
        q: cython.double
        k: cython.int
        for k in range(7):  # scoring.ALL_LOOKS: onset_ref column k
            if (k == 5 and self.ref_rows <= 0.0) or (k == 6 and not self.seasonal):
                continue
            sk = 0.0
            if scored:
                sk = (lp0 if k == 0 else lp1 if k == 1 else lp2 if k == 2 else lp3 if k == 3 else stuck if k == 4
                      else lp5 if k == 5 else lp6)
                sk = max(-(sk + bonf), 0.0)
            ref = r[self.or0 + k]
            if sk > self.onset_ratio * ref:
                r[self.or0 + k] = sk
                top = max(top, sk)
            else:
                r[self.or0 + k] = ref * self.onset_decay
            if self.rearm > 0.0 and scored:  # re-arm after a quiet stretch (see Detector._wave)
                q = r[self.oq0 + k] + 1.0 if sk < self.quiet_level else 0.0
                if q >= self.rearm:
                    q = 0.0
                    r[self.or0 + k] = 0.0
                r[self.oq0 + k] = q
        # per-stream calibration and the range look (see Detector._wave): u from the stream's rate
        # of onsets at the highest level <= top, mixed with the model's tail; e the excess beyond
        # the stream's range of raw values, worst feature
        u: cython.double = 0.0
        j: cython.int
        lvl: cython.int = -1
        c_rate: cython.double = 1.0
        mixed: cython.double
        e: cython.double = 0.0
        width: cython.double
        if top > 0.0:
            for j in range(self.n_levels):
                if self.levels[j] <= top:
                    lvl = j
            if lvl >= 0:
                c_rate = r[self.ors0 + lvl]
            mixed = self.on_weight * c_rate + (1.0 - self.on_weight) * 10.0 ** -top
            u = min(top + 1.0, -log10(mixed)) if mixed > 0.0 else top + 1.0
        for f in range(F):
            width = r[self.hi0 + f] - r[self.lo0 + f]
            if width > 0.0:
                e = max(e, max(max(x[f] - r[self.hi0 + f], r[self.lo0 + f] - x[f]), 0.0) / width)
            r[self.lo0 + f] = min(r[self.lo0 + f], x[f])
            r[self.hi0 + f] = max(r[self.hi0 + f], x[f])
        shown: cython.double = max(u, self.range_surprise * e) if scored else 0.0
        onset: cython.double = self.likelihood(-shown)
        if scored:
            for j in range(self.n_levels):
                r[self.ors0 + j] += ((1.0 if top >= self.levels[j] else 0.0) - r[self.ors0 + j]) * self.on_rate
        high: cython.bint = lik >= self.clear_level
        code: cython.int = NONE
        if high or r[self.i_active] != 0.0 or r[self.i_cooldown] != 0.0 or r[self.i_hist] != 0.0:
            code = self.alert(r, scored and lik >= self.threshold, high, score, ts)
        out[O_SCORE], out[O_LIK], out[O_ONSET], out[O_SMOOTHED] = score, lik, onset, smoothed
        out[O_LEVEL], out[O_SPREAD], out[O_STUCK], out[O_LOG10P] = level, spread, stuck, log10p
        out[O_SCORED] = 1.0 if scored else 0.0
        out[O_REF] = lp5
        res[0], res[1], res[2] = score if scored else NAN, lik, onset

        # 5. learn: not from readings at or above the clear level, unless held there relearn_after
        held: cython.double = r[self.i_held] + 1 if high else 0.0
        r[self.i_held] = held
        learn: cython.bint = not high or held > self.relearn_after
        stat: cython.bint = learn and count > (self.warmup // 2)
        nstat: cython.double = r[self.i_nstat] + (1.0 if stat else 0.0)
        rate: cython.double = max(1.0 / max(nstat, 1.0), self.repeat_memory) if stat else 0.0
        decay: cython.double = 1.0 if warming else 1.0 - self.repeat_memory
        adapt: cython.double = self.adapt if (self.stream_norm and learn and not warming) else 0.0
        delta: cython.double
        for f in range(F):
            o = f * W
            if adapt != 0.0:
                d = x[f] - r[self.m0 + f]
                r[self.m0 + f] += adapt * d
                r[self.v0 + f] += adapt * (d * d - r[self.v0 + f])
            if rate != 0.0:
                dl = work[o + W_D]
                delta = dl - r[self.lm0 + f]
                r[self.lm0 + f] += rate * delta
                r[self.lv0 + f] += rate * (delta * (dl - r[self.lm0 + f]) - r[self.lv0 + f])
                vs = work[o + W_V]
                delta = vs - r[self.sm0 + f]
                r[self.sm0 + f] += rate * delta
                r[self.sv0 + f] += rate * (delta * (vs - r[self.sm0 + f]) - r[self.sv0 + f])
            run = work[o + W_RUN]
            if learn:
                r[self.rep0 + f] = r[self.rep0 + f] * decay + (1.0 if run > 0 and count > 1 else 0.0)
            r[self.fm0 + f], r[self.fv0 + f] = work[o + W_FM], work[o + W_FV]
            r[self.run0 + f], r[self.lx0 + f] = run, x[f]
        if learn and count > 1:
            r[self.i_trials] = r[self.i_trials] * decay + 1.0
        r[self.i_nstat] = nstat
        r[self.i_count], r[self.i_since], r[self.i_last_ts], r[self.i_smoothed] = count, since, ts, smoothed
        return code

    @cython.cfunc
    @cython.boundscheck(False)
    @cython.wraparound(False)
    @cython.cdivision(True)
    def season(self, r: cython.double[:], x: cython.double, ts: cython.double, count: cython.double,
               out: cython.double[:]) -> cython.bint:
        """The seasonal look for one reading x on the stream's row r (Detector._seasonal_wave, the
        same maths in the same order), test-then-train. Writes its log10 p and the AND-gate's
        log10 2 Phi(-|z|) to out[O_SEAS], out[O_GATE] where trusted; returns trusted."""
        K: cython.int = SEAS_K
        prev: cython.bint = count > 1
        step: cython.double = ts - r[self.i_last_ts]
        dt: cython.double = r[self.i_sdt]
        if prev and step > 0.0:
            dt = step if dt == 0.0 else dt + SEAS_DT_RATE * (step - dt)
        r[self.i_sdt] = dt
        P: cython.double = DAY / dt if dt > 0.0 else DAY / 300.0  # readings per day
        lam_s: cython.double = 1.0 / max(SEAS_MEMORY * P, 2.0)
        lam_b: cython.double = 1.0 / max(SEAS_SPAN * P, 4.0)
        lam_l: cython.double = 1.0 / max(P, 2.0)
        tt: cython.double = ts + self.day_offset
        day: cython.double = floor(tt / DAY)
        w: cython.double = day + 3.0
        d: cython.int = 1 if w - 7.0 * floor(w / 7.0) >= 5.0 else 0
        last: cython.double = r[self.i_sday]
        if prev and day != last:
            w = last + 3.0
            if w - 7.0 * floor(w / 7.0) >= 5.0:
                r[self.i_cyc1] += 1.0
            else:
                r[self.i_cyc0] += 1.0
        r[self.i_sday] = day
        cyc: cython.double = r[self.i_cyc1] if d == 1 else r[self.i_cyc0]
        q: cython.double = (tt - day * DAY) / DAY * K - 0.5
        fi: cython.double = floor(q)
        f: cython.double = q - fi
        g: cython.double = 1.0 - f
        i0: cython.long = cython.cast(cython.long, fi)
        if i0 < 0:
            i0 += K
        i1: cython.long = i0 + 1 if i0 + 1 < K else 0
        own: cython.long = self.sem0 + d * K
        other: cython.long = self.sem0 + (1 - d) * K
        b0: cython.double = r[own + i0]
        b1: cython.double = r[own + i1]
        own_ok: cython.bint = isfinite(b0) and isfinite(b1)
        s0: cython.double = b0 if own_ok else r[other + i0]
        s1: cython.double = b1 if own_ok else r[other + i1]
        have: cython.bint = isfinite(s0) and isfinite(s1)
        lev: cython.double = x if count == 1 else r[self.i_lev]
        eg: cython.double = x - lev
        vg: cython.double = r[self.i_vg]
        trusted: cython.bint = False
        clipv: cython.double = INF
        a: cython.double = max(1.0 / (cyc + 1.0), 1.0 / SEAS_DAYS)  # the profile's learning rate
        res: cython.double
        s2g: cython.double
        vr: cython.double
        v0: cython.double
        v1: cython.double
        s2: cython.double
        z: cython.double
        zb: cython.double
        sfl: cython.double
        zb2: cython.double
        u: cython.double
        ratio: cython.double
        r2: cython.double
        if have:
            res = x - (g * s0 + f * s1)
            s2g, vr = r[self.i_s2], r[self.i_vr]
            if s2g != s2g:  # NaN: the first residual
                s2g, vr = res * res, res * res
            v0, v1 = r[self.sev0 + i0], r[self.sev0 + i1]
            if not isfinite(v0):
                v0 = s2g
            if not isfinite(v1):
                v1 = s2g
            s2 = max(g * v0 + f * v1, SEAS_PHI * SEAS_PHI * vg + 1e-12 * (1.0 + lev * lev))
            z = min(max(res / sqrt(s2), -SEAS_ZMAX), SEAS_ZMAX)
            zb = r[self.i_zb]
            zb = zb + lam_b * (z - zb)
            sfl = lam_b / (2.0 - lam_b)  # the variance of an EW mean of iid unit z
            zb2 = r[self.i_zb2]
            if zb2 != zb2:
                zb2 = sfl
            u = zb / sqrt(max(zb2, sfl))
            ratio = vr / vg if vg > 0.0 else INF
            trusted = cyc >= SEAS_MIN_DAYS and ratio < self.seas_trust
            if trusted:
                out[O_SEAS] = self.gauss_tail_log10(abs(u))
                out[O_GATE] = self.gauss_tail_log10(abs(z))
            r2 = min(res * res, SEAS_CLIP * SEAS_CLIP * s2)
            r[self.i_s2] = s2g + lam_s * (r2 - s2g)
            r[self.sev0 + i0] = v0 + a * g * (r2 - v0)
            r[self.sev0 + i1] = v1 + a * f * (r2 - v1)
            r[self.i_vr] = vr + lam_s * (r2 - vr)
            r[self.i_zb] = zb
            r[self.i_zb2] = zb2 + lam_s * (min(zb * zb, SEAS_CLIP * SEAS_CLIP * max(zb2, sfl)) - zb2)
            clipv = SEAS_CLIP * sqrt(s2)
        r[self.i_vg] = vg + lam_s * ((min(eg * eg, SEAS_CLIP * SEAS_CLIP * vg) if vg > 0.0 else eg * eg) - vg)
        r[self.i_lev] = lev + lam_l * eg
        if own_ok:
            res = x - (g * b0 + f * b1)
            if have:
                res = max(-clipv, min(clipv, res))
            r[own + i0] = b0 + a * g * res
            r[own + i1] = b1 + a * f * res
        else:
            if not isfinite(b0):
                r[own + i0] = x
            if not isfinite(b1):
                r[own + i1] = x
        return trusted

    @cython.cfunc
    def alert(self, r: cython.double[:], over: cython.bint, high: cython.bint, score: cython.double,
              ts: cython.double) -> cython.int:
        """alerts.step for one stream's row (same rules, same order; tests check they agree)."""
        active: cython.bint = r[self.i_active] > 0
        hist: cython.long = ((cython.cast(cython.long, r[self.i_hist]) << 1) | (1 if over else 0)) & self.a_mask
        bits: cython.long = hist
        ones: cython.int = 0
        while bits:  # popcount
            bits &= bits - 1
            ones += 1
        raised: cython.bint = not active and r[self.i_cooldown] <= 0 and ones >= self.a_k
        below: cython.double = r[self.i_below] + 1 if active and not high else 0.0
        cleared: cython.bint = active and below >= self.a_clear_after and r[self.i_duration] >= self.a_min_duration
        duration: cython.double = r[self.i_duration] + 1 if active else 0.0
        since: cython.double = r[self.i_since_event] + 1 if active else 0.0
        update: cython.bint = (active and not cleared and score > self.a_update_factor * r[self.i_peak]
                               and since >= self.a_update_gap)
        now_active: cython.bint = (active and not cleared) or raised
        r[self.i_active] = 1.0 if now_active else 0.0
        r[self.i_hist] = 0.0 if cleared else hist
        r[self.i_below] = below if now_active else 0.0
        r[self.i_duration] = 1.0 if raised else (duration if now_active else 0.0)
        r[self.i_cooldown] = self.a_cooldown if cleared else max(r[self.i_cooldown] - 1, 0.0)
        if raised:
            r[self.i_seq] += 1
            r[self.i_start_ts] = ts
        if raised or update:
            r[self.i_peak] = score
        r[self.i_since_event] = since if now_active and not (raised or update) else 0.0
        return CLEARED if cleared else RAISED if raised else UPDATE if update else NONE
