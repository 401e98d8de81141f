"""The trainable model (PyTorch): nn.GRU + a residual head of K Gaussians per feature (K = 1: the
Gaussian head), its loss and its export by name (edgernn/backends/base.py)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class GaussianGRU(nn.Module):
    """x [B, T, F] ([B, T, 2F] = [c | j] with ``jump``) -> mean, logvar [B, T, K F] (and logit [B, T, K F] when K > 1, else None) of the
    next reading, component-major (column k F + f); same maths as edgernn/backends/numpy_gru.py
    (mean_k = x + W_mean h + b_mean). K = 1 builds exactly the Gaussian model (same layers, same
    initialisation, same random draws)."""

    def __init__(self, features: int, hidden: int, logvar_min: float, logvar_max: float, components: int = 1,
                 tied_variance: bool = False, jump: tuple[float, float, float] | None = None):
        super().__init__()
        K = self.components = int(components)
        self.features = int(features)
        self.jump = jump  # jump inputs (backends/base.py): in.jump = (threshold, memory, floor); x is [c | j]
        self.tied = tied_variance and K > 1  # one log-variance per feature shared by its K components
        self.gru = nn.GRU(features * (2 if jump else 1), hidden, batch_first=True)
        self.mean = nn.Linear(hidden, K * features)
        self.logvar = nn.Linear(hidden, (1 if self.tied else K) * features)
        self.logit = nn.Linear(hidden, K * features) if K > 1 else None
        self.lv_min, self.lv_max = logvar_min, logvar_max
        nn.init.zeros_(self.mean.weight)
        nn.init.zeros_(self.mean.bias)
        if K > 1:  # components start apart (stay, step up, step down...): identical ones would stay identical
            with torch.no_grad():
                steps = torch.tensor([0.0] + [(-1.0) ** k * (1 + k // 2) * 0.5 for k in range(K - 1)])  # [K]
                self.mean.bias.copy_(steps.repeat_interleave(features))
                nn.init.zeros_(self.logit.weight)
                nn.init.zeros_(self.logit.bias)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None):
        out, h = self.gru(x, h0)  # x [B, T, F] or [B, T, 2F] = [c | j]; out [B, T, H], h [1, B, H]
        c = x[..., : self.features]  # [B, T, F]: the skip connection reads c alone
        xk = c if self.components == 1 else c.repeat(1, 1, self.components)  # [B, T, K F]
        mean = xk + self.mean(out)
        logvar = self.logvar(out).clamp(self.lv_min, self.lv_max)
        if self.tied:
            logvar = logvar.repeat(1, 1, self.components)  # [B, T, K F]
        logit = self.logit(out) if self.logit is not None else None
        return mean, logvar, logit, h


def gaussian_nll(mean, logvar, target):
    """Per-element Gaussian negative log-likelihood (without the constant)."""
    return 0.5 * (logvar + (target - mean) ** 2 * torch.exp(-logvar))


def mixture_nll(mean, logvar, logit, target):
    """Per-element NLL of target [B, T, F] under the head's output (without the constant):
    Gaussian for logit None, else -logsumexp_k(log w_k - NLL_k) over the K components of
    mean, logvar, logit [B, T, K F] (component-major)."""
    if logit is None:
        return gaussian_nll(mean, logvar, target)
    B, T, F = target.shape
    K = mean.shape[-1] // F
    shape = (B, T, K, F)
    comp = gaussian_nll(mean.reshape(shape), logvar.reshape(shape), target.unsqueeze(2))  # [B, T, K, F]
    logw = torch.log_softmax(logit.reshape(shape), dim=2)  # [B, T, K, F]
    return -torch.logsumexp(logw - comp, dim=2)  # [B, T, F]


def export_weights(model: GaussianGRU) -> dict[str, np.ndarray]:
    """Weights by name (edgernn/backends/base.py): PyTorch packs r|z|n along dim 0."""
    g = model.gru
    H = g.hidden_size
    w_ih, w_hh = g.weight_ih_l0.detach().numpy(), g.weight_hh_l0.detach().numpy()
    b_ih, b_hh = g.bias_ih_l0.detach().numpy(), g.bias_hh_l0.detach().numpy()
    out = {}
    F = model.features
    for k, gate in enumerate("rzn"):
        sl = slice(k * H, (k + 1) * H)
        out[f"gru.W_i{gate}"] = w_ih[sl, :F]
        if model.jump:  # j's columns: their own weights
            out[f"gru.W_j{gate}"] = w_ih[sl, F:]
        out[f"gru.W_h{gate}"] = w_hh[sl]
        out[f"gru.b_i{gate}"] = b_ih[sl]
        out[f"gru.b_h{gate}"] = b_hh[sl]
    out["head.W_mean"] = model.mean.weight.detach().numpy()
    out["head.b_mean"] = model.mean.bias.detach().numpy()
    reps = model.components if model.tied else 1  # tied: the same rows for every component
    out["head.W_logvar"] = np.tile(model.logvar.weight.detach().numpy(), (reps, 1))
    out["head.b_logvar"] = np.tile(model.logvar.bias.detach().numpy(), reps)
    if model.logit is not None:
        out["head.W_logit"] = model.logit.weight.detach().numpy()
        out["head.b_logit"] = model.logit.bias.detach().numpy()
    if model.jump:
        out["in.jump"] = np.array(model.jump, np.float32)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}
