"""Per-model checks on the bundle itself: it loads, and every listed artifact is sha256-guarded."""

from __future__ import annotations

import shutil

import pytest

from edgernn.bundle import BundleError, load_bundle


def test_bundle_loads(model_id, model_dirs):
    bundle = load_bundle(model_dirs(model_id))
    assert "golden.npz" in bundle.manifest["artifacts"]
    g = bundle.golden()
    assert g["x"].shape[-1] == bundle.n_features and g["h"].shape[-1] == bundle.hidden


def test_tampered_artifact_is_refused(model_id, model_dirs, tmp_path):
    src = model_dirs(model_id)
    copy = tmp_path / "bundle"
    shutil.copytree(src, copy)
    artifacts = list(load_bundle(copy).manifest["artifacts"])
    assert len(artifacts) >= 2
    for name in artifacts:
        path = copy / name
        original = path.read_bytes()
        data = bytearray(original)
        data[len(data) // 2] ^= 0x01  # one bit
        path.write_bytes(bytes(data))
        with pytest.raises(BundleError, match="sha256"):
            load_bundle(copy)
        path.write_bytes(original)
    load_bundle(copy)  # restored: loads again
