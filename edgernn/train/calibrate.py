"""Calibrate a bundle on normal data: fit the tail tables of the looks, then choose the alert
threshold for a target false-alarm rate by running the real Detector (alert machine, hysteresis,
normaliser adaptation and all) over every series from its first reading.

The looks that depend on the GRU (instant, smoothed) are fitted on the held-out validation part
only; the model-free looks (level, spread) on every scored reading, because their per-stream
statistics are young (and their tails heavier) soon after warm-up. The false-alarm rate is counted
over every scored reading for the same reason."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .. import scoring
from ..bundle import load_bundle, write_manifest
from ..detector import Detector, DetectorSettings
from ..settings import resolve
from ..drive import Feed, drive
from .data import Series


def run_series(bundle, series: list[Series], threshold: float | None = None, chunk: int = 64,
               settings: DetectorSettings | None = None, tables: dict | None = None, backend=None):
    """Run every series as its own stream, from its first reading (warm-up on the training part).

    ``settings`` (default: the bundle's own, its detector_defaults over the schema's), ``tables`` (default: the bundle's) and
    ``backend`` (default: numpy) make the detector; ``threshold`` overrides the settings' one.
    Returns (looks over the validation parts, looks over all scored readings (name ->
    float64[n] each), alerts raised, readings scored).
    """
    s = replace(settings or resolve(bundle), max_streams=max(len(series), 1))  # the bundle's own by default
    if threshold is not None:
        s = replace(s, threshold=threshold)
    det = Detector(bundle, backend, settings=s, tables=tables)
    det.record_looks = True
    feed = Feed.from_recordings([(x.name, np.arange(len(x.raw), dtype=np.float64), x.raw) for x in series], chunk)
    out = drive(det, feed, progress=False)
    val = np.zeros(len(feed), bool)  # [N] feed rows in a series' held-out part
    for x, rows in zip(series, feed.rows_of):
        val[rows[x.split:]] = True
    names = (*scoring.LOOKS, *((scoring.PEAK,) if scoring.PEAK in out.looks else ()),
             *((scoring.REFERENCE,) if det.tref_stat else ()), *((scoring.RELATION,) if det.rel_stat else ()),
             "log10p")  # reference: the training reference's statistic
    raised = sum(1 for e in out.events if e.kind == "raised")
    scored = int(np.isfinite(out.score).sum())
    return ({k: out.looks[k][val] for k in names}, {k: out.looks[k] for k in names}, raised, scored)


def fit_tables(looks: dict, looks_all: dict | None = None, optional: tuple = ()) -> dict:
    """The looks' tail tables: the GRU looks (instant, smoothed, and of ``optional`` the peak and
    training reference ones the looks hold: a multivariate model, with fixed normalisation for the
    reference) from ``looks`` (held-out readings: the training reference is fitted where the model's
    mean / std were not), the model-free ones (level, spread) from ``looks_all`` (every scored
    reading; default: ``looks``). NaN values (readings not scored) are ignored."""
    looks_all = looks if looks_all is None else looks_all
    names = (*scoring.TABLE_LOOKS, *(n for n in scoring.OPTIONAL_TABLES if n in optional and n in looks))
    held = ("instant", "smoothed", *scoring.OPTIONAL_TABLES)
    return {name: scoring.fit_table((looks if name in held else looks_all)[name]) for name in names}


def fit_tables_on(bundle, series: list[Series], passes: int = 2, settings: DetectorSettings | None = None,
                  tables: dict | None = None, backend=None) -> dict:
    """Tables fitted on every scored reading of ``series`` (their ``split`` marks the held-out
    part of each, as in ``calibrate``), pooled over the series, in memory (no bundle written).

    Pass 1 runs with ``tables`` (default: the bundle's); each further pass reruns from the first
    reading with the tables the previous pass fitted (a stream does not learn from readings the
    tables call anomalous, so the tables shape the statistics they are fitted on). The peak look's
    and training reference tables only where the bundle's calibration has them (the looks are on)."""
    if passes < 1:
        raise ValueError("passes must be >= 1")
    optional = tuple(n for n in scoring.OPTIONAL_TABLES if n in bundle.calibration.tables)
    for _ in range(passes):
        looks, looks_all, _, _ = run_series(bundle, series, settings=settings, tables=tables, backend=backend)
        tables = fit_tables(looks, looks_all, optional)
    return tables


def reference_gate(bundle, series: list[Series], window: int) -> list[float]:
    """Per feature, the farthest (in the model's sd) the mean of any ``window`` consecutive
    readings of ``series`` sat from the model's mean (float per feature; 0 where no series is that
    long or a window holds a NaN). ``series`` is the normal data calibrate is given, whole: the
    training and the held-out part of each (or new data, with `edgernn train --recalibrate`). A
    stream's warm-up mean within the gate is at an operating point that data showed, and the
    training reference then measures that feature from training alone (kernel._train_ref).
    Measured (docs/QUALITY.md, "Combining many features", 2026-12-06): the warm-up mean everywhere
    cost the synthetic telemetry's unseen files 0.05 of best F1."""
    m, s = bundle.norm_mean, bundle.norm_std  # [F]
    if window < 1:
        return [0.0] * len(m)
    gate = np.zeros(len(m))  # [F]
    for x in series:
        if len(x.raw) < window:
            continue
        bad = ~np.isfinite(x.raw)  # [T, F]
        zero = np.zeros((1, x.raw.shape[1]))
        c = np.cumsum(np.vstack([zero, np.where(bad, 0.0, x.raw)]), axis=0)  # [T + 1, F]
        nb = np.cumsum(np.vstack([zero, bad]), axis=0)  # [T + 1, F] NaNs so far
        dev = np.abs((c[window:] - c[:-window]) / window - m) / s  # [T - window + 1, F] window means' z
        dev[(nb[window:] - nb[:-window]) > 0] = 0.0  # a window holding a NaN adds nothing
        gate = np.maximum(gate, dev.max(axis=0))
    return [float(g) for g in gate]


S_CAP = 1e5  # the most surprising threshold tried (-log10 p); beyond it only "impossible" readings alert


def likelihood_at(surprise: float) -> float:
    """The likelihood threshold of a surprise (-log10 p, any size: no underflow at s > 308)."""
    return float(scoring.likelihood_from_log10p(np.array([-float(surprise)]))[0])


def one_in(surprise: float) -> str:
    """A tail probability for people: "1 in 12,500" or "1 in 10^41.3"."""
    return f"1 in {10**surprise:,.0f}" if surprise < 7 else f"1 in 10^{surprise:.1f}"


def threshold_text(cal: dict) -> str:
    """A manifest's alert threshold for people: surprise and "1 in N" (never a rounded likelihood).
    Bundles calibrated before surprise thresholds: from the likelihood's tail probability."""
    s = cal.get("threshold_surprise")
    if s is None:
        p = 1.0 - float(cal["threshold"])
        s = -math.log10(p) if p > 0 else math.inf
    return f"threshold surprise {s:.2f} ({one_in(s)})"


def held_out_alerts(bundle, series: list[Series], surprise: float, learn: float | None = None) -> tuple[int, int]:
    """(alerts raised, readings scored) on the held-out part of every series at a threshold, the
    streams learning below the clear level of ``learn`` (default: of the threshold itself).

    Each held-out part runs as a new stream from a cold start, as a daemon or `edgernn replay`
    meets a stream: a young stream's statistics give more false alerts than a mature one's, and
    the promise must hold for both. Its warm-up takes the (training) readings just before the
    held-out part, so scoring starts where the held-out part does."""
    w = bundle.calibration.warmup
    parts = [replace(s, name=s.name + ":calibration", raw=s.raw[max(s.split - w, 0) :], split=0, ts=None)
             for s in series]
    settings = replace(resolve(bundle), learn_surprise=float(surprise if learn is None else learn))
    _, _, raised, scored = run_series(bundle, parts, likelihood_at(surprise), settings=settings)
    return raised, scored


def search_threshold(rate_at, target_rate: float, budget: float, tol: float = 0.01, cap: float = S_CAP) -> float:
    """The least surprise s >= -log10(target) whose rate_at(s) <= budget. When even ``cap`` is over
    budget (the achievable floor: alerts no allowed threshold removes), the least s reaching that floor.

    Expands by x4 from -log10(target), then bisects on log s to a relative ``tol`` (rate_at falls
    as s grows)."""
    s0 = s_ok = -math.log10(target_rate)
    if rate_at(s_ok) <= budget:
        return s_ok
    s_bad = s_ok
    while True:
        s_ok = min(s_bad * 4.0, cap)
        if rate_at(s_ok) <= budget:
            break
        if s_ok >= cap:
            budget, s_bad = rate_at(cap), s0  # the floor: where does it start?
            break
        s_bad = s_ok
    while s_ok > s_bad * (1.0 + tol):
        mid = math.sqrt(s_bad * s_ok)
        if rate_at(mid) <= budget:
            s_ok = mid
        else:
            s_bad = mid
    return s_ok


def extrapolate(rate_at, s_top: float, budget: float) -> float | None:
    """Where the alert rate would reach ``budget`` if it kept falling log-linearly in surprise as it
    does just below ``s_top`` (the least surprise with no alert): for a held-out part too short to
    show the budget, where "no alert" is reached too early. None when no fall is measurable.

    The two highest surprises below s_top (of s_top / 1.15, / 1.3, / 1.6, / 2) with alerts give
    the slope k (decades of rate per unit of surprise)."""
    pts = [(s, rate_at(s)) for s in (s_top / 2.0, s_top / 1.6, s_top / 1.3, s_top / 1.15)]
    pts = [(s, r) for s, r in pts if r > 0]
    if len(pts) < 2 or pts[-2][1] <= pts[-1][1]:
        return None
    (s1, r1), (s2, r2) = pts[-2], pts[-1]
    k = (math.log10(r1) - math.log10(r2)) / (s2 - s1)
    return s2 + (math.log10(r2) - math.log10(budget)) / k


def _choose(bundle, series: list[Series], target_rate: float, margin: float, max_surprise: float,
            learn: float | None) -> tuple[float, int, int, bool]:
    """The least surprise whose held-out alert rate stays within ``margin * target_rate`` (streams
    learning at ``learn``, default: at the surprise tried); (surprise, raised, scored, extrapolated)."""
    tried: dict[float, tuple[int, int]] = {}

    def rate_at(s: float) -> float:
        if s not in tried:
            tried[s] = held_out_alerts(bundle, series, s, learn)
        raised, scored = tried[s]
        return raised / max(scored, 1)

    s = search_threshold(rate_at, target_rate, margin * target_rate, cap=max_surprise)
    raised, scored = tried[s] if s in tried else held_out_alerts(bundle, series, s, learn)
    extrapolated = False
    if raised == 0 and scored * margin * target_rate < 1:  # too short to show the budget: extrapolate
        s_ext = extrapolate(rate_at, s, margin * target_rate)
        if s_ext is not None and s_ext > s:
            s, extrapolated = min(s_ext, max_surprise), True
            raised, scored = held_out_alerts(bundle, series, s, learn)
    return s, raised, scored, extrapolated


def calibrate(bundle_dir, series: list[Series], target_rate: float = 1e-4, margin: float = 0.5, log=print,
              max_surprise: float = S_CAP, learn_rate: float | None = None) -> dict:
    """Fit tables and threshold in place (manifest.yaml of ``bundle_dir``); returns a summary.

    The threshold is the least surprise whose alert rate on the held-out part (never trained on,
    run as new streams) stays within ``margin * target_rate``; when even S_CAP does not, the summary says
    the target is not met (``met``: False) and gives the rate achieved. What the streams learn from
    is fixed first, at the surprise chosen so for ``learn_rate`` (default: ``target_rate``; stored as
    ``learn_surprise``), and the alert threshold is then chosen with the streams learning there."""
    # The tables decide which readings count as anomalous, and a stream does not learn from those:
    # fit, rerun with the fitted tables, fit again (a second pass settles it).
    first = load_bundle(bundle_dir)
    manifest = dict(first.manifest)
    cal = dict(manifest["calibration"])
    cal.pop("threshold_extrapolated", None)
    if first.n_features > 1 and first.norm_mode != "stream":  # the training reference's warm-up gate
        cal["reference_gate"] = reference_gate(first, series, int(cal["warmup"]))
        manifest["calibration"] = cal
        write_manifest(bundle_dir, manifest)  # before the tables: the reference's statistic depends on it
    # A multivariate model gets the peak look's table, and with fixed normalisation the training
    # reference's (pass 1 runs without them, pass 2 with them).
    for _ in range(2):
        looks, looks_all, _, _ = run_series(load_bundle(bundle_dir), series)
        cal["tables"] = fit_tables(looks, looks_all, optional=scoring.OPTIONAL_TABLES)
        manifest["calibration"] = cal
        write_manifest(bundle_dir, manifest)
    bundle = load_bundle(bundle_dir)
    learn_rate = target_rate if learn_rate is None else learn_rate
    s_learn, raised, scored, ext = _choose(bundle, series, learn_rate, margin, max_surprise, None)
    s = s_learn
    if learn_rate != target_rate:
        s, raised, scored, ext = _choose(bundle, series, target_rate, margin, max_surprise, s_learn)
    if ext:
        cal["threshold_extrapolated"] = True
    rate = raised / max(scored, 1)
    met = rate <= target_rate
    cal.update(threshold=likelihood_at(s), threshold_surprise=float(s), target_false_alarm_rate=target_rate,
               learn_surprise=float(s_learn), learn_false_alarm_rate=learn_rate,
               calibration_readings=int(scored), calibration_alerts=int(raised),
               achieved_false_alarm_rate=float(rate), target_met=bool(met),
               calibration_part="the held-out end of each series, each run as a new stream")
    cal.pop("threshold_tail_probability", None)
    # fewer than ~3 / target readings cannot show the target rate: 0 alerts in n readings only says
    # the rate is below 3 / n (95 %, the rule of three)
    note = "" if scored * target_rate >= 3 else (
        f"only {scored:,} held-out readings: they cannot show a rate of {target_rate * 1e4:g} per 10,000 "
        f"({raised} alert(s) there bound the rate below about {(raised + 3) / max(scored, 1) * 1e4:.1f} per "
        f"10,000); give more normal data or a larger --holdout"
        + ("; the threshold was raised to where the rate's fall just below it extrapolates to the target"
           if cal.get("threshold_extrapolated") else ""))
    cal["calibration_note"] = note
    manifest["calibration"] = cal
    write_manifest(bundle_dir, manifest)
    log(f"calibrated on {scored:,} held-out readings: threshold surprise {s:.2f} ({one_in(s)}), {raised} alert(s) "
        f"= {rate * 1e4:.2f} per 10,000 (target {target_rate * 1e4:.2f})" + ("" if met else " - TARGET NOT MET"))
    return {"threshold": cal["threshold"], "surprise": float(s), "readings": scored, "alerts": raised,
            "rate": rate, "met": met, "target": target_rate, "note": note}
