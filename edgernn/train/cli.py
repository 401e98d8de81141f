"""Train a model bundle from CSV recordings of normal operation (needs: pip install edgernn[train]).

Each CSV is one or more streams (see `edgernn replay --help` for the layouts). Every series is
split in time: the first 80 % trains, the last 20 % validates, calibrates the alert threshold for
the target false-alarm rate, and supplies the golden parity data. The bundle is written to --out
with a loss-curve PNG and a model card.

Normalisation: `stream` (default for one feature) learns each stream's mean/std during its
warm-up at run time, so the model works on any sensor without retraining; `fixed` (default for
several features) uses the training data's statistics.

examples:
  edgernn train normal.csv --out my_model
  edgernn train pump_*.csv --out pump_model --features temp,pressure,flow --norm fixed
  edgernn train a.csv b.csv --out m --hidden 16 --epochs 20 --seed 7 --target-far 1e-4
"""

from __future__ import annotations

import hashlib
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from ..recording import TIME_COLUMNS, STREAM_COLUMNS

LABEL_COLUMNS = ("anomaly", "changepoint", "label", "labels", "is_anomaly")


def add_arguments(p) -> None:
    p.add_argument("data", nargs="+", type=Path, help="CSV files of normal data, or directories of them")
    p.add_argument("--out", required=True, type=Path, help="bundle directory to write")
    p.add_argument("--features", help="comma-separated feature columns (default: every non-time, non-label column)")
    p.add_argument("--columns", help="map features to file columns: FEATURE=COLUMN[,...]")
    p.add_argument("--name", help="model name (default: the --out directory name)")
    p.add_argument("--version", default="1.0.0")
    p.add_argument("--hidden", type=int, default=32, help="GRU hidden size H (default 32)")
    p.add_argument("--norm", choices=("stream", "fixed"), help="normalisation (default: stream for 1 feature, else fixed)")
    p.add_argument("--warmup", type=int, default=None, help="readings per stream before scoring (default 64 fixed, 256 stream)")
    p.add_argument("--adapt", type=float, default=None, help="EW rate of stream normalisation after warm-up (default 0.002 stream)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--patience", type=int, default=4, help="early stopping patience in epochs")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--segment", type=int, default=512, help="readings per training segment")
    p.add_argument("--chunk", type=int, default=64, help="truncated BPTT length")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--target-far", type=float, default=1e-4, help="target false alerts per reading (default 1e-4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--description", default="")
    p.add_argument("--recalibrate", action="store_true",
                   help="keep the trained weights in --out; only refit the score tables and threshold on DATA "
                        "(no PyTorch needed)")


def _infer_features(path: Path) -> tuple[str, ...]:
    header = path.open(encoding="utf-8-sig").readline()
    delim = ";" if header.count(";") > header.count(",") else ","
    cols = [c.strip() for c in header.strip().split(delim)]
    skip = set(TIME_COLUMNS) | set(STREAM_COLUMNS) | set(LABEL_COLUMNS)
    feats = [c for c in cols if c.lower() not in skip]
    return tuple(feats) if len(feats) > 1 else ("value",)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _command() -> str:
    return "edgernn train " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["train"] else sys.argv[1:])


def recalibrate(args) -> int:
    """Refit the calibration of an existing bundle on new normal data (weights unchanged)."""
    from ..bundle import BundleError, load_bundle, write_manifest
    from ..recording import RecordingError, parse_columns
    from .calibrate import calibrate
    from .data import load_series

    try:
        bundle = load_bundle(args.out)
        series = load_series(args.data, bundle.features, parse_columns(args.columns), args.val_fraction)
    except (BundleError, RecordingError) as exc:
        print(f"edgernn train: {exc}", file=sys.stderr)
        return 2
    if not series:
        print("edgernn train: no usable series (each needs >= 50 complete rows)", file=sys.stderr)
        return 2
    summary = calibrate(args.out, series, target_rate=args.target_far)
    manifest = load_bundle(args.out).manifest
    manifest.setdefault("provenance", {})["calibration_command"] = _command()
    write_manifest(args.out, manifest)
    print(f"threshold {summary['threshold']:.12f} (tail p {summary['tail_p']:.2e}); "
          f"{summary['alerts']} false alert(s) in {summary['readings']:,} readings of normal data")
    return 0


def _expand(paths: list[Path]) -> list[Path]:
    """Directories stand for the sorted *.csv files in them."""
    out = []
    for p in paths:
        out.extend(sorted(p.glob("*.csv")) if p.is_dir() else [p])
    return out


def run(args) -> int:
    args.data = _expand(args.data)
    if args.recalibrate:
        return recalibrate(args)
    try:
        import torch
    except ImportError:
        print("edgernn train: needs PyTorch: pip install edgernn[train]", file=sys.stderr)
        return 2
    from ..bundle import register_artifact, write_bundle, write_manifest, load_bundle
    from ..fileio import save_npz
    from ..recording import RecordingError, parse_columns
    from ..scoring import default_calibration
    from .calibrate import calibrate
    from .data import fixed_normalise, load_series, segments, stream_normalise
    from .fit import FitConfig, fit
    from .model import export_weights

    t_start = time.monotonic()
    if args.threads:
        torch.set_num_threads(args.threads)
    for p in args.data:
        if not p.is_file():
            print(f"edgernn train: {p}: not found", file=sys.stderr)
            return 2
    features = tuple(f.strip() for f in args.features.split(",")) if args.features else _infer_features(args.data[0])
    norm = args.norm or ("stream" if len(features) == 1 else "fixed")
    warmup = args.warmup if args.warmup is not None else (256 if norm == "stream" else 64)
    adapt = args.adapt if args.adapt is not None else (0.002 if norm == "stream" else 0.0)
    try:
        series = load_series(args.data, features, parse_columns(args.columns), args.val_fraction)
    except RecordingError as exc:
        print(f"edgernn train: {exc}", file=sys.stderr)
        return 2
    if not series:
        print("edgernn train: no usable series (each needs >= 50 complete rows)", file=sys.stderr)
        return 2
    cfg = FitConfig(hidden=args.hidden, epochs=args.epochs, patience=args.patience, lr=args.lr,
                    segment=args.segment, chunk=args.chunk, seed=args.seed)
    clip = 10.0
    if norm == "stream":
        normed = [np.clip(stream_normalise(s.raw, warmup, adapt), -clip, clip) for s in series]
        mean, std = np.zeros(len(features)), np.ones(len(features))
        skip = warmup  # the warm-up readings are not what the model sees once scoring starts
    else:
        train_rows = np.concatenate([s.raw[: s.split] for s in series])
        mean, std = train_rows.mean(axis=0), np.maximum(train_rows.std(axis=0), 1e-6)
        normed = [np.clip(fixed_normalise(s.raw, mean, std), -clip, clip) for s in series]
        skip = 0
    train_parts = [n[skip : s.split] for n, s in zip(normed, series)]
    val_parts = [n[s.split :] for n, s in zip(normed, series)]
    val_seg = min(cfg.segment, min(len(v) for v in val_parts))
    tr = segments(train_parts, cfg.segment, cfg.segment // 2)
    va = segments(val_parts, val_seg)
    rows = sum(len(s.raw) for s in series)
    print(f"training on {len(series)} series, {rows:,} rows; features {', '.join(features)}; "
          f"normalisation {norm}; {len(tr)} train / {len(va)} validation segments; H={cfg.hidden}")
    result = fit(tr, va, len(features), cfg)
    weights = export_weights(result.model)

    # golden: 256 validation steps x 4 lanes; representative: long runs + cold starts for int8 calibration
    golden_len = min(256, val_seg)
    golden_x = np.stack([val_parts[i % len(val_parts)][:golden_len] for i in range(4)], axis=1)  # [T, 4, F]
    out = Path(args.out)
    provenance = {
        "command": _command(),
        "data": [{"file": p.name, "sha256": _sha(p), "rows": int(sum(len(s.raw) for s in series if s.name.startswith(p.name + ":")))} for p in args.data],
        "rows": int(rows), "series": len(series), "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
        "final_train_nll": round(result.train_loss[result.best_epoch - 1], 5),
        "final_val_nll": round(result.val_loss[result.best_epoch - 1], 5),
        "seed": args.seed, "torch": torch.__version__,
        "fit": {k: getattr(cfg, k) for k in ("hidden", "lr", "batch", "segment", "chunk", "burn_in", "clip_grad", "patience")},
    }
    cal = default_calibration(len(features), warmup)
    write_bundle(out, name=args.name or out.name, version=args.version, features=list(features), weights=weights,
                 norm_mode=norm, norm_mean=list(mean), norm_std=list(std), calibration=cal,
                 golden_x=golden_x.astype(np.float32), provenance=provenance, description=args.description,
                 input_clip=clip, logvar_min=cfg.logvar_min, logvar_max=cfg.logvar_max)
    manifest = load_bundle(out).manifest
    manifest["normalisation"]["adapt"] = float(adapt)
    write_manifest(out, manifest)
    rep_len = min(2048, min(len(v) for v in val_parts))
    rep = np.stack([v[:rep_len] for v in val_parts[:16]], axis=1).astype(np.float32)  # [T, B, F]
    save_npz(out / "representative.npz", {"x": rep})
    register_artifact(out, "representative.npz", purpose="int8 calibration inputs (normalised held-out runs from h = 0)")

    summary = calibrate(out, series, target_rate=args.target_far)
    try:
        from ..plot import plot_losses

        plot_losses(out / "loss_curve.png", result.train_loss, result.val_loss, f"{out.name}: Gaussian NLL")
    except ImportError:
        pass
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print()
    print(f"{'model':24s} {out}")
    print(f"{'features':24s} {', '.join(features)} ({norm} normalisation, warm-up {warmup})")
    print(f"{'hidden':24s} {cfg.hidden}  ({sum(w.size for w in weights.values()):,} parameters)")
    print(f"{'epochs':24s} {result.epochs_run} (best {result.best_epoch})")
    print(f"{'train / val NLL':24s} {provenance['final_train_nll']:.4f} / {provenance['final_val_nll']:.4f}")
    print(f"{'threshold (likelihood)':24s} {summary['threshold']:.12f} (tail p {summary['tail_p']:.2e})")
    print(f"{'false alerts (calib.)':24s} {summary['alerts']} in {summary['readings']:,} readings of normal data")
    print(f"{'bundle size':24s} {size:,} bytes")
    print(f"{'time':24s} {time.monotonic() - t_start:.0f} s")
    return 0
