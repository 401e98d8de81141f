"""``edgernn export``: exit codes, one-line errors, the parity table and the manifest records."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
from contract_helpers import export_formats, random_weights

from edgernn.bundle import load_bundle, write_bundle
from edgernn.cli import main


@pytest.fixture
def fresh_bundle(tmp_path):
    return write_bundle(tmp_path / "m", name="cli-test", version="1", features=["a", "b"],
                        weights=random_weights(2, 8, seed=5))


def test_export_writes_registers_and_prints_table(fresh_bundle, capsys):
    fmts = [f for f in ("onnx", "tflite") if f in export_formats()]
    if not fmts:
        pytest.skip("neither onnxruntime nor ai-edge-litert installed")
    rc = main(["export", str(fresh_bundle), "--formats", ",".join(fmts), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    bundle = load_bundle(fresh_bundle)  # sha256 of every new artifact verified
    for fmt, artifact in (("onnx", "model.onnx"), ("tflite", "model.tflite")):
        if fmt in fmts:
            meta = bundle.manifest["artifacts"][artifact]
            assert meta["tolerance"] == 1e-5 and meta["size_bytes"] == (fresh_bundle / artifact).stat().st_size
            assert f"| {artifact} |" in out
    assert "model.int8.onnx" not in bundle.manifest["artifacts"]  # only what was asked
    for name in bundle.manifest["artifacts"]:  # readable by a service running as another user
        assert (fresh_bundle / name).stat().st_mode & 0o777 == 0o644, name


def test_export_removes_what_a_killed_export_left_and_nothing_else(fresh_bundle, tmp_path, capsys):
    """A SIGKILLed export leaves its staging directory (no ``finally`` runs): the next export removes
    it, and an older version's (no lock file), once they are older than a minute; never a stage whose
    lock a running export holds, nor a younger one, nor what a symlink points to."""
    fmts = [f for f in ("onnx", "tflite") if f in export_formats()]
    if not fmts:
        pytest.skip("neither onnxruntime nor ai-edge-litert installed")
    stages = {name: fresh_bundle / name for name in (".export-killed", ".export-oldstyle", ".export-running",
                                                      ".export-young")}
    for stage in stages.values():
        stage.mkdir()
        (stage / "model.onnx").write_bytes(b"half")
    (stages[".export-killed"] / ".lock").touch()
    (stages[".export-running"] / ".lock").touch()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").touch()
    (fresh_bundle / ".export-link").symlink_to(elsewhere)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'r+'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
                               str(stages[".export-running"] / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        old = time.time() - 3600
        for name in (".export-killed", ".export-oldstyle", ".export-running"):
            os.utime(stages[name], (old, old))
        os.utime(elsewhere, (old, old))
        rc = main(["export", str(fresh_bundle), "--formats", fmts[0]])
        err = capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert rc == 0
    assert sorted(p.name for p in fresh_bundle.glob(".export-*")) == [".export-link", ".export-running", ".export-young"]
    assert (elsewhere / "keep").exists()
    assert "export: removed .export-killed: left by an export that was killed" in err
    assert "export: removed .export-oldstyle: left by an export that was killed" in err


def test_export_refreshes_a_trainer_card_only(fresh_bundle, tmp_path, capsys):
    """A card made from the manifest (as `edgernn train` writes it) gains the new artifacts; a
    hand-made card (benchmark sections) is left as it is."""
    if "onnx" not in export_formats():
        pytest.skip("onnxruntime not installed")
    from edgernn.train.card import write_card

    write_card(fresh_bundle)
    assert "model.onnx" not in (fresh_bundle / "README.md").read_text()
    assert main(["export", str(fresh_bundle), "--formats", "onnx", "--quiet"]) == 0
    card = (fresh_bundle / "README.md").read_text()
    assert "| `model.onnx` |" in card and "| onnx | model.onnx |" in card
    other = shutil.copytree(fresh_bundle, tmp_path / "other")
    write_card(other, sections=["## Speed\n\nmeasured elsewhere"])
    before = (other / "README.md").read_text()
    assert main(["export", str(other), "--formats", "tflite", "--quiet"]) in (0, 2)
    assert (other / "README.md").read_text() == before


def test_bad_detector_defaults_stop_a_tflm_export_before_any_work(fresh_bundle, capsys):
    """model_data.h floors as the detector does on the bundle (its detector_defaults): settings that do
    not hold are one line naming the file, line and key, before a format is built (they surfaced at
    the tflm step, after ONNX, TFLite and the int8 plan had been made and thrown away)."""
    if "tflm" not in export_formats():
        pytest.skip("no TFLite Micro export here (tflite-micro not installed)")
    from edgernn.bundle import write_manifest

    manifest = load_bundle(fresh_bundle).manifest
    manifest["detector_defaults"] = {"min_rel_std": -1.0}
    write_manifest(fresh_bundle, manifest)
    before = sorted(p.name for p in fresh_bundle.iterdir())
    rc = main(["export", str(fresh_bundle), "--formats", "onnx,tflm"])
    out, err = capsys.readouterr()
    assert rc == 2 and err.count("\n") == 1 and "detector_defaults.min_rel_std" in err, err
    assert out == "", out  # no format was started
    assert "manifest.yaml:" in err
    assert sorted(p.name for p in fresh_bundle.iterdir()) == before  # nothing built, no stage left


def test_missing_bundle_is_one_line_exit_2(tmp_path, capsys):
    rc = main(["export", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "not found" in err and "Traceback" not in err


def test_tampered_bundle_is_refused(fresh_bundle, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(fresh_bundle, bad)
    data = bytearray((bad / "weights.npz").read_bytes())
    data[-10] ^= 0xFF
    (bad / "weights.npz").write_bytes(bytes(data))
    rc = main(["export", str(bad), "--formats", "onnx"])
    err = capsys.readouterr().err
    assert rc == 2 and "sha256 mismatch" in err and err.count("\n") == 1


def test_unknown_format_exit_2(fresh_bundle, capsys):
    rc = main(["export", str(fresh_bundle), "--formats", "onnx,coreml"])
    assert rc == 2 and "coreml" in capsys.readouterr().err
