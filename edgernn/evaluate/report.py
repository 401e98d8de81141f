"""Turn detector traces into benchmark results (plain dicts, JSON-ready) and text tables.

NAB: for every profile, (1) ``sweep``: NAB's own way, one likelihood threshold for the whole
corpus chosen by an exhaustive sweep (comparable with NAB's scoreboard); (2) ``per_category``:
the same sweep within each category (an upper bound, for reference only); (3) ``operational``:
the detector's own alerts, one detection per raised alert, at the model's shipped threshold.
A threshold of +inf (the null detector wins) is written as null in JSON.

SKAB: (1) ``calibrated``: per file, a threshold fixed from the likelihoods of the first 400 rows
(SKAB's protocol), alarm on a test row when its likelihood exceeds it; (2) ``operational``: the
detector's own alert state (``alert`` active) on each test row, shipped threshold.
"""

from __future__ import annotations

import math

import numpy as np

from . import nab, skab


# -- NAB ----------------------------------------------------------------------------------------

def _nab_summary(files, scores_by_file, profile) -> dict:
    """Per category and corpus: raw score, windows, tp / fn / fp, normalised score."""
    groups: dict[str, nab.FileScore] = {}
    for f, fs in zip(files, scores_by_file):
        for key in (f.category, "corpus"):
            groups[key] = groups.get(key, nab.FileScore()).add(fs)
    return {k: {"score": g.score, "normalised": nab.normalise(g.score, g.n_windows, profile),
                "windows": g.n_windows, "tp": g.tp, "fn": g.fn, "fp": g.fp, "chance": g.chance}
            for k, g in groups.items()}


def _nab_inputs(files: list, traces: list, prof) -> tuple[list, list]:
    """What NAB's sweep scores, per file: the detector's onset output (NAB charges every detected
    row outside a window, so the output that is high where the surprise rises, not for as long as a
    deviation lasts) and the file's row weights under profile ``prof``."""
    return [t.onset for t in traces], [nab.row_weights(len(f.ts), f.windows, prof, f.probation) for f in files]


def nab_results(files: list, traces: list, profiles=None, max_candidates: int | None = None) -> dict:
    """files: nab.NabFile list; traces: run.Trace list aligned with them."""
    profiles = profiles or list(nab.PROFILES)
    out = {"profiles": {}, "per_file": []}
    per_file = {f.name: {"file": f.name, "category": f.category, "rows": len(f.ts),
                         "windows": len(f.windows), "probation": f.probation} for f in files}
    categories = sorted({f.category for f in files})
    for pname in profiles:
        prof = nab.PROFILES[pname]
        lik, weights = _nab_inputs(files, traces, prof)
        sw = nab.sweep(lik, weights, prof, max_candidates=max_candidates)
        swept = [nab.score_detections(v >= sw.best_threshold, rw, prof) for v, rw in zip(lik, weights)]
        oper = [nab.score_detections(t.raised, rw, prof) for t, rw in zip(traces, weights)]
        per_cat = {}
        for cat in categories:
            idx = [i for i, f in enumerate(files) if f.category == cat]
            s = nab.sweep([lik[i] for i in idx], [weights[i] for i in idx], prof, max_candidates=max_candidates)
            n_win = sum(weights[i].n_windows for i in idx)
            per_cat[cat] = {"threshold": s.best_threshold, "score": s.best_score,
                            "normalised": nab.normalise(s.best_score, n_win, prof)}
        out["profiles"][pname] = {
            "sweep": {"threshold": sw.best_threshold, "summary": _nab_summary(files, swept, prof)},
            "per_category_threshold": per_cat,
            "operational": {"threshold": traces[0].threshold if traces else None,
                            "summary": _nab_summary(files, oper, prof)},
        }
        for f, a, b in zip(files, swept, oper):
            per_file[f.name][pname] = {
                "sweep": {"score": a.score, "tp": a.tp, "fn": a.fn, "fp": a.fp,
                          "first_detection": a.first_detection, "chance": a.chance},
                "operational": {"score": b.score, "tp": b.tp, "fn": b.fn, "fp": b.fp,
                                "first_detection": b.first_detection, "chance": b.chance},
            }
    out["per_file"] = list(per_file.values())
    return out


def nab_table(results: dict, profile: str = "standard", published: dict | None = None) -> str:
    p = results["profiles"][profile]
    sw, op, pc = p["sweep"]["summary"], p["operational"]["summary"], p["per_category_threshold"]
    rows = []
    for cat in sorted(k for k in sw if k != "corpus") + ["corpus"]:
        rows.append([
            cat, sw[cat]["windows"], _num(sw[cat]["normalised"]),
            f"{sw[cat]['tp']}/{sw[cat]['fn']}/{sw[cat]['fp']}", _chance(sw[cat]),
            _num(pc[cat]["normalised"]) if cat in pc else "",
            _num(op[cat]["normalised"]), f"{op[cat]['tp']}/{op[cat]['fn']}/{op[cat]['fp']}",
            _chance(op[cat]), _num((published or {}).get(cat)),
        ])
    head = ["category", "windows", "NAB (sweep)", "tp/fn/fp", "chance tp~", "cat. sweep*", "operational",
            "tp/fn/fp", "chance tp~", "HTM published"]
    thr = f"profile {profile}: corpus threshold {_thr(p['sweep']['threshold'])}; operational threshold " \
          f"{_thr(p['operational']['threshold'])} (one detection per raised alert)"
    return (thr + "\n" + table(head, rows) + "\n* threshold swept within the category: an upper bound, not NAB's protocol"
            "\n~ windows the false positives alone would be expected to hit, placed at random at each file's rate"
            "\n  outside its windows: a tp near it is no better than chance")


def _chance(summary: dict) -> str:
    """A summary's windows expected hit by chance ('-' where there is no window)."""
    return _num(summary["chance"]) if summary["windows"] else "-"


# -- SKAB ---------------------------------------------------------------------------------------

RULES = (("max", 1.0), ("max", 1.5), ("q99", 1.0), ("q99", 1.5), ("q95", 2.0))


def skab_results(files: list, likelihoods: list, alerts: list, rule: str = "max", factor: float = 1.0,
                 train_rows: int = skab.TRAIN_ROWS) -> dict:
    """files: skab.SkabFile; likelihoods[j]: float[n] per row; alerts[j]: bool[n] detector alert state."""
    def evaluate(rule_, factor_):
        total, per = skab.Counts(), []
        for f, lik in zip(files, likelihoods):
            try:
                thr = skab.threshold_from_train(lik[:train_rows], rule_, factor_)
            except ValueError as exc:
                raise ValueError(f"{f.name}: {exc}") from None
            pred = np.nan_to_num(lik[train_rows:], nan=0.0) > thr
            c = skab.confusion(f.anomaly[train_rows:], pred)
            total = total + c
            per.append({"file": f.name, "threshold": thr, **skab.metrics(c)})
        return skab.metrics(total), per

    main, per_file = evaluate(rule, factor)
    oper = skab.Counts()
    for f, al, pf in zip(files, alerts, per_file):
        c = skab.confusion(f.anomaly[train_rows:], al[train_rows:])
        oper = oper + c
        pf["operational"] = skab.metrics(c)
    variants = {f"{r} x{k:g}": evaluate(r, k)[0] for r, k in RULES}
    return {"rule": rule, "factor": factor, "train_rows": train_rows,
            "calibrated": main, "operational": skab.metrics(oper), "rules": variants, "per_file": per_file}


SKAB_PUBLISHED = [("Conv-AE", 0.78, 13.55, 28.02), ("MSET", 0.78, 39.73, 14.13),
                  ("T²+Q (PCA)", 0.76, 26.62, 24.92), ("LSTM-AE", 0.74, 29.96, 25.92),
                  ("Vanilla LSTM", 0.54, 12.54, 59.53)]


def skab_table(results: dict, name: str = "edgernn") -> str:
    rows = [[f"{name} (calibrated: {results['rule']} x{results['factor']:g})",
             _num(results["calibrated"]["f1"], 2), _num(results["calibrated"]["far"], 2),
             _num(results["calibrated"]["mar"], 2)],
            [f"{name} (operational alerts)", _num(results["operational"]["f1"], 2),
             _num(results["operational"]["far"], 2), _num(results["operational"]["mar"], 2)]]
    for k, m in results["rules"].items():
        rows.append([f"  threshold rule {k}", _num(m["f1"], 2), _num(m["far"], 2), _num(m["mar"], 2)])
    for n, f1, far, mar in SKAB_PUBLISHED:
        rows.append([f"published: {n}", f"{f1:.2f}", f"{far:.2f}", f"{mar:.2f}"])
    return table(["detector", "F1", "FAR %", "MAR %"], rows)


# -- margins over the baseline ------------------------------------------------------------------
# Every figure of the GRU is shown beside the same figure of the persistence baseline (last value,
# running variance: backends/persistence.py) from the same run: margin = GRU - baseline, and
# "GRU ahead" says whether the margin points the metric's good way (the GRU must win everywhere).

def margin_rows(metrics: list[tuple[str, float, float, str]]) -> list[dict]:
    """``[(metric, gru, baseline, "higher" | "lower" is better), ...]`` -> JSON-ready rows."""
    rows = []
    for name, g, b, better in metrics:
        ok = g is not None and b is not None and not (isinstance(g, float) and math.isnan(g)) \
            and not (isinstance(b, float) and math.isnan(b))
        m = g - b if ok else None
        ahead = None if m is None else (m > 0 if better == "higher" else m < 0) if m != 0 else False
        rows.append({"metric": name, "gru": g, "baseline": b, "margin": m, "better": better, "gru_ahead": ahead})
    return rows


def margin_table(rows: list[dict], backend: str, baseline: str, digits: int = 1) -> str:
    body = [[r["metric"], _num(r["gru"], digits), _num(r["baseline"], digits),
             "-" if r["margin"] is None else f"{r['margin']:+.{digits}f}",
             {True: "yes", False: "NO", None: "-"}[r["gru_ahead"]]] for r in rows]
    lost = sum(r["gru_ahead"] is False for r in rows)
    note = f"margin = {backend} - {baseline} (same run, same settings); {lost} of {len(rows)} figure(s) where " \
           f"the {backend} model does not beat the {baseline} baseline"
    return table(["metric", backend, baseline, "margin", f"{backend} ahead"], body) + "\n" + note


def nab_margins(gru: dict, base: dict, profile: str = "standard") -> list[dict]:
    g, b = gru["profiles"][profile], base["profiles"][profile]
    out = []
    for look in ("sweep", "operational"):
        gs, bs = g[look]["summary"], b[look]["summary"]
        for cat in sorted(k for k in gs if k != "corpus") + ["corpus"]:
            out.append((f"{profile} {look}: {cat}", gs[cat]["normalised"], bs[cat]["normalised"], "higher"))
    return margin_rows(out)


def nab_bootstrap(files: list, traces: list, base_traces: list, profile: str = "standard",
                  resamples: int = 1000, seed: int = 0) -> dict | None:
    """The corpus-sweep margin's spread over which files the corpus holds (``nab.bootstrap_margin``:
    files resampled within their category, both detectors on the same resample)."""
    prof = nab.PROFILES[profile]
    lik, weights = _nab_inputs(files, traces, prof)
    base_lik = _nab_inputs([], base_traces, prof)[0]  # the same files: only the baseline's output
    return nab.bootstrap_margin(lik, base_lik, weights, [f.category for f in files], prof, resamples, seed)


def bootstrap_line(b: dict | None, backend: str, baseline: str, profile: str) -> str:
    if b is None:
        return f"{profile} sweep: no resample with a window, no interval"
    return (f"{profile} sweep, corpus margin {backend} - {baseline} over {b['resamples']} resamples of the files "
            f"(within categories): mean {b['mean']:+.1f}, 90 % interval [{b['low']:+.1f}, {b['high']:+.1f}]; "
            f"{backend} ahead in {100 * b['ahead']:.0f} %")


def skab_margins(gru: dict, base: dict) -> list[dict]:
    out = []
    for look in ("calibrated", "operational"):
        for key, better in (("f1", "higher"), ("far", "lower"), ("mar", "lower")):
            out.append((f"{look} {key.upper()}" + (" %" if key != "f1" else ""), gru[look][key], base[look][key], better))
    return margin_rows(out)


def events_margins(gru: dict, base: dict) -> list[dict]:
    keys = (("precision", "higher"), ("recall", "higher"), ("f1", "higher"), ("false_alerts", "lower"),
            ("delay_mean_s", "lower"))
    return margin_rows([(k, gru[k], base[k], better) for k, better in keys])


# -- tables -------------------------------------------------------------------------------------

def _thr(t) -> str:
    """A likelihood threshold with every digit that matters; +inf means 'never fire'."""
    if t is None or t == float("inf"):
        return "never (inf)"
    return f"{t:.16g} (p = 1 - L = {1.0 - t:.3g})"


def _num(v, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}"


def table(head: list[str], rows: list[list]) -> str:
    """Plain text table, columns left-aligned (first) / right-aligned (others)."""
    cells = [[str(c) for c in head]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]

    def line(r):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])
