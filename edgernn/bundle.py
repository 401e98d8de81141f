"""Model bundle: ``manifest.yaml`` + ``weights.npz`` (+ ``golden.npz`` and exported artifacts).

The bundle directory is the one canonical model format. Loading verifies the schema, the sha256 of
every artifact the manifest lists, and every weight's name and shape; it never unpickles
(``np.load(..., allow_pickle=False)``, ``yaml.safe_load``). A bad bundle raises ``BundleError``
with one line naming the file and the field.
"""

from __future__ import annotations

import hashlib
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .backends.base import check_weights, components, has_jump, pred_width, with_random_jumps
from .fileio import atomic_write, save_npz
from .logs import first_line
from .scoring import KERNEL_TABLES, OPTIONAL_TABLES
from .settings import BY_KEY, bounds_text, in_bounds
from .yamlpos import ConfigError, yaml_lines

SCHEMA_VERSION = 1
NORMALISATION_MODES = ("stream", "fixed")
# manifest feature_kinds: {name: {kind, distinct, ...}} as edgernn/train/features.py classifies them
FEATURE_KINDS = ("constant", "near-constant", "binary", "counter", "quantised", "continuous")
STUCK_KINDS = ("continuous", "counter")  # kinds where a run of exact repeats is news (the stuck look)
# kinds left out of the level and spread looks: a stream's EW statistics of their level and spread are
# degenerate (zero variance, or two values), so a young stream's first change reads as extreme; a
# change of theirs is scored by the instant / peak looks and, with fixed normalisation, the training reference
SHAPELESS_KINDS = ("constant", "near-constant", "binary")
RELATION_FILE = "relation.npz"  # the relation look's model (train/relation.py), an optional artifact
FILE_MODE, DIR_MODE = 0o644, 0o755  # bundles are read by services running as other users
MAX_MANIFEST_BYTES = 64 << 20  # manifest.yaml read at most (the shipped ones: 17 and 48 kB)
# What the arrays of an .npz may take once read (read_npz): at most NPZ_MIN_ALLOWANCE, or NPZ_EXPANSION
# times the file's size on disk when that is more. The bundle's .npz files are written by np.savez,
# which stores (does not compress): their arrays take what the file takes (the shipped ones: 19 to 174
# kB), so no file edgernn writes comes near the limit -- not even a model with H = 1024 and many
# features, whose files can pass any fixed figure. A deflated member expands up to ~1000x (a 4 MB file
# of zeros is a 4 GB array): such a file is refused before np.load allocates anything, so reading an
# .npz never takes more memory than an uncompressed file of its size would (or 64 MiB).
NPZ_MIN_ALLOWANCE = 64 << 20
NPZ_EXPANSION = 4


class BundleError(ValueError):
    """A model bundle is missing, tampered with or malformed. The message is one line."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Calibration:
    """How raw scores become a likelihood, and where the alert threshold sits (see scoring.py)."""

    threshold: float  # alert when likelihood >= threshold
    target_false_alarm_rate: float  # alerts per reading on normal data the threshold was chosen for
    warmup: int  # readings per stream before scores count (normalisation + hidden state)
    smoothing: float  # EWMA weight of the smoothed score
    tables: dict  # look name -> tail table {x, log10_sf, tail_scale} (see scoring.LOOKS)


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict
    name: str
    version: str
    features: tuple[str, ...]
    units: tuple[str, ...]
    norm_mode: str  # "stream": learned per stream during warm-up; "fixed": mean/std below
    norm_mean: np.ndarray  # float64[F]
    norm_std: np.ndarray  # float64[F]
    hidden: int
    logvar_min: float
    logvar_max: float
    input_clip: float
    calibration: Calibration
    weights: dict[str, np.ndarray] = field(repr=False)
    sha256: str = ""  # sha256 of weights.npz: the model's identity (state snapshots check it)
    # relation.npz (edgernn train, F > 1): features int64[U] (the features it models), coef
    # float64[U, U] (row i: feature i from the others at the same reading, in normalised units; zero
    # diagonal), resid_std float64[U] (each one's residual sd on the training data); None without it
    relation: dict | None = field(default=None, repr=False)

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def components(self) -> int:
        """K, the head's Gaussians per feature (1: the Gaussian head)."""
        return components(self.weights)

    @property
    def jump(self) -> bool:
        """A model with jump inputs: its GRU reads x = [c | j], 2F entries (backends/base.py)."""
        return has_jump(self.weights)

    @property
    def input_width(self) -> int:
        """Entries of the GRU's input x per reading: F, or 2F with jump inputs."""
        return self.n_features * (2 if self.jump else 1)

    def artifact_path(self, name: str) -> Path | None:
        """Path of a listed, verified artifact, or None when the manifest does not list it."""
        if name not in self.manifest.get("artifacts", {}):
            return None
        return self.path / name

    def golden(self) -> dict[str, np.ndarray]:
        """golden.npz, checked: x [T, B, F] (2F with jump inputs), h0 [B, H], pred [T, B, P], h [T, B, H], all finite."""
        path = self.artifact_path("golden.npz")
        if path is None:
            raise BundleError(f"{self.path}/manifest.yaml: artifacts: golden.npz is not listed")
        g = read_npz(path, ("x", "h0", "pred", "h"), "the golden rollout")
        F, H, P = self.input_width, self.hidden, pred_width(self.n_features, self.components)
        T, B = g["x"].shape[:2] if g["x"].ndim == 3 else (0, 0)
        want = {"x": (T, B, F), "h0": (B, H), "pred": (T, B, P), "h": (T, B, H)}
        if T < 1 or B < 1 or any(g[k].shape != shape for k, shape in want.items()):
            raise BundleError(f"{path}: needs x [T, B, F={F}], h0 [B, H={H}], pred [T, B, {P}] and h [T, B, H] "
                              f"with T, B >= 1; got " + ", ".join(f"{k} {list(g[k].shape)}" for k in want))
        for k in want:
            if not np.isfinite(g[k]).all():
                raise BundleError(f"{path}: {k}: contains NaN or inf")
        return g


def read_npz(path: Path, keys: tuple[str, ...] | None, what: str) -> dict[str, np.ndarray]:
    """The numeric arrays of an .npz file (``keys``: those, each required; None: all), never
    unpickled. A one-line BundleError naming the file when it is not an .npz archive (text, a
    bare .npy), cannot be read, lacks a key or holds something other than numbers."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
    except OSError as exc:
        raise BundleError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    if magic != b"PK":  # np.load would take anything else for a .npy or a pickle
        raise BundleError(f"{path}: cannot read {what}: not an .npz (zip) archive")
    try:
        _check_npz_members(path, what)  # a zip bomb or a member that is not an .npy: before np.load
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in keys or () if k not in data.files]
            if missing:
                raise BundleError(f"{path}: {what}: missing array(s) {', '.join(missing)} (has: "
                                  f"{', '.join(data.files) or 'none'})")
            arrays = {k: np.asarray(data[k]) for k in (keys or data.files)}
    except BundleError:
        raise
    except Exception as exc:  # zipfile / format / pickled-object errors: one line, no traceback
        first = first_line(exc)
        raise BundleError(f"{path}: cannot read {what}: {first}") from None
    for k, a in arrays.items():
        if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
            raise BundleError(f"{path}: {k}: expected numbers, got dtype {a.dtype}")
    return arrays


def _check_npz_members(path: Path, what: str) -> None:
    """Refuse (one-line BundleError) an .npz whose members are not all .npy arrays, whose arrays would
    take more than NPZ_MIN_ALLOWANCE / NPZ_EXPANSION allow (the zip directory's uncompressed sizes), or
    whose member's .npy header describes more or fewer bytes than the directory lists: zipfile stops a
    member's stream at the listed size, so each array np.load reads is then exactly what was counted
    here (a directory that lies about a larger stream cannot make it read more). Only the directory and
    each member's header are read; zipfile's own errors (not a zip, truncated) propagate."""
    with zipfile.ZipFile(path) as zf:
        members = zf.infolist()
        for info in members:
            if not info.filename.endswith(".npy"):
                raise BundleError(f"{path}: cannot read {what}: member {info.filename!r:.80} is not an .npy array "
                                  "(an .npz holds only .npy members)")
        size = path.stat().st_size
        total, allowed = sum(info.file_size for info in members), max(NPZ_MIN_ALLOWANCE, NPZ_EXPANSION * size)
        if total > allowed:
            raise BundleError(f"{path}: cannot read {what}: its arrays would take {total:,} bytes, more than the "
                              f"{allowed:,} allowed for a file of {size:,} bytes (a zip bomb?)")
        for info in members:
            with zf.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                if version not in ((1, 0), (2, 0), (3, 0)):
                    continue  # np.load refuses the member before it reads its data
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)  # (2, 0) and (3, 0): same layout
                shape, _fortran, dtype = read_header(fh)
                listed, described = info.file_size, fh.tell() + math.prod(shape) * dtype.itemsize
            if not dtype.hasobject and described != listed:  # (object arrays: np.load refuses them unread)
                raise BundleError(f"{path}: cannot read {what}: member {info.filename!r:.80}: its .npy header "
                                  f"describes {described:,} bytes but the archive lists {listed:,}: file was "
                                  "modified or corrupted")


def _get(manifest: dict, dotted: str, kind, where: str, default: Any = ...):
    node: Any = manifest
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is not ...:
                return default
            raise BundleError(f"{where}: {dotted}: missing")
        node = node[part]
    if kind is float and isinstance(node, int) and not isinstance(node, bool):
        try:
            node = float(node)
        except OverflowError:  # an int beyond float64: inf (the range checks refuse it)
            node = math.inf if node > 0 else -math.inf
    if not isinstance(node, kind) or isinstance(node, bool) and kind is not bool:
        raise BundleError(f"{where}: {dotted}: expected {getattr(kind, '__name__', kind)}, got {node!r:.60}")
    return node


def _real(manifest: dict, dotted: str, where: str, default: Any = ..., *, gt: float | None = None,
          ge: float | None = None, lt: float | None = None, le: float | None = None) -> float | None:
    """``_get(..., float)`` that must also be finite and within the bounds given (a missing key with
    ``default=None``: None)."""
    value = _get(manifest, dotted, float, where, default)
    if value is not None and not in_bounds(value, ge, gt, le, lt):
        within = bounds_text(ge, gt, le, lt)
        raise BundleError(f"{where}: {dotted}: {value!r} is out of range: must be a finite number"
                          + (f" {within}" if within else ""))
    return value


def _numbers(manifest: dict, dotted: str, where: str, default: Any = ...) -> np.ndarray:
    """A manifest list of finite numbers as float64[n] (strings, mappings, nested lists, NaN, inf: BundleError)."""
    value = _get(manifest, dotted, list, where, default)
    for i, v in enumerate(value):
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise BundleError(f"{where}: {dotted}[{i}]: expected a number, got {v!r:.60}")
    try:
        out = np.asarray(value, dtype=np.float64)
    except OverflowError:  # an int beyond float64
        out = np.full(len(value), np.inf)
    if not np.isfinite(out).all():
        raise BundleError(f"{where}: {dotted}: needs finite values (no NaN or inf)")
    return out


def _table(manifest: dict, key: str, where: str) -> dict:
    dotted = f"calibration.tables.{key}"
    _get(manifest, dotted, dict, where)
    xs = _numbers(manifest, f"{dotted}.x", where, [])
    ls = _numbers(manifest, f"{dotted}.log10_sf", where, [])
    if xs.size < 2 or xs.shape != ls.shape or not np.all(np.diff(xs) >= 0):
        raise BundleError(f"{where}: {dotted}: needs increasing x and log10_sf of equal length >= 2")
    if not (np.all(ls < 0) and np.all(np.diff(ls) <= 0)):
        raise BundleError(f"{where}: {dotted}.log10_sf: needs negative, non-increasing values")
    return {"x": xs, "log10_sf": ls, "tail_scale": _real(manifest, f"{dotted}.tail_scale", where, gt=0.0)}


def _is(path: Path, kind: str) -> bool:
    """``path.is_dir()`` / ``path.is_file()`` (``kind``), an OSError beyond "no such file" (a name
    too long, permissions) a one-line BundleError naming the path."""
    try:
        return path.is_dir() if kind == "dir" else path.is_file()
    except OSError as exc:
        raise BundleError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _verify_artifacts(root: Path, manifest: dict, where: str) -> dict:
    """Every listed artifact must exist and match its sha256 before anything is parsed."""
    artifacts = _get(manifest, "artifacts", dict, where)
    for name, meta in artifacts.items():
        if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
            raise BundleError(f"{where}: artifacts.{name}.sha256: missing")
        if "/" in name or name.startswith("."):
            raise BundleError(f"{where}: artifacts.{name}: must be a plain file name inside the bundle")
        apath = root / name
        if not _is(apath, "file"):
            raise BundleError(f"{apath}: listed in manifest.yaml but missing")
        size, listed = apath.stat().st_size, meta.get("size_bytes")
        if isinstance(listed, int) and not isinstance(listed, bool) and listed != size:  # before reading it all
            raise BundleError(f"{apath}: sha256 mismatch (file {size:,} bytes, manifest lists {listed:,} bytes: "
                              "its sha256 cannot match): file was modified or corrupted")
        try:
            actual = sha256_file(apath)
        except OSError as exc:  # unreadable (permissions: a service runs as another user), an I/O error
            raise BundleError(f"{apath}: cannot read: {exc.strerror or exc}") from None
        if actual != meta["sha256"]:
            raise BundleError(f"{apath}: sha256 mismatch (manifest {meta['sha256'][:12]}…, file {actual[:12]}…): file was modified or corrupted")
    if "weights.npz" not in artifacts:
        raise BundleError(f"{where}: artifacts.weights.npz: missing")
    return artifacts


def _features(manifest: dict, F: int, where: str) -> tuple[list[str], list[str]]:
    """(names, units) of the manifest's features; F of them, distinct."""
    feats = _get(manifest, "features", list, where)
    names, units = [], []
    for i, feat in enumerate(feats):
        if not isinstance(feat, dict) or not isinstance(feat.get("name"), str):
            raise BundleError(f"{where}: features[{i}].name: missing")
        names.append(feat["name"])
        units.append(str(feat.get("unit", "")))
    if len(names) != F:
        raise BundleError(f"{where}: features: {len(names)} listed but weights.npz has F={F}")
    if len(set(names)) != len(names):
        raise BundleError(f"{where}: features: duplicate feature names")
    return names, units


def _calibration(manifest: dict, where: str) -> Calibration:
    """The manifest's calibration block, checked (threshold_surprise, when present, too)."""
    cal = Calibration(
        threshold=_get(manifest, "calibration.threshold", float, where),
        target_false_alarm_rate=_real(manifest, "calibration.target_false_alarm_rate", where, gt=0.0, lt=1.0),
        warmup=_get(manifest, "calibration.warmup", int, where),
        smoothing=_get(manifest, "calibration.smoothing", float, where),
        tables={look: _table(manifest, look, where) for look in KERNEL_TABLES  # peak, reference: optional (F > 1)
                if look not in OPTIONAL_TABLES or _get(manifest, f"calibration.tables.{look}", dict, where, None) is not None},
    )
    if not 0.0 < cal.threshold <= 1.0:
        raise BundleError(f"{where}: calibration.threshold: must be in (0, 1]")
    if not 0.0 < cal.smoothing <= 1.0:
        raise BundleError(f"{where}: calibration.smoothing: must be in (0, 1]")
    if cal.warmup < 0:
        raise BundleError(f"{where}: calibration.warmup: must be 0 or more readings (got {cal.warmup})")
    for key in ("threshold_surprise", "learn_surprise"):
        surprise = _get(manifest, f"calibration.{key}", float, where, None)
        if surprise is not None and not (0.0 < surprise < float("inf")):
            raise BundleError(f"{where}: calibration.{key}: must be a positive number (-log10 p)")
    return cal


def _check_reference_gate(manifest: dict, F: int, where: str) -> None:
    """calibration.reference_gate (optional; train.calibrate.reference_gate): F finite values >= 0."""
    gate = _get(manifest, "calibration.reference_gate", list, where, None)
    if gate is None:
        return
    try:
        ok = len(gate) == F and all(math.isfinite(float(g)) and float(g) >= 0.0 for g in gate)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise BundleError(f"{where}: calibration.reference_gate: needs {F} finite values >= 0")


def _check_kinds(manifest: dict, names: list[str], where: str) -> None:
    """feature_kinds (optional): a mapping of the bundle's features to known kinds."""
    kinds = _get(manifest, "feature_kinds", dict, where, {})
    for name, facts in kinds.items():
        if name not in names:
            raise BundleError(f"{where}: feature_kinds.{name}: not one of the features")
        if not isinstance(facts, dict) or facts.get("kind") not in FEATURE_KINDS:
            raise BundleError(f"{where}: feature_kinds.{name}.kind: expected one of {', '.join(FEATURE_KINDS)}")


def _check_head(manifest: dict, K: int, where: str) -> tuple[float, float]:
    """head.type / head.components must say what the weights hold (K Gaussians per feature);
    returns (head.logvar_min, head.logvar_max): finite, min < max."""
    kind = _get(manifest, "head.type", str, where, "gaussian-residual")
    said = 1 if kind == "gaussian-residual" else _get(manifest, "head.components", int, where, 0) if kind == "mixture" else -1
    if said == -1:
        raise BundleError(f"{where}: head.type: {kind!r}, expected gaussian-residual or mixture")
    if said != K:
        raise BundleError(f"{where}: head: {kind} with {said} component(s) but weights.npz has K={K}")
    lo, hi = _real(manifest, "head.logvar_min", where), _real(manifest, "head.logvar_max", where)
    if not lo < hi:
        raise BundleError(f"{where}: head.logvar_min: {lo!r} must be below head.logvar_max ({hi!r})")
    return lo, hi


def _normalisation(manifest: dict, F: int, where: str) -> tuple[str, np.ndarray, np.ndarray]:
    """(mode, mean float64[F], std float64[F]) of the normalisation block: finite, std > 0, and
    normalisation.adapt (optional) in the range of the detector's ``adapt`` setting (settings.py)."""
    mode = _get(manifest, "normalisation.mode", str, where)
    if mode not in NORMALISATION_MODES:
        raise BundleError(f"{where}: normalisation.mode: {mode!r}, expected one of {NORMALISATION_MODES}")
    mean = _numbers(manifest, "normalisation.mean", where, [0.0] * F)
    std = _numbers(manifest, "normalisation.std", where, [1.0] * F)
    for key, values in (("mean", mean), ("std", std)):
        if values.shape != (F,):
            raise BundleError(f"{where}: normalisation.{key}: needs {F} values, got {values.size}")
    if not np.all(std > 0):
        raise BundleError(f"{where}: normalisation.std: needs values > 0")
    adapt = _get(manifest, "normalisation.adapt", float, where, None)
    if adapt is not None and (problem := BY_KEY["adapt"].problem(adapt)):  # the detector's setting it becomes
        raise BundleError(f"{where}: normalisation.adapt: {problem}")
    return mode, mean, std


def _read_manifest(mpath: Path):
    """manifest.yaml parsed through the config files' loader (duplicate keys, alias bombs and deep
    nesting are one line too); a file above MAX_MANIFEST_BYTES is refused before it is read."""
    where = str(mpath)
    try:
        size = mpath.stat().st_size
        if size > MAX_MANIFEST_BYTES:  # (a manifest holds at most yamlpos.MAX_VALUES values anyway)
            raise BundleError(f"{where}: {size / 2**20:,.0f} MiB, more than the {MAX_MANIFEST_BYTES >> 20} MiB "
                              "a manifest may have: not a bundle's manifest.yaml")
        return yaml_lines(mpath.read_text(encoding="utf-8"), where)[0]
    except ConfigError as exc:
        raise BundleError(exc.messages[0]) from None
    except UnicodeDecodeError as exc:
        raise BundleError(f"{where}: not valid YAML: {first_line(exc)}") from None
    except OSError as exc:  # unreadable (permissions: a service runs as another user), an I/O error
        raise BundleError(f"{where}: cannot read: {exc.strerror or exc}") from None


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Load and verify a bundle directory. Raises ``BundleError`` (one line) when anything is off."""
    root = Path(path)
    mpath = root / "manifest.yaml"
    where = str(mpath)
    if not _is(root, "dir"):
        raise BundleError(f"{root}: model bundle directory not found")
    if not _is(mpath, "file"):
        raise BundleError(f"{where}: not found (a bundle needs manifest.yaml)")
    manifest = _read_manifest(mpath)
    if not isinstance(manifest, dict):
        raise BundleError(f"{where}: expected a mapping at the top level")
    schema = _get(manifest, "schema", int, where)
    if schema != SCHEMA_VERSION:
        raise BundleError(f"{where}: schema: version {schema} is not supported (this edgernn reads {SCHEMA_VERSION})")

    artifacts = _verify_artifacts(root, manifest, where)

    wpath = root / "weights.npz"
    with np.errstate(over="ignore"):  # float64 beyond float32: inf, refused by check_weights
        weights = {k: a.astype(np.float32) for k, a in read_npz(wpath, None, "weights").items()}
    try:
        F, H = check_weights(weights)
    except ValueError as exc:
        raise BundleError(f"{wpath}: {exc}") from None

    names, units = _features(manifest, F, where)
    logvar_min, logvar_max = _check_head(manifest, components(weights), where)

    hidden = _get(manifest, "cell.hidden", int, where)
    if hidden != H:
        raise BundleError(f"{where}: cell.hidden: {hidden} but weights.npz has H={H}")
    cell_type = _get(manifest, "cell.type", str, where)
    if cell_type != "gru":
        raise BundleError(f"{where}: cell.type: {cell_type!r} is not supported (only 'gru')")

    mode, mean, std = _normalisation(manifest, F, where)
    cal = _calibration(manifest, where)
    _check_reference_gate(manifest, F, where)
    _check_kinds(manifest, names, where)
    relation = _relation(root, F) if RELATION_FILE in artifacts else None

    return Bundle(
        path=root,
        manifest=manifest,
        name=_get(manifest, "name", str, where),
        version=str(_get(manifest, "version", (str, int, float), where)),
        features=tuple(names),
        units=tuple(units),
        norm_mode=mode,
        norm_mean=mean,
        norm_std=std,
        hidden=H,
        logvar_min=logvar_min,
        logvar_max=logvar_max,
        input_clip=_real(manifest, "input_clip", where, 10.0, gt=0.0),
        calibration=cal,
        weights=weights,
        sha256=artifacts["weights.npz"]["sha256"],
        relation=relation,
    )


def _relation(root: Path, F: int) -> dict:
    """relation.npz, checked: U distinct feature indices in [0, F), coef [U, U] finite with a zero
    diagonal, resid_std [U] finite and > 0 (BundleError naming the file otherwise)."""
    path = root / RELATION_FILE
    rel = read_npz(path, ("features", "coef", "resid_std"), "the relation")
    idx, coef, se = rel["features"].astype(np.int64), rel["coef"].astype(np.float64), rel["resid_std"].astype(np.float64)
    U = len(idx)
    ok = (idx.ndim == 1 and 2 <= U <= F and len(set(idx.tolist())) == U and idx.min() >= 0 and idx.max() < F
          and coef.shape == (U, U) and se.shape == (U,) and np.isfinite(coef).all() and np.isfinite(se).all()
          and (se > 0).all() and not np.diag(coef).any())
    if not ok:
        raise BundleError(f"{path}: the relation needs 2..{F} distinct feature indices, coef [U, U] finite with a "
                          "zero diagonal and resid_std [U] finite and > 0")
    return {"features": idx, "coef": coef, "resid_std": se}


def register_artifact(bundle_dir: str | os.PathLike, name: str, **meta) -> None:
    """Record (or refresh) ``name`` in the manifest with its sha256, size and any extra metadata."""
    register_artifacts(bundle_dir, [(name, meta)])


def register_artifacts(bundle_dir: str | os.PathLike, entries: list[tuple[str, dict]]) -> None:
    """``register_artifact`` for each ``(name, meta)`` in turn, in one (atomic) write of the manifest:
    the same manifest as one call each, but never one that lists some of the files and not the rest."""
    root = Path(bundle_dir)
    mpath = root / "manifest.yaml"
    manifest = yaml.safe_load(mpath.read_text(encoding="utf-8"))
    for name, meta in entries:
        entry = dict(manifest.get("artifacts", {}).get(name, {}))
        entry.update(meta)
        (root / name).chmod(FILE_MODE)
        entry["sha256"] = sha256_file(root / name)
        entry["size_bytes"] = (root / name).stat().st_size
        manifest.setdefault("artifacts", {})[name] = entry
    write_manifest(root, manifest)


def write_manifest(bundle_dir: str | os.PathLike, manifest: dict) -> None:
    text = yaml.safe_dump(_plain(manifest), sort_keys=False, default_flow_style=None, width=100)
    atomic_write(Path(bundle_dir) / "manifest.yaml", text.encode("utf-8"))
    (Path(bundle_dir) / "manifest.yaml").chmod(FILE_MODE)


def make_readable(bundle_dir: str | os.PathLike) -> None:
    """Every file of the bundle 0644 and the directory 0755, as the shipped bundles (temp files
    are created 0600; a daemon running as another user must be able to read the bundle)."""
    root = Path(bundle_dir)
    root.chmod(DIR_MODE)
    for path in root.iterdir():
        if path.is_file() and not path.name.startswith("."):
            path.chmod(FILE_MODE)


def make_golden(weights: dict[str, np.ndarray], x: np.ndarray, batch: int = 4) -> dict[str, np.ndarray]:
    """Reference outputs of the numpy cell for ``x: float32[T, B, F]`` starting from h = 0.

    golden.npz holds ``x [T, B, F]``, ``h0 [B, H]``, and the reference rollout ``pred [T, B, 2F]``,
    ``h [T, B, H]`` where step t is fed ``h[t-1]``. Other backends are checked one step at a time
    (fed the reference h) and over the whole rollout (fed their own h).
    """
    from .backends.numpy_gru import NumpyGRU

    cell = NumpyGRU(weights)
    x = np.asarray(x, dtype=np.float32)
    T, B, _ = x.shape
    h = np.zeros((B, cell.hidden), np.float32)
    h0 = h.copy()
    preds, hs = [], []
    for t in range(T):
        pred, h = cell.step(x[t], h)
        preds.append(pred.copy())
        hs.append(h.copy())
    return {"x": x, "h0": h0, "pred": np.stack(preds), "h": np.stack(hs)}


def write_bundle(
    out_dir: str | os.PathLike,
    *,
    name: str,
    version: str,
    features: list[str],
    weights: dict[str, np.ndarray],
    units: list[str] | None = None,
    norm_mode: str = "stream",
    norm_mean: list[float] | None = None,
    norm_std: list[float] | None = None,
    calibration: dict | None = None,
    golden_x: np.ndarray | None = None,
    provenance: dict | None = None,
    description: str = "",
    logvar_min: float = -9.0,
    logvar_max: float = 6.0,
    input_clip: float = 10.0,
) -> Path:
    """Write a complete, loadable bundle (manifest, weights, golden) and return its directory.

    ``calibration`` defaults to ``scoring.default_calibration(F)`` (an uncalibrated chi-square
    assumption); the trainer replaces it with tables fitted on held-out normal data.
    """
    from .scoring import default_calibration

    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(DIR_MODE)
    F, H = check_weights(weights)
    save_npz(root / "weights.npz", {k: np.asarray(v, np.float32) for k, v in weights.items()})
    if golden_x is None:
        rng = np.random.default_rng(0)
        golden_x = rng.standard_normal((256, 4, F)).astype(np.float32)
        if has_jump(weights):  # and j in its range [0, 1]
            golden_x = with_random_jumps(golden_x, rng)
    save_npz(root / "golden.npz", make_golden(weights, golden_x))
    cal = calibration or default_calibration(F)
    manifest = {
        "schema": SCHEMA_VERSION,
        "name": name,
        "version": version,
        "description": description,
        "features": [{"name": f, "unit": u} for f, u in zip(features, units or [""] * F)],
        "normalisation": {
            "mode": norm_mode,
            "mean": [float(v) for v in (norm_mean if norm_mean is not None else [0.0] * F)],
            "std": [float(v) for v in (norm_std if norm_std is not None else [1.0] * F)],
        },
        "cell": {"type": "gru", "hidden": H, "gates": "pytorch-rzn", "weights": "by name (see edgernn/backends/base.py)",
                 **({"inputs": "c | j: the normalised readings and their jump rate (weights in.jump: threshold sd, "
                               "memory readings, log floor)"} if has_jump(weights) else {})},
        "head": _head(components(weights), logvar_min, logvar_max),
        "input_clip": float(input_clip),
        "calibration": _plain(cal),
        "artifacts": {},
        "provenance": _plain(provenance or {}),
    }
    write_manifest(root, manifest)
    register_artifacts(root, [("weights.npz", {}), ("golden.npz", {"tolerance": 1e-5, "steps": int(golden_x.shape[0])})])
    return root


def _head(K: int, logvar_min: float, logvar_max: float) -> dict:
    """The manifest's head: block (K = 1: the Gaussian head as it always was)."""
    kind = {"type": "gaussian-residual"} if K == 1 else {"type": "mixture", "components": int(K)}
    return {**kind, "logvar_min": float(logvar_min), "logvar_max": float(logvar_max)}


def _plain(obj):
    """numpy scalars/arrays -> plain Python for YAML."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_plain(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, str):
        return str(obj)  # str subclasses (e.g. torch's version object) -> plain str
    return obj
