"""Is the training data enough, and does the held-out part look like the training part?

Warnings are plain sentences; the trainer prints them, the manifest keeps them
(``provenance.warnings``) and the model card lists them.
"""

from __future__ import annotations

import numpy as np

READINGS_PER_PARAMETER = 5  # fewer training values (readings x features) per parameter: too little data
#                             (8 per parameter did not overfit a 38-feature model here: held-out NLL within 0.03)
NLL_GAP = 0.5  # validation NLL this far (nats per value) above the training NLL: not generalising
OUT_OF_RANGE_SHARE = 0.01  # share of held-out readings outside the training range, per feature


def extent(names, series, timestamps: list[np.ndarray | None]) -> dict:
    """The data's extent for the manifest and card: rows, time span, per-feature range (raw units).

    ``series``: train.data.Series (raw float64[T, F]); ``timestamps``: float64[T] seconds or None."""
    rows = np.concatenate([s.raw for s in series])  # [N, F]
    spans = [float(t[-1] - t[0]) for t in timestamps if t is not None and len(t) > 1]
    return {
        "rows": int(len(rows)),
        "series": len(series),
        "time_span_s": round(sum(spans), 3) if spans else None,
        "ranges": {n: [float(rows[:, i].min()), float(rows[:, i].max())] for i, n in enumerate(names)},
    }


def data_warnings(names, series, n_params: int, kinds: dict) -> list[str]:
    """Too little data for the model; held-out readings outside the training range."""
    out = []
    train = np.concatenate([s.raw[: s.split] for s in series])  # [N_train, F]
    held = np.concatenate([s.raw[s.split :] for s in series])  # [N_held, F]
    values = train.size
    if values < READINGS_PER_PARAMETER * n_params:
        out.append(f"little data for the model: {len(train):,} training readings x {train.shape[1]} features = "
                   f"{values:,} values for {n_params:,} parameters (want >= {READINGS_PER_PARAMETER} per parameter); "
                   f"use more data or a smaller --hidden")
    lo, hi = train.min(axis=0), train.max(axis=0)
    outside = ((held < lo) | (held > hi)).mean(axis=0)  # [F]
    for i, name in enumerate(names):
        if outside[i] > OUT_OF_RANGE_SHARE and kinds.get(name, {}).get("kind") != "constant":
            out.append(f"{name}: {outside[i]:.1%} of the held-out readings lie outside the training range "
                       f"[{lo[i]:g}, {hi[i]:g}] (held-out range [{held[:, i].min():g}, {held[:, i].max():g}]): "
                       f"the training data does not cover normal operation")
        elif kinds.get(name, {}).get("kind") == "constant" and (held[:, i] != lo[i]).any():
            out.append(f"{name}: constant {lo[i]:g} in training but changes in the held-out part "
                       f"({(held[:, i] != lo[i]).mean():.1%} of readings): every change will be a finding")
    return out


def fit_warnings(train_nll: float, val_nll: float) -> list[str]:
    """Validation NLL much above training NLL: the model does not generalise to the held-out part."""
    if val_nll - train_nll > NLL_GAP:
        return [f"validation NLL {val_nll:.3f} is {val_nll - train_nll:.2f} nats per value above training NLL "
                f"{train_nll:.3f}: the model fits the training part much better than the held-out part "
                f"(too little or too narrow data, or a change between them)"]
    return []
