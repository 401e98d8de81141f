"""The relation look's model: each feature from the others at the same reading, fitted at training.

A multivariate machine's features move together (load drives CPU, memory, I/O and temperature):
a feature that leaves the others -- decouples, shifts or sticks on its own -- keeps a large
residual against them for as long as it stays away, which the GRU's one-step prediction sees only
at the start. Per modelled feature i (continuous and quantised kinds: the ones whose value carries
a level), a ridge regression on the other modelled features at the same reading, in the model's
normalised units (the detector's clipped c):

    coef[i, o] = (C[o, o] + RIDGE I)^-1 C[o, i],  C = Z^T Z / N  (Z [N, U]: the training part)
    resid_std[i] = sd of Z[:, i] - Z coef[i]^T on the training part

The detector's kernel (``_relation``) computes e_i = (c_i - coef[i] . c) / resid_std_i per
reading; the calibration fits the look's table on the held-out part. Written as relation.npz.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..bundle import RELATION_FILE, register_artifact
from ..fileio import save_npz

RELATION_KINDS = ("continuous", "quantised")
# ridge on the normalised covariance (chosen on the development files of the synthetic telemetry and
# SKAB, from 0.01 / 0.1 / 1; docs/QUALITY.md): collinear metrics (a byte and a packet counter of one
# link) share their weight instead of cancelling
RIDGE = 0.1
MIN_FEATURES = 3  # one feature against fewer than two others is not a relation worth a look


def fit_relation(train_parts: list[np.ndarray], features, kinds: dict, ridge: float = RIDGE) -> dict | None:
    """The relation of the modelled features (RELATION_KINDS) on the normalised training parts
    (float64[T_s, F] each): {features int64[U], coef float64[U, U], resid_std float64[U]}, or None
    when fewer than MIN_FEATURES features qualify."""
    idx = np.array([i for i, n in enumerate(features) if kinds[n]["kind"] in RELATION_KINDS], np.int64)
    if len(idx) < MIN_FEATURES:
        return None
    Z = np.concatenate([p[:, idx] for p in train_parts])  # [N, U]
    Z = Z[np.isfinite(Z).all(axis=1)]
    U = len(idx)
    C = Z.T @ Z / max(len(Z), 1)  # [U, U]
    coef = np.zeros((U, U))
    for i in range(U):
        o = np.r_[0:i, i + 1 : U]  # the others
        coef[i, o] = np.linalg.solve(C[np.ix_(o, o)] + ridge * np.eye(U - 1), C[o, i])
    resid = Z - Z @ coef.T  # [N, U]
    se = np.maximum(resid.std(axis=0), 1e-3)  # (a feature the others explain exactly still has a scale)
    return {"features": idx, "coef": coef, "resid_std": se}


def write_relation(out: Path, relation: dict) -> None:
    """relation.npz in the bundle, registered (sha256) like every artifact."""
    save_npz(out / RELATION_FILE, relation)
    register_artifact(out, RELATION_FILE, purpose="the relation look: each feature from the others at the same reading",
                      ridge=RIDGE, features=int(len(relation["features"])))
