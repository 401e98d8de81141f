"""What the detector computes per reading, and the calibration tools. The maths itself runs in
kernel.py (the only copy); this module holds its constants, the table preparation and fitting.

For each reading (normalised x[F], predicted mean mu[F] and log-variance lv[F]):

    z_i      = (x_i - mu_i) / exp(lv_i / 2)          standardised residual per feature
    c_i      = z_i^2 / F                              contribution of feature i
    score    = sum_i c_i                              one-reading score (mean z^2)

The likelihood looks at the stream five ways ("looks"), each turned into a tail probability:

    instant   score                                   spikes, dips, the onset of a level shift
    smoothed  EWMA_a(score)                           noise bursts, sustained prediction error
    level     |d - E d| / sd(d), worst feature, with  drifts and shifts the GRU has followed
              d = (fast EW mean - stream mean) / std  (standardised by the stream's own history)
    spread    |v - E v| / sd(v), worst feature, with  lost periodicity, variance collapse or growth
              v = log(fast EW variance / std^2)
    stuck     run length L of exact repeats           a frozen sensor; p = q^L, q the stream's own
                                                      repeat rate (geometric model, Laplace prior)

and, when the detector is given ``reference_rows`` (off by default), a sixth look:

    reference |r - m| / s, worst feature, with        a lasting change of regime, for as long as it
              r = short EW mean of the raw values,    lasts (the one-step predictor and the level
              m, s = mean of x and std of r over the   look follow a new regime; this one does not)
              stream's first reference_rows readings  p = F * 2 Phi(-z) (Gaussian tail, Bonferroni
              (Welford, frozen after)                  over features), no table

and, for multivariate models whose calibration has a ``peak`` table (``edgernn train`` fits one for
F > 1; bundles calibrated before it have none, and then the look is off), the peak look:

    peak      max over features of |z_i|               one feature's large residual: the instant
                                                      look's mean of z^2 dilutes it F-fold (38
                                                      features: one z of 8 is a score of 1.7);
                                                      table fitted on the held-out part like the
                                                      instant look's; the feature is the alert's

and, for univariate models (``DetectorSettings.seasonal``, on by default), the seasonal look, which
acts only on rows where it is trusted:

    seasonal  u = zbar / sd(zbar), with z = r / s the  a day that breaks the stream's daily pattern
              residual r of x against the stream's    (a weekday shaped like a weekend, a level held
              time-of-day profile (32 buckets, one     at the wrong time of day); p = 2 Phi(-|u|)
              profile for weekdays, one for weekends, (Gaussian tail, no table)
              linear between bucket centres, learned
              test-then-train), s its per-bucket scale,
              zbar a short EW mean of z (1/8 day)

  trusted where that day type has >= 3 completed days and the profile explains the variance:
  R = EW var(r) / EW var(x - day-scale level) < seasonal_trust (0.5). On trusted rows it is also an
  AND-gate: the instant and smoothed looks' log10 p become max(their log10 p, log10 2 Phi(-|z|)),
  so a reading must surprise the one-step GRU AND the time-of-day profile (routine daily
  transitions stop being alarms), and the Bonferroni count includes the seasonal look there only
  ("live Bonferroni": n + 1 looks on trusted rows, n elsewhere). Untrusted, it changes nothing.

All but ``stuck`` are calibrated on held-out normal data: a table of log10 of the empirical
survival function with an exponential tail beyond its last point (peaks over threshold).
p = min(1, n * min_look p_look) (Bonferroni over the n looks in use, the seasonal one only where it is
trusted) is a calibrated tail probability; the detector thresholds its surprise s = -log10 p (no
floor: a threshold of any depth stays meaningful). The look with the smallest p is the alert's reason.
``likelihood = 1 - p`` down to p = 1e-12 and ``1 - 1e-12 * (1 + ln(s / 12)) ** -0.2``
(s = -log10 p) beyond, so it keeps increasing towards 1 without reaching it for any finite score
(float64 still orders s from 10 s up to s = 1e300); a threshold sweep needs that ordering.
"""

from __future__ import annotations


import math

import numpy as np

LOOKS = ("instant", "smoothed", "level", "spread", "stuck")
REFERENCE = "reference"  # the optional sixth look (DetectorSettings.reference_rows > 0)
SEASONAL = "seasonal"  # the time-of-day look (DetectorSettings.seasonal, univariate models)
PEAK = "peak"  # the worst feature's |z| (multivariate models whose calibration has a peak table)
RELATION = "relation"  # each feature against the others at the same reading (models with a relation.npz)
ALL_LOOKS = (*LOOKS, REFERENCE, SEASONAL, PEAK, RELATION)  # also the order of each stream's onset_ref columns
TABLE_LOOKS = LOOKS[:-1]  # the looks every bundle has a calibration table for (stuck has its own model)
KERNEL_TABLES = (*TABLE_LOOKS, PEAK, REFERENCE, RELATION)  # the tables the kernel reads, in its order (the last three optional)
# multivariate only: peak; reference: the training reference (fixed normalisation); relation: a
# model trained with the relation (edgernn train, F > 1)
OPTIONAL_TABLES = (PEAK, REFERENCE, RELATION)
# surprise levels (1.41 .. 90.5) at which the detector keeps each stream's rate of onsets (an onset
# above 90.5, 1 in 10^90, is rated as one at 90.5; one below 1.41 has no rate of its own: 24 levels up
# to 2896, then 16 from 1 to 181, gave the same alerts and NAB scores; the 12 bytes of the 3 dropped
# (1, 128, 181) hold univariate's weight correction, docs/QUALITY.md)
ONSET_LEVELS = np.array([2.0 ** (j / 2.0) for j in range(1, 14)])
# the seasonal look's constants (kernel._season)
DAY = 86400.0
QUIET_BITS = 8  # onset_quiet: each look's count of quiet readings in 8 bits, 3 looks to a float32 (exact to 2**24)
QUIET_PER_WORD = 3
QUIET_MAX = 2**QUIET_BITS - 1  # a count re-arms at onset_rearm, so onset_rearm <= QUIET_MAX + 1 (settings)
CALM_YOUNG = 500.0  # the calm step and trend: a stream younger than calm_memory is calm once it has gone this many
#                     readings, its whole life, without a step (kernel._calm_need)
TREND_A = 1.0 / 16.0  # the calm trend (kernel._calm_trend): Brown's smoothing rate (level and trend)
TREND_B = 1.0 / 8.0  # ... the EW mean rate of the residual against Brown's prediction
TREND_GRACE = 32.0  # ... readings a stream stays "recently calm" after the step that ended its calm (calm_since
#                      counts up from -TREND_GRACE then)
TREND_START = 64.0  # ... readings the residual mean's mean square learns before the look scores
TREND_RESTART = 1000.0  # ... a step over this many sd of the stream's steps (a wild reading; the one back from it)
#                         restarts it at the reading, as a gap does
SEAS_DT_RATE = 0.02  # EW rate of the sampling interval
SEAS_MEMORY = 4.0  # days the scales and the trust ratio remember
SEAS_SPAN = 0.125  # fraction of a day in the short EW mean of z
SEAS_DAYS = 8.0  # days the profile remembers (once that many have been seen)
SEAS_MIN_DAYS = 3.0  # completed days of a day type before its profile is trusted
SEAS_CYC_BASE = 16.0  # seas_cyc = weekdays + SEAS_CYC_BASE x weekend days, each counted up to SEAS_CYC_BASE - 1
SEAS_CLIP = 4.0  # residuals winsorised / Huber-clipped at this many s
SEAS_PHI = 0.02  # floor on s: this fraction of the sd of x around its day-scale level
SEAS_ZMAX = 30.0  # |z| clipped here
P_FLOOR_LOG10 = -12.0  # below 1e-12 the likelihood switches to the slow, non-saturating branch
LN10 = math.log(10.0)


TAIL_SPAN = 1e12  # tail scales covered by a prepared table's extra point (then it clamps)


def prepare_table(table: dict) -> dict:
    """A table with its exponential tail as one more, far point (log10 sf is linear in the value
    beyond the last point, so np.interp then does the tail exactly), plus list copies for the
    kernel's Params. Used by the detector once per model."""
    xs = np.asarray(table["x"], np.float64)
    ls = np.asarray(table["log10_sf"], np.float64)
    scale = float(table["tail_scale"])
    xs = np.append(xs, xs[-1] + TAIL_SPAN * scale)
    ls = np.append(ls, ls[-1] - TAIL_SPAN / LN10)
    return {"x": xs, "log10_sf": ls, "tail_scale": scale, "prepared": True,
            "xs_list": xs.tolist(), "ls_list": ls.tolist()}


GAUSS_SWITCH = 26.0  # erfc(y) > 1e-300 below this; beyond, its asymptotic series (rel. error < 2e-6)


def likelihood_from_log10p(log10p: np.ndarray) -> np.ndarray:
    """Monotone map to [0, 1): 1 - p down to p = 1e-12, then 1 - 1e-12 * (1 + ln(s / 12))**-0.2."""
    log10p = np.asarray(log10p, dtype=np.float64)
    out = np.expm1(log10p * LN10)  # 10**log10p - 1, exact for small p
    np.subtract(0.0, out, out=out)  # 1 - 10**log10p (0 - x: never -0.0)
    deep = log10p < P_FLOOR_LOG10
    if deep.any():
        out[deep] = 1.0 - 10.0**P_FLOOR_LOG10 * (1.0 + np.log(log10p[deep] / P_FLOOR_LOG10)) ** -0.2
    return out


def threshold_for_rate(rate: float) -> float:
    """The likelihood threshold that a tail probability of ``rate`` corresponds to."""
    return float(likelihood_from_log10p(np.array([np.log10(rate)]))[0])


MIN_CALIBRATION = 100  # finite values a table is fitted on, at least


def fit_table(values: np.ndarray, points: int = 48, tail_fraction: float = 0.01) -> dict:
    """Empirical survival table of ``values`` with an exponential tail (mean excess) beyond it."""
    v = np.sort(np.asarray(values, dtype=np.float64)[np.isfinite(values)])
    n = v.size
    if n < MIN_CALIBRATION:
        raise ValueError(f"need at least {MIN_CALIBRATION} calibration values, got {n}")
    sf = np.logspace(np.log10(0.5), np.log10(tail_fraction), points)  # survival levels
    xs = np.maximum.accumulate(np.quantile(v, 1.0 - sf))
    u = xs[-1]
    excess = v[v > u] - u
    scale = float(excess.mean()) if excess.size >= 5 else float(max(np.std(v), 1e-6))
    return {"x": xs.tolist(), "log10_sf": np.log10(sf).tolist(), "tail_scale": max(scale, 1e-9)}


def ewma(values: np.ndarray, alpha: float) -> np.ndarray:
    """EWMA as the detector computes it (first value seeds the average)."""
    out = np.empty(len(values), dtype=np.float64)
    acc = float(values[0])
    for i, v in enumerate(values):
        acc += alpha * (float(v) - acc)
        out[i] = acc
    return out


def default_calibration(n_features: int, warmup: int = 64) -> dict:
    """An uncalibrated starting point: the statistics as if z ~ N(0, 1) and x ~ N(0, 1) exactly."""
    rng = np.random.default_rng(12345)
    z = rng.standard_normal((100_000, n_features))
    score = (z * z).mean(axis=1)
    alpha = 0.125
    return {
        "threshold": threshold_for_rate(1e-4),
        "target_false_alarm_rate": 1e-4,
        "warmup": warmup,
        "smoothing": alpha,
        "tables": {
            "instant": fit_table(score),
            "smoothed": fit_table(ewma(score, alpha)),
            "level": fit_table(np.abs(rng.standard_normal((100_000, n_features))).max(axis=1)),
            "spread": fit_table(np.abs(rng.standard_normal((100_000, n_features))).max(axis=1)),
        },
    }
