"""Bad input to the state snapshots and to inspect / export / decommission: a snapshot restore refuses
what its store never writes with one reason and starts fresh (were: a ValueError half-way through the
restore, garbage loaded that then raised in every batch or never scored, a duplicate id that leaked a
row); the commands answer with one line and exit 2 before any work (were: tracebacks, and hangs on a
FIFO artifact path or --wait inf)."""

from __future__ import annotations

import errno
import os
import subprocess

import numpy as np
import pytest
import yaml
from unit_helpers import PYTHON, REPO, sine_series

from edgernn.bundle import load_bundle, write_manifest
from edgernn.cli import main
from edgernn.detector import Batch, Detector, DetectorSettings
from edgernn.state import StateStore

SHA = "ab" * 32


# -- snapshots --------------------------------------------------------------------------------------

def _snapshot(st: StateStore, path, n: int = 2, **members) -> None:
    """A snapshot as ``st`` writes it (n fresh streams), with ``members`` replaced."""
    for i in range(n):
        st.row_for(f"s{i}")
    st.snapshot(path, SHA)
    with np.load(path) as z:
        snap = {k: z[k] for k in z.files}
    for name, value in members.items():
        snap[name] = value(snap[name]) if callable(value) else value
    np.savez(path, **snap)


def _column(name, value):
    """A member editor: ``value`` in column ``name`` of stream 0 (its slab from the layout)."""
    L = StateStore(1, 4).layout
    slab = "num" if L.storage[name] == "f8" else "num4"

    def edit(a):
        a = a.copy()
        a[0, getattr(L, name)] = value
        return a
    return slab, edit


@pytest.mark.parametrize("member, value, says", [
    ("num", lambda a: a.astype(np.float16), "member num holds float16, not float64"),
    ("num", lambda a: np.full(a.shape, "x"), "member num holds <U1, not float64"),  # was a ValueError, 1 row loaded
    ("num4", lambda a: np.full(a.shape, "1.5"), "member num4 holds <U3, not float32"),
    ("ids", np.array([1, 2]), "member ids holds int64, not text"),  # was restored as streams '1', '2'
    ("ids", np.array([b"a", b"b"]), "member ids holds |S1, not text"),  # was restored as "b'a'"
    ("last_seen", np.array([np.nan, 1.0]), "member last_seen holds float64, not integers"),
    ("format", np.array(7.9), "member format holds float64, not integers"),  # int(7.9) == 7: was restored
])
def test_restore_refuses_members_of_another_dtype(tmp_path, member, value, says):
    st = StateStore(1, 4, capacity=8, h_bound=1.0)
    _snapshot(st, tmp_path / "s.npz", **{member: value})
    fresh = StateStore(1, 4, capacity=8, h_bound=1.0)
    ok, reason = fresh.restore(tmp_path / "s.npz", SHA)
    assert not ok and says in reason and reason.endswith("starting fresh") and len(fresh) == 0, reason


@pytest.mark.parametrize("name, value", [
    ("norm_mean", np.nan), ("norm_var", np.inf),  # the kernel reset them at the first reading
    ("count", np.nan),  # the stream never scored again, without a reject
    ("count", -1e10),  # the same: a warm-up of 1e10 readings
    ("duration", np.inf),  # OverflowError in every batch holding the stream (the daemon dropped the batch)
    ("last_ts", np.inf),  # every reading of the stream rejected as out of order, forever
    ("seq", -1.0),
])
def test_restore_refuses_rows_the_store_never_writes(tmp_path, name, value):
    slab, edit = _column(name, value)
    _snapshot(StateStore(1, 4, h_bound=1.0), tmp_path / "s.npz", **{slab: edit})
    fresh = StateStore(1, 4, h_bound=1.0)
    ok, reason = fresh.restore(tmp_path / "s.npz", SHA)
    assert not ok and f"holds {name} = " in reason and "'s0'" in reason and len(fresh) == 0, reason


def test_restore_refuses_a_non_finite_float32_hidden_state(tmp_path):
    _snapshot(StateStore(1, 4), tmp_path / "s.npz", h=lambda a: np.full(a.shape, np.nan, np.float32))
    ok, reason = StateStore(1, 4).restore(tmp_path / "s.npz", SHA)
    assert not ok and "non-finite hidden state" in reason, reason


@pytest.mark.parametrize("ids, says", [
    (["a", "a"], "lists stream 'a' more than once"),  # restored 'a' twice: one row leaked, never freed
    (["", "b"], "holds stream id ''"),
    (["a#", "b"], "holds stream id 'a#'"),
    (["x" * 300, "b"], "is longer than 256 characters"),
    (["x\u0001y", "b"], "holds '\\x01', which MQTT topic names cannot hold"),  # the decoder's rule (decode.py)
])
def test_restore_refuses_ids_no_stream_can_have(tmp_path, ids, says):
    _snapshot(StateStore(1, 4), tmp_path / "s.npz", ids=np.array(ids))
    fresh = StateStore(1, 4)
    ok, reason = fresh.restore(tmp_path / "s.npz", SHA)
    assert not ok and says in reason and len(fresh) == 0, reason


def test_the_values_a_working_store_holds_still_restore(tmp_path):
    """What is not finite in a real row: a new stream's empty range and no timestamp (+-inf), an unseen
    seasonal bucket (NaN), a profile of readings beyond float32 (-inf); and a real detector's rows."""
    bundle = load_bundle(REPO / "firmware_models" / "univariate")
    det = Detector(bundle, None, DetectorSettings(max_streams=8))
    x = sine_series(300, seed=1)
    det.process(Batch(["a"] * 300, 1.6e9 + 60.0 * np.arange(300), x))
    det.process(Batch(["b"] * 50, 1.6e9 + 60.0 * np.arange(50), x[:50] * 1e150))
    det.state.row_for("new")
    L = det.state.layout
    det.state.num4[det.state.ids["b"], L.seas_m.start] = -np.inf
    det.state.snapshot(tmp_path / "s.npz", bundle.sha256)
    again = Detector(bundle, None, DetectorSettings(max_streams=8))
    ok, reason = again.state.restore(tmp_path / "s.npz", bundle.sha256, resettle=False)
    assert ok and len(again.state) == 3, reason
    for sid in ("a", "b", "new"):
        np.testing.assert_array_equal(again.state.num4[again.state.ids[sid]], det.state.num4[det.state.ids[sid]])


def test_restore_says_what_is_at_a_path_that_is_not_a_snapshot_file(tmp_path):
    os.mkfifo(tmp_path / "fifo.npz")  # was "no snapshot at ..." (logged at INFO)
    ok, reason = StateStore(1, 4).restore(tmp_path / "fifo.npz", SHA)
    assert not ok and "is not a regular file" in reason, reason
    _snapshot(StateStore(1, 4), tmp_path / "real.npz")
    (tmp_path / "link.npz").symlink_to(tmp_path / "real.npz")  # a link to a snapshot is followed, as any path
    assert StateStore(1, 4).restore(tmp_path / "link.npz", SHA)[0]


# -- inspect ---------------------------------------------------------------------------------------

def _edit_manifest(bdir, edit) -> None:
    m = yaml.safe_load((bdir / "manifest.yaml").read_text())
    edit(m)
    write_manifest(bdir, m)
    load_bundle(bdir)  # still a bundle that loads: only inspect's display meets the odd block


def _held_out_without_alerts(m):
    m["calibration"].update(achieved_false_alarm_rate=1e-4, calibration_readings=1000)


@pytest.mark.parametrize("edit, says", [
    (lambda m: m.update(provenance=[1]), "provenance: cannot be shown"),
    (lambda m: m.update(provenance={"rows": "many"}), "provenance: cannot be shown"),
    (lambda m: m.update(provenance={"warnings": "check me"}), "provenance: cannot be shown"),  # was one line per letter
    (_held_out_without_alerts, "calibration: cannot be shown (missing 'calibration_alerts')"),
    (lambda m: m.update(left_out_features={"a": 1}), "left_out_features: cannot be shown"),
    (lambda m: m.update(feature_kinds={"value": {"kind": "quantised"}}), "feature_kinds: cannot be shown (missing 'distinct')"),
    (lambda m: m.update(detector_defaults={"min_rel_std": -1.0}), "detector_defaults: cannot be shown"),
])
def test_inspect_of_an_odd_manifest_block_is_one_line(tiny_bundle, capsys, edit, says):
    bdir = tiny_bundle(fresh=True)
    _edit_manifest(bdir, edit)
    rc = main(["inspect", str(bdir)])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and err.count("\n") == 1 and says in err, err
    assert err.startswith(f"edgernn inspect: {bdir / 'manifest.yaml'}: ")


def test_inspect_of_a_bundle_without_head_type_shows_the_default(tiny_bundle, capsys):
    bdir = tiny_bundle(fresh=True)  # head.type is optional (gaussian-residual): was KeyError 'type'
    _edit_manifest(bdir, lambda m: m["head"].pop("type", None))
    assert main(["inspect", str(bdir)]) == 0
    assert "head gaussian-residual" in capsys.readouterr().out


def test_inspect_shows_the_bundles_own_detector_settings(tiny_bundle, capsys):
    """A bundle's detector_defaults are one line of inspect (an alerts mapping key by key); none without."""
    bdir = tiny_bundle(fresh=True)
    _edit_manifest(bdir, lambda m: m.pop("detector_defaults", None))
    assert main(["inspect", str(bdir)]) == 0
    assert "detector      " not in capsys.readouterr().out
    _edit_manifest(bdir, lambda m: m.update(detector_defaults={"min_rel_std": 1e-4, "alerts": {"cooldown": 5}}))
    assert main(["inspect", str(bdir)]) == 0
    line = next(v for v in capsys.readouterr().out.splitlines() if v.startswith("detector      "))
    assert "min_rel_std 0.0001" in line and "alerts.cooldown 5" in line, line


# -- export ----------------------------------------------------------------------------------------

def test_export_to_an_artifact_path_that_is_a_directory_is_one_line_before_work(tiny_bundle, capsys):
    bdir = tiny_bundle(fresh=True)
    (bdir / "model.onnx").mkdir()  # was IsADirectoryError (a traceback) after the bundle was read
    rc = main(["export", str(bdir), "--formats", "onnx", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err == f"edgernn export: {bdir / 'model.onnx'}: is a directory; export writes its model.onnx there (move it away)\n"


def test_export_to_an_artifact_path_that_is_a_fifo_does_not_hang(tiny_bundle):
    bdir = tiny_bundle(fresh=True)
    os.mkfifo(bdir / "model.tflite")  # opening it for writing waited for a reader forever
    r = subprocess.run([PYTHON, "-m", "edgernn", "export", str(bdir), "--formats", "tflite", "--quiet"],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert (r.returncode, r.stderr) == (2, f"edgernn export: {bdir / 'model.tflite'}: is not a regular file; "
                                           "export writes its model.tflite there (move it away)\n")


def test_export_write_error_is_one_line(tiny_bundle, capsys, monkeypatch):
    from edgernn.export import onnx_export

    def full(_weights, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    monkeypatch.setattr(onnx_export, "write_onnx", full)  # was the OSError's traceback
    bdir = tiny_bundle(fresh=True)
    rc = main(["export", str(bdir), "--formats", "onnx", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err == f"edgernn export: {bdir / 'model.onnx'}: cannot write: No space left on device\n", err


def test_export_leaves_a_card_it_cannot_read_and_says_so(tiny_bundle, capsys):
    bdir = tiny_bundle(fresh=True)
    (bdir / "README.md").write_bytes(b"Mod\xe8le (latin-1)\n")  # was UnicodeDecodeError after the export
    rc = main(["export", str(bdir), "--formats", "onnx", "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 0 and "| model.onnx |" in out and "README.md not rewritten (UnicodeDecodeError" in err, err
    assert err.count("\n") == 1 and (bdir / "README.md").read_bytes() == b"Mod\xe8le (latin-1)\n"
    assert "model.onnx" in load_bundle(bdir).manifest["artifacts"]


# -- decommission ----------------------------------------------------------------------------------

@pytest.mark.parametrize("wait, says", [
    ("inf", "--wait must be a finite number (got inf)"),  # waited for a quiet spell of inf seconds: forever
    ("nan", "--wait must be a finite number (got nan)"),  # was taken as 0.1 s
    ("-1", "--wait must be between 0 and 600 (got -1.0)"),  # was taken as 0.1 s
    ("1e9", "--wait must be between 0 and 600 (got 1000000000.0)"),
])
def test_decommission_wait_out_of_range_is_one_line_before_the_broker(tmp_path, capsys, monkeypatch, wait, says):
    from edgernn.commands import decommission

    def no_session(_cfg):
        raise AssertionError("connected to the broker")
    monkeypatch.setattr(decommission, "Retained", no_session)
    cfg = tmp_path / "edgernn.yaml"
    cfg.write_text(f"node: n\nmqtt: {{host: 127.0.0.1, port: 18999}}\nstate: {{dir: {tmp_path / 'state'}}}\n"
                   "pipelines:\n  - {name: p, subscribe: p/+, stream: '{1}', payload: {format: json, value: v},"
                   " model: univariate}\n")
    rc = main(["decommission", "-c", str(cfg), "--wait", wait])
    assert (rc, capsys.readouterr().err) == (2, f"edgernn decommission: {says}\n")


@pytest.mark.parametrize("command", ["inspect", "replay"])
def test_a_file_of_a_bundle_given_as_the_model_names_its_directory(command, tmp_path):
    """Before: 'model bundle directory not found: .../manifest.yaml' for a file that exists."""
    bundle = REPO / "firmware_models" / "univariate"
    args = [str(bundle / "manifest.yaml")] if command == "inspect" else \
        [str(REPO / "tests" / "data" / "missing.csv"), "--model", str(bundle / "manifest.yaml")]
    r = subprocess.run([PYTHON, "-m", "edgernn", command, *args], capture_output=True, text=True, cwd=tmp_path,
                       timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"edgernn {command}: {bundle / 'manifest.yaml'}: a file, not a model bundle directory (give its "
        f"directory: {bundle})"], r.stderr
