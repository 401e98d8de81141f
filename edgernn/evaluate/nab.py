"""The Numenta Anomaly Benchmark scorer, re-implemented from NAB's code (numenta/NAB, sweeper.py).

Per data file of n rows:

* probation: the first ``P = min(floor(0.15 n), 0.15 * 5000 = 750)`` rows are not scored at all
  (no false positives, no window rows; a detector may learn there).
* windows: one per labelled anomaly, ``int(0.10 n / n_anomalies)`` rows wide, centred on the label
  (``windows_from_labels``); overlapping windows merge; a window starting inside the probation
  period is dropped. NAB ships them as timestamps (labels/combined_windows.json) and a window
  covers the rows with ``t1 <= ts <= t2``.
* the scaled sigmoid ``sigma(x) = 2 / (1 + exp(5 x)) - 1``, and ``-1`` for ``x > 3``.
* a detected row i inside a window [l, r] (width w = r - l + 1) is worth
  ``A_tp * sigma(-(r - i + 1) / w) / sigma(-1)``: exactly A_tp at the left edge, falling to
  ``A_tp * sigma(-1/w) / sigma(-1)`` (close to 0) at the right edge. Only the best, i.e. the
  earliest, detection in a window counts; a window without one costs ``-A_fn``.
* a detected row i outside every window costs ``A_fp * sigma((i - r_prev) / (w_prev - 1))``
  where r_prev, w_prev are the right edge and width of the closest preceding window (a number in
  (-1, 0): cheap right after a window, ~ -A_fp far after it), and ``-A_fp`` when no window
  precedes it. Every such row counts, not only the first of a run.
* profiles (A_tp, A_fp, A_fn): standard (1, 0.11, 1), reward_low_FP_rate (1, 0.22, 1),
  reward_low_FN_rate (1, 0.11, 2).
* normalised score ``100 (S - S_null) / (S_perfect - S_null)`` with the null detector never
  firing (``S_null = -A_fn W``) and the perfect one hitting every window at its left edge
  (``S_perfect = A_tp W``), W the number of scored windows. Sums are over the files scored
  together (a category, or the corpus).
* detection: ``likelihood >= threshold`` per row. NAB picks one threshold per detector and
  profile for the whole corpus, maximising the summed raw score; ``sweep`` does that exhaustively
  over every distinct likelihood value (NAB's optimizer does a local search).

Everything here is arrays in, numbers out: no I/O except ``load_corpus``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .events import chance_catches

PROBATION_FRACTION = 0.15
PROBATION_MAX_ROWS = 750  # NAB: min(floor(0.15 n), 0.15 * 5000)
WINDOW_FRACTION = 0.10


@dataclass(frozen=True)
class Profile:
    name: str
    tp: float  # A_tp
    fp: float  # A_fp (a positive number: the cost of a false positive far from any window)
    fn: float  # A_fn


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", 1.0, 0.11, 1.0),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
}


def scaled_sigmoid(x):
    """NAB's ``scaledSigmoid``: ``2 / (1 + exp(5 x)) - 1``, and exactly -1 for x > 3.

    sigma(-1) = 0.98661 (left window edge), sigma(0) = 0 (right edge), sigma(1) = -0.98661.
    """
    x = np.asarray(x, dtype=np.float64)
    out = 2.0 / (1.0 + np.exp(np.clip(5.0 * x, -700.0, 700.0))) - 1.0
    return np.where(x > 3.0, -1.0, out)


MAX_TP = float(scaled_sigmoid(-1.0))  # 0.9866142981514305


def probation_length(n_rows: int, fraction: float = PROBATION_FRACTION) -> int:
    """Rows at the start of a file that are not scored: min(floor(0.15 n), 750)."""
    return int(min(math.floor(fraction * n_rows), fraction * 5000))


def window_indices(timestamps: np.ndarray, limits) -> list[tuple[int, int]]:
    """Window limits ``[(t1, t2), ...]`` (same units as ``timestamps``, sorted ascending) ->
    inclusive row ranges ``[(first row with ts >= t1, last row with ts <= t2), ...]``.
    Windows that cover no row are dropped."""
    ts = np.asarray(timestamps)
    out = []
    for t1, t2 in limits:
        lo = int(np.searchsorted(ts, t1, side="left"))
        hi = int(np.searchsorted(ts, t2, side="right")) - 1
        if hi >= lo:
            out.append((lo, hi))
    return out


def windows_from_labels(n_rows: int, anomaly_rows, window_fraction: float = WINDOW_FRACTION,
                        probation: int | None = None) -> list[tuple[int, int]]:
    """NAB's labeler: a window of ``int(0.1 n / k)`` rows centred on each of the k labelled rows,
    clipped to the file; a first window starting inside the probation period is dropped and
    overlapping windows are merged."""
    rows = sorted(int(a) for a in anomaly_rows)
    if not rows:
        return []
    length = int(window_fraction * n_rows / len(rows))
    half = length // 2
    wins = [(max(a - half, 0), min(a + half, n_rows - 1)) for a in rows]
    if probation is None:
        probation = probation_length(n_rows)
    if wins and wins[0][0] < probation:
        wins = wins[1:]
    merged: list[tuple[int, int]] = []
    for lo, hi in wins:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


@dataclass(frozen=True)
class RowWeights:
    """What a detection at each row would be worth under one profile.

    window: int[n]    index of the window the row is in, -1 outside every window, -2 probation
    weight: float[n]  NAB's per-row 'sweep score': > 0 in a window, <= 0 outside, 0 in probation
    n_windows: number of windows with at least one scored row (the W of null and perfect)
    """

    window: np.ndarray
    weight: np.ndarray
    n_windows: int


def row_weights(n_rows: int, windows: list[tuple[int, int]], profile: Profile,
                probation: int | None = None) -> RowWeights:
    """Per-row window id and sweep score, exactly as NAB's ``Sweeper.calcSweepScore``."""
    if probation is None:
        probation = probation_length(n_rows)
    idx = np.arange(n_rows)
    window = np.full(n_rows, -1, np.int64)
    weight = np.empty(n_rows, np.float64)
    # outside: cost relative to the closest preceding window (or -A_fp before any window)
    weight[:] = -profile.fp
    prev_right, prev_width = None, None
    bounds = [(lo, hi) for lo, hi in windows] + [(n_rows, n_rows)]
    start = 0
    for k, (lo, hi) in enumerate(bounds):
        gap = slice(start, lo)  # rows between the previous window and this one
        if prev_right is not None and lo > start:
            denom = float(prev_width - 1)
            pos = np.abs(prev_right - idx[gap]) / denom if denom > 0 else np.full(lo - start, np.inf)
            weight[gap] = scaled_sigmoid(pos) * profile.fp
        if k == len(windows):
            break
        width = float(hi - lo + 1)
        inside = idx[lo:hi + 1]
        weight[lo:hi + 1] = scaled_sigmoid(-(hi - inside + 1) / width) * profile.tp / MAX_TP
        window[lo:hi + 1] = k
        prev_right, prev_width, start = hi, width, hi + 1
    scored = idx >= probation
    window[~scored] = -2
    weight[~scored] = 0.0
    n_windows = len(np.unique(window[window >= 0]))
    return RowWeights(window=window, weight=weight, n_windows=n_windows)


@dataclass
class FileScore:
    score: float = 0.0  # raw NAB score S
    tp: int = 0  # windows detected
    fn: int = 0  # windows missed
    fp: int = 0  # detected rows outside every window (after probation)
    n_windows: int = 0
    first_detection: list = field(default_factory=list)  # per window: first detected row or -1
    chance: float = 0.0  # windows the file's own false-positive rate would hit by chance alone

    def add(self, other: "FileScore") -> "FileScore":
        return FileScore(self.score + other.score, self.tp + other.tp, self.fn + other.fn,
                         self.fp + other.fp, self.n_windows + other.n_windows, chance=self.chance + other.chance)


def score_detections(detected: np.ndarray, rw: RowWeights, profile: Profile) -> FileScore:
    """Raw NAB score of binary detections (bool[n]) on one file, and the windows its false
    positives alone would hit by chance (``chance``: events.chance_catches at the file's rate of
    detections per scored row outside every window, over each window's scored rows)."""
    detected = np.asarray(detected, dtype=bool)
    out = FileScore(n_windows=rw.n_windows)
    outside = detected & (rw.window == -1)
    out.fp = int(outside.sum())
    out.score = float(rw.weight[outside].sum())
    ids, widths = np.unique(rw.window[rw.window >= 0], return_counts=True)
    out.chance = chance_catches(out.fp / max(int((rw.window == -1).sum()), 1), widths)
    for k in ids:
        hits = np.flatnonzero(detected & (rw.window == k))
        if hits.size:
            out.tp += 1
            out.score += float(rw.weight[hits[0]])  # earliest = best (weights decrease in a window)
            out.first_detection.append(int(hits[0]))
        else:
            out.fn += 1
            out.score -= profile.fn
            out.first_detection.append(-1)
    return out


def null_score(n_windows: int, profile: Profile) -> float:
    return -profile.fn * n_windows


def perfect_score(n_windows: int, profile: Profile) -> float:
    return profile.tp * n_windows


def normalise(score: float, n_windows: int, profile: Profile) -> float | None:
    """100 (S - S_null) / (S_perfect - S_null); None when there is no window to normalise by."""
    lo, hi = null_score(n_windows, profile), perfect_score(n_windows, profile)
    if hi == lo:
        return None
    return 100.0 * (score - lo) / (hi - lo)


@dataclass(frozen=True)
class Sweep:
    thresholds: np.ndarray  # float64[C], descending; the first is +inf (nothing detected)
    scores: np.ndarray  # float64[C] summed raw NAB score at each threshold
    best_threshold: float
    best_score: float


def sweep(values: list[np.ndarray], weights: list[RowWeights], profile: Profile,
          max_candidates: int | None = None) -> Sweep:
    """Corpus-wide threshold sweep: the summed raw score of ``values >= t`` for every candidate t.

    values[j]: the detector's likelihood per row of file j; weights[j]: ``row_weights`` of file j.
    Candidates are every distinct value of a scored row (or ``max_candidates`` of them, evenly
    spaced in rank), plus +inf. Exact and O(N log N + (W + J) C log N): each file's score at every
    candidate (``file_curves``), summed. The best threshold is the highest one among those with the
    best score.
    """
    cand = candidates(values, weights, max_candidates)
    total = np.zeros(cand.size)
    for curve in file_curves(values, weights, profile, cand):
        total += curve
    i = int(np.argmax(total))  # first maximum = highest threshold
    return Sweep(thresholds=cand, scores=total, best_threshold=float(cand[i]), best_score=float(total[i]))


def candidates(values: list[np.ndarray], weights: list[RowWeights], max_candidates: int | None = None) -> np.ndarray:
    """The sweep's thresholds, descending: +inf (nothing detected), then every distinct finite value
    of ``values`` on a scored row (not in probation: a threshold there detects nothing new), or
    ``max_candidates`` of them, evenly spaced in rank."""
    all_vals = (np.concatenate([np.asarray(v, np.float64).ravel()[rw.window != -2] for v, rw in zip(values, weights)])
                if values else np.zeros(0))
    cand = np.unique(all_vals[np.isfinite(all_vals)])[::-1]  # descending
    if max_candidates is not None and cand.size > max_candidates:
        pick = np.unique(np.linspace(0, cand.size - 1, max_candidates).round().astype(np.int64))
        cand = cand[pick]
    return np.concatenate([[np.inf], cand])


def file_curves(values: list[np.ndarray], weights: list[RowWeights], profile: Profile, cand: np.ndarray):
    """Yield, per file j, its raw NAB score of ``values[j] >= t`` at every candidate t (float64[C],
    ``cand`` descending): false positives by a cumulative sum over the file's rows outside windows
    sorted by value, each window by a running maximum of its weights in that order."""
    neg = -cand  # ascending, for searchsorted
    for v, rw in zip(values, weights):
        v = np.asarray(v, dtype=np.float64)
        v = np.where(np.isnan(v), -np.inf, v)  # not scored (rejected): never a detection
        out = rw.window == -1
        fv, fw = v[out], rw.weight[out]
        order = np.argsort(-fv, kind="stable")
        csum = np.concatenate([[0.0], np.cumsum(fw[order])])
        total = csum[np.searchsorted(-fv[order], neg, side="right")]  # rows with value >= candidate
        for k in np.unique(rw.window[rw.window >= 0]):
            m = rw.window == k
            order = np.argsort(-v[m], kind="stable")
            best = np.concatenate([[-profile.fn], np.maximum.accumulate(rw.weight[m][order])])
            total = total + best[np.searchsorted(-v[m][order], neg, side="right")]
        yield total


def bootstrap_margin(values: list[np.ndarray], base_values: list[np.ndarray], weights: list[RowWeights],
                     groups: list[str], profile: Profile, resamples: int = 1000, seed: int = 0,
                     max_candidates: int = 20000) -> dict | None:
    """How much a corpus-sweep margin (normalised score of ``values`` minus ``base_values``', each
    at its own best threshold) rests on which files happen to be in the corpus: a paired bootstrap
    over files, resampled with replacement within each group (NAB category), both detectors on the
    same resample. Thresholds from at most ``max_candidates`` values per detector (the intervals
    are approximate; the point figures come from ``sweep``). None when no resample has a window."""
    wins = np.array([rw.n_windows for rw in weights], np.float64)  # [J]
    curves = [np.stack(list(file_curves(v, weights, profile, candidates(v, weights, max_candidates))))
              for v in (values, base_values)]  # each [J, C]: file j's raw score at threshold c
    idx = {g: [j for j, h in enumerate(groups) if h == g] for g in dict.fromkeys(groups)}
    rng = np.random.default_rng(seed)
    margins = []
    for _ in range(resamples):
        mult = np.zeros(len(groups))  # [J] how often each file is drawn
        for members in idx.values():
            np.add.at(mult, rng.choice(members, size=len(members)), 1.0)
        n_win = float(mult @ wins)
        if n_win == 0:
            continue
        a, b = ((mult @ c).max() for c in curves)
        margins.append(normalise(a, n_win, profile) - normalise(b, n_win, profile))
    if not margins:
        return None
    m = np.array(margins)
    return {"resamples": int(m.size), "mean": float(m.mean()), "low": float(np.quantile(m, 0.05)),
            "high": float(np.quantile(m, 0.95)), "ahead": float(np.mean(m > 0)), "seed": seed}


# -- the corpus on disk -------------------------------------------------------------------------

@dataclass(frozen=True)
class NabFile:
    name: str  # "<category>/<file>.csv", the key in NAB's label files
    category: str
    ts: np.ndarray  # float64[n] epoch seconds (UTC)
    values: np.ndarray  # float64[n]
    windows: list  # inclusive row ranges [(lo, hi), ...]
    probation: int
    empty_windows: int = 0  # labelled windows that cover no row of the file (dropped from ``windows``)


def _epoch(strings) -> np.ndarray:
    from ..timestamps import parse_column  # the one timestamp parser

    ts, bad = parse_column(list(strings))
    if bad:
        raise ValueError(bad[1])
    return ts


def load_file(path: Path, name: str, window_limits) -> NabFile:
    """One NAB data CSV (``timestamp,value``) with its window limits (timestamp strings). Raises
    ValueError naming the file and line; NaN / inf values are kept (the detector rejects them)."""
    stamps, vals, lines = _read_rows(path)
    from ..timestamps import parse_column  # the one timestamp parser

    ts, bad = parse_column(stamps)
    if bad:
        raise ValueError(f"{path}:{lines[bad[0]]}: {bad[1]}")
    limits = [(_epoch([a])[0], _epoch([b])[0]) for a, b in window_limits]
    windows = window_indices(ts, limits)
    return NabFile(name=name, category=name.split("/")[0], ts=ts, values=np.asarray(vals, np.float64),
                   windows=windows, probation=probation_length(len(ts)), empty_windows=len(limits) - len(windows))


def _read_rows(path: Path) -> tuple[list[str], list[float], list[int]]:
    """(timestamp texts, values, each row's line number) of a ``timestamp,value`` CSV (a UTF-8
    BOM and CR line ends allowed); ValueError naming the file and line otherwise."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x})") from None
    lines = text.splitlines()
    header = lines[0].strip().split(",") if lines else [""]
    if header[:2] != ["timestamp", "value"]:
        raise ValueError(f"{path}: expected a 'timestamp,value' header, got {header}")
    stamps, vals, numbers = [], [], []
    for k, line in enumerate(lines[1:], start=2):
        line = line.strip()
        if not line:
            continue
        fields = line.split(",")
        if len(fields) < 2:
            raise ValueError(f"{path}:{k}: expected timestamp,value")
        try:
            vals.append(float(fields[1]))
        except ValueError:
            raise ValueError(f"{path}:{k}: value {fields[1]!r} is not a number") from None
        stamps.append(fields[0])
        numbers.append(k)
    if not stamps:
        raise ValueError(f"{path}: no data rows (the file has a header only)")
    return stamps, vals, numbers


def load_corpus(data_dir: str | Path, categories: list[str] | None = None, missing: list | None = None,
                unlabelled: list | None = None) -> list[NabFile]:
    """All files of ``data_dir/data/<category>/*.csv`` listed in labels/combined_windows.json; the
    listed names that are not a file there are appended to ``missing``, the CSVs there that are not
    listed to ``unlabelled`` (when given). Raises ValueError naming the labels file (and key) when
    it is not NAB's ``{name: [[start, end], ...]}``."""
    root = Path(data_dir)
    labels = read_windows(root / "labels" / "combined_windows.json")
    known = sorted({name.split("/")[0] for name in labels})
    unknown = [c for c in categories or () if c not in known]
    if unknown:
        raise ValueError(f"--categories {','.join(unknown)}: not in {root / 'labels' / 'combined_windows.json'} "
                         f"(its categories: {', '.join(known)})")
    files = []
    for name in sorted(labels):
        cat = name.split("/")[0]
        if categories and cat not in categories:
            continue
        path = root / "data" / name
        if path.is_file():
            files.append(load_file(path, name, labels[name]))
        elif missing is not None:
            missing.append(name)
    if unlabelled is not None:
        unlabelled.extend(n for p in sorted((root / "data").glob("*/*.csv"))
                          if (n := f"{p.parent.name}/{p.name}") not in labels
                          and not (categories and p.parent.name not in categories))
    return files


def read_windows(path: Path) -> dict:
    """NAB's window file: ``{"<category>/<file>.csv": [[start, end], ...]}`` (timestamp strings,
    start <= end); ValueError naming the file and key otherwise (OSError when it cannot be read)."""
    try:
        labels = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(labels, dict):
        raise ValueError(f"{path}: expected an object {{\"<category>/<file>.csv\": [[start, end], ...]}}, "
                         f"got {type(labels).__name__}")
    for name, wins in labels.items():
        pairs = isinstance(wins, list) and all(isinstance(w, list) and len(w) == 2 and all(isinstance(t, str) for t in w)
                                               for w in wins)
        if not pairs:
            raise ValueError(f"{path}: {name!r}: expected a list of [start, end] timestamp pairs, "
                             f"got {json.dumps(wins)[:80]}")
        for a, b in wins:
            try:
                t1, t2 = _epoch([a])[0], _epoch([b])[0]
            except ValueError as exc:
                raise ValueError(f"{path}: {name!r}: {exc}") from None
            if t2 < t1:
                raise ValueError(f"{path}: {name!r}: window [{a}, {b}] ends before it starts")
    return labels
