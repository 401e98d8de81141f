"""Fit the model: stateful truncated BPTT over contiguous segments, Adam, gradient clipping,
Gaussian (K = 1) or mixture NLL, early stopping on the time-ordered held-out part (optional AdamW weight
decay; optional exponential moving average of the weights, which is then what is validated, early-stopped
on and kept). Deterministic given the seed."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..progress import Progress
from .model import GaussianGRU, mixture_nll

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class FitConfig:
    hidden: int = 32
    components: int = 1  # K Gaussians per feature in the head (1: the Gaussian head)
    tied_variance: bool = False  # K > 1: the K components of a feature share one log-variance
    epochs: int = 30
    patience: int = 4
    lr: float = 3e-3
    weight_decay: float = 0.0  # AdamW's decoupled weight decay (0: plain Adam; 0.01-1 measured no better)
    batch: int = 64  # segments per optimiser batch
    segment: int = 512  # readings per segment (state carried across its chunks)
    chunk: int = 64  # truncated BPTT length
    burn_in: int = 8  # first readings of a segment (cold start) left out of the loss
    clip_grad: float = 1.0
    seed: int = 0
    logvar_min: float = -9.0
    logvar_max: float = 6.0
    jump: tuple[float, float, float] | None = None  # jump inputs' (threshold, memory, floor); None: x = c
    average: float = 0.0  # the weights' EW average, this decay per optimiser step (0: the last step's weights)


@dataclass
class FitResult:
    model: GaussianGRU
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    epochs_run: int = 0


def _run(model, segs: torch.Tensor, cfg: FitConfig, opt=None, order=None, bar=None, avg=None) -> float:
    """One pass over segments [N, S, F] ([N, S, 2F] = [c | j] with jump inputs: the targets are the
    next c); trains when ``opt`` is given (and updates the weights' average ``avg`` after each step).
    Returns NLL per element."""
    total, count = 0.0, 0
    order = order if order is not None else np.arange(len(segs))
    burn = min(cfg.burn_in, segs.shape[1] - 2)  # a segment of S < burn_in + 2 readings (--segment, a short
    #                                             series) still scores its last S - 1 - burn >= 1 steps
    for lo in range(0, len(order), cfg.batch):
        seg = segs[order[lo : lo + cfg.batch]]  # [b, S, F]
        inp, tgt = seg[:, :-1], seg[:, 1:, : model.features]
        h = None
        for c in range(0, inp.shape[1], cfg.chunk):
            mean, logvar, logit, h = model(inp[:, c : c + cfg.chunk], h)
            nll = mixture_nll(mean, logvar, logit, tgt[:, c : c + cfg.chunk])
            if c < burn:
                nll = nll[:, burn - c :]
            if nll.numel() == 0:  # a chunk wholly in the burn-in (--chunk <= burn_in): nothing to learn or count
                h = h.detach()  # (its mean was NaN: the epoch's NLL NaN, early stopping blind)
                continue
            loss = nll.mean()
            if opt is not None:
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                opt.step()
                if avg is not None:
                    avg.update_parameters(model)
                h = h.detach()
            total += float(loss.detach()) * nll.numel()
            count += nll.numel()
        if bar is not None:
            bar.update(len(seg))
    return total / max(count, 1) + HALF_LOG_2PI


def _averaged(model, cfg: FitConfig):
    """The weights' exponential moving average (torch.optim.swa_utils.AveragedModel), or None without
    --average. Its decay warms up, min(average, (1 + n) / (10 + n)) at the n-th update, so a short
    fit's average is of its own late steps, not still mostly its first one's (a decay of 0.995 from
    the first step would leave 30 % of the average on it after 240 steps)."""
    if not cfg.average:
        return None

    @torch.no_grad()
    def ema(averaged: list, current: list, n) -> None:  # n: updates so far (a tensor), >= 1 here
        decay = min(cfg.average, (1.0 + float(n)) / (10.0 + float(n)))
        for a, c in zip(averaged, current):
            a.lerp_(c, 1.0 - decay)

    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=ema)


def _validate(model, avg, va: torch.Tensor, cfg: FitConfig) -> tuple[float, dict]:
    """Validation NLL of the weights that would be kept (the average, with --average) and those
    weights (a state dict of ``model``'s form)."""
    kept = avg.module if avg is not None else model
    kept.eval()
    with torch.no_grad():
        loss = _run(kept, va, cfg)
    return loss, kept.state_dict()


def fit(train_segs: np.ndarray, val_segs: np.ndarray, n_features: int, cfg: FitConfig,
        progress: bool | None = None, log=print) -> FitResult:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = GaussianGRU(n_features, cfg.hidden, cfg.logvar_min, cfg.logvar_max, cfg.components, cfg.tied_variance,
                        cfg.jump)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    tr, va = torch.from_numpy(train_segs), torch.from_numpy(val_segs)
    avg = _averaged(model, cfg)
    result = FitResult(model)
    best, best_state, bad = math.inf, None, 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        with Progress(len(tr), f"epoch {epoch:3d}", enabled=progress) as bar:
            train_loss = _run(model, tr, cfg, opt, rng.permutation(len(tr)), bar, avg)
        val_loss, state = _validate(model, avg, va, cfg)
        sched.step(val_loss)  # (with --average, the average's: the schedule follows the weights kept)
        result.train_loss.append(train_loss)
        result.val_loss.append(val_loss)
        result.epochs_run = epoch
        mark = ""
        if val_loss < best - 1e-4:
            best, best_state, bad, result.best_epoch, mark = val_loss, copy.deepcopy(state), 0, epoch, " *"
        else:
            bad += 1
        log(f"epoch {epoch:3d}  train NLL {train_loss:8.4f}  val NLL {val_loss:8.4f}  lr {opt.param_groups[0]['lr']:.1e}{mark}")
        if bad >= cfg.patience:
            log(f"early stop: no validation improvement for {cfg.patience} epochs")
            break
    if best_state is not None:  # (None: no epoch's validation NLL was finite; the NaN-weights check follows)
        model.load_state_dict(best_state)
    return result
