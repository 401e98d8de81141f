"""The trainable model (PyTorch): nn.GRU + Gaussian residual head, and its export by name."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class GaussianGRU(nn.Module):
    """x [B, T, F] -> mean [B, T, F], logvar [B, T, F] of the next reading; same maths as
    edgernn/backends/numpy_gru.py (mean = x + W_mean h + b_mean)."""

    def __init__(self, features: int, hidden: int, logvar_min: float, logvar_max: float):
        super().__init__()
        self.gru = nn.GRU(features, hidden, batch_first=True)
        self.mean = nn.Linear(hidden, features)
        self.logvar = nn.Linear(hidden, features)
        self.lv_min, self.lv_max = logvar_min, logvar_max
        nn.init.zeros_(self.mean.weight)
        nn.init.zeros_(self.mean.bias)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None):
        out, h = self.gru(x, h0)  # out [B, T, H], h [1, B, H]
        mean = x + self.mean(out)
        logvar = self.logvar(out).clamp(self.lv_min, self.lv_max)
        return mean, logvar, h


def gaussian_nll(mean, logvar, target):
    """Per-element Gaussian negative log-likelihood (without the constant)."""
    return 0.5 * (logvar + (target - mean) ** 2 * torch.exp(-logvar))


def export_weights(model: GaussianGRU) -> dict[str, np.ndarray]:
    """Weights by name (edgernn/backends/base.py): PyTorch packs r|z|n along dim 0."""
    g = model.gru
    H = g.hidden_size
    w_ih, w_hh = g.weight_ih_l0.detach().numpy(), g.weight_hh_l0.detach().numpy()
    b_ih, b_hh = g.bias_ih_l0.detach().numpy(), g.bias_hh_l0.detach().numpy()
    out = {}
    for k, gate in enumerate("rzn"):
        sl = slice(k * H, (k + 1) * H)
        out[f"gru.W_i{gate}"] = w_ih[sl]
        out[f"gru.W_h{gate}"] = w_hh[sl]
        out[f"gru.b_i{gate}"] = b_ih[sl]
        out[f"gru.b_h{gate}"] = b_hh[sl]
    out["head.W_mean"] = model.mean.weight.detach().numpy()
    out["head.b_mean"] = model.mean.bias.detach().numpy()
    out["head.W_logvar"] = model.logvar.weight.detach().numpy()
    out["head.b_logvar"] = model.logvar.bias.detach().numpy()
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}
