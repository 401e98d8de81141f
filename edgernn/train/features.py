"""What each feature of the training data really is, and what the trainer does about it.

A feature column of the training rows is one of:

    constant        one value in every training row
    near-constant   one value in >= 99 % of the rows (rare blips)
    binary          exactly two values
    counter         non-decreasing from row to row, apart from a few resets (drops), with
                    at least a few increases
    quantised       at most 16 distinct values (a level sensor, a mode number), or values on a
                    coarse grid that repeat exactly from one reading to the next in >= 10 % of
                    the steps, in runs of 10 or more (a slow sensor at its resolution: a
                    stuck-sensor statistic that assumes independent repeats would cry wolf)
    continuous      anything else

Handling (the manifest's ``feature_kinds`` records kind and facts; the detector reads it):

* constant / near-constant: the normalising std is not the (near) zero spread of the data but
  1 % of the value (1 unit when the value is 0), so a change of 1 % reads as one standard
  deviation: residuals stay finite and "any change from a constant is a finding" is calibrated
  like the other statistics. The stuck statistic has no meaning on them (they always repeat), nor
  have the level and spread looks' per-stream statistics (zero variance: a change reads as
  extreme long after it ended); a change is scored by the residual (instant, peak) looks and the
  training reference.
* binary / quantised: normalised like the rest; repeats are normal for them, so the stuck
  statistic should not be used on them either. A binary feature is also out of the level and
  spread looks (a young stream's statistics of a two-valued level read as extreme; measured on
  benchmarks/train_multivariate.py's synthetic set: every level / spread false positive at
  surprise >= 8 outside the faults came from a binary feature).
* counter: left out of the model by default (its raw value grows out of any training range,
  so every later reading would look anomalous); ``--counters model`` keeps it, and the range
  warnings of the trainer then point out how far it has left its training range.
"""

from __future__ import annotations

import numpy as np

from ..bundle import FEATURE_KINDS as KINDS  # noqa: F401  (the manifest's vocabulary)
from ..bundle import STUCK_KINDS  # noqa: F401 - kinds where repeats are news, declared with the kinds
NEAR_CONSTANT_SHARE = 0.99  # share of rows holding the one most common value
QUANTISED_MAX_DISTINCT = 16
QUANTISED_REPEAT_SHARE = 0.1  # share of steps that repeat the previous value exactly ...
QUANTISED_REPEAT_RUN = 10  # ... with runs of equal readings this long in normal data
COUNTER_MAX_DROPS = 0.01  # resets allowed, as a share of the steps
COUNTER_MIN_RISES = 0.05  # share of steps that must rise (a counter counts something)


def _step(values: np.ndarray) -> float:
    """Smallest gap between distinct values (float64[k] sorted unique, k >= 2)."""
    return float(np.diff(values).min())


def _repeats(x: np.ndarray) -> dict:
    """x float64[T]: share of steps that repeat the previous value exactly, and the longest run of
    equal consecutive readings (what a stuck-sensor statistic must not call stuck)."""
    same = np.diff(x) == 0  # [T-1]
    edges = np.flatnonzero(np.diff(np.r_[0, same.astype(np.int8), 0]))  # run starts and ends
    longest = int((edges[1::2] - edges[::2]).max()) + 1 if edges.size else 1
    return {"repeat_share": round(float(same.mean()), 4) if same.size else 0.0, "longest_repeat_run": longest}


def _is_counter(x: np.ndarray) -> bool:
    """x float64[T]: mostly non-decreasing (a few resets), with enough rises."""
    d = np.diff(x)
    if d.size < 10:
        return False
    return (d < 0).mean() <= COUNTER_MAX_DROPS and (d > 0).mean() >= COUNTER_MIN_RISES


def classify(x: np.ndarray) -> dict:
    """One feature's training values float64[T] -> {"kind", "distinct", "step"?, "value"?, "share"?}."""
    values, counts = np.unique(x, return_counts=True)
    top = int(counts.argmax())
    share = float(counts[top] / x.size)
    facts: dict = {"distinct": int(values.size)}
    if values.size == 1:
        return {"kind": "constant", **facts, "value": float(values[0])}
    facts["step"] = _step(values)
    facts.update(_repeats(x))
    if share >= NEAR_CONSTANT_SHARE:
        return {"kind": "near-constant", **facts, "value": float(values[top]), "share": round(share, 5)}
    if values.size == 2:
        return {"kind": "binary", **facts, "values": [float(v) for v in values]}
    if _is_counter(x):
        return {"kind": "counter", **facts, "resets": int((np.diff(x) < 0).sum())}
    if values.size <= QUANTISED_MAX_DISTINCT or (facts["repeat_share"] >= QUANTISED_REPEAT_SHARE
                                                 and facts["longest_repeat_run"] >= QUANTISED_REPEAT_RUN):
        return {"kind": "quantised", **facts}
    return {"kind": "continuous", **facts}


def feature_kinds(names, parts: list[np.ndarray], per_series: bool = False) -> dict[str, dict]:
    """Feature name -> classify() facts, over the training rows of every series (float64[T_i, F] each).

    Counters are judged series by series (a new file starts a new count), the rest on all rows.
    ``per_series`` (a stream-normalised model: it meets each sensor on its own): the kind is the
    one most series have (``series_kinds`` counts them; ties go to the pooled kind). The pooled
    rows of a broad corpus are no stream's data: 50 quantised series among 270 make the pooled
    rows "quantised" and would switch the stuck look off for every stream, while the look
    already judges a run by the stream's own repeat history (docs/QUALITY.md, issue 11 duty)."""
    rows = np.concatenate(parts)  # [sum T_i, F]
    out = {}
    for i, name in enumerate(names):
        facts = classify(rows[:, i])
        if facts["kind"] in ("quantised", "continuous") and all(_is_counter(p[:, i]) for p in parts if len(p) > 10):
            facts = {**facts, "kind": "counter", "resets": int(sum((np.diff(p[:, i]) < 0).sum() for p in parts))}
        if per_series and len(parts) > 1 and facts["kind"] != "counter":
            facts = {**facts, **_majority_kind([classify(p[:, i])["kind"] for p in parts if len(p) > 1], facts["kind"])}
        out[name] = facts
    return out


def _majority_kind(kinds: list[str], pooled: str) -> dict:
    """{"kind": the most common of the series' kinds (pooled on a tie), "series_kinds": {kind: count}}."""
    counts = {k: kinds.count(k) for k in sorted(set(kinds))}
    top = max(counts.values(), default=0)
    best = pooled if counts.get(pooled, 0) == top else max(counts, key=lambda k: (counts[k], k == pooled))
    return {"kind": best, "series_kinds": counts}


def sane_std(std: np.ndarray, mean: np.ndarray, kinds: dict[str, dict], names) -> np.ndarray:
    """float64[F] std with (near-)constant features given 1 % of their value (1 unit at 0)."""
    out = np.array(std, dtype=np.float64)
    for i, name in enumerate(names):
        if kinds[name]["kind"] in ("constant", "near-constant"):
            out[i] = max(out[i], 0.01 * abs(float(mean[i])) or 1.0)
    return np.maximum(out, 1e-6)


HANDLING = {
    "constant": "std set to 1 % of the value (1 unit at 0): any change is a finding; no stuck look, no level / spread "
                "look (their per-stream statistics of a constant are degenerate; the detector reads feature_kinds)",
    "near-constant": "std at least 1 % of the usual value (1 unit at 0); no stuck look, no level / spread look",
    "binary": "repeats are normal for it: no stuck look; no level / spread look (a two-valued level and spread "
              "read as extreme in a young stream; the detector reads feature_kinds)",
    "quantised": "repeats are normal for it: no stuck look (the detector reads feature_kinds)",
    "counter": "raw value modelled (--counters model); it leaves its training range as it grows",
    "continuous": "every look",
}


def describe(name: str, facts: dict) -> str:
    """One human line: `name  kind (facts): handling`."""
    bits = [f"{facts['distinct']:,} distinct"]
    if "value" in facts:
        bits.append(f"value {facts['value']:g}")
    if "share" in facts:
        bits.append(f"{facts['share']:.2%} of rows")
    if "step" in facts and facts["kind"] in ("quantised", "counter", "binary"):
        bits.append(f"step {facts['step']:g}")
    if "resets" in facts:
        bits.append(f"{facts['resets']} reset(s)")
    if facts.get("repeat_share", 0) >= 0.01:
        bits.append(f"repeats {facts['repeat_share']:.0%} of steps, longest run {facts['longest_repeat_run']:,}")
    if "series_kinds" in facts:  # a stream-normalised model: the kind most series have
        bits.append("series: " + ", ".join(f"{n} {k}" for k, n in facts["series_kinds"].items()))
    return f"{name}: {facts['kind']} ({', '.join(bits)}) - {HANDLING[facts['kind']]}"
