"""THE per-reading maths of the detector, written once: a pure function of slab rows + parameters.

``step_wave(p, w, rows, x, ts, cap, block, pos, hrows, h_scale)`` runs a wave of readings on
distinct streams on the arrays of a ``Wave`` w: reading j (x[j] raw values, ts[j] epoch seconds)
on slab rows w.num[rows[j]] and w.num4[rows[j]] (the float64 and float32 columns of layout.py), its Result row block[pos[j]] (score | likelihood | onset | surprise |
expected[F] | sigma[F]), its per-reading outputs w.outs[j] (O_* below), its per-feature outputs
w.works[j] (feature f at f * W, W_* below), the GRU input w.xin[j] (float32: the clipped, normalised
reading) and its code w.codes[j] (NONE / RAISED / UPDATE / CLEARED, or STALE / DUPLICATE / RESET:
not stepped). The caller (detector.py) then makes ONE batched GRU call for the wave and stores the
predictions. ``p`` is a ``Params``: resolved settings, bundle constants, the calibration tables
and the slab offsets (one int per column of layout.columns, same names). No Detector is seen here.

Per reading, test-then-train:
  1. stale (ts < the stream's last) or duplicate (same ts and values as the last: a redelivery):
     rejected, nothing touched
  2. gap longer than max_gap_s: hidden state reset (O_GAP), scores held back for settle readings
  3. normalise: Welford during warm-up (stream models; winsorised at WARM_CLIP sd + the range seen
     once WARM_SEED readings are in, so one huge reading cannot own the stream's scale)
  4. the instant look's z per feature: (c - mean) / sigma of the stored prediction; for a mixture
     head (K > 1 Gaussians per feature, layout.columns' pred) the equivalent z of the mixture's
     two-sided tail (_mix_z), with expected / sigma those of its most probable component
  4b. the looks -> per-look log10 p (out[O_LP + k], scoring.ALL_LOOKS order) -> Bonferroni ->
     surprise s = -log10 p (alert_rate_weight > 0: the instant and smoothed looks' part capped by the
     stream's own onset rates, _capped); over the threshold when s >= thr_s, high when s >= clear_s;
     the look that fired (O_LOOK) and the feature it blames (O_FEATURE); onset; alert machine
  5. learn (not from readings at or above the learning level learn_s, unless held there relearn_after;
     learn_s is the clear level of the calibration's learn_surprise, by default the alert threshold's);
     a mixture head with weight_memory: the stream's own correction of the component weights learns
     from every reading after warm-up, high or not (_wb_learn), and is added to the logits of each
     stored prediction (_finish_row)
  6. if any learned statistic is not finite: RESET (the caller re-initialises the stream, counts it)

Learning sees each value clamped to mean +- XMAX max(sd, |mean|, 1) (no overflow from a 1e155 reading).
The raw-unit squares kept in the float32 slab (the spread look's fast_var, the seasonal look's
variances) saturate at F4_MAX: a stream whose spread is beyond ~1.7e19 is still scored, with those
looks blind to its spread, instead of resetting at every reading.
It is plain Python that Cython compiles to C at install (``COMPILED`` says which is loaded);
without a compiler the same file runs as it is (on lists, F32Row for the float32 columns: same
numbers).
"""

from __future__ import annotations

try:
    import cython
except ImportError:  # plain Python without Cython installed: the decorators do nothing
    from ._cython_shim import cython

import ctypes
from typing import Optional
import math

import numpy as np

from . import layout as _layout
from . import scoring as _sc  # the shared constants (ONSET_LEVELS, SEAS_*)

if cython.compiled:  # C's libm; plain Python: the math module (the same IEEE functions)
    from cython.cimports.libc.math import erfc, exp, expm1, floor, isfinite, log, log1p, log10, sqrt
    from cython.cimports.edgernn._cpu import edgernn_prefetch  # a cache hint (no effect on the numbers)
else:
    from math import erfc, exp, expm1, isfinite, log, log1p, log10
    from math import floor as _math_floor, sqrt as _math_sqrt

    def floor(v):
        """C's floor: +-inf and NaN as they are (a 1e300 timestamp's day number in the float32
        slab is inf), where math.floor raises."""
        return _math_floor(v) if isfinite(v) else v

    def sqrt(v):
        """C's sqrt: NaN below 0 (as a slightly negative EW variance in a look's denominator gives
        compiled), where math.sqrt raises ValueError."""
        return _math_sqrt(v) if v >= 0.0 else NAN

# Every constant below is a C constant when compiled (cython.declare); Python code reads them
# through constants() (C globals are not module attributes).
# outs[j]: per reading. O_LP + k: log10 p of look k (scoring.ALL_LOOKS order, instant and smoothed
# after the seasonal AND-gate; 0 for a look not in use)
O_SCORE = cython.declare(cython.int, 0)
O_LIK = cython.declare(cython.int, 1)
O_ONSET = cython.declare(cython.int, 2)
O_SMOOTHED = cython.declare(cython.int, 3)
O_LEVEL = cython.declare(cython.int, 4)
O_SPREAD = cython.declare(cython.int, 5)
O_STUCK = cython.declare(cython.int, 6)
O_LOG10P = cython.declare(cython.int, 7)
O_SCORED = cython.declare(cython.int, 8)
O_GAP = cython.declare(cython.int, 9)
O_REF = cython.declare(cython.int, 10)
O_SEAS = cython.declare(cython.int, 11)
O_GATE = cython.declare(cython.int, 12)
O_SURPRISE = cython.declare(cython.int, 13)
O_LOOK = cython.declare(cython.int, 14)
O_FEATURE = cython.declare(cython.int, 15)
O_DURATION = cython.declare(cython.int, 16)  # readings the stream's alert had been active before this one
O_PEAK = cython.declare(cython.int, 17)  # the peak look's statistic: max over features in use of |z_f|
O_REL = cython.declare(cython.int, 18)  # the relation look's statistic: max over its features of |e_f| (_relation)
O_LP = cython.declare(cython.int, 19)
N_OUT = cython.declare(cython.int, 19 + _layout.N_LOOKS)
# works[j]: per feature (W_XL: the value learning sees, winsorised / clamped)
W_XC = cython.declare(cython.int, 0)
W_STD = cython.declare(cython.int, 1)
W_MEAN = cython.declare(cython.int, 2)
W_SIGMA_N = cython.declare(cython.int, 3)
W_CONTRIB = cython.declare(cython.int, 4)
W_RUN = cython.declare(cython.int, 5)
W_D = cython.declare(cython.int, 6)
W_V = cython.declare(cython.int, 7)
W_FM = cython.declare(cython.int, 8)
W_FV = cython.declare(cython.int, 9)
W_LEVEL = cython.declare(cython.int, 10)
W_SPREAD = cython.declare(cython.int, 11)
W_STUCK = cython.declare(cython.int, 12)
W_EXPECTED = cython.declare(cython.int, 13)
W_SIGMA = cython.declare(cython.int, 14)
W_REF = cython.declare(cython.int, 15)
W_XL = cython.declare(cython.int, 16)
W_MV = cython.declare(cython.int, 17)  # a mixture head: log of the short EW mean of its predicted variance
W_MFV = cython.declare(cython.int, 18)  # ... that EW mean (stored by learning)
W_REL = cython.declare(cython.int, 19)  # the relation look's attribution: |projection| of e on feature f (_relation; 0: not modelled)
W_RELE = cython.declare(cython.int, 20)  # the relation residual e_f the statistic used (signed; scratch)
W = cython.declare(cython.int, 21)  # per-feature outputs per feature
N_LOOKS = cython.declare(cython.int, _layout.N_LOOKS)  # scoring.ALL_LOOKS
N_RES = cython.declare(cython.int, 4)  # score | likelihood | onset | surprise, then expected[F] | sigma[F] in a Result row
NONE = cython.declare(cython.int, 0)
RAISED = cython.declare(cython.int, 1)
UPDATE = cython.declare(cython.int, 2)
CLEARED = cython.declare(cython.int, 3)
STALE = cython.declare(cython.int, -1)  # not stepped: out_of_order
DUPLICATE = cython.declare(cython.int, -2)  # not stepped: duplicate
RESET = cython.declare(cython.int, -3)  # not stepped: state_reset
NEW_NORMAL = cython.declare(cython.int, 4)  # cleared because it lasted max_duration: the stream relearns
WARM_SEED = cython.declare(cython.int, 8)  # readings of plain Welford before the warm-up statistics are winsorised
WARM_CLIP = cython.declare(cython.double, 10.0)  # winsorised at mean +- (WARM_CLIP sd + the range of values seen so far)
XMAX = cython.declare(cython.double, 1e6)  # learning sees x clamped to mean +- XMAX max(sd, |mean|, 1)
F4_MAX = cython.declare(cython.double, 3e38)  # a raw-unit square stored in the float32 slab saturates here (float32 max
#   ~3.4e38: a spread of ~1.7e19) instead of overflowing to inf, which would reset the stream at every reading
P_FLOOR_LOG10 = cython.declare(cython.double, -12.0)  # scoring.P_FLOOR_LOG10
LN10 = cython.declare(cython.double, 2.302585092994046)
SQRT2 = cython.declare(cython.double, 1.4142135623730951)
SQRT_PI = cython.declare(cython.double, 1.7724538509055159)
GAUSS_SWITCH = cython.declare(cython.double, 26.0)  # scoring.GAUSS_SWITCH
LN2 = cython.declare(cython.double, 0.6931471805599453)
RINT_MAGIC = cython.declare(cython.double, 6755399441055744.0)  # 1.5 x 2^52: (v + it) - it is rint(v) for |v| < 2^51
LN_ACKLAM_LOW = cython.declare(cython.double, -3.0261914810386994)  # ln(2 x 0.02425): Acklam's central / tail switch
NAN = cython.declare(cython.double, math.nan)
NEG_INF = cython.declare(cython.double, -math.inf)
INF = cython.declare(cython.double, math.inf)
DAY = cython.declare(cython.double, _sc.DAY)
SEAS_DT_RATE = cython.declare(cython.double, _sc.SEAS_DT_RATE)
SEAS_MEMORY = cython.declare(cython.double, _sc.SEAS_MEMORY)
SEAS_SPAN = cython.declare(cython.double, _sc.SEAS_SPAN)
SEAS_DAYS = cython.declare(cython.double, _sc.SEAS_DAYS)
SEAS_MIN_DAYS = cython.declare(cython.double, _sc.SEAS_MIN_DAYS)
SEAS_CYC_BASE = cython.declare(cython.double, _sc.SEAS_CYC_BASE)
QUIET_BITS = cython.declare(cython.int, _sc.QUIET_BITS)
QUIET_PER_WORD = cython.declare(cython.int, _sc.QUIET_PER_WORD)
QUIET_MAX = cython.declare(cython.long, _sc.QUIET_MAX)
SEAS_CLIP = cython.declare(cython.double, _sc.SEAS_CLIP)
SEAS_PHI = cython.declare(cython.double, _sc.SEAS_PHI)
SEAS_ZMAX = cython.declare(cython.double, _sc.SEAS_ZMAX)
SEAS_K = cython.declare(cython.int, _layout.SEAS_K)
STUCK_PRIOR = cython.declare(cython.double, 2.0)  # stuck_runs: readings of pseudo-count shrinking a run's going-on rate to r (_stuck_lp)
RVAL_MIN = cython.declare(cython.double, 3.0)  # stuck_runs: a completed run of this many repeats or more (4 equal readings) sets the run value (rval)
LM_STEP = cython.declare(cython.double, 0.02)  # level_memory: EW rate of the level centre a reading is at
LM_W_MIN = cython.declare(cython.double, _layout.LM_W_MIN)  # ... the memory's weight stays within [LM_W_MIN, LM_W_MAX]
LM_W_MAX = cython.declare(cython.double, _layout.LM_W_MAX)
LM_V_MIN = cython.declare(cython.double, _layout.LM_V_MIN)  # ... its centres' variance floor (layout.py)
LM_AT = cython.declare(cython.double, 3.0)  # ... a reading is at a centre within LM_AT of its sd
LM_HOLD = cython.declare(cython.double, _layout.LM_HOLD)  # ... readings in a row at each centre before it scores
WB_MAX = cython.declare(cython.double, 2.302585092994046)  # |the weight correction| <= ln 10: one decade either way
LN_WB_RATIO = cython.declare(cython.double, 4.605170185988092)  # ln 100: one reading's responsibility / weight counts at most 100
CALM_Z = cython.declare(cython.double, 4.0)  # the calm step: a step over CALM_Z sd of the stream's own steps is a jump
CALM_START = cython.declare(cython.double, 16.0)  # ... its sd learned uncapped from the first CALM_START steps
CALM_GAP = cython.declare(cython.double, 3.0)  # ... a reading over CALM_GAP x the EW sampling interval after the last is no step
CALM_YOUNG = cython.declare(cython.double, _sc.CALM_YOUNG)  # ... a young stream's calm (scoring.py)
TREND_A = cython.declare(cython.double, _sc.TREND_A)  # the calm trend (scoring.py)
TREND_B = cython.declare(cython.double, _sc.TREND_B)
TREND_GRACE = cython.declare(cython.double, _sc.TREND_GRACE)
TREND_START = cython.declare(cython.double, _sc.TREND_START)
TREND_RESTART = cython.declare(cython.double, _sc.TREND_RESTART)
TREND_CAP = cython.declare(cython.double, 16.0)  # ... one residual mean's square counts at most this x its mean square
CALM_VAR_MAX = cython.declare(cython.double, 3.0e38)  # ... calm_var (float32, raw units^2) held under float32's largest
CALM_REL_FLOOR = cython.declare(cython.double, 1e-7)  # ... its sd floored at min_std + this x |x| (float32 resolution)

COMPILED = cython.compiled


def constants() -> dict:
    """The kernel's output indices, codes and tuning constants by name, for Python callers."""
    return {"O_SCORE": O_SCORE, "O_LIK": O_LIK, "O_ONSET": O_ONSET, "O_SMOOTHED": O_SMOOTHED, "O_LEVEL": O_LEVEL,
            "O_SPREAD": O_SPREAD, "O_STUCK": O_STUCK, "O_LOG10P": O_LOG10P, "O_SCORED": O_SCORED, "O_GAP": O_GAP,
            "O_REF": O_REF, "O_SEAS": O_SEAS, "O_GATE": O_GATE, "O_SURPRISE": O_SURPRISE, "O_LOOK": O_LOOK,
            "O_FEATURE": O_FEATURE, "O_DURATION": O_DURATION, "O_PEAK": O_PEAK, "O_REL": O_REL, "O_LP": O_LP, "N_OUT": N_OUT, "W_XC": W_XC, "W_STD": W_STD, "W_MEAN": W_MEAN,
            "W_SIGMA_N": W_SIGMA_N, "W_CONTRIB": W_CONTRIB, "W_RUN": W_RUN, "W_D": W_D, "W_V": W_V, "W_FM": W_FM,
            "W_FV": W_FV, "W_LEVEL": W_LEVEL, "W_SPREAD": W_SPREAD, "W_STUCK": W_STUCK, "W_EXPECTED": W_EXPECTED,
            "W_SIGMA": W_SIGMA, "W_REF": W_REF, "W_XL": W_XL, "W_MV": W_MV, "W_MFV": W_MFV, "W_REL": W_REL, "W_RELE": W_RELE, "W": W, "N_RES": N_RES, "NONE": NONE, "RAISED":
            RAISED, "UPDATE": UPDATE, "CLEARED": CLEARED, "STALE": STALE, "DUPLICATE": DUPLICATE, "RESET": RESET,
            "NEW_NORMAL": NEW_NORMAL,
            "WARM_SEED": WARM_SEED, "WARM_CLIP": WARM_CLIP, "XMAX": XMAX, "P_FLOOR_LOG10": P_FLOOR_LOG10, "LN10":
            LN10, "SQRT2": SQRT2, "SQRT_PI": SQRT_PI, "GAUSS_SWITCH": GAUSS_SWITCH, "NAN": NAN}


@cython.final
@cython.cclass
class Params:
    """Everything the kernel reads besides the slab: built once per Detector (detector.kernel_params).

    Public ints named like layout.columns are slab offsets (-1 / 0: the column is not there);
    the rest are resolved settings and bundle constants. ``Params(values, levels, tables)``:
    values {name: number} for every public field, levels scoring.ONSET_LEVELS, tables the seven
    prepared calibration tables (instant, smoothed, level, spread, peak, reference, relation:
    scoring.KERNEL_TABLES; the peak one is read only when ``peak_on`` is set, the reference one only
    when ``tref_on`` is, the relation one only when ``rel_on`` is), used (optional) 1 / 0 per
    feature: 0 keeps a feature out of the score and the looks (all 0 or None: every feature),
    stuck (optional) 1 / 0 per feature: 0 keeps a feature out of the stuck look (a binary or
    quantised feature repeats by nature; None: every used feature), shape (optional) 1 / 0 per
    feature: 0 keeps a feature out of the level and spread looks (a binary or constant feature:
    the stream's EW statistics of its level and spread are degenerate; None: every used feature),
    gate (optional) per feature: the training reference measures a feature from the stream's
    warm-up mean only when that mean sits more than gate training sd from the model's mean (None:
    0, every feature: the warm-up mean wherever it is nearer), zcap (optional) per feature: the most
    a residual |z| counts (None: no cap), relation (optional): the bundle's relation model
    {features, coef, resid_std} (None: no relation look)."""

    # slab offsets (layout.columns)
    norm_mean = cython.declare(cython.int, visibility="public")
    norm_var = cython.declare(cython.int, visibility="public")
    pred = cython.declare(cython.int, visibility="public")
    last_x = cython.declare(cython.int, visibility="public")
    run = cython.declare(cython.int, visibility="public")
    reps = cython.declare(cython.int, visibility="public")
    rstart = cython.declare(cython.int, visibility="public")  # stuck_runs only
    rval = cython.declare(cython.int, visibility="public")  # stuck_runs only
    fast_mean = cython.declare(cython.int, visibility="public")
    fast_var = cython.declare(cython.int, visibility="public")
    lvl_mean = cython.declare(cython.int, visibility="public")
    lvl_var = cython.declare(cython.int, visibility="public")
    spr_mean = cython.declare(cython.int, visibility="public")
    spr_var = cython.declare(cython.int, visibility="public")
    mspr_fast = cython.declare(cython.int, visibility="public")
    mspr_mean = cython.declare(cython.int, visibility="public")
    mspr_var = cython.declare(cython.int, visibility="public")
    ref_mean = cython.declare(cython.int, visibility="public")
    ref_fast = cython.declare(cython.int, visibility="public")
    ref_fmean = cython.declare(cython.int, visibility="public")
    ref_fm2 = cython.declare(cython.int, visibility="public")
    ref_tx = cython.declare(cython.int, visibility="public")
    ref_peak = cython.declare(cython.int, visibility="public")
    rel_mean = cython.declare(cython.int, visibility="public")
    wbias = cython.declare(cython.int, visibility="public")
    jrate = cython.declare(cython.int, visibility="public")
    calm_var = cython.declare(cython.int, visibility="public")
    calm_since = cython.declare(cython.int, visibility="public")
    trend_m1 = cython.declare(cython.int, visibility="public")
    trend_d = cython.declare(cython.int, visibility="public")
    trend_eb = cython.declare(cython.int, visibility="public")
    trend_v = cython.declare(cython.int, visibility="public")
    lm_c = cython.declare(cython.int, visibility="public")
    lm_v = cython.declare(cython.int, visibility="public")
    lm_w = cython.declare(cython.int, visibility="public")
    lm_stay = cython.declare(cython.int, visibility="public")
    range_lo = cython.declare(cython.int, visibility="public")
    range_hi = cython.declare(cython.int, visibility="public")
    count = cython.declare(cython.int, visibility="public")
    since_reset = cython.declare(cython.int, visibility="public")
    last_ts = cython.declare(cython.int, visibility="public")
    sample_dt = cython.declare(cython.int, visibility="public")
    smoothed = cython.declare(cython.int, visibility="public")
    trials = cython.declare(cython.int, visibility="public")
    nstat = cython.declare(cython.int, visibility="public")
    held = cython.declare(cython.int, visibility="public")
    hist = cython.declare(cython.int, visibility="public")
    phase_n = cython.declare(cython.int, visibility="public")
    seq = cython.declare(cython.int, visibility="public")
    peak = cython.declare(cython.int, visibility="public")
    since_event = cython.declare(cython.int, visibility="public")
    start_ts = cython.declare(cython.int, visibility="public")
    duration = cython.declare(cython.int, visibility="public")
    onset_ref = cython.declare(cython.int, visibility="public")
    onset_quiet = cython.declare(cython.int, visibility="public")
    onset_rates = cython.declare(cython.int, visibility="public")
    seas_m = cython.declare(cython.int, visibility="public")
    seas_v = cython.declare(cython.int, visibility="public")
    seas_cyc = cython.declare(cython.int, visibility="public")
    seas_day = cython.declare(cython.int, visibility="public")
    seas_s2 = cython.declare(cython.int, visibility="public")
    seas_zb = cython.declare(cython.int, visibility="public")
    seas_zb2 = cython.declare(cython.int, visibility="public")
    seas_lev = cython.declare(cython.int, visibility="public")
    seas_vg = cython.declare(cython.int, visibility="public")
    seas_vr = cython.declare(cython.int, visibility="public")
    # model and settings
    F = cython.declare(cython.int, visibility="public")
    K = cython.declare(cython.int, visibility="public")  # the head's Gaussians per feature (pred: layout.columns)
    pred_n = cython.declare(cython.int, visibility="public")  # entries of pred: 2F (K = 1), 3KF (backends.base.pred_width)
    stream_norm = cython.declare(cython.bint, visibility="public")
    warmup = cython.declare(cython.double, visibility="public")
    settle = cython.declare(cython.double, visibility="public")
    adapt = cython.declare(cython.double, visibility="public")
    max_gap = cython.declare(cython.double, visibility="public")  # < 0: no gap reset
    clip = cython.declare(cython.double, visibility="public")
    lvmin = cython.declare(cython.double, visibility="public")
    lvmax = cython.declare(cython.double, visibility="public")
    fast_rate = cython.declare(cython.double, visibility="public")
    min_std = cython.declare(cython.double, visibility="public")
    min_rel_std = cython.declare(cython.double, visibility="public")
    smoothing = cython.declare(cython.double, visibility="public")
    smooth_typ = cython.declare(cython.double, visibility="public")  # the smoothed look's median on normal data
    repeat_memory = cython.declare(cython.double, visibility="public")
    relearn_after = cython.declare(cython.double, visibility="public")
    thr_s = cython.declare(cython.double, visibility="public")  # surprise threshold (raise)
    clear_s = cython.declare(cython.double, visibility="public")  # surprise of the clear level
    learn_s = cython.declare(cython.double, visibility="public")  # readings at or above it are not learned from
    log10_looks = cython.declare(cython.double, visibility="public")  # Bonferroni, looks in use
    log10_looks_seas = cython.declare(cython.double, visibility="public")  # ... where seasonal is trusted
    log10_F = cython.declare(cython.double, visibility="public")
    onset_decay = cython.declare(cython.double, visibility="public")
    onset_ratio = cython.declare(cython.double, visibility="public")
    rearm = cython.declare(cython.double, visibility="public")
    quiet_level = cython.declare(cython.double, visibility="public")
    on_rate = cython.declare(cython.double, visibility="public")
    ln_keep = cython.declare(cython.double, visibility="public")  # log1p(-on_rate): the onset rates' debias (_own_rate)
    cap_top = cython.declare(cython.double, visibility="public")  # sqrt 2 x the top onset level: above it _own_rate does not cap
    looks_mask = cython.declare(cython.long, visibility="public")  # bit k: look k (scoring.ALL_LOOKS order) is in use
    on_weight = cython.declare(cython.double, visibility="public")
    al_weight = cython.declare(cython.double, visibility="public")  # alert_rate_weight (0: off)
    wb_rate = cython.declare(cython.double, visibility="public")  # 1 / weight_memory (0: the weights as the model gives them)
    calm_mem = cython.declare(cython.double, visibility="public")  # calm_memory (0: off; univariate models only)
    jump_on = cython.declare(cython.bint, visibility="public")  # a model with jump inputs: xin is [c | j] (backends/base.py)
    runs_on = cython.declare(cython.bint, visibility="public")  # stuck_runs: runs at the stream's run value scored as a chain
    j_thr = cython.declare(cython.double, visibility="public")  # its in.jump: a jump is |x - last_x| > j_thr sd
    j_mem = cython.declare(cython.double, visibility="public")  # ... the rate's memory, readings
    j_floor = cython.declare(cython.double, visibility="public")  # ... j = min(1 + log10(rate + j_floor) / j_lfloor, 1)
    j_lfloor = cython.declare(cython.double, visibility="public")  # ... -log10(j_floor) (once per Detector)
    lm_rate = cython.declare(cython.double, visibility="public")  # 1 / level_memory (0: no level memory)
    lvl_settle = cython.declare(cython.double, visibility="public")  # level_settle x fast_window: readings of the level / spread statistics before those looks score
    echo_decades = cython.declare(cython.double, visibility="public")  # echo_decades (0: off; training reference only)
    rel_on = cython.declare(cython.bint, visibility="public")  # the relation look is in use (its statistic and a table)
    rel_stat = cython.declare(cython.bint, visibility="public")  # its statistic is kept (the bundle has a relation, F > 1)
    rel_n = cython.declare(cython.int, visibility="public")  # U, the features it models
    range_surprise = cython.declare(cython.double, visibility="public")
    ref_rows = cython.declare(cython.double, visibility="public")  # 0: no reference look
    ref_rate = cython.declare(cython.double, visibility="public")
    ref_drift = cython.declare(cython.double, visibility="public")
    ref_peak_gate = cython.declare(cython.double, visibility="public")
    seasonal = cython.declare(cython.bint, visibility="public")
    peak_on = cython.declare(cython.bint, visibility="public")  # the peak look is in use (F > 1, a peak table)
    tref_on = cython.declare(cython.bint, visibility="public")  # the training-reference look is in use (a reference table)
    tref_stat = cython.declare(cython.bint, visibility="public")  # its statistic is kept (F > 1, fixed normalisation, reference_rows 0)
    seas_trust = cython.declare(cython.double, visibility="public")
    day_offset = cython.declare(cython.double, visibility="public")
    a_k = cython.declare(cython.int, visibility="public")
    a_mask = cython.declare(cython.long, visibility="public")
    a_clear_after = cython.declare(cython.double, visibility="public")
    a_min_duration = cython.declare(cython.double, visibility="public")
    a_max_duration = cython.declare(cython.double, visibility="public")  # <= 0: off
    a_cooldown = cython.declare(cython.double, visibility="public")
    a_update_factor = cython.declare(cython.double, visibility="public")
    a_update_gap = cython.declare(cython.double, visibility="public")
    tab_n = cython.declare(cython.int, visibility="public")
    n_levels = cython.declare(cython.int, visibility="public")
    n_used = cython.declare(cython.double, visibility="public")  # features in the residual statistics
    # arrays: ONSET_LEVELS, the 7 calibration tables (each xs[tab_n] then log10_sf[tab_n]), and per
    # feature 1.0 / 0.0: in the residual statistics and the looks or not (the detector keeps every feature in),
    # in the stuck look or not (used and of a kind where exact repeats are news), in the level and
    # spread looks or not (used and of a kind whose level and spread vary); ref_gate[F] (training sd)
    # and zcap[F] (the most a residual |z| counts: a binary feature's training flip rate; inf otherwise)
    levels: cython.double[:]
    tab: cython.double[:]
    used: cython.double[:]
    stuck: cython.double[:]
    shape: cython.double[:]
    ref_gate: cython.double[:]
    zcap: cython.double[:]
    rel_idx: cython.long[:]  # [U] the features the relation models
    rel_coef: cython.double[:]  # [U * U] row-major: feature i from the others (normalised units; zero diagonal)
    rel_se: cython.double[:]  # [U] residual sd on the training data
    rel_g: cython.double[:]  # [U * U] row-major: (I - coef)[i, k] / rel_se[i], each column k scaled to unit length

    def __init__(self, values: dict, levels, tables: list, used=None, stuck=None, shape=None, gate=None, zcap=None,
                 relation=None):
        self.K = 1  # a Gaussian head unless values say otherwise
        for name, value in values.items():
            setattr(self, name, value)
        self.pred_n = 2 * self.F if self.K == 1 else 3 * self.K * self.F
        n = max(len(t["xs_list"]) for t in tables)
        flat = []
        for t in tables:  # pad by repeating the last point: np.interp clamps there anyway
            xs, ls = t["xs_list"], t["ls_list"]
            flat += xs + [xs[-1]] * (n - len(xs)) + ls + [ls[-1]] * (n - len(ls))
        self.tab_n, self.n_levels = n, len(levels)
        self.ln_keep, self.cap_top = math.log1p(-float(values.get("on_rate", 0.0))), SQRT2 * float(levels[-1])
        self.tab = np.array(flat, np.float64) if cython.compiled else flat
        self.levels = np.array(levels, np.float64) if cython.compiled else [float(v) for v in levels]
        used = [1.0] * int(values.get("F", 1)) if used is None or not any(used) else [float(u) for u in used]
        self.used = np.array(used, np.float64) if cython.compiled else used
        self.n_used = sum(used)
        stuck = used if stuck is None else [u * float(k) for u, k in zip(used, stuck)]  # [F]
        self.stuck = np.array(stuck, np.float64) if cython.compiled else stuck
        shape = used if shape is None else [u * float(k) for u, k in zip(used, shape)]  # [F]
        self.shape = np.array(shape, np.float64) if cython.compiled else shape
        gate = [0.0] * len(used) if gate is None else [float(g) for g in gate]  # [F]
        self.ref_gate = np.array(gate, np.float64) if cython.compiled else gate
        zcap = [INF] * len(used) if zcap is None else [float(c) for c in zcap]  # [F]
        self.zcap = np.array(zcap, np.float64) if cython.compiled else zcap
        rel = relation or {"features": [0], "coef": [[0.0]], "resid_std": [1.0]}  # (unread unless rel_stat)
        idx, coef, se = [int(i) for i in rel["features"]], [float(v) for row in rel["coef"] for v in row], [float(v) for v in rel["resid_std"]]
        self.rel_n = len(idx) if relation is not None else 0
        self.rel_idx = np.array(idx, np.int_) if cython.compiled else idx
        self.rel_coef = np.array(coef, np.float64) if cython.compiled else coef
        self.rel_se = np.array(se, np.float64) if cython.compiled else se
        m = (np.eye(len(idx)) - np.asarray(rel["coef"], np.float64)) / np.asarray(se)[:, None]  # [U, U]: e = m @ c
        g = (m / np.maximum(np.sqrt((m * m).sum(axis=0)), 1e-300)).ravel().tolist()  # columns to unit length
        self.rel_g = np.array(g, np.float64) if cython.compiled else g


@cython.ccall
def gauss_tail_log10(z: cython.double) -> cython.double:
    """scoring.gauss_tail_log10 for one value: log10 erfc(z / sqrt 2), asymptotic far out."""
    y: cython.double = z / SQRT2
    if y < GAUSS_SWITCH:
        return log10(erfc(y))
    return (-y * y - log(y * SQRT_PI) + log1p(-0.5 / (y * y))) / LN10


@cython.cfunc
@cython.cdivision(True)
def _tail_z_start(ln_p: cython.double) -> cython.double:
    """A start for gauss_tail_z (ln_p < 0): Acklam's rational approximation of the normal quantile
    at the one-sided tail p1 = p / 2 (relative error ~1e-9 in p1; in z <= 2e-5 anywhere, ~1e-9 for
    z < 8), written in ln p so that no p underflows: the central form in q = p1 - 1/2 =
    expm1(ln p) / 2 while p1 > 0.02425, else the tail form in sqrt(-2 ln p1)."""
    q: cython.double
    r: cython.double
    if ln_p > LN_ACKLAM_LOW:  # central: z = -x(q), x odd in q, r = q^2
        q = 0.5 * expm1(ln_p)
        r = q * q
        return -q * (((((-3.969683028665376e+01 * r + 2.209460984245205e+02) * r - 2.759285104469687e+02) * r
                        + 1.383577518672690e+02) * r - 3.066479806614716e+01) * r + 2.506628277459239e+00) / (
            ((((-5.447609879822406e+01 * r + 1.615858368580409e+02) * r - 1.556989798598866e+02) * r
              + 6.680131188771972e+01) * r - 1.328068155288572e+01) * r + 1.0)
    q = sqrt(-2.0 * (ln_p - LN2))  # sqrt(-2 ln p1)
    return -(((((-7.784894002430293e-03 * q - 3.223964580411365e-01) * q - 2.400758277161838e+00) * q
               - 2.549732539343734e+00) * q + 4.374664141464968e+00) * q + 2.938163982698783e+00) / (
        (((7.784695709041462e-03 * q + 3.224671290700398e-01) * q + 2.445134137142996e+00) * q
         + 3.754408661907416e+00) * q + 1.0)


@cython.ccall
@cython.cdivision(True)
def gauss_tail_z(ln_p: cython.double) -> cython.double:
    """The inverse of the two-sided Gaussian tail: z >= 0 with ln(2 Phi(-z)) = ln_p (0 for ln_p >= 0).

    Newton on g(z) = ln erfc(z / sqrt 2) (gauss_tail_log10 ln 10, stable far out), g'(z) =
    -sqrt(2 / pi) exp(-z^2 / 2 - g(z)), from _tail_z_start (z within 2e-5 relative): one step
    typically, two at most on ln p in [-1e6, 0]. g is decreasing and concave, so a step from below
    the root lands at or beyond it and the iterates then fall monotonically onto it; Newton's error
    after a step of size s is ~ |g'' / 2 g'| s^2 <= s^2 / 2, so a step <= 1e-7 (1 + z) leaves <= 1e-14
    (1 + z): the stop."""
    if not ln_p < 0.0:
        return 0.0
    z: cython.double = max(_tail_z_start(ln_p), 0.0)
    g: cython.double
    step: cython.double
    i: cython.int
    for i in range(100):
        g = gauss_tail_log10(z) * LN10
        step = (g - ln_p) / (-SQRT2 / SQRT_PI * exp(-0.5 * z * z - g))
        z = max(z - step, 0.0)
        if abs(step) <= 1e-7 * (1.0 + z):
            break
    return z


@cython.ccall
def likelihood(log10p: cython.double) -> cython.double:
    """scoring.likelihood_from_log10p for one value (NaN: NaN)."""
    if log10p != log10p:
        return NAN
    if log10p >= P_FLOOR_LOG10:
        return 0.0 - expm1(log10p * LN10)
    return 1.0 - 10.0**P_FLOOR_LOG10 * (1.0 + log(max(log10p / P_FLOOR_LOG10, 1.0))) ** -0.2


@cython.ccall
@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
def tail(p: Params, k: cython.int, value: cython.double) -> cython.double:
    """log10 P(look k >= value): np.interp on table k (linear, clamped at both ends)."""
    n: cython.int = p.tab_n
    base: cython.int = 2 * n * k
    lo: cython.int = 0
    hi: cython.int = n - 1
    mid: cython.int
    if value >= p.tab[base + hi]:
        return p.tab[base + n + hi]
    if value <= p.tab[base]:
        return p.tab[base + n]
    while hi - lo > 1:  # xs[lo] < value < xs[hi]; find the first xs > value
        mid = (lo + hi) >> 1  # (both >= 0)
        if p.tab[base + mid] > value:
            hi = mid
        else:
            lo = mid
    x0: cython.double = p.tab[base + hi - 1]
    x1: cython.double = p.tab[base + hi]
    if x1 == x0:
        return p.tab[base + n + hi]
    l0: cython.double = p.tab[base + n + hi - 1]
    return (p.tab[base + n + hi] - l0) / (x1 - x0) * (value - x0) + l0


@cython.final
@cython.cclass
class Wave:
    """A wave size's arrays, held as typed views from construction on (a wave then acquires only
    its own per-call buffers: rows, x, ts, the Result's block and positions): the slabs num / num4,
    the Q15 h store hq (None: a float32 state the caller moves), the readings' outputs
    outs[b, N_OUT] / works[b, F * W], their GRU input xin float32[b, F], codes int8[b] and the
    stepped streams' h for the GRU hin float32[b, H]. Plain Python: the same attributes, lists or arrays."""

    num: cython.double[:, :]
    num4: cython.float[:, :]
    hq: cython.short[:, :]
    has_h: cython.bint
    outs: cython.double[:, :]
    works: cython.double[:, :]
    xin: cython.float[:, :]
    codes: cython.schar[:]
    hin: cython.float[:, :]

    def __init__(self, num, num4, hq, outs, works, xin, codes, hin):
        self.num, self.num4, self.outs, self.works, self.xin, self.codes, self.hin = num, num4, outs, works, xin, codes, hin
        self.has_h = hq is not None
        if hq is not None:
            self.hq = hq


@cython.ccall
@cython.boundscheck(False)
@cython.wraparound(False)
def step_wave(p: Params, w: Wave, rows: cython.Py_ssize_t[:], x: cython.double[:, :], ts: cython.double[:],
              cap: cython.double, block: cython.double[:, :], pos: cython.Py_ssize_t[:], hrows: cython.Py_ssize_t[:],
              h_scale: cython.double) -> cython.int:
    """A wave of readings on distinct streams (see the module doc) on w's arrays: stream j's rows are
    w.num[rows[j]] (float64 columns) and w.num4[rows[j]] (float32 columns), its outputs w.outs[j],
    w.works[j], w.xin[j], w.codes[j]; cap: the latest clock a stream may take (now + clock_skew_s;
    inf in replay). With w.hq (the store's int16 Q15 hidden state; None: a float32 state the
    caller gathers itself): a stepped reading's row hq[hrows[j]] is zeroed on a gap and loaded
    into w.hin[j] (float32[b, H], x h_scale) for the wave's GRU call.
    Returns how many codes are not NONE (0: every reading stepped, no event: the common case)."""
    j: cython.Py_ssize_t
    n: cython.Py_ssize_t = len(rows)
    marked: cython.int = 0
    # w's views as locals: one reference each per call (an attribute's view is referenced at every use)
    num: cython.double[:, :] = w.num
    num4: cython.float[:, :] = w.num4
    hq: Optional[cython.short[:, :]] = w.hq if w.has_h else None
    outs: cython.double[:, :] = w.outs
    works: cython.double[:, :] = w.works
    xin: cython.float[:, :] = w.xin
    codes: cython.schar[:] = w.codes
    hin: cython.float[:, :] = w.hin
    for j in range(n):
        if cython.compiled:  # the rows two readings ahead (and, first, these two): their misses overlap the maths
            if j == 0:
                _prefetch_rows(p, num, num4, hq, rows[0], hrows[0])
                if n > 1:
                    _prefetch_rows(p, num, num4, hq, rows[1], hrows[1])
            if j + 2 < n:
                _prefetch_rows(p, num, num4, hq, rows[j + 2], hrows[j + 2])
        codes[j] = _step(p, num[rows[j]], num4[rows[j]], x[j], ts[j], cap, block[pos[j]], outs[j], works[j], xin[j])
        if hq is not None and codes[j] >= 0:
            _h_load(hq, hrows[j], outs[j][O_GAP] != 0.0, h_scale, hin[j])
        if codes[j] != NONE:
            marked += 1
    return marked


@cython.ccall
@cython.boundscheck(False)
@cython.wraparound(False)
def clean_batch(x: cython.const[cython.double][:, :], ts: cython.const[cython.double][:], latest: cython.double) -> cython.bint:
    """True when every value x[B, F] and timestamp ts[B] of a batch is finite and no timestamp is
    after ``latest`` (inf: no limit): nothing to screen (else Detector._screen finds the rejects)."""
    i: cython.Py_ssize_t
    j: cython.Py_ssize_t
    for i in range(x.shape[0]):
        if not (isfinite(ts[i]) and ts[i] <= latest):
            return False
        for j in range(x.shape[1]):
            if not isfinite(x[i, j]):
                return False
    return True


@cython.final
@cython.cclass
class One:
    """A batch of one's arrays, held as typed views from construction on (a call then acquires only
    the batch's own buffers): the slabs num / num4, the Q15 h store hq (None: a float32 state the
    caller moves), the reading's outputs out[N_OUT] / work[F * W] and its GRU input and state
    xin float32[1, F] / hin float32[1, H]. Plain Python: the same attributes, lists or arrays."""

    num: cython.double[:, :]
    num4: cython.float[:, :]
    hq: cython.short[:, :]
    has_h: cython.bint
    out: cython.double[:]
    work: cython.double[:]
    xin: cython.float[:, :]
    hin: cython.float[:, :]

    def __init__(self, num, num4, hq, out, work, xin, hin):
        self.num, self.num4, self.out, self.work, self.xin, self.hin = num, num4, out, work, xin, hin
        self.has_h = hq is not None
        if hq is not None:
            self.hq = hq


@cython.ccall
def step_one(p: Params, one: One, row: cython.Py_ssize_t, hrow: cython.Py_ssize_t, x: cython.double[:],
             ts: cython.double, cap: cython.double, block: cython.double[:, :], h_scale: cython.double) -> cython.int:
    """``step_wave`` for one reading on one stream's rows one.num[row] (float64) and one.num4[row]
    (float32) (no numpy views of them); its Result row block[0], its outputs and GRU input in
    ``one``; returns its code. With one.hq: as step_wave's, the row hq[hrow] loaded into one.hin[0]."""
    code: cython.int = _step(p, one.num[row], one.num4[row], x, ts, cap, block[0], one.out, one.work, one.xin[0])
    if one.has_h and code >= 0:
        _h_load(one.hq, hrow, one.out[O_GAP] != 0.0, h_scale, one.hin[0])
    return code


@cython.ccall
def finish_one(p: Params, one: One, row: cython.Py_ssize_t, code: cython.int, pred: cython.float[:, :],
               flags: cython.schar[:, :], h_next: Optional[cython.float[:, :]], to_q15: cython.double) -> None:
    """``finish_wave`` for a batch of one on ``one``'s arrays (its Result flags: flags[0])."""
    _finish_row(p, one.num4, row, pred[0], flags, 0, code)
    if one.has_h:
        _h_store(h_next[0], to_q15, one.hq, row)


@cython.ccall
@cython.boundscheck(False)
@cython.wraparound(False)
def finish_wave(p: Params, w: Wave, rows: cython.Py_ssize_t[:], pred: cython.float[:, :], flags: cython.schar[:, :],
                pos: cython.Py_ssize_t[:], codes: cython.schar[:], h_next: Optional[cython.float[:, :]],
                to_q15: cython.double) -> None:
    """After the wave's GRU call: stream j's prediction pred[j] (float32[b, P]) into its pred
    column of w.num4, its Result flags (flags[pos[j]]: an alert is active | its event code
    codes[j], NEW_NORMAL as CLEARED) and, with w.hq (int16 Q15; None: the caller stores a
    float32 state), h_next[j] stored at hq[rows[j]] (q15_store's rounding). rows, pos, codes: the
    wave's stepped readings (step_wave's, less any it did not step)."""
    j: cython.Py_ssize_t
    num4: cython.float[:, :] = w.num4  # (a local: one reference per call)
    hq: cython.short[:, :]
    for j in range(rows.shape[0]):
        _finish_row(p, num4, rows[j], pred[j], flags, pos[j], codes[j])
    if w.has_h:
        hq = w.hq
        for j in range(rows.shape[0]):
            _h_store(h_next[j], to_q15, hq, rows[j])


@cython.cfunc
@cython.boundscheck(False)
@cython.wraparound(False)
def _finish_row(p: Params, num4: cython.float[:, :], r: cython.Py_ssize_t, pred: cython.float[:], flags: cython.schar[:, :],
                at: cython.Py_ssize_t, code: cython.int) -> cython.void:
    """One stepped stream's prediction pred[P] into row r's pred column (with weight_memory, its
    logits plus the stream's weight correction wbias) and its Result flags row flags[at] (alert
    active | event)."""
    i: cython.Py_ssize_t
    for i in range(pred.shape[0]):
        num4[r, p.pred + i] = pred[i]
    if p.wb_rate > 0.0:  # the stream's own correction of the mixture's weights: onto the logits
        for i in range(p.K * p.F):
            num4[r, p.pred + 2 * p.K * p.F + i] += num4[r, p.wbias + i]
    flags[at, 0] = 1 if num4[r, p.duration] > 0 else 0
    flags[at, 1] = min(code, CLEARED)


class F32Row(list):
    """A float32 slab row for the plain-Python kernel: a list whose stores round to float32, as a
    store to the compiled kernel's float32 memoryview does (reads are doubles in both)."""

    def __setitem__(self, i, value):
        list.__setitem__(self, i, _ROUND(value).value)


_ROUND = ctypes.c_float


@cython.cfunc
@cython.boundscheck(False)
@cython.wraparound(False)
def _step(p: Params, r: cython.double[:], q: cython.float[:], x: cython.double[:], ts: cython.double, cap: cython.double,
          res: cython.double[:], out: cython.double[:], work: cython.double[:], xin: cython.float[:]) -> cython.int:
    """One reading x[F] at ts on the stream's row r: score it, advance its alert machine, learn.
    Returns its code; the caller steps the GRU (after resetting h when out[O_GAP] is set)."""
    F: cython.int = p.F
    f: cython.int
    if ts < r[p.last_ts]:
        return STALE
    if ts == r[p.last_ts] and q[p.count] > 0 and _repeats(p, r, x):
        return DUPLICATE
    if not _pred_finite(p, q):  # the backend returned a non-finite prediction (or h) for this stream
        return RESET
    out[O_GAP] = 0.0
    if p.max_gap >= 0.0 and ts - r[p.last_ts] > p.max_gap and q[p.count] > 0:
        out[O_GAP] = 1.0
        q[p.since_reset] = 0.0
        q[p.smoothed] = 0.0
    count: cython.double = q[p.count] + 1.0
    _features(p, r, q, x, count, out, work, xin)
    since: cython.double = q[p.since_reset] + 1.0
    scored: cython.bint = count > p.warmup and since > p.settle
    score: cython.double = out[O_SCORE]
    smoothed: cython.double = score
    prev: cython.double = q[p.smoothed]
    if since > 1:
        if since == p.settle + 1.0:  # first reading after settling (a reset, a restore): what the unscored
            prev = min(prev, p.smooth_typ)  # settling readings piled up cannot raise the smoothed look
        smoothed = prev + p.smoothing * (score - prev)
    out[O_SMOOTHED] = smoothed
    dt: cython.double = _sample_dt(p, r, q, ts, count) if (p.seasonal or p.calm_mem > 0.0) else 0.0
    bonf: cython.double = _looks(p, r, q, work[W_XL], ts, count, dt, out)
    calm: cython.bint = p.calm_mem > 0.0 and count > 1
    step: cython.double = x[0] - r[p.last_x]  # the calm step's (read only when calm)
    zc: cython.double = _calm_step(p, r, q, step, abs(x[0]), ts, count, bonf, out) if calm else 0.0
    restart: cython.bint = zc < 0.0 or not zc <= TREND_RESTART  # a gap, or a wild step: the calm trend starts again
    eb: cython.double = _calm_trend(p, q, step, abs(x[0]), restart, count, bonf, out) if calm else 0.0
    s: cython.double = max(0.0 - out[O_LOG10P], 0.0)  # the Bonferroni-combined surprise (never -0.0)
    if p.al_weight > 0.0 and scored:  # capped by the stream's own onset rates (before _onset learns this one)
        s = _capped(p, q, bonf, count - p.warmup, out)
    out[O_SURPRISE] = s if scored else 0.0
    out[O_LIK] = likelihood(0.0 - s) if scored else 0.0
    out[O_ONSET] = _onset(p, r, q, x, work, scored, bonf, out)
    high: cython.bint = scored and s >= p.clear_s
    code: cython.int = NONE
    out[O_DURATION] = q[p.duration]
    if high or q[p.duration] != 0.0 or q[p.phase_n] != 0.0 or q[p.hist] != 0.0:
        code = alert(p, r, q, scored and s >= p.thr_s, high, score, ts)
    out[O_SCORED] = 1.0 if scored else 0.0
    out[O_FEATURE] = _blame(p, out, work) if code != NONE else -1.0
    res[0], res[1], res[2], res[3] = score if scored else NAN, out[O_LIK], out[O_ONSET], out[O_SURPRISE]
    for f in range(F):
        res[N_RES + f], res[N_RES + F + f] = work[f * W + W_EXPECTED], work[f * W + W_SIGMA]
    if calm:
        _trend_learn(p, q, step, eb, restart, count, scored and s >= p.learn_s)
        _calm_learn(p, q, step, zc, count, scored and s >= p.learn_s)
    if not _learn(p, r, q, x, work, count, scored and s >= p.learn_s):
        return RESET
    q[p.count], q[p.since_reset], q[p.smoothed] = count, since, smoothed
    r[p.last_ts] = min(ts, cap)
    return code


@cython.cfunc
@cython.cdivision(True)
@cython.boundscheck(False)
@cython.wraparound(False)
def _calm_step(p: Params, r: cython.double[:], q: cython.float[:], step: cython.double, ax: cython.double,
               ts: cython.double, count: cython.double, bonf: cython.double, out: cython.double[:]) -> cython.double:
    """The calm step (calm_memory, univariate models): the step z = |step| / sqrt(calm_var) (step =
    x - last_x; the sd floored at min_std + CALM_REL_FLOOR |x|, ax = |x|), returned (-1: no step, the
    reading came over CALM_GAP x the stream's EW sampling interval after the last: _sample_dt). On a calm
    stream (past warm-up, no step over CALM_Z sd in its last calm_memory readings, counted from its
    start, or in its whole life of at least CALM_YOUNG readings: _calm_need) z is scored in the instant
    look (_calm_score: the chance of a step that large anywhere in such a window). A spike on a smooth
    sensor that the mixture explains (its widest component, a heavy instant table) is news on a stream
    that has not stepped for so long; one that steps (an on/off signal, counts, a heavy-tailed walk) is
    judged by the model alone."""
    if q[p.sample_dt] > 0.0 and ts - r[p.last_ts] > CALM_GAP * q[p.sample_dt]:
        return -1.0
    z: cython.double = abs(step) / _calm_sd(p, q[p.calm_var], ax)
    if count <= p.warmup or q[p.calm_since] < _calm_need(p, count):
        return z
    _calm_score(p, z, 0, bonf, out)  # such a step anywhere in the calm window, in the instant look
    return z


@cython.cfunc
@cython.inline
def _calm_sd(p: Params, v: cython.double, ax: cython.double) -> cython.double:
    """The calm step's / calm trend's sd from its mean square v, floored at min_std + CALM_REL_FLOOR x
    |x| (ax = |x|: float32 resolution, so a huge reading's surprise stays finite)."""
    return max(sqrt(max(v, 0.0)), p.min_std + CALM_REL_FLOOR * ax)


@cython.cfunc
@cython.inline
def _calm_score(p: Params, z: cython.double, k: cython.int, bonf: cython.double, out: cython.double[:]) -> cython.void:
    """The calm step's (k = 0, the instant look) and the calm trend's (k = 1, the smoothed look) score
    of a z in sd: the chance of a z that large anywhere in the calm window, log10 of calm_memory x its
    two-sided Gaussian tail, bounded by the seasonal AND-gate (out[O_GATE]: NEG_INF unless the seasonal
    look is trusted), replaces look k's log10 p where smaller (out[O_LP + k]); O_LOOK (_looks' rules:
    the first look on ties) and the Bonferroni-combined O_LOG10P follow."""
    lp: cython.double = max(min(gauss_tail_log10(z) + log10(p.calm_mem), 0.0), out[O_GATE])
    if lp < out[O_LP + k]:
        out[O_LP + k] = lp
        if lp <= out[O_LP + cython.cast(cython.int, out[O_LOOK])]:
            out[O_LOOK] = k
        out[O_LOG10P] = min(min(out[O_LOG10P], lp + bonf), 0.0)


@cython.cfunc
@cython.inline
def _stuck_lp(reps: cython.double, starts: cython.double, trials: cython.double, run: cython.double) -> cython.double:
    """stuck_runs: log10 P(a run of ``run`` exact repeats) with runs as a two-state chain, from the
    stream's EW counts of repeats (reps), runs started (starts: a repeat after a reading that was not
    one) and readings (trials). A run starts after a reading that was no repeat with b = (starts + 1)
    / (non-repeats + 2) and goes on with a = (reps - starts + STUCK_PRIOR r) / (reps + STUCK_PRIOR)
    (each repeat is followed by one reading), r = (reps + 1) / (trials + 2) the repeat rate: log10 b
    + (run - 1) log10 a. A stream whose repeats come at random is judged about as by r^L; one whose
    repeats come in long runs (a meter that reads 0 when its load is off) by its own runs. The counts
    learn the current run as it goes, so a run at the run value that never ends (a meter dead at 0)
    is not a surprise here however long it lasts (judging it by the runs before it instead raised
    false alerts: docs/QUALITY.md, "candidate C as a setting")."""
    r: cython.double = (reps + 1.0) / (trials + 2.0)
    b: cython.double = (starts + 1.0) / (max(trials - reps, 0.0) + 2.0)
    a: cython.double = (max(reps - starts, 0.0) + STUCK_PRIOR * r) / (reps + STUCK_PRIOR)
    return min(log10(min(b, 1.0)) + (run - 1.0) * log10(min(a, 1.0)), 0.0)


@cython.cfunc
@cython.inline
def _stuck_run(p: Params, r: cython.double[:], q: cython.float[:], f: cython.int, xf: cython.double,
               run: cython.double, q_log: cython.double) -> cython.double:
    """The stuck look's log10 p for feature f's run of ``run`` exact repeats (0: none): r^L, r the
    stream's repeat rate (q_log: -log10(trials + 2)); with stuck_runs, a run at the stream's run value
    by its own runs (_stuck_lp)."""
    if run == 0.0:
        return 0.0
    if p.runs_on and xf == r[p.rval + f]:  # stuck_runs: a run at the value the stream's last run held
        return _stuck_lp(q[p.reps + f], q[p.rstart + f], q[p.trials], run) * p.stuck[f]
    return run * (log10(q[p.reps + f] + 1.0) + q_log) * p.stuck[f]


@cython.cfunc
@cython.inline
def _runs_learn(p: Params, r: cython.double[:], q: cython.float[:], f: cython.int, run: cython.double,
                count: cython.double, decay: cython.double) -> cython.void:
    """stuck_runs: feature f's EW count of runs started learns this reading (run: its run of exact
    repeats, 0 if it is no repeat); a run of RVAL_MIN repeats or more (RVAL_MIN + 1 equal readings)
    that this reading ends sets the run value rval to the value it held (last_x, not yet overwritten)."""
    q[p.rstart + f] = q[p.rstart + f] * decay + (1.0 if run == 1.0 and count > 1 else 0.0)
    if run == 0.0 and q[p.run + f] >= RVAL_MIN:
        r[p.rval + f] = r[p.last_x + f]


@cython.cfunc
@cython.inline
def _calm_need(p: Params, count: cython.double) -> cython.double:
    """Readings without a step over CALM_Z sd that make a stream calm at its count-th reading (calm_since
    is then at most count - 2: it counts from the second): calm_memory; in a younger stream, its whole
    life once that is CALM_YOUNG readings long."""
    return min(p.calm_mem, max(count - 2.0, CALM_YOUNG))


@cython.cfunc
@cython.inline
def _sample_dt(p: Params, r: cython.double[:], q: cython.float[:], ts: cython.double, count: cython.double) -> cython.double:
    """The stream's EW sampling interval in seconds (q[sample_dt]; 0 until its second reading), learned
    from the step since its last reading (rate SEAS_DT_RATE; none when the timestamp repeats) and
    returned before it is stored as float32 (the seasonal look's readings per day); the calm step's gap
    test reads the stored value."""
    dt: cython.double = q[p.sample_dt]
    step: cython.double = ts - r[p.last_ts]
    if count > 1 and step > 0.0:
        dt = step if dt == 0.0 else dt + SEAS_DT_RATE * (step - dt)
    q[p.sample_dt] = dt
    return dt


@cython.cfunc
@cython.inline
def _days_seen(p: Params, q: cython.float[:], d: cython.int) -> cython.double:
    """Completed days of type d (1: weekend) the seasonal profile has seen, from seas_cyc (weekdays +
    SEAS_CYC_BASE x weekend days), each counted up to SEAS_CYC_BASE - 1."""
    c: cython.double = q[p.seas_cyc]
    weekend: cython.double = floor(c / SEAS_CYC_BASE)
    return weekend if d == 1 else c - weekend * SEAS_CYC_BASE


@cython.cfunc
def _count_day(p: Params, q: cython.float[:], d: cython.int) -> cython.void:
    """One more completed day of type d in seas_cyc, up to SEAS_CYC_BASE - 1 of each type: past
    SEAS_DAYS - 1 nothing reads more (the profile's rate is 1 / SEAS_DAYS from there, trust needs
    SEAS_MIN_DAYS), so the cap changes no result."""
    if _days_seen(p, q, d) < SEAS_CYC_BASE - 1.0:
        q[p.seas_cyc] += SEAS_CYC_BASE if d == 1 else 1.0


@cython.cfunc
@cython.inline
def _f32(v: cython.double) -> cython.double:
    """v held within +-CALM_VAR_MAX (under float32's largest: stored, it stays finite)."""
    return max(min(v, CALM_VAR_MAX), 0.0 - CALM_VAR_MAX)


@cython.cfunc
@cython.cdivision(True)
@cython.boundscheck(False)
@cython.wraparound(False)
def _calm_trend(p: Params, q: cython.float[:], step: cython.double, ax: cython.double, restart: cython.bint,
                count: cython.double, bonf: cython.double, out: cython.double[:]) -> cython.double:
    """The calm trend (with the calm step): a level shift inside a smooth sensor's swing is a step the
    calm step finds ordinary, but the readings after it stay shifted. Brown's double EW smoothing
    (means m1, m2 at rate TREND_A) predicts the reading m1 + (m1 - m2) / (1 - TREND_A) (its level
    2 m1 - m2 plus its trend TREND_A / (1 - TREND_A) (m1 - m2)); the residual
    e = x - prediction (step: x - last_x; m1 is kept as an offset from last_x, so
    e = step - (m1 - last_x) - (m1 - m2) / (1 - TREND_A)) enters an EW mean eb at rate TREND_B, returned.
    On a calm or recently calm stream (calm_since >= _calm_need, or counting up from -TREND_GRACE
    after the step that ended its calm: a shift is often such a step) with the mean square of eb
    learned over TREND_START readings, |eb| in sd of itself (_calm_sd, floored as the calm step's; _onset
    holds what it stores under float32's largest) is scored in the smoothed look (_calm_score: the
    chance of an |eb| that large anywhere in the calm window). On a restart (a gap, the calm step's test, or a step over TREND_RESTART sd of the
    stream's steps, its z from _calm_step: a wild reading, and the one back from it) eb is 0 and nothing
    is scored."""
    if restart:
        return 0.0
    e: cython.double = step - q[p.trend_m1] - q[p.trend_d] / (1.0 - TREND_A)
    eb: cython.double = q[p.trend_eb] + TREND_B * (e - q[p.trend_eb])
    since: cython.double = q[p.calm_since]
    if count <= p.warmup or count < TREND_START or q[p.trend_v] <= 0.0 or not (since >= _calm_need(p, count) or since < 0.0):
        return eb
    _calm_score(p, abs(eb) / _calm_sd(p, q[p.trend_v], ax), 1, bonf, out)  # in the smoothed look
    return eb


@cython.cfunc
@cython.cdivision(True)
@cython.boundscheck(False)
@cython.wraparound(False)
def _trend_learn(p: Params, q: cython.float[:], step: cython.double, eb: cython.double, restart: cython.bint,
                 count: cython.double, high: cython.bint) -> cython.void:
    """The calm trend learns every reading (x = last_x + step becomes the next last_x): m1 and m2 take
    x, stored as m1 - x and m1 - m2; on a restart (_step: a gap or a wild step) both start again at x,
    so a wild reading (1e30 on a sensor at 20) never enters them, nor its float32 rounding. eb is
    stored; its mean square learns eb^2 from readings under the learning level (a running mean over
    the first calm_memory readings, then EW; capped at 16 x itself past TREND_START). Every column is
    held within +-CALM_VAR_MAX (float32: a reading beyond its range must not store an inf, whose
    inf - inf would leave NaN in the columns for good)."""
    if restart:
        q[p.trend_m1], q[p.trend_d], q[p.trend_eb] = 0.0, 0.0, 0.0  # m1 = m2 = x
        return
    m1: cython.double = q[p.trend_m1]  # m1 and m2 relative to last_x (x is last_x + step)
    m2: cython.double = m1 - q[p.trend_d]
    m1 = m1 + TREND_A * (step - m1)
    m2 = m2 + TREND_A * (m1 - m2)
    q[p.trend_m1], q[p.trend_d], q[p.trend_eb] = _f32(m1 - step), _f32(m1 - m2), _f32(eb)
    if not high:
        q[p.trend_v] = _mean_square(p, q[p.trend_v], eb * eb, count - 1.0, TREND_START, TREND_CAP)


@cython.cfunc
@cython.inline
@cython.cdivision(True)
def _mean_square(p: Params, v: cython.double, d2: cython.double, n: cython.double, start: cython.double,
                 cap: cython.double) -> cython.double:
    """The calm step's and the calm trend's mean square v after learning d2 (a square) as the stream's
    n-th value: a running mean over the first calm_memory values, then EW; d2 held under CALM_VAR_MAX and,
    past the first ``start`` while v > 0, under cap x v (one jump does not widen it for long); the
    result held under CALM_VAR_MAX (float32: a step of 1e300 leaves it finite)."""
    d2 = min(d2, CALM_VAR_MAX)
    if n > start and v > 0.0:
        d2 = min(d2, cap * v)
    return min(v + (d2 - v) / min(n, p.calm_mem), CALM_VAR_MAX)


@cython.cfunc
@cython.cdivision(True)
def _calm_learn(p: Params, q: cython.float[:], step: cython.double, z: cython.double, count: cython.double,
                high: cython.bint) -> cython.void:
    """The calm step's statistics learn the step x - last_x (its z from _calm_step; -1 after a gap: not a
    step, and the stream must be calm for calm_memory readings again), the stream's (count - 1)-th
    reading: calm_since counts the readings since a step over CALM_Z sd (every reading; 0 on one
    once CALM_START steps are in), calm_var learns from readings under the learning level (a running
    mean over the first calm_memory, then EW; a step capped at CALM_Z^2 calm_var after the first
    CALM_START while calm_var > 0, so one jump does not widen it for long; held under CALM_VAR_MAX,
    so a step of 1e300 leaves it finite)."""
    if z < 0.0:
        q[p.calm_since] = 0.0
        return
    n: cython.double = count - 1.0
    if not high:
        q[p.calm_var] = _mean_square(p, q[p.calm_var], step * step, n, CALM_START, CALM_Z * CALM_Z)
    if z > CALM_Z and n > CALM_START:  # a step: not calm; "recently calm" for TREND_GRACE readings if it was
        q[p.calm_since] = (0.0 - TREND_GRACE) if q[p.calm_since] >= _calm_need(p, count) else 0.0
    else:
        q[p.calm_since] = q[p.calm_since] + 1.0


# -- the hidden state's Q15 storage (state.StateStore.gather_h / scatter_h: the one place) ------
@cython.ccall
@cython.boundscheck(False)
@cython.wraparound(False)
def q15_load(hq: cython.short[:, :], rows: cython.Py_ssize_t[:], scale: cython.double, out: cython.float[:, :]) -> cython.void:
    """out[i, :] = hq[rows[i], :] * scale: the stored int16 hidden state of rows[B] as float32 [B, H]
    (scale = h_bound / 32767 rounded to float32: the product is exact in double, so it rounds once,
    like a float32 multiply, in both kernel modes)."""
    i: cython.Py_ssize_t
    for i in range(rows.shape[0]):
        _h_load(hq, rows[i], False, scale, out[i])


@cython.ccall
@cython.boundscheck(False)
@cython.wraparound(False)
def q15_store(h: cython.float[:, :], to_q15: cython.double, rows: cython.Py_ssize_t[:], hq: cython.short[:, :]) -> cython.void:
    """hq[rows[i], :] = rint(clamp(h[i, :] * to_q15, +-32767)), the product rounded to float32
    (to_q15 = 32767 / h_bound as a float32; a NaN stores as +32767: its NaN prediction resets the
    row anyway). Compiled and plain Python store the same integers."""
    i: cython.Py_ssize_t
    for i in range(rows.shape[0]):
        _h_store(h[i], to_q15, hq, rows[i])


@cython.cfunc
@cython.inline
@cython.boundscheck(False)
@cython.wraparound(False)
def _h_load(hq: cython.short[:, :], row: cython.Py_ssize_t, zero: cython.bint, scale: cython.double,
            out: cython.float[:]) -> cython.void:
    """out[:] = hq[row, :] * scale (float32[H]); zero: the row starts over first (a gap).
    Compiled, on contiguous rows (the store's and the wave's): the same loop on pointers, which
    the C compiler vectorises."""
    j: cython.Py_ssize_t
    H: cython.Py_ssize_t = hq.shape[1]
    src: cython.p_short
    dst: cython.p_float
    if zero:
        for j in range(H):
            hq[row, j] = 0
    if cython.compiled and hq.strides[1] == cython.sizeof(cython.short) and out.strides[0] == cython.sizeof(cython.float):
        src, dst = cython.address(hq[row, 0]), cython.address(out[0])
        for j in range(H):
            dst[j] = src[j] * scale
        return
    for j in range(H):
        out[j] = hq[row, j] * scale


@cython.cfunc
@cython.inline
@cython.exceptval(check=False)
def _q15(v: cython.double) -> cython.short:
    """One hidden value times 32767 / h_bound (exact in double, 24 x 24 bits) as its Q15 integer:
    rounded to float32 as numpy's product, clamped to +-32767 (above the bound, +inf and NaN:
    +32767), then rounded half to even as C's rint in the default rounding mode: by adding and
    subtracting 1.5 x 2^52 (|v| <= 32767 here, so the sum's unit is 1; the same integer as rint,
    without a libm call)."""
    v = cython.cast(cython.float, v) if cython.compiled else _ROUND(v).value  # float32 product
    v = v if v < 32767.0 else 32767.0  # above the bound, +inf or NaN: the bound (no branch: min / max)
    v = v if v > -32767.0 else -32767.0
    return cython.cast(cython.short, (v + RINT_MAGIC) - RINT_MAGIC)


@cython.cfunc
@cython.inline
@cython.boundscheck(False)
@cython.wraparound(False)
def _h_store(h: cython.float[:], to_q15: cython.double, hq: cython.short[:, :], row: cython.Py_ssize_t) -> cython.void:
    """hq[row, :] = Q15 of h[H] (q15_store's rule: _q15, the one place it is written); compiled, on
    contiguous rows: the same loop on pointers."""
    j: cython.Py_ssize_t
    H: cython.Py_ssize_t = hq.shape[1]
    src: cython.p_float
    dst: cython.p_short
    if cython.compiled and hq.strides[1] == cython.sizeof(cython.short) and h.strides[0] == cython.sizeof(cython.float):
        src, dst = cython.address(h[0]), cython.address(hq[row, 0])
        for j in range(H):
            dst[j] = _q15(src[j] * to_q15)
        return
    for j in range(H):
        hq[row, j] = _q15(h[j] * to_q15)


@cython.cfunc
@cython.inline
def _prefetch_rows(p: Params, num: cython.double[:, :], num4: cython.float[:, :], hq: Optional[cython.short[:, :]],
                   row: cython.Py_ssize_t, hrow: cython.Py_ssize_t) -> cython.void:
    """Compiled only: ask the cache for the lines a reading will touch (its float64 row, its
    float32 row, whole: the seasonal profile's buckets depend on the time of day, and its h row),
    so the misses of a wave's random rows overlap the maths of the readings before it. No effect
    on results."""
    if cython.compiled:
        k: cython.Py_ssize_t
        edgernn_prefetch(cython.address(num[row, 0]))
        edgernn_prefetch(cython.address(num[row, num.shape[1] - 1]))
        for k in range(0, num4.shape[1], 16):  # 16 floats: one 64-byte line
            edgernn_prefetch(cython.address(num4[row, k]))
        edgernn_prefetch(cython.address(num4[row, num4.shape[1] - 1]))
        if hq is not None:
            edgernn_prefetch(cython.address(hq[hrow, 0]))
            edgernn_prefetch(cython.address(hq[hrow, hq.shape[1] - 1]))


@cython.cfunc
@cython.boundscheck(False)
@cython.wraparound(False)
def _pred_finite(p: Params, q: cython.float[:]) -> cython.bint:
    """The stored prediction (pred[P], float32) is finite: a backend that returned NaN or inf for a
    row would otherwise score this stream NaN at every reading (and a NaN surprise, never counted)."""
    i: cython.int
    for i in range(p.pred_n):
        if not isfinite(q[p.pred + i]):
            return False
    return True


@cython.cfunc
@cython.boundscheck(False)
@cython.wraparound(False)
def _repeats(p: Params, r: cython.double[:], x: cython.double[:]) -> cython.bint:
    """The reading's values are exactly the stream's last ones (with the same timestamp: a
    redelivery, e.g. MQTT QoS 1)."""
    f: cython.int
    for f in range(p.F):
        if x[f] != r[p.last_x + f]:
            return False
    return True


@cython.cfunc
@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
def _features(p: Params, r: cython.double[:], q: cython.float[:], x: cython.double[:], count: cython.double, out: cython.double[:],
              work: cython.double[:], xin: cython.float[:]) -> cython.void:
    """Steps 3-4 per feature: normalise (warm-up statistics updated in r), residual, the per-feature
    parts of the looks (work), the GRU input (xin); the worst feature of each look to out."""
    F: cython.int = p.F
    f: cython.int
    o: cython.int
    warming: cython.bint = count <= p.warmup
    af: cython.double = p.fast_rate
    q_log: cython.double = -log10(q[p.trials] + 2.0)
    score: cython.double = 0.0
    level: cython.double = 0.0
    spread: cython.double = 0.0
    stuck: cython.double = 0.0
    reference: cython.double = 0.0  # min over features of log10 P(|N(0,1)| >= z_f); training reference: max z_f
    tref: cython.bint = p.tref_stat  # the training-reference statistic (Detector.tref_stat)
    peak: cython.double = 0.0  # max over features in use of |z_f| (the peak look)
    xf: cython.double
    xl: cython.double
    mean: cython.double
    std: cython.double
    c: cython.double
    sigma_n: cython.double
    z: cython.double
    run: cython.double
    fm_old: cython.double
    fm: cython.double
    fv: cython.double
    lim: cython.double
    kb: cython.int
    mu: cython.double
    for f in range(F):
        o = f * W
        xf = x[f]
        mean = _normalise(p, r, f, xf, count, warming, work)
        std = _std(p, r[p.norm_var + f], mean)
        lim = XMAX * max(std, abs(mean), 1.0)
        xl = min(max(xf, mean - lim), mean + lim)  # what learning sees: no overflow, whatever x is
        if warming and p.stream_norm:
            xl = work[o + W_XL]  # the winsorised value the warm-up statistics took
        c = (xf - mean) / std
        c = -p.clip if c < -p.clip else p.clip if c > p.clip else c
        kb = _mix_best(p, q, f) if p.K > 1 else 0  # the most probable component (K = 1: the only one)
        mu = q[p.pred + kb * F + f]
        sigma_n = exp(0.5 * min(max(q[p.pred + (p.K + kb) * F + f], p.lvmin), p.lvmax))
        z = (c - mu) / sigma_n if p.K <= 1 else _mix_z(p, q, f, c, kb, sigma_n)
        z = min(max(z, -p.zcap[f]), p.zcap[f])  # a binary feature's flip: at most its training rate's z
        work[o + W_CONTRIB] = min(z * z, 1e12) / p.n_used * p.used[f]
        score += work[o + W_CONTRIB]
        peak = max(peak, min(abs(z), 1e6) * p.used[f])  # one feature's residual, not diluted by F
        run = q[p.run + f] + 1.0 if xf == r[p.last_x + f] else 0.0
        work[o + W_STUCK] = _stuck_run(p, r, q, f, xf, run, q_log)
        stuck = min(stuck, work[o + W_STUCK])
        fm_old = xl if count == 1 else r[p.fast_mean + f]
        fm = fm_old + af * (xl - fm_old)
        fv = min((1.0 - af) * (q[p.fast_var + f] + af * (xl - fm_old) * (xl - fm_old)), F4_MAX)  # (float32 slab)
        work[o + W_D] = (fm - mean) / std
        work[o + W_V] = log(fv / (std * std) + 1e-4)
        work[o + W_LEVEL] = abs(work[o + W_D] - q[p.lvl_mean + f]) / sqrt(q[p.lvl_var + f] + 1e-4) * p.shape[f]
        work[o + W_SPREAD] = abs(work[o + W_V] - q[p.spr_mean + f]) / sqrt(q[p.spr_var + f] + 1e-2) * p.shape[f]
        if p.K > 1:  # and the model's own predicted spread: the larger of the two
            work[o + W_SPREAD] = max(work[o + W_SPREAD], _model_spread(p, q, f, sigma_n, count, work))
        level, spread = max(level, work[o + W_LEVEL]), max(spread, work[o + W_SPREAD])
        if p.ref_rows > 0.0:
            work[o + W_REF] = _reference(p, r, q, f, xl, count) * p.used[f]
            reference = min(reference, gauss_tail_log10(work[o + W_REF]))
        elif tref:
            work[o + W_REF] = _train_ref(p, r, f, xl, mean, std, count) * p.used[f]
            reference = max(reference, work[o + W_REF])
        xin[f] = c
        if p.jump_on:
            xin[F + f] = _jump_input(p, r, q, f, xf, std, count)
        work[o + W_XC], work[o + W_STD], work[o + W_MEAN], work[o + W_XL] = c, std, mean, xl
        work[o + W_SIGMA_N], work[o + W_RUN], work[o + W_FM], work[o + W_FV] = sigma_n, run, fm, fv
        work[o + W_EXPECTED] = mu * std + mean
        work[o + W_SIGMA] = sigma_n * std
    out[O_SCORE], out[O_LEVEL], out[O_SPREAD], out[O_STUCK], out[O_PEAK] = score, level, spread, stuck, peak
    out[O_REL] = _relation(p, q, count, work) if p.rel_stat else 0.0
    out[O_REF] = min(reference + p.log10_F, 0.0) if p.ref_rows > 0.0 else reference


@cython.cfunc
@cython.cdivision(True)
@cython.boundscheck(False)
def _jump_input(p: Params, r: cython.double[:], q: cython.float[:], f: cython.int, xf: cython.double, std: cython.double,
                count: cython.double) -> cython.double:
    """Feature f's jump rate learns reading xf (a jump: |xf - last_x| > j_thr std, none at the
    stream's first reading; a running mean over the first j_mem readings, then an EW mean: as
    backends.base.jump_rates, which training uses); returns the GRU's input j (base.jump_input's
    expression, per value: the compiled kernel calls no numpy)."""
    jump: cython.double = 1.0 if count > 1.0 and abs(xf - r[p.last_x + f]) > p.j_thr * std else 0.0
    rate: cython.double = q[p.jrate + f]
    rate = rate + (jump - rate) / min(count, p.j_mem)
    q[p.jrate + f] = rate
    return min(1.0 + log10(rate + p.j_floor) / p.j_lfloor, 1.0)


@cython.cfunc
@cython.cdivision(True)
@cython.boundscheck(False)
def _model_spread(p: Params, q: cython.float[:], f: cython.int, sigma_n: cython.double, count: cython.double,
                  work: cython.double[:]) -> cython.double:
    """A mixture head's second spread statistic for feature f: how far the log of the short EW mean
    (rate fast_rate; a running mean while count < fast_window) of the model's own predicted variance
    (its most probable component's sigma_n^2, normalised units) is from the stream's own EW mean of
    it, in its EW std (mspr_* columns; learned in _learn like the values' spread). A noise burst
    that the mixture explains reading by reading still widens what the model predicts, while a duty
    cycle's hard edges, a large variance of the values, do not (docs/QUALITY.md, issue 11 duty)."""
    o: cython.int = f * W
    mfv: cython.double = q[p.mspr_fast + f]
    mfv = mfv + max(p.fast_rate, 1.0 / count) * (sigma_n * sigma_n - mfv)
    work[o + W_MFV] = mfv
    work[o + W_MV] = log(mfv + 1e-4)
    return abs(work[o + W_MV] - q[p.mspr_mean + f]) / sqrt(q[p.mspr_var + f] + 1e-2) * p.shape[f]


@cython.cfunc
@cython.inline
@cython.cdivision(True)
def _ln_dens(p: Params, q: cython.float[:], at: cython.int, k: cython.int, c: cython.double) -> cython.double:
    """ln N(c; mu_k, s_k^2) + ln sqrt(2 pi) of the mixture component k whose mean is q[at + k F]
    (its logvar K F further, clamped to [lvmin, lvmax]): -d^2 / 2 - ln s_k, d = (c - mu_k) / s_k."""
    s: cython.double = 0.5 * min(max(q[at + p.K * p.F + k * p.F], p.lvmin), p.lvmax)  # ln s_k
    d: cython.double = (c - q[at + k * p.F]) * exp(-s)
    return -0.5 * d * d - s


@cython.cfunc
@cython.boundscheck(False)
@cython.wraparound(False)
def _ln_mix(p: Params, q: cython.float[:], f: cython.int, c: cython.double, dens: cython.p_double) -> cython.double:
    """ln of feature f's mixture density at normalised reading c, + ln sqrt(2 pi): ln sum_k w_k N_k(c),
    w = softmax of the stored (corrected) logits at pred + 2 K F + k F; both sums from their tops.
    dens[k] (K <= backends.base.MAX_COMPONENTS = 16 entries, the caller's) gets ln N_k(c) (_ln_dens)."""
    at: cython.int = p.pred + f
    lg: cython.int = at + 2 * p.K * p.F
    k: cython.int
    lw_top: cython.double = NEG_INF  # the tops of ln w_k (logits) and ln w_k + ln N_k(c)
    lt_top: cython.double = NEG_INF
    for k in range(p.K):
        dens[k] = _ln_dens(p, q, at, k, c)
        lw_top = max(lw_top, q[lg + k * p.F])
        lt_top = max(lt_top, q[lg + k * p.F] + dens[k])
    lw_sum: cython.double = 0.0
    lt_sum: cython.double = 0.0
    for k in range(p.K):
        lw_sum += exp(q[lg + k * p.F] - lw_top)
        lt_sum += exp(q[lg + k * p.F] + dens[k] - lt_top)
    return (lt_top + log(lt_sum)) - (lw_top + log(lw_sum))


@cython.cfunc
@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
def _wb_learn(p: Params, q: cython.float[:], f: cython.int, c: cython.double) -> cython.double:
    """Feature f's weight correction (wbias: log a_k per component) learns normalised reading c, an
    online EM step on the stream's own mixture weights: a_k <- a_k (1 + wb_rate (g_k / w_k - 1)), w_k
    the (corrected) weight the stored prediction gave component k, g_k its responsibility for c (its
    share of the mixture's density at c). Where the model's weights are right for the stream,
    E[g_k / w_k] = 1 and nothing moves; a component that never explains the stream's readings (a
    wide one on a random walk) fades, one that explains more than its weight (the other level of a
    duty cycle) grows; g_k / w_k <= 100 per reading, |log a_k| <= WB_MAX. Returns the sum of the
    corrections (finiteness check)."""
    F: cython.int = p.F
    k: cython.int
    dens = cython.declare(cython.double[16])  # [K <= backends.base.MAX_COMPONENTS] ln N_k(c), computed once
    ln_norm: cython.double = 0.0 - _ln_mix(p, q, f, c, dens)  # ln g_k - ln w_k = ln N_k(c) + ln_norm
    total: cython.double = 0.0
    ratio: cython.double
    b: cython.double
    for k in range(p.K):
        ratio = exp(min(dens[k] + ln_norm, LN_WB_RATIO))
        b = q[p.wbias + k * F + f] + log1p(p.wb_rate * (ratio - 1.0))
        q[p.wbias + k * F + f] = min(max(b, -WB_MAX), WB_MAX)
        total += q[p.wbias + k * F + f]
    return total


@cython.cfunc
@cython.boundscheck(False)
@cython.wraparound(False)
def _mix_best(p: Params, q: cython.float[:], f: cython.int) -> cython.int:
    """Feature f's most probable mixture component (largest logit, first on ties): what an alert
    shows as expected +- sigma."""
    base: cython.int = p.pred + 2 * p.K * p.F + f  # logits of feature f at base + k F
    best: cython.int = 0
    k: cython.int
    for k in range(1, p.K):
        if q[base + k * p.F] > q[base + best * p.F]:
            best = k
    return best


@cython.cfunc
@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
def _mix_z(p: Params, q: cython.float[:], f: cython.int, c: cython.double, kb: cython.int, s_kb: cython.double) -> cython.double:
    """The equivalent z (>= 0) of normalised reading c under feature f's mixture (pred, K > 1):
    the |z| whose two-sided Gaussian tail is the mixture's, p = sum_k w_k 2 Phi(-|c - mu_k| / s_k),
    w = softmax(logits), s_k = exp(clamp(logvar_k) / 2) (s_kb: that of component kb, _features'
    sigma_n, not computed twice); then gauss_tail_z(ln p). Summed as it
    stands, p = sum_k e^a_k erfc(y_k) / sum_k e^a_k (a_k = logit_k - max logit, y_k = |d_k| / sqrt 2),
    one erfc per component, while that sum is a normal double (>= 1e-280: nothing lost to
    underflow); below, in log space (_mix_ln_p), which no depth underflows. With level_memory, once the
    stream has held both its levels, p is blended with the level it is not at (_lm_z)."""
    F: cython.int = p.F
    KF: cython.int = p.K * F
    at: cython.int = p.pred + f  # component k's mean at at + k F, logvar at + KF + k F, logit at + 2 KF + k F
    top: cython.double = q[at + 2 * KF + kb * F]  # the max logit: kb is the most probable component
    k: cython.int
    a: cython.double
    w: cython.double
    s: cython.double
    num: cython.double = 0.0  # sum_k e^a_k erfc(y_k)
    den: cython.double = 0.0  # sum_k e^a_k (>= 1: the top component's term is 1)
    for k in range(p.K):
        a = q[at + 2 * KF + k * F] - top
        w = 1.0 if a == 0.0 else exp(a)  # (exp(0) is 1 exactly: the top component's weight, no call)
        s = s_kb if k == kb else exp(0.5 * min(max(q[at + KF + k * F], p.lvmin), p.lvmax))
        num += w * erfc(abs(c - q[at + k * F]) / s / SQRT2)
        den += w
    if p.lm_rate > 0.0 and _lm_held(q[p.lm_stay + f]):  # level_memory: (1 - w_m) model + w_m the other level
        return _lm_z(p, q, f, c, num / den, top, _lm_far(p, q, f, q[at + kb * F]))
    if num >= 1e-280:
        return gauss_tail_z(min(log(num / den), 0.0))
    return gauss_tail_z(_mix_ln_p(p, q, f, c, top))


@cython.cfunc
@cython.boundscheck(False)
@cython.wraparound(False)
def _lm_far(p: Params, q: cython.float[:], f: cython.int, mu: cython.double) -> cython.int:
    """Which of feature f's two level centres is farther from mu (the model's most probable mean):
    the level the stream is not at."""
    return 1 if abs(q[p.lm_c + p.F + f] - mu) > abs(q[p.lm_c + f] - mu) else 0


@cython.cfunc
@cython.inline
def _lm_held(stay: cython.double) -> cython.bint:
    """Whether the stream has stayed LM_HOLD readings in a row at each of its two level centres (lm_stay:
    flags x 64 + run + 32, flag bit j set once a run at centre j reached LM_HOLD; layout.LM_STAY0)."""
    return stay >= 192.0  # both flags: 3 x 64


@cython.cfunc
@cython.inline
def _lm_stayed(stay: cython.double, j: cython.int, at_j: cython.bint) -> cython.double:
    """lm_stay after a reading nearest centre j (at_j: within LM_AT of its sd; otherwise the run ends):
    the run (+n readings in a row at centre 1, -n at centre 0, |n| <= LM_HOLD) goes on or starts, and
    centre j's flag is set once |n| reaches LM_HOLD. Small integers, exact in float32."""
    flags: cython.double = floor(stay / 64.0)
    n: cython.double = stay - 64.0 * flags - 32.0
    if not at_j:
        n = 0.0
    elif j == 1:
        n = min(n + 1.0, LM_HOLD) if n > 0.0 else 1.0
    else:
        n = max(n - 1.0, -LM_HOLD) if n < 0.0 else -1.0
    if abs(n) >= LM_HOLD and (cython.cast(cython.int, flags) >> j) & 1 == 0:
        flags += 1.0 if j == 0 else 2.0
    return 64.0 * flags + n + 32.0


@cython.cfunc
@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
def _lm_z(p: Params, q: cython.float[:], f: cython.int, c: cython.double, pm: cython.double,
          top: cython.double, j: cython.int) -> cython.double:
    """The equivalent z of c under (1 - w_m) model + w_m memory: feature f's mixture tail pm (its
    two-sided p, _mix_z) blended with the two-sided tail of the stream's level centre j (the other
    level), w_m = lm_w; in log space where the sum underflows."""
    F: cython.int = p.F
    w: cython.double = q[p.lm_w + f]
    zj: cython.double = abs(c - q[p.lm_c + j * F + f]) / sqrt(q[p.lm_v + j * F + f])
    tot: cython.double = (1.0 - w) * pm + w * erfc(zj / SQRT2)
    if tot >= 1e-280:
        return gauss_tail_z(min(log(tot), 0.0))
    a: cython.double = log(1.0 - w) + (log(pm) if pm >= 1e-280 else _mix_ln_p(p, q, f, c, top))
    b: cython.double = log(w) + LN10 * gauss_tail_log10(zj)
    hi: cython.double = max(a, b)
    return gauss_tail_z(min(hi + log(exp(a - hi) + exp(b - hi)), 0.0))


@cython.cfunc
@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
def _lm_learn(p: Params, q: cython.float[:], f: cython.int, c: cython.double) -> cython.double:
    """Feature f's level memory (centres lm_c and variances lm_v [2 F, centre-major], weight lm_w
    and run lm_stay [F]) learns normalised reading c: its weight w_m by an online EM step (w_m +=
    lm_rate (r - w_m), r the responsibility of the level the stream is not at for c, against the
    model's mixture density), within [LM_W_MIN, LM_W_MAX]; the run at the centre nearest c
    (_lm_stayed); and, if c is at that centre (within LM_AT of its sd: a spike or a third level
    moves nothing), the centre and its EW variance (LM_STEP). Returns their sum (finiteness check)."""
    F: cython.int = p.F
    dens = cython.declare(cython.double[16])  # _ln_mix's ln N_k(c) (not read here)
    ln_model: cython.double = _ln_mix(p, q, f, c, dens)  # ln model density (+ ln sqrt 2 pi)
    d0: cython.double = c - q[p.lm_c + f]
    d1: cython.double = c - q[p.lm_c + F + f]
    v0: cython.double = q[p.lm_v + f]
    v1: cython.double = q[p.lm_v + F + f]
    l0: cython.double = -0.5 * d0 * d0 / v0 - 0.5 * log(v0)
    l1: cython.double = -0.5 * d1 * d1 / v1 - 0.5 * log(v1)
    ln_mem: cython.double = l1 if _lm_far(p, q, f, q[p.pred + f + _mix_best(p, q, f) * F]) == 1 else l0  # the other level's
    w: cython.double = q[p.lm_w + f]
    t: cython.double = log(w) + ln_mem - log(1.0 - w) - ln_model  # logit of the memory's responsibility
    resp: cython.double = 1.0 / (1.0 + exp(-min(max(t, -700.0), 700.0)))
    q[p.lm_w + f] = min(max(w + p.lm_rate * (resp - w), LM_W_MIN), LM_W_MAX)
    j: cython.int = 0 if abs(d0) <= abs(d1) else 1  # the centre c is nearest
    d: cython.double = d0 if j == 0 else d1
    v: cython.double = v0 if j == 0 else v1
    at_j: cython.bint = abs(d) <= LM_AT * sqrt(v)  # c is at that level (not a spike, not a third level)
    q[p.lm_stay + f] = _lm_stayed(q[p.lm_stay + f], j, at_j)
    if at_j:  # only a reading at a level moves its centre and spread
        q[p.lm_c + j * F + f] += LM_STEP * d
        q[p.lm_v + j * F + f] = max(v + LM_STEP * (d * d - v), LM_V_MIN)
    return q[p.lm_w + f] + q[p.lm_c + j * F + f] + q[p.lm_v + j * F + f]


@cython.cfunc
@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
def _mix_ln_p(p: Params, q: cython.float[:], f: cython.int, c: cython.double, top: cython.double) -> cython.double:
    """_mix_z's ln p in log space, at any depth: logsumexp_k(a_k + ln 2 Phi(-|d_k|)) -
    logsumexp_k(a_k), a_k = logit_k - top (top: the max logit); clamped at 0."""
    F: cython.int = p.F
    KF: cython.int = p.K * F
    at: cython.int = p.pred + f
    k: cython.int
    t: cython.double
    tmax: cython.double = NEG_INF
    num: cython.double = 0.0  # sum_k exp(t_k - tmax), rescaled whenever tmax grows (one pass)
    den: cython.double = 0.0  # sum_k exp(a_k)
    for k in range(p.K):  # t_k = a_k + ln 2 Phi(-|c - mu_k| / s_k)
        t = (q[at + 2 * KF + k * F] - top) + LN10 * gauss_tail_log10(
            abs(c - q[at + k * F]) / exp(0.5 * min(max(q[at + KF + k * F], p.lvmin), p.lvmax)))
        if t > tmax:
            num = num * exp(tmax - t) + 1.0
            tmax = t
        else:
            num += exp(t - tmax)
        den += exp(q[at + 2 * KF + k * F] - top)
    return min(tmax + log(num) - log(den), 0.0)


@cython.cfunc
@cython.inline
def _std(p: Params, var: cython.double, mean: cython.double) -> cython.double:
    """The stream's std, floored at min_std and min_rel_std |mean|."""
    fl: cython.double = max(p.min_std, p.min_rel_std * abs(mean))
    return max(sqrt(max(var, 0.0)), fl)  # (not sqrt(max(var, fl * fl)): fl * fl overflows above |mean| ~1.3e157)


@cython.cfunc
@cython.cdivision(True)
@cython.boundscheck(False)
def _normalise(p: Params, r: cython.double[:], f: cython.int, xf: cython.double, count: cython.double,
               warming: cython.bint, work: cython.double[:]) -> cython.double:
    """Feature f's normalisation mean after reading xf. During warm-up (stream models) the Welford
    update of norm_mean / norm_var, from xf winsorised once WARM_SEED readings are in: at mean +-
    (WARM_CLIP sd + the range seen), so one huge reading cannot own the stream's scale while a
    trend or a slow cycle still can widen it. The value used goes to work[f * W + W_XL]."""
    mean: cython.double = r[p.norm_mean + f]
    if not (warming and p.stream_norm):
        return mean
    var: cython.double = r[p.norm_var + f]
    xw: cython.double = xf
    band: cython.double
    if count > WARM_SEED and var > 0.0:  # (a stream that started flat has no scale yet: no clipping)
        band = WARM_CLIP * sqrt(var) + (r[p.range_hi + f] - r[p.range_lo + f])
        xw = min(max(xf, mean - band), mean + band)
    d: cython.double = xw - mean
    mean = mean + d / count
    r[p.norm_var + f] = var + (d * (xw - mean) - var) / count
    r[p.norm_mean + f] = mean
    work[f * W + W_XL] = xw
    return mean


@cython.cfunc
@cython.cdivision(True)
@cython.boundscheck(False)
def _reference(p: Params, r: cython.double[:], q: cython.float[:], f: cython.int, xf: cython.double, count: cython.double) -> cython.double:
    """Feature f's z of the reference look: its short EW mean against the mean and spread of its
    first ref_rows readings (frozen after), with the drift allowance and the peak gate."""
    rk: cython.double = min(count, p.ref_rows)
    in_ref: cython.bint = count <= p.ref_rows
    rf: cython.double = xf if count == 1 else r[p.ref_fast + f]
    rf = rf + p.ref_rate * (xf - rf)
    rm: cython.double = r[p.ref_mean + f]
    rfm: cython.double = r[p.ref_fmean + f]
    rfv: cython.double = r[p.ref_fm2 + f]
    d: cython.double
    if in_ref:
        rm = rm + (xf - rm) / rk
        d = rf - rfm
        rfm = rfm + d / rk
        rfv = rfv + d * (rf - rfm)
        r[p.ref_mean + f], r[p.ref_fmean + f], r[p.ref_fm2 + f] = rm, rfm, rfv
    r[p.ref_fast + f] = rf
    fl: cython.double = max(p.min_std, p.min_rel_std * abs(rm))
    rvar: cython.double = max(rfv / max(rk - 1.0, 1.0), fl * fl)
    grown: cython.double
    if p.ref_drift > 0.0:  # s_eff = sqrt(s^2 + (reference_drift * slope * (n - reference_rows))^2)
        if in_ref:
            r[p.ref_tx + f] = r[p.ref_tx + f] + 0.5 * rk * (xf - rm)
        grown = p.ref_drift * r[p.ref_tx + f] / max(rk * (rk * rk - 1.0) / 12.0, 1.0) * max(count - p.ref_rows, 0.0)
        rvar = rvar + grown * grown
    rz: cython.double = abs(rf - rm) / sqrt(rvar)
    rpk: cython.double
    if p.ref_peak_gate > 0.0:  # counts only while z is at least this fraction of its (fading) peak
        rpk = 0.0 if in_ref else max(rz, q[p.ref_peak + f] * p.onset_decay)
        q[p.ref_peak + f] = rpk
        if rz < p.ref_peak_gate * rpk:
            rz = 0.0
    return rz


@cython.cfunc
@cython.cdivision(True)
@cython.boundscheck(False)
def _train_ref(p: Params, r: cython.double[:], f: cython.int, xl: cython.double, mean: cython.double, std: cython.double,
               count: cython.double) -> cython.double:
    """Feature f's z of the training reference (F > 1, fixed normalisation, reference_rows 0):
    |x - m| / s with the model's mean / std (what training saw), or, where nearer, |x - a| / s with
    a the stream's own mean over its warm-up readings (ref_mean; learned while count <= warmup): a
    stream that runs at another operating point than the training data is measured from its start.
    The warm-up mean only counts when it sits more than ref_gate[f] sd from m (the calibration's
    reference_gate: the farthest a warm-up-long window of the normal data it was calibrated on
    sat): a stream whose warm-up is at an operating point that data had is measured from training alone."""
    z: cython.double = abs(xl - mean) / std
    if p.warmup < 1.0:
        return min(z, 1e6)
    if count <= p.warmup:
        r[p.ref_mean + f] = r[p.ref_mean + f] + (xl - r[p.ref_mean + f]) / count
        return min(z, 1e6)
    if abs(r[p.ref_mean + f] - mean) / std <= p.ref_gate[f]:
        return min(z, 1e6)
    return min(min(z, abs(xl - r[p.ref_mean + f]) / std), 1e6)


@cython.cfunc
@cython.boundscheck(False)
@cython.wraparound(False)
def _looks(p: Params, r: cython.double[:], q: cython.float[:], xl0: cython.double, ts: cython.double, count: cython.double,
           dt: cython.double, out: cython.double[:]) -> cython.double:
    """Per-look log10 p to out[O_LP + k] (seasonal look and AND-gate where trusted; the peak look's
    from table 4 when it is on, 0 otherwise; the reference look's as the kernel computed it with
    reference_rows, from table 5 for the training reference when it is on, 0 otherwise; the relation
    look's from table 6 when it is on, 0 otherwise; the level and spread looks' 0, and their
    statistics NaN, while level_settle holds them; the slow looks bounded by _bound_echoes when
    echo_decades is on), the look with the smallest (O_LOOK, first on ties) and the
    Bonferroni-combined log10 p (O_LOG10P).
    dt: the stream's sampling interval for the seasonal look (_sample_dt).
    Returns log10 of the number of looks counted (live Bonferroni)."""
    lp0: cython.double = tail(p, 0, out[O_SCORE])
    lp1: cython.double = tail(p, 1, out[O_SMOOTHED])
    bonf: cython.double = p.log10_looks
    out[O_SEAS], out[O_GATE] = 0.0, NEG_INF
    if p.seasonal:
        if _season(p, r, q, xl0, ts, count, dt, out):  # trusted: the AND-gate and one more look
            bonf = p.log10_looks_seas
            lp0, lp1 = max(lp0, out[O_GATE]), max(lp1, out[O_GATE])
    if q[p.nstat] < p.lvl_settle:  # the level / spread statistics are too young: silent (and not recorded)
        out[O_LEVEL], out[O_SPREAD] = NAN, NAN
        out[O_LP + 2], out[O_LP + 3] = 0.0, 0.0
    else:
        out[O_LP + 2], out[O_LP + 3] = tail(p, 2, out[O_LEVEL]), tail(p, 3, out[O_SPREAD])
    out[O_LP], out[O_LP + 1], out[O_LP + 4], out[O_LP + 6] = lp0, lp1, out[O_STUCK], out[O_SEAS]
    out[O_LP + 5] = out[O_REF] if p.ref_rows > 0.0 else tail(p, 5, out[O_REF]) if p.tref_on else 0.0
    out[O_LP + 7] = tail(p, 4, out[O_PEAK]) if p.peak_on else 0.0
    out[O_LP + 8] = tail(p, 6, out[O_REL]) if p.rel_on else 0.0
    if p.tref_on and p.echo_decades > 0.0:
        _bound_echoes(p, out)
    best: cython.int = 0
    k: cython.int
    for k in range(1, N_LOOKS):
        if not _in_use(p, k):
            continue
        if out[O_LP + k] < out[O_LP + best]:
            best = k
    out[O_LOOK] = best
    out[O_LOG10P] = min(out[O_LP + best] + bonf, 0.0)
    return bonf


@cython.cfunc
@cython.cdivision(True)
@cython.boundscheck(False)
@cython.wraparound(False)
def _relation(p: Params, q: cython.float[:], count: cython.double, work: cython.double[:]) -> cython.double:
    """The relation look's statistic: each modelled feature f_i against the others at the same reading,
    e_i = (c_i - sum_j coef[i, j] c_j) / resid_std_i (c: the normalised, clipped values, work W_XC; a
    linear model fitted by the trainer on the training data), or e_i - a_i where nearer (a_i: the
    stream's mean of e_i over its warm-up, rel_mean, learned while count <= warmup; a stream whose
    relations sit elsewhere from its start is measured from there) to work W_RELE. Returns max_i |e_i|.
    A feature that leaves the others (decouples, shifts alone) moves its e_i for as long as it stays
    away, which a one-step predictor sees only at the start. Attribution (work W_REL): a fault of size
    d on feature k alone moves every e by d m[:, k] (m = (I - coef) / resid_std: the others' e too,
    through their coef on k), so feature k's share is |g_k . e|, g_k = m[:, k] / |m[:, k]| (the
    reconstruction-based contribution): largest for the feature whose own fault explains e best.
    2 U^2 multiply-adds."""
    U: cython.int = p.rel_n
    i: cython.int
    j: cython.int
    f: cython.int
    acc: cython.double
    e: cython.double
    top: cython.double = 0.0
    warming: cython.bint = count <= p.warmup
    for f in range(p.F):  # the features it does not model: no share
        work[f * W + W_REL] = 0.0
    for i in range(U):  # e [U] to W_RELE
        f = cython.cast(cython.int, p.rel_idx[i])
        acc = work[f * W + W_XC]
        for j in range(U):
            acc -= p.rel_coef[i * U + j] * work[p.rel_idx[j] * W + W_XC]
        e = acc / p.rel_se[i]
        if warming:
            q[p.rel_mean + f] = q[p.rel_mean + f] + (e - q[p.rel_mean + f]) / count  # (count >= 1)
        elif abs(e - q[p.rel_mean + f]) < abs(e):
            e = e - q[p.rel_mean + f]
        e = min(max(e, -1e6), 1e6)
        work[f * W + W_RELE] = e
        top = max(top, abs(e))
    for j in range(U):  # attribution [U] to W_REL: |g_j . e|
        acc = 0.0
        for i in range(U):
            acc += p.rel_g[i * U + j] * work[p.rel_idx[i] * W + W_RELE]
        work[p.rel_idx[j] * W + W_REL] = abs(acc)
    return top


@cython.cfunc
@cython.inline
def _bound_echoes(p: Params, out: cython.double[:]) -> cython.void:
    """The slow looks (smoothed: EW mean of the instant score; spread: EW log variance) enter the
    combination at most echo_decades more surprising than the present reading's own evidence (the
    smallest log10 p of the instant, training-reference, peak and relation looks). After a large, short fault
    their memories would keep the surprise high for their whole window while the readings are normal
    again (echoes); a slow look that agrees with the present still counts. Only with the training
    reference in use (tref_on): a value held away from what training saw is that look's to report
    for as long as it lasts. The statistics and the tables fitted on them are unchanged."""
    now: cython.double = min(min(out[O_LP], out[O_LP + 5]), min(out[O_LP + 7], out[O_LP + 8]))  # (0: not in use)
    out[O_LP + 1] = max(out[O_LP + 1], now - p.echo_decades)
    out[O_LP + 3] = max(out[O_LP + 3], now - p.echo_decades)


@cython.cfunc
@cython.inline
def _in_use(p: Params, k: cython.int) -> cython.bint:
    """Look k (scoring.ALL_LOOKS order) is in use (the detector's ``looks``, as a bit mask)."""
    return (p.looks_mask >> k) & 1 != 0


@cython.cfunc
@cython.boundscheck(False)
@cython.wraparound(False)
def _onset(p: Params, r: cython.double[:], q: cython.float[:], x: cython.double[:], work: cython.double[:], scored: cython.bint,
           bonf: cython.double, out: cython.double[:]) -> cython.double:
    """The onset output: per look, its surprise -log10(n p_k) is an onset when it exceeds
    onset_ratio x that look's last onset surprise (fading; re-armed after a quiet stretch); the top
    onset is calibrated by the stream's own rate of onsets at that level, mixed with the model's
    tail; the range look (excess beyond the stream's range of values) can raise it."""
    top: cython.double = 0.0
    sk: cython.double
    ref: cython.double
    quiet: cython.double
    k: cython.int
    i: cython.int = -1  # onset slot of look k: the looks in use only (layout.columns)
    for k in range(N_LOOKS):  # scoring.ALL_LOOKS
        if not _in_use(p, k):
            continue
        i += 1
        sk = max(-(out[O_LP + k] + bonf), 0.0) if scored else 0.0
        ref = q[p.onset_ref + i]
        if sk > p.onset_ratio * ref:
            q[p.onset_ref + i] = min(sk, CALM_VAR_MAX)  # (float32: a surprise beyond its range stays finite)
            top = max(top, sk)
        else:
            q[p.onset_ref + i] = ref * p.onset_decay
        if p.rearm > 0.0 and scored:  # re-arm after onset_rearm quiet readings
            quiet = _quiet_count(p, q, i) + 1.0 if sk < p.quiet_level else 0.0
            if quiet >= p.rearm:
                quiet = 0.0
                q[p.onset_ref + i] = 0.0
            _set_quiet_count(p, q, i, quiet)
    u: cython.double = 0.0
    lvl: cython.int
    c_rate: cython.double = 1.0
    mixed: cython.double
    if top > 0.0:
        lvl = _level(p, top)
        if lvl >= 0:
            c_rate = q[p.onset_rates + lvl]
        mixed = p.on_weight * c_rate + (1.0 - p.on_weight) * 10.0 ** -top
        u = min(top + 1.0, -log10(mixed)) if mixed > 0.0 else top + 1.0
    e: cython.double = _range_excess(p, r, work)
    shown: cython.double = max(u, p.range_surprise * e) if scored else 0.0
    if scored:
        _learn_rates(p, q, top)
    return likelihood(-shown)


@cython.cfunc
@cython.inline
@cython.cdivision(True)
@cython.boundscheck(False)
@cython.wraparound(False)
def _quiet_count(p: Params, q: cython.float[:], i: cython.int) -> cython.double:
    """Look slot i's count of quiet readings: QUIET_BITS bits of the onset_quiet word i // QUIET_PER_WORD
    (slot i % QUIET_PER_WORD from the lowest bits; a float32 holds the word exactly, below 2**24)."""
    word: cython.long = cython.cast(cython.long, q[p.onset_quiet + i // QUIET_PER_WORD])
    return cython.cast(cython.double, (word >> (QUIET_BITS * (i % QUIET_PER_WORD))) & QUIET_MAX)


@cython.cfunc
@cython.inline
@cython.cdivision(True)
@cython.boundscheck(False)
@cython.wraparound(False)
def _set_quiet_count(p: Params, q: cython.float[:], i: cython.int, n: cython.double) -> cython.void:
    """Store n (0 .. QUIET_MAX: settings keep onset_rearm <= QUIET_MAX + 1) as look slot i's quiet count."""
    at: cython.int = p.onset_quiet + i // QUIET_PER_WORD
    shift: cython.int = QUIET_BITS * (i % QUIET_PER_WORD)
    word: cython.long = cython.cast(cython.long, q[at]) & ~(QUIET_MAX << shift)
    q[at] = cython.cast(cython.double, word | ((cython.cast(cython.long, n) & QUIET_MAX) << shift))


@cython.cfunc
def _capped(p: Params, q: cython.float[:], bonf: cython.double, n: cython.double, out: cython.double[:]) -> cython.double:
    """The alert path's surprise: the largest look surprise -(log10 p_k + bonf), the model's two
    looks (instant, smoothed: k < 2) capped by the stream's own onset rates (_own_rate); the stream's
    own looks (level, spread, stuck, reference, seasonal, peak, relation) as they are. The look it comes from
    to O_LOOK (first on ties, as _looks)."""
    top: cython.double = -1.0
    sk: cython.double
    k: cython.int
    for k in range(N_LOOKS):  # scoring.ALL_LOOKS
        if not _in_use(p, k):
            continue
        sk = max(0.0 - (out[O_LP + k] + bonf), 0.0)
        if k < 2:
            sk = _own_rate(p, q, sk, n)
        if sk > top:
            top = sk
            out[O_LOOK] = k
    return top


@cython.cfunc
@cython.inline
@cython.boundscheck(False)
@cython.wraparound(False)
def _level(p: Params, s: cython.double) -> cython.int:
    """The largest j with ONSET_LEVELS[j] <= s (-1: below every level): the onset rate that rates a
    surprise s (the onset's and the alert-rate cap's one lookup)."""
    lvl: cython.int = -1
    j: cython.int
    for j in range(p.n_levels):
        if p.levels[j] <= s:
            lvl = j
    return lvl


@cython.cfunc
@cython.cdivision(True)
def _own_rate(p: Params, q: cython.float[:], s: cython.double, n: cython.double) -> cython.double:
    """The alert path's surprise s capped by the stream's own rate r of onsets at least as surprising
    (onset_rates at the largest level <= s; an EW mean from 0, so divided by 1 - (1 - on_rate)^n,
    n the readings past warm-up): min(s, -log10(al_weight r)). A stream whose ordinary readings
    reach s often (bursts, counts) does not alert on them. Bounds: one past onset at that level caps
    s only down to about log10(min(n, onset_memory) / al_weight) (3.5 for al_weight 0.3 at n ~ 1,000,
    4.0-4.2 from n ~ onset_memory on), and a surprise above every level the stream's recent onsets
    reached, or beyond sqrt 2 x the top level (cap_top; ONSET_LEVELS end at 90.5), is not capped at all."""
    lvl: cython.int = _level(p, s)
    if lvl < 0 or s >= p.cap_top:  # beyond the next level the rates do not resolve
        return s
    r: cython.double = q[p.onset_rates + lvl]
    if r <= 0.0:
        return s
    r = min(r / max(-expm1(max(n, 1.0) * p.ln_keep), 1e-300), 1.0)  # debiased EW mean [rate per reading]
    return min(s, -log10(p.al_weight * r))


@cython.cfunc
@cython.inline
@cython.boundscheck(False)
@cython.wraparound(False)
def _learn_rates(p: Params, q: cython.float[:], top: cython.double) -> cython.void:
    """The stream's EW rates of onsets per level (onset_rates[j]) learn a scored reading whose top
    onset surprise is ``top``: 1 at the levels it reached, 0 above. Compiled, on a contiguous row
    (the slab's): the same loop on pointers, which the C compiler vectorises."""
    j: cython.int
    rate: cython.double = p.on_rate
    rates: cython.p_float
    levels: cython.p_double
    if cython.compiled and q.strides[0] == cython.sizeof(cython.float) and p.levels.strides[0] == cython.sizeof(cython.double):
        rates, levels = cython.address(q[p.onset_rates]), cython.address(p.levels[0])
        for j in range(p.n_levels):
            rates[j] += ((1.0 if top >= levels[j] else 0.0) - rates[j]) * rate
        return
    for j in range(p.n_levels):
        q[p.onset_rates + j] += ((1.0 if top >= p.levels[j] else 0.0) - q[p.onset_rates + j]) * rate


@cython.cfunc
@cython.cdivision(True)
@cython.boundscheck(False)
def _range_excess(p: Params, r: cython.double[:], work: cython.double[:]) -> cython.double:
    """The worst feature's excess beyond the stream's range of values, in range widths; then the
    range learns the value (the clamped / winsorised one learning sees, work W_XL)."""
    e: cython.double = 0.0
    f: cython.int
    xf: cython.double
    width: cython.double
    for f in range(p.F):
        xf = work[f * W + W_XL]
        width = r[p.range_hi + f] - r[p.range_lo + f]
        if width > 0.0:
            e = max(e, max(max(xf - r[p.range_hi + f], r[p.range_lo + f] - xf), 0.0) / width)
        r[p.range_lo + f] = min(r[p.range_lo + f], xf)
        r[p.range_hi + f] = max(r[p.range_hi + f], xf)
    return e


@cython.cfunc
@cython.boundscheck(False)
def _blame(p: Params, out: cython.double[:], work: cython.double[:]) -> cython.double:
    """The feature the look that fired blames: its largest per-feature statistic (level, spread,
    reference z, relation attribution |g_k . e|; the most improbable run for stuck; the largest share of the score, i.e. the
    largest |z|, otherwise: instant, smoothed, peak)."""
    k: cython.int = cython.cast(cython.int, out[O_LOOK])
    column: cython.int = (W_LEVEL if k == 2 else W_SPREAD if k == 3 else W_STUCK if k == 4 else W_REF if k == 5
                          else W_REL if k == 8 else W_CONTRIB)
    best: cython.int = 0
    top: cython.double = NEG_INF
    v: cython.double
    f: cython.int
    for f in range(p.F):
        v = work[f * W + column]
        if column == W_STUCK:
            v = -v
        if v > top:
            best, top = f, v
    return best


@cython.cfunc
@cython.boundscheck(False)
@cython.wraparound(False)
def _learn(p: Params, r: cython.double[:], q: cython.float[:], x: cython.double[:], work: cython.double[:], count: cython.double,
           high: cython.bint) -> cython.bint:
    """Step 5: learn the stream's normal statistics from the reading (not while it is ``high``: at or
    above the learning level p.learn_s, unless held there relearn_after readings). Returns False if any learned
    statistic is not finite (the caller resets the stream)."""
    warming: cython.bint = count <= p.warmup
    held: cython.double = q[p.held] + 1.0 if high else 0.0
    q[p.held] = held
    learn: cython.bint = not high or held > p.relearn_after
    stat: cython.bint = learn and count > (p.warmup // 2)
    nstat: cython.double = q[p.nstat] + (1.0 if stat else 0.0)
    rate: cython.double = max(1.0 / max(nstat, 1.0), p.repeat_memory) if stat else 0.0
    decay: cython.double = 1.0 if warming else 1.0 - p.repeat_memory
    adapt: cython.double = p.adapt if (p.stream_norm and learn and not warming) else 0.0
    total: cython.double = 0.0  # sum of what was learned: not finite if anything is not
    f: cython.int
    o: cython.int
    d: cython.double
    run: cython.double
    for f in range(p.F):
        o = f * W
        if adapt != 0.0:
            d = work[o + W_XL] - r[p.norm_mean + f]
            r[p.norm_mean + f] += adapt * d
            r[p.norm_var + f] += adapt * (d * d - r[p.norm_var + f])
        if rate != 0.0:
            _ew_stat(q, p.lvl_mean + f, p.lvl_var + f, work[o + W_D], rate)
            _ew_stat(q, p.spr_mean + f, p.spr_var + f, work[o + W_V], rate)
            if p.K > 1:
                _ew_stat(q, p.mspr_mean + f, p.mspr_var + f, work[o + W_MV], rate)
        if p.wb_rate > 0.0 and not warming:  # every reading, those not learned from too (bounded by LN_WB_RATIO)
            total += _wb_learn(p, q, f, work[o + W_XC])
        if p.lm_rate > 0.0 and not warming:  # every reading after warm-up, as the weight correction
            total += _lm_learn(p, q, f, work[o + W_XC])
        if p.K > 1:
            q[p.mspr_fast + f] = work[o + W_MFV]
            total += q[p.mspr_fast + f] + q[p.mspr_mean + f] + q[p.mspr_var + f]
        run = work[o + W_RUN]
        if learn or p.runs_on:  # stuck_runs: the run counts learn from every reading (a long run is one)
            q[p.reps + f] = q[p.reps + f] * decay + (1.0 if run > 0 and count > 1 else 0.0)
        if p.runs_on:
            _runs_learn(p, r, q, f, run, count, decay)
        r[p.fast_mean + f], q[p.fast_var + f] = work[o + W_FM], work[o + W_FV]
        q[p.run + f], r[p.last_x + f] = run, x[f]
        total += (r[p.norm_mean + f] + r[p.norm_var + f] + r[p.fast_mean + f] + q[p.fast_var + f]
                  + q[p.lvl_mean + f] + q[p.lvl_var + f] + q[p.spr_mean + f] + q[p.spr_var + f])
    if (learn or p.runs_on) and count > 1:
        q[p.trials] = q[p.trials] * decay + 1.0
    q[p.nstat] = nstat
    if p.seasonal:
        total += r[p.seas_lev] + q[p.seas_vg]
    return isfinite(total)


@cython.cfunc
@cython.inline
@cython.boundscheck(False)
def _ew_stat(q: cython.float[:], m: cython.int, v: cython.int, value: cython.double, rate: cython.double) -> cython.void:
    """Running mean / variance q[m], q[v] of a statistic, at rate (1 / n while young, then EW)."""
    delta: cython.double = value - q[m]
    q[m] += rate * delta
    q[v] += rate * (delta * (value - q[m]) - q[v])


@cython.cfunc
@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
def _season(p: Params, r: cython.double[:], q: cython.float[:], x: cython.double, ts: cython.double, count: cython.double,
            dt: cython.double, out: cython.double[:]) -> cython.bint:
    """The seasonal look for one univariate reading x, test-then-train; writes its log10 p and
    the AND-gate's log10 2 Phi(-|z|) to out[O_SEAS], out[O_GATE] where trusted; returns trusted.
    dt: the stream's EW sampling interval with this reading's step in (_sample_dt, before float32).

    With P the readings per day (86400 / EW sampling interval; 288 until known): day type d =
    weekend of (ts + day_offset_s); phase q = time of day * K / 86400 - 0.5, bucket i = floor(q)
    (wrapping), f = q - i; the profile of day type d (the other's while d's has no value at i,
    i + 1) predicts (1 - f) m_i + f m_{i+1}; r = x - prediction; s^2 = max((1 - f) v_i + f v_{i+1},
    0.02^2 vg); z = clip(r / s, +-30); zbar = EW mean of z (rate 1 / max(P / 8, 4)); u = zbar /
    sd(zbar) (EW over 4 days). Trusted: completed days of type d >= 3 and vr / vg < seasonal_trust
    (EW variances over 4 days, winsorised at 4 s, of r and of x - level (EW over 1 day)).
    p = 2 Phi(-|u|). Learns m, v of the two buckets with weights (1 - f), f at rate
    max(1 / (completed days + 1), 1 / 8), the residual clipped at +-4 s."""
    K: cython.int = SEAS_K
    prev: cython.bint = count > 1
    P: cython.double = DAY / dt if dt > 0.0 else DAY / 300.0  # readings per day
    lam_s: cython.double = 1.0 / max(SEAS_MEMORY * P, 2.0)
    lam_l: cython.double = 1.0 / max(P, 2.0)
    tt: cython.double = ts + p.day_offset
    day: cython.double = floor(tt / DAY)
    d: cython.int = _weekend(day)
    if prev and day != q[p.seas_day]:
        _count_day(p, q, _weekend(q[p.seas_day]))
    q[p.seas_day] = day
    cyc: cython.double = _days_seen(p, q, d)
    phase: cython.double = (tt - day * DAY) / DAY * K - 0.5
    fi: cython.double = floor(phase)
    f: cython.double = phase - fi
    i0: cython.long = cython.cast(cython.long, fi)
    if i0 < 0:
        i0 += K
    i1: cython.long = i0 + 1 if i0 + 1 < K else 0
    own: cython.long = p.seas_m + d * K
    other: cython.long = p.seas_m + (1 - d) * K
    b0: cython.double = q[own + i0]
    b1: cython.double = q[own + i1]
    own_ok: cython.bint = isfinite(b0) and isfinite(b1)
    s0: cython.double = b0 if own_ok else q[other + i0]
    s1: cython.double = b1 if own_ok else q[other + i1]
    have: cython.bint = isfinite(s0) and isfinite(s1)
    lev: cython.double = x if count == 1 else r[p.seas_lev]
    eg: cython.double = x - lev
    vg: cython.double = q[p.seas_vg]
    a: cython.double = max(1.0 / (cyc + 1.0), 1.0 / SEAS_DAYS)  # the profile's learning rate
    clipv: cython.double = INF
    trusted: cython.bint = False
    u: cython.double
    z: cython.double
    ratio: cython.double
    if have:
        u, z, ratio, clipv = _season_residual(p, q, x - ((1.0 - f) * s0 + f * s1), f, i0, i1, lev, vg, a, P)
        trusted = cyc >= SEAS_MIN_DAYS and ratio < p.seas_trust
        if trusted:
            out[O_SEAS] = gauss_tail_log10(abs(u))
            out[O_GATE] = gauss_tail_log10(abs(z))
    q[p.seas_vg] = min(vg + lam_s * ((min(eg * eg, SEAS_CLIP * SEAS_CLIP * vg) if vg > 0.0 else eg * eg) - vg), F4_MAX)
    r[p.seas_lev] = lev + lam_l * eg
    _season_learn(q, own, i0, i1, b0, b1, own_ok, have, x, f, a, clipv)
    return trusted


@cython.cfunc
@cython.cdivision(True)
@cython.boundscheck(False)
def _season_residual(p: Params, q: cython.float[:], res: cython.double, f: cython.double, i0: cython.long,
                     i1: cython.long, lev: cython.double, vg: cython.double, a: cython.double,
                     P: cython.double) -> tuple[cython.double, cython.double, cython.double, cython.double]:
    """The profile's residual res at buckets i0, i1 (weights 1 - f, f): returns (u, z, the trust
    ratio vr / vg, the Huber clip of the profile's update) and learns the residual's scales."""
    lam_s: cython.double = 1.0 / max(SEAS_MEMORY * P, 2.0)
    lam_b: cython.double = 1.0 / max(SEAS_SPAN * P, 4.0)
    g: cython.double = 1.0 - f
    s2g: cython.double = q[p.seas_s2]
    vr: cython.double = q[p.seas_vr]
    if s2g != s2g:  # NaN: the first residual
        s2g, vr = res * res, res * res
    v0: cython.double = q[p.seas_v + i0]
    v1: cython.double = q[p.seas_v + i1]
    if not isfinite(v0):
        v0 = s2g
    if not isfinite(v1):
        v1 = s2g
    s2: cython.double = max(g * v0 + f * v1, SEAS_PHI * SEAS_PHI * vg + 1e-12 * (1.0 + lev * lev))
    z: cython.double = min(max(res / sqrt(s2), -SEAS_ZMAX), SEAS_ZMAX)
    zb: cython.double = q[p.seas_zb]
    zb = zb + lam_b * (z - zb)
    sfl: cython.double = lam_b / (2.0 - lam_b)  # the variance of an EW mean of iid unit z
    zb2: cython.double = q[p.seas_zb2]
    if zb2 != zb2:
        zb2 = sfl
    u: cython.double = zb / sqrt(max(zb2, sfl))
    ratio: cython.double = vr / vg if vg > 0.0 else INF
    r2: cython.double = min(res * res, SEAS_CLIP * SEAS_CLIP * s2)
    q[p.seas_s2] = min(s2g + lam_s * (r2 - s2g), F4_MAX)  # raw-unit squares in the float32 slab: saturate
    q[p.seas_v + i0] = min(v0 + a * g * (r2 - v0), F4_MAX)
    q[p.seas_v + i1] = min(v1 + a * f * (r2 - v1), F4_MAX)
    q[p.seas_vr] = min(vr + lam_s * (r2 - vr), F4_MAX)
    q[p.seas_zb] = zb
    q[p.seas_zb2] = zb2 + lam_s * (min(zb * zb, SEAS_CLIP * SEAS_CLIP * max(zb2, sfl)) - zb2)
    return u, z, ratio, SEAS_CLIP * sqrt(s2)


@cython.cfunc
@cython.boundscheck(False)
def _season_learn(q: cython.float[:], own: cython.long, i0: cython.long, i1: cython.long, b0: cython.double,
                  b1: cython.double, own_ok: cython.bint, have: cython.bint, x: cython.double, f: cython.double,
                  a: cython.double, clipv: cython.double) -> cython.void:
    """The day type's profile buckets i0, i1 learn x (the residual Huber-clipped at clipv); an
    unseen bucket takes x as it is."""
    res: cython.double
    if own_ok:
        res = x - ((1.0 - f) * b0 + f * b1)
        if have:
            res = max(-clipv, min(clipv, res))
        q[own + i0] = b0 + a * (1.0 - f) * res
        q[own + i1] = b1 + a * f * res
    else:
        if not isfinite(b0):
            q[own + i0] = x
        if not isfinite(b1):
            q[own + i1] = x


@cython.cfunc
@cython.inline
def _weekend(day: cython.double) -> cython.int:
    """1 where day number ``day`` (days since 1970-01-01, a Thursday) is a Saturday or Sunday."""
    w: cython.double = day + 3.0
    return 1 if w - 7.0 * floor(w / 7.0) >= 5.0 else 0


@cython.ccall
@cython.boundscheck(False)
def alert(p: Params, r: cython.double[:], q: cython.float[:], over: cython.bint, high: cython.bint, score: cython.double,
          ts: cython.double) -> cython.int:
    """The alert machine of one stream (see alerts.py): idle -> raised when k of the last n readings
    are over, active -> update on a score update_factor x the last event's, -> cleared after
    clear_after readings below the clear level (min_duration met), or NEW_NORMAL once it has lasted
    max_duration readings (the stream then learns its new normal), then cooldown."""
    active: cython.bint = q[p.duration] > 0  # an active alert has lasted >= 1 reading
    hist: cython.long = ((cython.cast(cython.long, q[p.hist]) << 1) | (1 if over else 0)) & p.a_mask
    bits: cython.long = hist
    ones: cython.int = 0
    while bits:  # popcount
        bits &= bits - 1
        ones += 1
    # phase_n: while active, readings in a row below the clear level; while idle, the cooldown left
    cooldown: cython.double = 0.0 if active else q[p.phase_n]
    raised: cython.bint = not active and cooldown <= 0 and ones >= p.a_k
    below: cython.double = q[p.phase_n] + 1.0 if active and not high else 0.0
    cleared: cython.bint = active and below >= p.a_clear_after and q[p.duration] >= p.a_min_duration
    duration: cython.double = q[p.duration] + 1.0 if active else 0.0
    expired: cython.bint = active and not cleared and 0.0 < p.a_max_duration < duration  # a new normal
    if expired:
        cleared = True
        q[p.held] = p.relearn_after  # the stream's normal statistics learn again from the next reading
    since: cython.double = q[p.since_event] + 1.0 if active else 0.0
    update: cython.bint = (active and not cleared and score > p.a_update_factor * q[p.peak]
                           and since >= p.a_update_gap)
    now_active: cython.bint = (active and not cleared) or raised
    q[p.hist] = 0.0 if cleared else hist
    q[p.duration] = 1.0 if raised else (duration if now_active else 0.0)
    q[p.phase_n] = below if now_active else p.a_cooldown if cleared else max(cooldown - 1.0, 0.0)
    if raised:
        q[p.seq] += 1.0
        r[p.start_ts] = ts
    if raised or update:
        q[p.peak] = score
    q[p.since_event] = since if now_active and not (raised or update) else 0.0
    return (NEW_NORMAL if expired else CLEARED) if cleared else RAISED if raised else UPDATE if update else NONE
