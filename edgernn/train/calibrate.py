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
from ..drive import Feed, drive
from .data import Series


def run_series(bundle, series: list[Series], threshold: float | None = None, chunk: int = 64,
               settings: DetectorSettings | None = None, tables: dict | None = None, backend=None):
    """Run every series as its own stream, from its first reading (warm-up on the training part).

    ``settings`` (default: the detector's defaults), ``tables`` (default: the bundle's) and
    ``backend`` (default: numpy) make the detector; ``threshold`` overrides the settings' one.
    Returns (looks over the validation parts, looks over all scored readings (name ->
    float64[n] each), alerts raised, readings scored).
    """
    s = replace(settings or DetectorSettings(), max_streams=max(len(series), 1))
    if threshold is not None:
        s = replace(s, threshold=threshold)
    det = Detector(bundle, backend, settings=s, tables=tables)
    det.record_looks = True
    feed = Feed.from_recordings([(x.name, np.arange(len(x.raw), dtype=np.float64), x.raw) for x in series], chunk)
    out = drive(det, feed, progress=False)
    val = np.zeros(len(feed), bool)  # [N] feed rows in a series' held-out part
    for x, rows in zip(series, feed.rows_of):
        val[rows[x.split:]] = True
    names = (*scoring.LOOKS, "log10p")
    raised = sum(1 for e in out.events if e.kind == "raised")
    scored = int(np.isfinite(out.score).sum())
    return ({k: out.looks[k][val] for k in names}, {k: out.looks[k] for k in names}, raised, scored)


def fit_tables(looks: dict, looks_all: dict | None = None) -> dict:
    """The looks' tail tables: the GRU looks (instant, smoothed) from ``looks`` (held-out
    readings), the model-free ones (level, spread) from ``looks_all`` (every scored reading;
    default: ``looks``). NaN values (readings not scored) are ignored."""
    looks_all = looks if looks_all is None else looks_all
    return {name: scoring.fit_table((looks if name in ("instant", "smoothed") else looks_all)[name])
            for name in scoring.TABLE_LOOKS}


def fit_tables_on(bundle, series: list[Series], passes: int = 2, settings: DetectorSettings | None = None,
                  tables: dict | None = None, backend=None) -> dict:
    """Tables fitted on every scored reading of ``series`` (their ``split`` marks the held-out
    part of each, as in ``calibrate``), pooled over the series, in memory (no bundle written).

    Pass 1 runs with ``tables`` (default: the bundle's); each further pass reruns from the first
    reading with the tables the previous pass fitted (a stream does not learn from readings the
    tables call anomalous, so the tables shape the statistics they are fitted on)."""
    if passes < 1:
        raise ValueError("passes must be >= 1")
    for _ in range(passes):
        looks, looks_all, _, _ = run_series(bundle, series, settings=settings, tables=tables, backend=backend)
        tables = fit_tables(looks, looks_all)
    return tables


def calibrate(bundle_dir, series: list[Series], target_rate: float = 1e-4, margin: float = 0.5, log=print) -> dict:
    """Fit tables and threshold in place (manifest.yaml of ``bundle_dir``); returns a summary."""
    # The tables decide which readings count as anomalous, and a stream does not learn from those:
    # fit, rerun with the fitted tables, fit again (a second pass settles it).
    manifest = dict(load_bundle(bundle_dir).manifest)
    cal = dict(manifest["calibration"])
    for _ in range(2):
        looks, looks_all, _, _ = run_series(load_bundle(bundle_dir), series)
        cal["tables"] = fit_tables(looks, looks_all)
        manifest["calibration"] = cal
        write_manifest(bundle_dir, manifest)
    bundle = load_bundle(bundle_dir)

    # Largest tail probability (most sensitive threshold) whose alert rate on the held-out normal
    # data stays within margin * target; bisection on log10 p between 1e-14 and the target.
    budget = margin * target_rate
    lo, hi = -14.0, math.log10(target_rate)  # lo always satisfies (or is the floor), hi may not
    rate_at = {}
    for _ in range(9):
        mid = 0.5 * (lo + hi)
        _, _, raised, scored = run_series(bundle, series, scoring.threshold_for_rate(10**mid))
        rate_at[mid] = raised / max(scored, 1)
        if rate_at[mid] <= budget:
            lo = mid
        else:
            hi = mid
    _, _, raised, scored = run_series(bundle, series, scoring.threshold_for_rate(10**hi))
    chosen = hi if raised / max(scored, 1) <= budget else lo
    _, _, raised, scored = run_series(bundle, series, scoring.threshold_for_rate(10**chosen))
    cal["threshold"] = scoring.threshold_for_rate(10**chosen)
    cal["target_false_alarm_rate"] = target_rate
    cal["threshold_tail_probability"] = float(10**chosen)
    cal["calibration_readings"] = int(scored)
    cal["calibration_alerts"] = int(raised)
    manifest["calibration"] = cal
    write_manifest(bundle_dir, manifest)
    log(f"calibrated on {scored:,} readings: threshold p = {10**chosen:.2e} "
        f"(likelihood {cal['threshold']:.12f}), {raised} alert(s) = {raised / max(scored, 1) * 1e4:.2f} per 10k "
        f"(target {target_rate * 1e4:.2f} per 10k)")
    return {"threshold": cal["threshold"], "tail_p": 10**chosen, "readings": scored, "alerts": raised}
