"""The per-stream slab, declared once: an ordered list of (column, width, storage, what it holds).

Everything that knows where a number lives in a stream's row derives from ``columns(F, ...)``:
``Layout`` (the offsets: a slice per vector column, an int per scalar column, each within its own
slab), the kernel's parameters (``Layout.offsets``, one int per column name), the snapshot format
(``Layout.signature`` is stored in every snapshot; a snapshot with another signature is not
restored) and the tests' whole-state comparison (``Layout.named``: a row as {column: values}).

Storage: "f8" columns live in the float64 slab (raw units, where float32 would lose a sensor's
resolution at a large offset; timestamps), "f4" columns in the float32 slab
(normalised statistics, rates, counters exact to 2**24, the seasonal profile). A width of ``None``
is one scalar column (an int offset); an int (also 1) is a vector column (a slice). Columns of
width 0 exist in name only: the reference look's columns when it is off, the seasonal look's
for multivariate models or when it is off, the mixture head's model-spread columns (mspr_*) for
a Gaussian head (K = 1), the relation look's unless the model has one (F > 1), the mixture's weight
correction (wbias) unless weight_memory is on for a mixture head. The jump rate's column (jrate)
is there only for a model with jump inputs, and the calm step's columns (calm_*, trend_*) only where calm_memory
is on for a univariate model, the stuck look's run columns (rstart, rval) only where stuck_runs is on,
and the level memory's (lm_*) only where level_memory is on for a mixture head (none of these even in name: the rows and snapshots of every other model stay as they were). The per-look
onset columns hold a slot for each look the model can use (scoring.ALL_LOOKS order; the
reference, seasonal, peak and relation slots left out where it cannot).
"""

from __future__ import annotations

import json
import zlib

import numpy as np

from .backends.base import pred_width
from .scoring import QUIET_PER_WORD

N_LOOKS = 9  # scoring.ALL_LOOKS: instant, smoothed, level, spread, stuck, reference, seasonal, peak, relation
N_LEVELS = 13  # scoring.ONSET_LEVELS
LM_W0 = 1e-3  # level_memory: the memory's weight in a new stream
LM_HOLD = 30.0  # ... readings in a row at each of its two levels before the memory scores (an on/off stay: 30-240)
LM_STAY0 = 32.0  # ... lm_stay of a new stream: no run, no flag
LM_W_MIN, LM_W_MAX = 1e-4, 0.5  # ... the memory's weight stays within these
LM_V_MIN = 1e-4  # ... its centres' variance floor (normalised units: sd 0.01)
SEAS_K = 32  # buckets over the day of the seasonal look's profile
SEAS_SCALARS = (  # the seasonal look's scalar columns (univariate models)
    ("seas_cyc", "completed days seen by the seasonal profile: weekdays + scoring.SEAS_CYC_BASE (16) x weekend "
                 "days, each counted up to SEAS_CYC_BASE - 1 (kernel._days_seen; past SEAS_DAYS - 1 nothing reads more)"),
    ("seas_day", "the last reading's day number, floor((ts + day_offset_s) / 86400)"),
    ("seas_s2", "global EW mean square profile residual (NaN until the profile has a value)"),
    ("seas_zb", "short EW mean of the profile residual z"),
    ("seas_zb2", "EW mean square of that short mean (NaN until the profile has a value)"),
    ("seas_lev", "level of x tracking on the day scale (EW over one cycle)"),
    ("seas_vg", "EW variance of x - level (the trust ratio's denominator)"),
    ("seas_vr", "EW variance of the profile residual (the trust ratio's numerator)"),
)

CALM_COLUMNS = (  # the calm step's and its calm trend's columns (calm_memory, univariate models)
    ("calm_var", None, "f4", "calm step: EW mean square of the step x - last_x (raw units^2; capped at CALM_Z^2 x itself)"),
    ("calm_since", None, "f4", "calm step: readings since its last step over CALM_Z sd (from its start, its second "
     "reading: calm at count - 2 in a young stream, kernel._calm_need; from "
     "-scoring.TREND_GRACE after a step that ended a calm stretch: 'recently calm' for the calm trend)"),
    ("trend_m1", None, "f4", "calm trend: Brown's first EW mean of x, minus last_x (raw units)"),
    ("trend_d", None, "f4", "calm trend: Brown's first minus second EW mean (raw units)"),
    ("trend_eb", None, "f4", "calm trend: EW mean of the residual against Brown's prediction (raw units)"),
    ("trend_v", None, "f4", "calm trend: EW mean square of that mean (raw units^2)"),
)


LM_COLUMNS = (  # level_memory's columns (a mixture head), each k x F wide: (name, k, meaning)
    ("lm_c", 2, "level_memory: the stream's two level centres (normalised units, centre-major: j F + f)"),
    ("lm_v", 2, "level_memory: each centre's EW variance (from readings at it: within kernel.LM_AT sd)"),
    ("lm_w", 1, "level_memory: its weight in the instant look's mixture (an online EM step)"),
    ("lm_stay", 1, "level_memory: flags x 64 + run + 32: the run of readings in a row at a centre (+n at centre "
     "1, -n at centre 0, |n| <= LM_HOLD), flag bit j once such a run at centre j reached LM_HOLD (both: it scores)"),
)


def columns(F: int, reference: bool = True, seasonal: bool = True, components: int = 1, relation: bool = False,
            wbias: bool = False, jump: bool = False, calm: bool = False, runs: bool = False,
            lmem: bool = False) -> tuple[tuple[str, int | None, str, str], ...]:
    """The slab's columns for a model with F features and a head of ``components`` Gaussians per
    feature (the reference look's if ``reference``, the seasonal look's if ``seasonal`` and F == 1;
    the peak look's onset columns if F > 1; the relation look's if ``relation`` and F > 1; the
    weight correction's and the level memory's if ``wbias`` / ``lmem`` and components > 1, the jump
    rate's if ``jump``, the calm step's if ``calm`` and F == 1, the stuck look's runs if ``runs``), in
    order: (name, width | None, storage, meaning)."""
    seasonal = seasonal and F == 1
    relation = relation and F > 1
    K = SEAS_K if seasonal else 0
    R = F if reference else 0
    RL = F if relation else 0
    M = F if components > 1 else 0  # the mixture head's model-spread columns
    WB = components * F if components > 1 and wbias else 0  # the stream's own weight correction (weight_memory > 0)
    # onset slots: the looks that can be in use, in ALL_LOOKS order (reference if its columns are
    # there, seasonal for F == 1, the peak look for F > 1, the relation look (the last) with a relation
    # model); the kernel skips the looks not in use (Params.looks_mask)
    looks = N_LOOKS - (not reference) - (not seasonal) - (F == 1) - (not relation)
    return (
        ("norm_mean", F, "f8", "stream normalisation mean (Welford during warm-up, then EW or frozen)"),
        ("norm_var", F, "f8", "stream normalisation variance"),
        ("pred", pred_width(F, components), "f4", "the prediction stored for the next reading: mean | logvar "
         "(normalised units); K > 1: means | logvars | logits, K F each, component-major (backends/base.py)"),
        ("wbias", WB, "f4", "a mixture head: the stream's own log correction of each component's weight, added to "
         "the stored logits (component-major, as pred's logits)"),
        *((name, k * F, "f4", doc) for name, k, doc in (LM_COLUMNS if lmem and components > 1 else ())),
        ("last_x", F, "f8", "last raw value"),
        *((("jrate", F, "f4", "jump inputs: the stream's rate of jumps |x - last_x| > threshold sd (the GRU's "
            "slow input j, backends/base.py)"),) if jump else ()),
        ("run", F, "f4", "its run of exact repeats"),
        ("reps", F, "f4", "EW count of repeats (the stuck look's repeat rate)"),
        *((("rstart", F, "f4", "stuck_runs: EW count of runs started (a repeat after a reading that was not one)"),
           ("rval", F, "f8", "stuck_runs: the value of the last completed run of kernel.RVAL_MIN or more repeats "
            "(NaN: none yet)")) if runs else ()),
        ("fast_mean", F, "f8", "short EW mean of the raw values (level look)"),
        ("fast_var", F, "f4", "short EW variance of the raw values (spread look)"),
        ("lvl_mean", F, "f4", "the stream's own EW mean of the level deviation d"),
        ("lvl_var", F, "f4", "... and its EW variance"),
        ("spr_mean", F, "f4", "the stream's own EW mean of the log spread ratio v"),
        ("spr_var", F, "f4", "... and its EW variance"),
        ("mspr_fast", M, "f4", "a mixture head: short EW mean of its predicted variance (the spread look's second statistic)"),
        ("mspr_mean", M, "f4", "... the stream's own EW mean of its log"),
        ("mspr_var", M, "f4", "... and its EW variance"),
        ("ref_mean", R, "f8", "reference look: mean of x over the first reference_rows readings"),
        ("ref_fast", R, "f8", "reference look: short EW mean of x"),
        ("ref_fmean", R, "f8", "reference look: Welford mean of ref_fast over those readings"),
        ("ref_fm2", R, "f8", "reference look: Welford sum of squares of ref_fast over those readings"),
        ("ref_tx", R, "f8", "reference look: co-moment of (reading index, x): the drift allowance"),
        ("ref_peak", R, "f4", "reference look: the largest z since it froze, fading (the peak gate)"),
        ("rel_mean", RL, "f4", "relation look: per feature, the mean of its relation residual over the warm-up"),
        ("range_lo", F, "f8", "smallest raw value the stream has had (the onset's range look)"),
        ("range_hi", F, "f8", "largest raw value the stream has had"),
        ("count", None, "f4", "readings accepted since the stream (re)started"),
        ("since_reset", None, "f4", "readings since the hidden state was reset (gap, new stream, restore)"),
        ("last_ts", None, "f8", "timestamp of the last accepted reading, epoch seconds (capped at now + clock_skew_s)"),
        ("sample_dt", None if seasonal or (calm and F == 1) else 0, "f4", "EW sampling interval, seconds (0: not "
         "known yet; the seasonal look's readings per day, the calm step's gaps)"),
        ("smoothed", None, "f4", "EWMA of the score"),
        *(CALM_COLUMNS if calm and F == 1 else ()),
        ("trials", None, "f4", "EW count of readings the repeat rate was learned from"),
        ("nstat", None, "f4", "readings the level / spread statistics were learned from"),
        ("held", None, "f4", "readings in a row at or above the learning level (learning paused)"),
        ("hist", None, "f4", "alert machine: bit history of readings over the threshold (k of n)"),
        ("phase_n", None, "f4", "alert machine: while an alert is active, readings in a row below the clear level; "
         "while idle, readings left before a new alert can be raised (the cooldown; 0 whenever an alert is raised)"),
        ("seq", None, "f4", "alert machine: alerts raised on this stream (the alert id's number, exact to 2**24)"),
        ("peak", None, "f4", "alert machine: score of the alert's last event"),
        ("since_event", None, "f4", "alert machine: readings since the alert's last event"),
        ("start_ts", None, "f8", "alert machine: timestamp the alert was raised"),
        ("duration", None, "f4", "alert machine: readings the alert has been active (0: no alert active)"),
        ("onset_ref", looks, "f4", "per look in use, the surprise of its last onset (decaying)"),
        ("onset_quiet", -(-looks // QUIET_PER_WORD), "f4", "per look in use, scored readings in a row below "
         "onset_quiet (re-arming): scoring.QUIET_BITS bits each, QUIET_PER_WORD looks to a column (kernel._quiet_count)"),
        ("onset_rates", N_LEVELS, "f4", "EW rate of the stream's onsets with surprise >= ONSET_LEVELS[j]"),
        ("seas_m", 2 * K, "f4", "time-of-day profile of x: weekday buckets | weekend buckets (NaN: unseen)"),
        ("seas_v", K, "f4", "per-bucket EW mean square of the profile residual (NaN: unseen)"),
        *((name, None if seasonal else 0, "f8" if name == "seas_lev" else "f4", doc) for name, doc in SEAS_SCALARS),
    )


def initial_rows(layout: "Layout") -> tuple[np.ndarray, np.ndarray]:
    """What a new stream's rows (num float64, num4 float32) start with: zeros, except where
    'nothing seen yet' is not 0."""
    row8, row4 = np.zeros(layout.width, np.float64), np.zeros(layout.width4, np.float32)
    row8[layout.last_ts] = -np.inf
    row8[layout.range_lo] = np.inf  # an empty range
    row8[layout.range_hi] = -np.inf
    if layout.offsets["rval"] >= 0:  # no completed run yet
        row8[layout.rval] = np.nan
    if layout.offsets["lm_w"] >= 0:  # level_memory: centres at -1 / +1 sd, unit spread, the least weight, no run
        row4[layout.lm_c] = np.repeat([-1.0, 1.0], layout.F)
        row4[layout.lm_v] = 1.0
        row4[layout.lm_w] = LM_W0
        row4[layout.lm_stay] = LM_STAY0
    if layout.has_seasonal:  # an empty profile, no scale
        for name in ("seas_m", "seas_v", "seas_s2", "seas_zb2"):
            row4[getattr(layout, name)] = np.nan
    return row8, row4


class Layout:
    """Offsets of ``columns(F, reference, seasonal, components, relation, wbias, jump, calm, runs)``: ``layout.count`` is an int, ``layout.norm_mean``
    a slice, each within its slab (``layout.storage[name]``: "f8" -> ``num``, "f4" -> ``num4``)."""

    def __init__(self, n_features: int, reference: bool = True, seasonal: bool = True, components: int = 1,
                 relation: bool = False, wbias: bool = False, jump: bool = False, calm: bool = False,
                 runs: bool = False, lmem: bool = False):
        self.F, self.K = n_features, components
        self.columns = columns(n_features, reference, seasonal, components, relation, wbias, jump, calm, runs, lmem)
        self.has_seasonal = seasonal and n_features == 1
        self.offsets: dict[str, int] = {}  # column -> first entry in its slab (-1: a zero-width column)
        self.storage: dict[str, str] = {}
        start = {"f8": 0, "f4": 0}
        for name, width, storage, _doc in self.columns:
            n, at = (1 if width is None else width), start[storage]
            self.offsets[name] = at if n else -1
            self.storage[name] = storage
            setattr(self, name, (at if n else -1) if width is None else slice(at, at + n))
            start[storage] += n
        for name in ("jrate", *(c[0] for c in CALM_COLUMNS), "rstart", "rval", *(c[0] for c in LM_COLUMNS)):
            self.offsets.setdefault(name, -1)  # (the kernel reads every offset; these only with jump inputs,
            # calm_memory, stuck_runs, level_memory)
        self.width, self.width4 = start["f8"], start["f4"]  # entries per row of num, of num4
        self.row_bytes = 8 * self.width + 4 * self.width4

    def signature(self) -> str:
        """The declaration as stored in snapshots: [[name, width, storage], ...] (JSON)."""
        return json.dumps([[name, width, storage] for name, width, storage, _ in self.columns])

    def version(self) -> int:
        """A short number derived from the declaration (crc32 of the signature)."""
        return zlib.crc32(self.signature().encode())

    def named(self, row8: np.ndarray, row4: np.ndarray) -> dict[str, np.ndarray]:
        """A stream's rows of num and num4 as {column: float64[width of that column]}: copies, so a
        row read before a reading stays as it was (the slabs are updated in place)."""
        out = {}
        for name, width, storage, _ in self.columns:
            where, row = getattr(self, name), (row8 if storage == "f8" else row4)
            if width is None and where >= 0:
                out[name] = np.array(row[where : where + 1], np.float64)
            elif width:
                out[name] = np.array(row[where], np.float64)
        return out
