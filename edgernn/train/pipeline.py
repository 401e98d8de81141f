"""One training run, end to end: feature kinds -> normalise -> fit -> bundle -> calibrate -> card.

``edgernn train`` (edgernn/commands/train.py) parses the command line and calls ``train``."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..backends.base import JUMP_DEFAULT, floored_std, jump_input, jump_rates
from ..bundle import load_bundle, register_artifact, write_bundle, write_manifest
from ..fileio import save_npz
from ..scoring import default_calibration
from .checks import data_warnings, extent, fit_warnings
from .data import MIN_REL_STD, MIN_STD, Series, fixed_normalise, segments, stream_normalise
from .features import HANDLING, describe, feature_kinds, sane_std
from .relation import fit_relation, write_relation

CLIP = 10.0  # normalised inputs are clipped here (train and run time alike)
# detector_defaults of a model trained with fixed normalisation on F > 1 features (the training
# reference in use): the smoothed / spread looks' echoes of an ended fault bounded at 1 decade beyond
# the present reading's evidence (chosen on the development files, docs/QUALITY.md)
FIXED_DEFAULTS = {"echo_decades": 1.0}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def normalise(series: list[Series], norm: str, warmup: int, adapt: float, kinds: dict, names, jump=None):
    """Raw series -> (normalised float64[T, F] per series, mean[F], std[F], readings to skip).

    ``fixed``: the training part's mean and std ((near-)constant features: features.sane_std);
    ``stream``: as the detector learns each stream during its warm-up (skipped in training).
    ``jump`` (threshold, memory, floor): jump inputs, each series float64[T, 2F] = [c | j] with j
    as the detector's kernel computes it (backends/base.py: jump_rates, jump_input)."""
    F = len(names)
    if norm == "stream":
        stds = [np.empty_like(s.raw) if jump else None for s in series]  # [T, F]: each reading's std (jump test)
        normed = [np.clip(stream_normalise(s.raw, warmup, adapt, stds=sd), -CLIP, CLIP) for s, sd in zip(series, stds)]
        return _with_jumps(normed, series, stds, jump), np.zeros(F), np.ones(F), warmup
    train_rows = np.concatenate([s.raw[: s.split] for s in series])  # [N, F]
    mean = train_rows.mean(axis=0)
    std = sane_std(train_rows.std(axis=0), mean, kinds, names)
    normed = [np.clip(fixed_normalise(s.raw, mean, std), -CLIP, CLIP) for s in series]
    floored = floored_std(std, mean, MIN_STD, MIN_REL_STD)  # the jump test's std (kernel._std)
    stds = [np.broadcast_to(floored, s.raw.shape) for s in series] if jump else []
    return _with_jumps(normed, series, stds, jump), mean, std, 0


def _with_jumps(normed: list[np.ndarray], series: list[Series], stds: list[np.ndarray], jump) -> list[np.ndarray]:
    """[c | j] per series (float64[T, 2F]) with jump inputs, else ``normed`` as it is."""
    if not jump:
        return normed
    threshold, memory, floor = jump
    return [np.concatenate([c, jump_input(jump_rates(s.raw, sd, threshold, memory), floor)], axis=1)
            for c, s, sd in zip(normed, series, stds)]


def _provenance(args, command, series, result, cfg, torch_version, ext, warnings) -> dict:
    n = len(series[0].raw)
    split = {"train": f"{series[0].split / n:.0%}", "held_out": f"{1 - series[0].split / n:.0%}"}
    return {
        "command": command,
        "data": [{"file": p.name, "sha256": _sha(p),
                  "rows": int(sum(len(s.raw) for s in series if s.name.startswith(p.name + ":")))} for p in args.data],
        "rows": ext["rows"], "series": len(series), "split": split, "extent": ext,
        "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
        "final_train_nll": round(result.train_loss[result.best_epoch - 1], 5),
        "final_val_nll": round(result.val_loss[result.best_epoch - 1], 5),
        "seed": args.seed, "torch": torch_version, "warnings": warnings,
        "fit": {k: getattr(cfg, k) for k in ("hidden", *(("components", "tied_variance") if cfg.components > 1 else ()),
                                              *(("logvar_max",) if getattr(args, "logvar_max", None) is not None else ()), "lr", "weight_decay", "batch", "segment", "chunk", "burn_in",
                                              "clip_grad", "patience", *(("jump",) if cfg.jump else ()),
                                              *(("average",) if cfg.average else ()))},
    }


def _fit(args, features, normed, series, skip):
    """Segments of the training and validation parts -> (FitResult, FitConfig, held-out parts)."""
    from .fit import FitConfig, fit

    cfg = FitConfig(hidden=args.hidden, components=getattr(args, "components", 1),
                    tied_variance=getattr(args, "tied_variance", False),
                    **({"logvar_max": args.logvar_max} if getattr(args, "logvar_max", None) is not None else {}), epochs=args.epochs, patience=args.patience, lr=args.lr,
                    weight_decay=args.weight_decay, segment=args.segment, chunk=args.chunk, seed=args.seed,
                    jump=jump_of(args), average=getattr(args, "average", 0.0))
    train_parts = [n[skip : s.split] for n, s in zip(normed, series)]
    val_parts = [n[s.split :] for n, s in zip(normed, series)]
    val_seg = min(cfg.segment, min(len(v) for v in val_parts))
    tr = segments(train_parts, min(cfg.segment, min(len(t) for t in train_parts)), cfg.segment // 2)
    va = segments(val_parts, val_seg)
    print(f"training on {len(series)} series, {sum(len(s.raw) for s in series):,} rows; {len(features)} feature(s); "
          f"{len(tr)} train / {len(va)} validation segments; H={cfg.hidden}, K={cfg.components}")
    return fit(tr, va, len(features), cfg), cfg


def _write(args, out, name, features, weights, norm, mean, std, warmup, adapt, cfg, normed, series, prov, kinds,
           left_out, relation):
    """The bundle before calibration: manifest (with the detector_defaults of a multivariate model
    with fixed normalisation), weights, golden, representative inputs, and ``relation`` (the fitted
    relation look, relation.fit_relation's dict) as relation.npz unless it is None. ``name``: the bundle
    directory's final name (``out`` may be a temporary directory)."""
    from ..settings import write_model_defaults  # (~6 ms at import; calibrate imports it anyway)

    held = [n[s.split :] for n, s in zip(normed, series)]  # normalised held-out parts
    golden_len = min(256, min(len(h) for h in held))
    golden_x = np.stack([held[i % len(held)][:golden_len] for i in range(4)], axis=1)  # [T, 4, F]
    write_bundle(out, name=args.name or name, version=args.version, features=list(features), weights=weights,
                 norm_mode=norm, norm_mean=list(mean), norm_std=list(std),
                 calibration=default_calibration(len(features), warmup), golden_x=golden_x.astype(np.float32),
                 provenance=prov, description=args.description, input_clip=CLIP,
                 logvar_min=cfg.logvar_min, logvar_max=cfg.logvar_max)
    manifest = load_bundle(out).manifest
    manifest["normalisation"]["adapt"] = float(adapt)
    manifest["feature_kinds"] = kinds
    if left_out:
        manifest["left_out_features"] = left_out
    write_manifest(out, manifest)
    if norm == "fixed" and len(features) > 1:  # the training reference in use
        write_model_defaults(out, FIXED_DEFAULTS)
    rep_len = min(2048, min(len(h) for h in held))
    rep = np.stack([h[:rep_len] for h in held[:16]], axis=1).astype(np.float32)  # [T, B, F]
    save_npz(out / "representative.npz", {"x": rep})
    register_artifact(out, "representative.npz", purpose="int8 calibration inputs (normalised held-out runs from h = 0)")
    if relation is not None:
        write_relation(out, relation)


def _print_summary(out, build, features, norm, warmup, weights, result, prov, kinds) -> None:
    """``out``: the bundle's place; ``build``: the directory it is in now."""
    size = sum(f.stat().st_size for f in build.iterdir() if f.is_file())
    print()
    print(f"{'model':24s} {out}")
    print(f"{'features':24s} {len(features)} ({norm} normalisation, warm-up {warmup})")
    plain = [n for n in features if kinds[n]["kind"] == "continuous"]
    if plain:
        print(f"  continuous ({len(plain)}): {', '.join(plain)} - {HANDLING['continuous']}")
    for name in features:
        if kinds[name]["kind"] != "continuous":
            print(f"  {describe(name, kinds[name])}")
    print(f"{'hidden':24s} {result.model.gru.hidden_size}  ({sum(w.size for w in weights.values()):,} parameters)")
    print(f"{'epochs':24s} {result.epochs_run} (best {result.best_epoch})")
    print(f"{'train / val NLL':24s} {prov['final_train_nll']:.4f} / {prov['final_val_nll']:.4f} per value")
    print(f"{'bundle size':24s} {size:,} bytes")
    for w in prov["warnings"]:
        print(f"WARNING: {w}")


def leave_out_counters(features, series: list[Series], kinds: dict):
    """Counters out of the model: (features, series, kinds) without them, and {name: facts} left out.

    A counter's raw value grows without bound, so it leaves any training range and every later
    reading would look anomalous; its increments are not modelled (yet)."""
    out = {n: dict(kinds[n], reason="counter: its raw value grows without bound; not modelled")
           for n in features if kinds[n]["kind"] == "counter"}
    if not out or len(out) == len(features):
        return features, series, kinds, {}
    keep = [i for i, n in enumerate(features) if n not in out]
    series = [replace(s, raw=s.raw[:, keep]) for s in series]
    names = tuple(features[i] for i in keep)
    return names, series, {n: kinds[n] for n in names}, out


def jump_of(args) -> tuple[float, float, float] | None:
    """The jump inputs' (threshold, memory, floor) of ``args`` (--jump-inputs), or None."""
    return JUMP_DEFAULT if getattr(args, "jump_inputs", False) else None


class TrainError(ValueError):
    """A training run that cannot give a usable model (one line for the command to print)."""


def normalisation(args, features) -> tuple[str, int, float]:
    """(mode, warm-up readings, adapt rate) of ``args`` for ``features``: --norm, --warmup and --adapt
    or their defaults (stream for one feature, else fixed; warm-up 256 stream, 64 fixed)."""
    norm = args.norm or ("stream" if len(features) == 1 else "fixed")
    warmup = args.warmup if args.warmup is not None else (256 if norm == "stream" else 64)
    adapt = args.adapt if args.adapt is not None else (0.002 if norm == "stream" else 0.0)
    return norm, warmup, adapt


def train(args, features: tuple[str, ...], series: list[Series], command: str, work: Path | None = None) -> dict:
    """Train, write and calibrate the bundle for ``args.out`` in ``work`` (default: ``args.out``
    itself; the command builds it in a temporary sibling and moves it into place when this returns);
    returns calibrate()'s summary. TrainError: the fit diverged (non-finite weights)."""
    import torch

    from ..bundle import make_readable
    from .calibrate import calibrate
    from .card import write_card
    from .model import export_weights

    norm, warmup, adapt = normalisation(args, features)
    kinds = feature_kinds(features, [s.raw[: s.split] for s in series], per_series=norm == "stream")
    ext = extent(features, series, [s.ts for s in series])  # every column of the data, left out or not
    left_out = {}
    if args.counters == "leave-out":
        features, series, kinds, left_out = leave_out_counters(features, series, kinds)
    normed, mean, std, skip = normalise(series, norm, warmup, adapt, kinds, features, jump_of(args))
    result, cfg = _fit(args, features, normed, series, skip)
    relation = None  # the relation look: multivariate models with fixed normalisation
    if norm == "fixed" and len(features) > 1:
        relation = fit_relation([n[: s.split, : len(features)] for n, s in zip(normed, series)], features, kinds)
    weights = export_weights(result.model)
    if not all(np.isfinite(w).all() for w in weights.values()):
        decay = f", --weight-decay {args.weight_decay:g}" if args.weight_decay else ""
        raise TrainError(f"the fit diverged (weights NaN or inf at --lr {args.lr:g}{decay}): use a smaller --lr"
                         + (" or --weight-decay" if decay else ""))
    n_params = sum(w.size for w in weights.values())
    warnings = data_warnings(features, series, n_params, kinds)
    prov = _provenance(args, command, series, result, cfg, str(torch.__version__), ext, warnings)
    prov["warnings"] += fit_warnings(prov["final_train_nll"], prov["final_val_nll"])
    if args.counters == "leave-out" and all(kinds[n]["kind"] == "counter" for n in features):  # (none left out)
        prov["warnings"].append(f"every feature is a counter ({', '.join(features)}): modelled anyway, as with "
                                "--counters model (leaving them out would leave nothing to model)")
    out = Path(args.out)
    name = Path(os.path.abspath(out)).name  # (--out . or ..: the directory's name, not "" or "..")
    build = Path(work) if work is not None else out
    _write(args, build, name, features, weights, norm, mean, std, warmup, adapt, cfg, normed, series, prov,
           kinds, left_out, relation)
    summary = calibrate(build, series, target_rate=args.target_far, max_surprise=args.max_surprise,
                        learn_rate=getattr(args, "learn_far", None))
    try:
        from ..plot import plot_losses

        plot_losses(build / "loss_curve.png", result.train_loss, result.val_loss, f"{name}: {'mixture' if cfg.components > 1 else 'Gaussian'} NLL")
    except ImportError:
        pass
    write_card(build, ref=str(out))
    make_readable(build)
    _print_summary(out, build, features, norm, warmup, weights, result, prov, kinds)
    for name, facts in left_out.items():
        print(f"  left out: {describe(name, facts).split(' - ')[0]} - {facts['reason']} (--counters model keeps it)")
    return summary
