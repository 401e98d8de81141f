"""Model bundle: write/load round trip, and every way a bundle can be broken -> one-line BundleError
naming the file and the field. Nothing is ever unpickled."""

from __future__ import annotations

import io
import pathlib
import shutil

import numpy as np
import pytest
import yaml
from unit_helpers import random_weights

from edgernn.backends.numpy_gru import NumpyGRU
from edgernn.bundle import BundleError, load_bundle, register_artifact, sha256_file, write_bundle


@pytest.fixture
def bdir(tiny_bundle):
    return tiny_bundle(F=2, H=8, seed=1, fresh=True)


def _manifest(d):
    return yaml.safe_load((d / "manifest.yaml").read_text())


def _write_manifest(d, m):
    (d / "manifest.yaml").write_text(yaml.safe_dump(m, sort_keys=False))


def _refused(d, *needles) -> str:
    with pytest.raises(BundleError) as info:
        load_bundle(d)
    msg = str(info.value)
    assert "\n" not in msg.strip(), f"not one line: {msg!r}"
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    return msg


def test_round_trip(tmp_path):
    w = random_weights(2, 8, seed=9)
    out = write_bundle(tmp_path / "b", name="rt", version="1.2.3", features=["temp", "flow"], units=["C", "l/s"],
                       weights=w, norm_mode="fixed", norm_mean=[20.0, 3.0], norm_std=[2.0, 0.5],
                       provenance={"command": "test"}, description="round trip")
    b = load_bundle(out)
    assert (b.name, b.version, b.features, b.units) == ("rt", "1.2.3", ("temp", "flow"), ("C", "l/s"))
    assert (b.n_features, b.hidden, b.norm_mode) == (2, 8, "fixed")
    np.testing.assert_array_equal(b.norm_mean, [20.0, 3.0])
    np.testing.assert_array_equal(b.norm_std, [2.0, 0.5])
    assert set(b.weights) == set(w)
    for k in w:
        np.testing.assert_array_equal(b.weights[k], w[k])
        assert b.weights[k].dtype == np.float32
    assert b.sha256 == sha256_file(out / "weights.npz")
    assert 0.0 < b.calibration.threshold < 1.0 and b.calibration.warmup > 0
    assert b.manifest["provenance"]["command"] == "test"
    # golden.npz is the numpy cell's own rollout from h0
    g = b.golden()
    cell = NumpyGRU(b.weights)
    h = g["h0"]
    for t in range(g["x"].shape[0]):
        pred, h = cell.step(g["x"][t], h)
        np.testing.assert_allclose(pred, g["pred"][t], atol=1e-6)
        np.testing.assert_allclose(h, g["h"][t], atol=1e-6)


def test_loading_twice_gives_the_same_identity(bdir):
    a, b = load_bundle(bdir), load_bundle(bdir)
    assert a.sha256 == b.sha256 and a.calibration.threshold == b.calibration.threshold


def test_tampered_weights_bytes(bdir):
    data = bytearray((bdir / "weights.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bdir / "weights.npz").write_bytes(bytes(data))
    _refused(bdir, "weights.npz", "sha256")


def test_tampered_golden_bytes(bdir):
    with open(bdir / "golden.npz", "ab") as fh:
        fh.write(b"\0")
    _refused(bdir, "golden.npz", "sha256")


def test_missing_manifest(bdir):
    (bdir / "manifest.yaml").unlink()
    _refused(bdir, "manifest.yaml")


def test_missing_directory(tmp_path):
    _refused(tmp_path / "nope", "nope")


def test_bad_yaml(bdir):
    (bdir / "manifest.yaml").write_text("schema: 1\nname: [unclosed\n  features: {\n")
    _refused(bdir, "manifest.yaml", "YAML")


def test_yaml_python_tags_are_not_executed(bdir, tmp_path):
    marker = tmp_path / "pwned"
    text = (bdir / "manifest.yaml").read_text()
    (bdir / "manifest.yaml").write_text(text + f"evil: !!python/object/apply:os.system ['touch {marker}']\n")
    _refused(bdir, "manifest.yaml")
    assert not marker.exists()


def test_wrong_schema_version(bdir):
    m = _manifest(bdir)
    m["schema"] = 99
    _write_manifest(bdir, m)
    _refused(bdir, "manifest.yaml", "schema", "99")


@pytest.mark.parametrize("dotted", ["calibration.threshold", "calibration.warmup", "cell.hidden", "features",
                                    "normalisation.mode", "name"])
def test_missing_key(bdir, dotted):
    m = _manifest(bdir)
    node = m
    *parents, last = dotted.split(".")
    for p in parents:
        node = node[p]
    del node[last]
    _write_manifest(bdir, m)
    _refused(bdir, "manifest.yaml", dotted)


def test_wrong_type(bdir):
    m = _manifest(bdir)
    m["calibration"]["threshold"] = "high"
    _write_manifest(bdir, m)
    _refused(bdir, "manifest.yaml", "calibration.threshold")


def test_threshold_out_of_range(bdir):
    m = _manifest(bdir)
    m["calibration"]["threshold"] = 1.5
    _write_manifest(bdir, m)
    _refused(bdir, "manifest.yaml", "calibration.threshold")


def test_manifest_beyond_a_config_files_yaml_is_one_line(bdir):
    # (3,000-deep nesting: a RecursionError traceback from yaml.safe_load; a duplicate key: the last won)
    text = (bdir / "manifest.yaml").read_text()
    (bdir / "manifest.yaml").write_text(text + "deep: " + "[" * 3000 + "]" * 3000 + "\n")
    _refused(bdir, "manifest.yaml", "nested deeper than")
    (bdir / "manifest.yaml").write_text(text + "name: other\n")
    _refused(bdir, "manifest.yaml", "name: duplicate key")


def test_negative_warmup(bdir):
    # (edgernn train --warmup -5 wrote one and it loaded)
    m = _manifest(bdir)
    m["calibration"]["warmup"] = -5
    _write_manifest(bdir, m)
    _refused(bdir, "manifest.yaml", "calibration.warmup: must be 0 or more readings (got -5)")


def _rewrite_weights(bdir, weights):
    np.savez(bdir / "weights.npz", **weights)
    register_artifact(bdir, "weights.npz")  # valid sha: only the content check can catch it


def test_wrong_weight_shape(bdir):
    w = random_weights(2, 8, seed=1)
    w["gru.W_hz"] = np.zeros((8, 7), np.float32)
    _rewrite_weights(bdir, w)
    _refused(bdir, "weights.npz", "gru.W_hz", "shape")


def test_missing_weight(bdir):
    w = random_weights(2, 8, seed=1)
    del w["head.b_logvar"]
    _rewrite_weights(bdir, w)
    _refused(bdir, "weights.npz", "head.b_logvar")


def test_non_finite_weight(bdir):
    w = random_weights(2, 8, seed=1)
    w["gru.b_in"][3] = np.nan
    _rewrite_weights(bdir, w)
    _refused(bdir, "weights.npz", "gru.b_in")


def test_feature_count_mismatch(bdir):
    m = _manifest(bdir)
    m["features"].append({"name": "extra", "unit": ""})
    _write_manifest(bdir, m)
    _refused(bdir, "manifest.yaml", "features")


def test_hidden_mismatch(bdir):
    m = _manifest(bdir)
    m["cell"]["hidden"] = 16
    _write_manifest(bdir, m)
    _refused(bdir, "manifest.yaml", "cell.hidden")


def test_unknown_cell_type(bdir):
    m = _manifest(bdir)
    m["cell"]["type"] = "lstm"
    _write_manifest(bdir, m)
    _refused(bdir, "manifest.yaml", "cell.type", "lstm")


def test_listed_artifact_missing(bdir):
    (bdir / "golden.npz").unlink()
    _refused(bdir, "golden.npz")


def test_artifact_path_outside_bundle_refused(bdir):
    m = _manifest(bdir)
    m["artifacts"]["../escape.onnx"] = {"sha256": "0" * 64}
    _write_manifest(bdir, m)
    _refused(bdir, "manifest.yaml", "escape.onnx")


class _Boom:
    """Unpickling this touches a marker file: proof that the loader unpickled something."""

    marker = None

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_pickled_object_array_is_refused_never_unpickled(bdir, tmp_path):
    marker = tmp_path / "unpickled"
    _Boom.marker = str(marker)
    w = random_weights(2, 8, seed=1)
    evil = np.empty(1, dtype=object)
    evil[0] = _Boom()
    w["gru.W_ir"] = evil
    buf = io.BytesIO()
    np.savez(buf, **w)  # np.savez pickles object arrays
    (bdir / "weights.npz").write_bytes(buf.getvalue())
    register_artifact(bdir, "weights.npz")
    # sanity: the file really contains a pickle that would run (checked on a copy)
    probe = tmp_path / "probe.npz"
    shutil.copy(bdir / "weights.npz", probe)
    _refused(bdir, "weights.npz")
    assert not marker.exists(), "the loader unpickled weights.npz"
    unsafe = True  # deliberately, on a throw-away copy: proves the payload would really run
    with np.load(probe, allow_pickle=unsafe) as data:
        data["gru.W_ir"]
    assert marker.exists()  # the payload was live; the loader refused it


def test_not_a_zip(bdir):
    (bdir / "weights.npz").write_bytes(b"definitely not a zip file")
    register_artifact(bdir, "weights.npz")
    _refused(bdir, "weights.npz")


def test_written_bundle_is_world_readable(tmp_path, monkeypatch):
    """0644 files, 0755 directory even under a strict umask (temp files start 0600)."""
    import os
    import stat

    old = os.umask(0o077)
    try:
        out = write_bundle(tmp_path / "b", name="m", version="1", features=["a"], weights=random_weights(1, 8, seed=2))
        (out / "extra.bin").write_bytes(b"x")
        register_artifact(out, "extra.bin")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    for f in out.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f.name


@pytest.mark.parametrize("key, value, needle", [
    (("calibration", "threshold_surprise"), -3.0, "calibration.threshold_surprise"),
    (("calibration", "threshold_surprise"), "high", "calibration.threshold_surprise"),
    (("feature_kinds",), {"nope": {"kind": "constant"}}, "feature_kinds.nope"),
    (("feature_kinds",), {"a": {"kind": "weird"}}, "feature_kinds.a.kind"),
    (("feature_kinds",), ["a"], "feature_kinds"),
])
def test_bad_new_manifest_keys_are_one_line(bdir, key, value, needle):
    m = _manifest(bdir)
    node = m
    for k in key[:-1]:
        node = node[k]
    node[key[-1]] = value
    if key == ("feature_kinds",) and isinstance(value, dict) and "a" in value:
        m["features"][0]["name"] = "a"
    _write_manifest(bdir, m)
    _refused(bdir, "manifest.yaml", needle)


def test_good_new_manifest_keys_load(bdir):
    m = _manifest(bdir)
    m["calibration"]["threshold_surprise"] = 7.5
    m["feature_kinds"] = {m["features"][0]["name"]: {"kind": "constant", "distinct": 1, "value": 0.0}}
    _write_manifest(bdir, m)
    assert load_bundle(bdir).manifest["calibration"]["threshold_surprise"] == 7.5


def _last_to(value):
    """A table list with its last entry replaced by ``value``."""
    return lambda old: old[:-1] + [value]


@pytest.mark.parametrize("key, value, needle", [
    # normalisation.adapt: the replay --adapt range (settings.py), [0, 1) and finite
    (("normalisation", "adapt"), float("nan"), "normalisation.adapt"),
    (("normalisation", "adapt"), -0.1, "normalisation.adapt"),
    (("normalisation", "adapt"), 1.0, "normalisation.adapt"),
    (("normalisation", "adapt"), 5.0, "normalisation.adapt"),
    (("normalisation", "adapt"), [0.1], "normalisation.adapt"),
    (("normalisation", "adapt"), "abc", "normalisation.adapt"),
    (("normalisation", "adapt"), None, "normalisation.adapt"),
    (("input_clip",), float("nan"), "input_clip"),
    (("input_clip",), 0.0, "input_clip"),
    (("input_clip",), -1.0, "input_clip"),
    (("input_clip",), float("inf"), "input_clip"),
    pytest.param(("input_clip",), 10**400, "input_clip", id="input_clip-int-beyond-float64"),
    (("head", "logvar_min"), float("nan"), "head.logvar_min"),
    (("head", "logvar_min"), float("-inf"), "head.logvar_min"),
    (("head", "logvar_max"), float("nan"), "head.logvar_max"),
    (("head", "logvar_max"), float("inf"), "head.logvar_max"),
    (("head", "logvar_min"), 7.0, "head.logvar_min"),  # above logvar_max (6)
    (("head", "logvar_min"), 6.0, "head.logvar_min"),  # equal to it
    (("calibration", "target_false_alarm_rate"), float("nan"), "calibration.target_false_alarm_rate"),
    (("calibration", "target_false_alarm_rate"), -1e-4, "calibration.target_false_alarm_rate"),
    (("calibration", "target_false_alarm_rate"), 0.0, "calibration.target_false_alarm_rate"),
    (("calibration", "target_false_alarm_rate"), 1.0, "calibration.target_false_alarm_rate"),
    (("calibration", "tables", "instant", "tail_scale"), float("inf"), "calibration.tables.instant.tail_scale"),
    (("calibration", "tables", "instant", "tail_scale"), float("nan"), "calibration.tables.instant.tail_scale"),
    (("calibration", "tables", "instant", "x"), _last_to(float("inf")), "calibration.tables.instant.x"),
    (("calibration", "tables", "instant", "log10_sf"), _last_to(float("-inf")), "calibration.tables.instant.log10_sf"),
    (("normalisation", "std"), [float("inf"), 1.0], "normalisation.std"),
    (("normalisation", "std"), [float("nan"), 1.0], "normalisation.std"),
    (("normalisation", "std"), [0.0, 1.0], "normalisation.std"),
    (("normalisation", "std"), [-1.0, 1.0], "normalisation.std"),
    (("normalisation", "mean"), [float("nan"), 0.0], "normalisation.mean"),
    (("normalisation", "mean"), [float("inf"), 0.0], "normalisation.mean"),
    (("normalisation", "mean"), [0.0], "normalisation.mean"),  # F = 2
    # non-numeric entries: were ValueError / TypeError tracebacks from np.asarray
    (("normalisation", "mean"), ["x", 0.0], "normalisation.mean[0]"),
    (("normalisation", "std"), [1.0, {"a": 1}], "normalisation.std[1]"),
    (("calibration", "tables", "instant", "x"), _last_to("abc"), "calibration.tables.instant.x[47]"),
    (("calibration", "tables", "instant", "x"), {"a": 1}, "calibration.tables.instant.x"),
    (("calibration", "tables", "instant", "x"), [[1.0, 2.0], [3.0]], "calibration.tables.instant.x[0]"),
    (("calibration", "tables", "instant", "log10_sf"), _last_to([-1.0]), "calibration.tables.instant.log10_sf[47]"),
    (("calibration", "tables", "instant", "log10_sf"), "abc", "calibration.tables.instant.log10_sf"),
])
def test_bad_manifest_numbers_are_one_line(bdir, key, value, needle):
    m = _manifest(bdir)
    node = m
    for k in key[:-1]:
        node = node[k]
    node[key[-1]] = value(node[key[-1]]) if callable(value) else value
    _write_manifest(bdir, m)
    _refused(bdir, "manifest.yaml", needle)


@pytest.mark.parametrize("adapt", [0, 0.0, 0.002, 0.999])
def test_adapt_in_range_loads(bdir, adapt):
    m = _manifest(bdir)
    m["normalisation"]["adapt"] = adapt
    m["normalisation"]["mean"], m["normalisation"]["std"] = [1, -2.5], [3, 1e-3]  # ints are numbers too
    _write_manifest(bdir, m)
    b = load_bundle(bdir)
    assert b.manifest["normalisation"]["adapt"] == adapt and list(b.norm_std) == [3.0, 1e-3]


def test_adapt_range_is_the_replay_flags(bdir):
    """normalisation.adapt loads exactly when the replay --adapt flag (settings.py) would accept it."""
    from edgernn.settings import BY_KEY

    for adapt in (-1e-9, 0.0, 0.5, 1.0 - 1e-12, 1.0, float("inf"), float("nan")):
        m = _manifest(bdir)
        m["normalisation"]["adapt"] = adapt
        _write_manifest(bdir, m)
        if BY_KEY["adapt"].problem(adapt) is None:
            load_bundle(bdir)
        else:
            _refused(bdir, "manifest.yaml", "normalisation.adapt")


def _rewrite_golden(bdir, arrays=None, raw=None):
    if raw is not None:
        (bdir / "golden.npz").write_bytes(raw)
    else:
        np.savez(bdir / "golden.npz", **arrays)
    register_artifact(bdir, "golden.npz")  # valid sha: only the content check can catch it


def test_golden_empty_npz_is_one_line(bdir):
    _rewrite_golden(bdir, {})
    b = load_bundle(bdir)
    with pytest.raises(BundleError, match=r"golden\.npz: .*missing array\(s\) x, h0, pred, h"):
        b.golden()


def test_golden_plain_text_is_one_line(bdir):
    _rewrite_golden(bdir, raw=b"x,h0\n1,2\n")
    b = load_bundle(bdir)
    with pytest.raises(BundleError) as info:
        b.golden()
    msg = str(info.value)
    assert "golden.npz" in msg and "not an .npz" in msg and "pickle" not in msg and "\n" not in msg


@pytest.mark.parametrize("key, change, needle", [
    ("h", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 3, np.nan, a), "golden.npz: h: contains NaN"),
    ("x", lambda a: a[:, :, :1], "golden.npz: needs x"),
    ("x", lambda a: a.astype(str), "golden.npz: x: expected numbers"),
])
def test_golden_bad_arrays_are_one_line(bdir, key, change, needle):
    g = load_bundle(bdir).golden()
    g[key] = change(g[key])
    _rewrite_golden(bdir, g)
    with pytest.raises(BundleError) as info:
        load_bundle(bdir).golden()
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_weights_plain_text_names_no_pickle(bdir):
    (bdir / "weights.npz").write_bytes(b"gru.W_ir: 1 2 3\n")
    register_artifact(bdir, "weights.npz")
    msg = _refused(bdir, "weights.npz", "not an .npz")
    assert "pickle" not in msg
