"""SKAB (Skoltech Anomaly Benchmark): loader and the leaderboard's outlier-detection protocol.

Protocol (github.com/waico/SKAB, core/metrics.py ``chp_score(metric="binary")``):

* each labelled file (34 of them: other/, valve1/, valve2/) is handled on its own: the first
  ``TRAIN_ROWS = 400`` rows are the training part, the rest the test part;
* a threshold is fixed from the training part only, never tuned on the test part;
* point-wise confusion counts on the ``anomaly`` column are summed over all files (SKAB adds
  TP, TN, FP, FN file by file, which is the same as concatenating the test parts), then

      F1  = TP / (TP + (FN + FP) / 2)
      FAR = 100 FP / (FP + TN)        false alarm rate, %
      MAR = 100 FN / (FN + TP)        missed alarm rate, %

Predicting every test row anomalous already gives F1 0.70 at FAR 100 %: always read all three.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TRAIN_ROWS = 400
FOLDERS = ("other", "valve1", "valve2")
LABEL_COLUMNS = ("anomaly", "changepoint")


@dataclass(frozen=True)
class SkabFile:
    name: str  # "valve1/3.csv"
    features: tuple[str, ...]
    ts: np.ndarray  # float64[n] epoch seconds
    x: np.ndarray  # float64[n, F]
    anomaly: np.ndarray  # int8[n]
    changepoint: np.ndarray  # int8[n]


def load_file(path: str | Path, name: str | None = None) -> SkabFile:
    """One ``;``-separated SKAB CSV: ``datetime;<8 sensors>;anomaly;changepoint``. Raises
    ValueError naming the file and line (a header only, a row of another width, a value that is
    not a number, a label other than 0 / 1, a timestamp that is not one); NaN / inf values are
    kept (the detector rejects those readings and eval counts them)."""
    path = Path(path)
    if path.exists() and not (path.is_file() or path.is_dir()):  # a FIFO or a device would block or never end
        raise ValueError(f"{path}: not a regular file")
    header, rows, lines = _read_rows(path)
    if not header or header[0] != "datetime":
        raise ValueError(f"{path}: expected a ';'-separated file starting with 'datetime'")
    if not rows:
        raise ValueError(f"{path}: no data rows (the file has a header only)")
    cols = {c: i for i, c in enumerate(header)}
    feats = tuple(c for c in header[1:] if c not in LABEL_COLUMNS)
    from ..timestamps import parse_column  # the one timestamp parser

    ts, bad = parse_column([r[0] for r in rows])
    if bad:
        raise ValueError(f"{path}:{lines[bad[0]]}: {bad[1]}")

    def column(col) -> np.ndarray:  # float64[n]
        j = cols[col]
        try:
            return np.array([float(r[j]) for r in rows], dtype=np.float64)
        except ValueError:
            k = next(k for k, r in enumerate(rows) if not _is_number(r[j]))
            raise ValueError(f"{path}:{lines[k]}: column {col!r}: {rows[k][j]!r} is not a number") from None

    x = np.stack([column(c) for c in feats], axis=1) if feats else np.zeros((len(rows), 0))  # float64[n, F]

    def label(col) -> np.ndarray:  # int8[n]
        if col not in cols:
            return np.zeros(len(rows), np.int8)
        v = column(col)
        odd = np.flatnonzero((v != 0) & (v != 1))
        if odd.size:
            raise ValueError(f"{path}:{lines[odd[0]]}: column {col!r}: {rows[odd[0]][cols[col]]!r} is not 0 or 1")
        return v.astype(np.int8)

    return SkabFile(name=name or path.name, features=feats, ts=ts, x=x,
                    anomaly=label("anomaly"), changepoint=label("changepoint"))


def _read_rows(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """(header fields, data rows' fields, each row's line number); ValueError naming the file and
    line when the file is not UTF-8 text or a row has another number of fields than the header."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # a BOM, as spreadsheets write it, dropped
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x})") from None
    lines = text.splitlines()
    header = lines[0].strip().split(";") if lines else []
    rows, numbers = [], []
    for k, line in enumerate(lines[1:], start=2):
        if line.strip():
            row = line.strip().split(";")
            if len(row) != len(header):
                raise ValueError(f"{path}:{k}: {len(row)} ';'-separated fields, the header has {len(header)}")
            rows.append(row)
            numbers.append(k)
    return header, rows, numbers


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _numeric_key(p: Path):
    return (p.parent.name, int(p.stem) if p.stem.isdigit() else 10**9, p.stem)


def list_files(data_dir: str | Path) -> list[Path]:
    """The labelled files (other/, valve1/, valve2/), in a stable order; anomaly-free excluded."""
    root = Path(data_dir)
    out = []
    for folder in FOLDERS:
        out.extend(sorted((root / folder).glob("*.csv"), key=_numeric_key))
    return out


def load_corpus(data_dir: str | Path) -> list[SkabFile]:
    root = Path(data_dir)
    return [load_file(p, f"{p.parent.name}/{p.name}") for p in list_files(root)]


@dataclass
class Counts:
    tp: int = 0
    tn: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(self.tp + other.tp, self.tn + other.tn, self.fp + other.fp, self.fn + other.fn)


def confusion(true: np.ndarray, pred: np.ndarray) -> Counts:
    """Point-wise confusion counts of binary arrays (1 = anomalous)."""
    t = np.asarray(true).astype(bool)
    p = np.asarray(pred).astype(bool)
    return Counts(tp=int((t & p).sum()), tn=int((~t & ~p).sum()),
                  fp=int((~t & p).sum()), fn=int((t & ~p).sum()))


def metrics(c: Counts) -> dict:
    """SKAB's F1 / FAR % / MAR % (NaN where a denominator is 0)."""
    def div(a, b):
        return float(a) / b if b else float("nan")

    return {
        "f1": div(c.tp, c.tp + (c.fn + c.fp) / 2),
        "far": 100.0 * div(c.fp, c.fp + c.tn),
        "mar": 100.0 * div(c.fn, c.fn + c.tp),
        "tp": c.tp, "tn": c.tn, "fp": c.fp, "fn": c.fn,
    }


def surprise(likelihood: np.ndarray) -> np.ndarray:
    """-log10(1 - likelihood): the tail probability on a log scale (monotone in likelihood)."""
    lik = np.clip(np.asarray(likelihood, dtype=np.float64), 0.0, 1.0)
    return -np.log10(np.maximum(1.0 - lik, 1e-300))


def threshold_from_train(likelihood_train: np.ndarray, rule: str = "max", factor: float = 1.0) -> float:
    """A likelihood threshold fixed from the training part's likelihoods (NaNs = not scored).

    rule "max":      the largest training likelihood (no alarm on the training part), or
    rule "q<p>":     e.g. "q99": the p-th percentile,
    then ``factor`` scales the margin on the log scale: surprise_thr = factor * surprise(rule),
    with surprise = -log10(1 - likelihood). factor 1 keeps the training value itself.
    Alarm when likelihood > threshold (strictly: the training maximum itself does not alarm).
    """
    lik = np.asarray(likelihood_train, dtype=np.float64)
    lik = lik[np.isfinite(lik)]
    if lik.size == 0:
        raise ValueError("no scored rows in the training part (every reading rejected, or a warm-up longer than it)")
    if rule == "max":
        base = float(lik.max())
    elif rule.startswith("q"):
        base = float(np.quantile(lik, float(rule[1:]) / 100.0))
    else:
        raise ValueError(f"unknown threshold rule {rule!r}: use 'max' or 'q<percentile>'")
    s = float(surprise(np.array([base]))[0]) * factor
    return float(1.0 - 10.0 ** (-s))


def renormalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray, train_rows: int = TRAIN_ROWS,
                min_ratio: float = 0.1) -> np.ndarray:
    """Re-express a file in a fixed-normalisation model's units, fitted on its training rows only:

        x' = mean + (x - mean_train) * std / max(std_train, min_ratio * std)

    (SKAB's baselines fit a scaler on each file's first 400 rows the same way.) mean, std: the
    model's per-feature statistics in raw units; the floor keeps a sensor that happened to be
    constant during training from turning every later change into a huge deviation.
    """
    x = np.asarray(x, dtype=np.float64)  # [n, F]
    train = np.where(np.isfinite(x[:train_rows]), x[:train_rows], np.nan)  # [t, F] an inf is no statistic
    with warnings.catch_warnings(), np.errstate(all="ignore"):  # a sensor without a number: NaN, its readings rejected
        warnings.simplefilter("ignore", RuntimeWarning)
        mu = np.nanmean(train, axis=0)  # [F]
        sd = np.nanstd(train, axis=0)  # [F]
    return mean + (x - mu) * std / np.maximum(sd, min_ratio * std)



def fit_train_tables(detector, recordings: list, train_rows: int = TRAIN_ROWS, passes: int = 2) -> dict:
    """The looks' calibration tables fitted on the training rows of ``recordings`` only
    (``[(stream, ts, x), ...]``, pooled: one table set for all of them), with ``detector``'s
    bundle, backend and settings: ``train.calibrate.fit_tables_on`` over every scored training row,
    ``passes`` runs, each from row 0 with the previous run's tables (the first with the bundle's).
    Causal w.r.t. the test part: only ``x[:train_rows]`` is seen. Needs >= 100 scored rows per
    look (train_rows - warm-up, times the number of recordings pooled)."""
    from dataclasses import replace

    from ..train.calibrate import fit_tables_on
    from ..train.data import Series

    settings = replace(detector.settings, max_streams=max(len(recordings), 1))
    series = [Series(str(name), np.asarray(x, np.float64)[:train_rows], 0) for name, _, x in recordings]
    return fit_tables_on(detector.bundle, series, passes, settings=settings, backend=detector.backend)


def run_calibrated(detector, recordings: list, train_rows: int = TRAIN_ROWS, passes: int = 2, chunk: int = 256,
                   progress=None) -> list:
    """Per-file calibration under the protocol: ``fit_train_tables`` on the training rows, then
    every recording scored from its first row by a fresh detector (``detector``'s bundle, backend
    and settings; clean state) with those tables. Returns the traces (``evaluate.run.Trace``) in
    the order of ``recordings``."""
    from dataclasses import replace

    from ..detector import Detector
    from .run import run_recordings

    tables = fit_train_tables(detector, recordings, train_rows, passes)
    fresh = Detector(detector.bundle, detector.backend, replace(detector.settings, max_streams=max(len(recordings), 1)),
                     tables=tables)
    return run_recordings(fresh, recordings, chunk, progress)
