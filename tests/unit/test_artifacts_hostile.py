"""Tampered and odd model bundles on every backend: copies of the shipped bundles whose artifacts are
swapped, corrupted, unreadable, huge or symbolic links, re-signed in the manifest where the sha256
check would otherwise catch them first. Each case is one line naming the file (exit 2) through the
real CLI and real onnxruntime / LiteRT sessions; before, each was a traceback, a multi-line message,
an unnamed file, a minutes-long read, a silent state reset of every reading or a file outside the
bundle overwritten (see each test)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from unit_helpers import REPO

import edgernn.bundle as bundle_mod
from edgernn.backends import BackendUnavailable, create_backend
from edgernn.bundle import BundleError, load_bundle, register_artifact
from edgernn.cli import main
from edgernn.detector import Batch, Detector
from edgernn.fileio import save_npz

SHIPPED = REPO / "firmware_models"
GRAPHS = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx", "tflite": "model.tflite",
          "tflite-int8": "model.int8.tflite"}
needs_proc_mem = pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="needs Linux /proc/self/mem")


@pytest.fixture
def uni(tmp_path) -> Path:
    """A private copy of the shipped univariate bundle (the shipped files are never touched)."""
    return Path(shutil.copytree(SHIPPED / "univariate", tmp_path / "uni"))


@pytest.fixture
def csv(tmp_path) -> Path:
    t = np.arange(300)
    x = 20.0 + 3.0 * np.sin(t / 8.0) + 0.2 * np.random.default_rng(0).standard_normal(300)
    path = tmp_path / "in.csv"
    path.write_text("timestamp,value\n" + "".join(f"{1_700_000_000 + i},{v:.4f}\n" for i, v in zip(t, x)))
    return path


def _backend(name, bundle):
    try:
        return create_backend(name, bundle)
    except BackendUnavailable as exc:
        if "pip install" in str(exc):  # the runtime, not the artifact
            pytest.skip(str(exc))
        raise


def _one_line(capsys, rc, *needles) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if not ln.startswith("INFO: ")]  # LiteRT's own C++ log line
    assert rc == 2 and len(lines) == 1, (rc, err)
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _run(argv) -> int:
    """Exit status of the CLI run in this process (a command may end in SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def _replay(bdir, backend, csv, tmp_path) -> int:
    return _run(["replay", "--model", str(bdir), "--backend", backend, str(csv), "--quiet",
                 "--out", str(tmp_path / "out.csv")])


@pytest.mark.parametrize("backend", list(GRAPHS))
def test_artifact_of_another_model_is_refused_on_load(uni, csv, tmp_path, capsys, backend):
    """skab-pump's graph (F=8, K=1) in the univariate bundle (F=1, K=3), its sha256 re-signed (a
    hand-copied artifact): refused when the backend is created, naming the file and both shapes.
    Was: a ValueError traceback at the first reading (exit 1)."""
    name = GRAPHS[backend]
    shutil.copyfile(SHIPPED / "skab-pump" / name, uni / name)
    register_artifact(uni, name)
    _backend_or_skip_runtime(backend)
    rc = _replay(uni, backend, csv, tmp_path)
    _one_line(capsys, rc, str(uni / name), "F=8", "F=1", "edgernn export")


def _backend_or_skip_runtime(backend):
    try:
        create_backend(backend, load_bundle(SHIPPED / "univariate"))
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("backend", ["onnx", "tflite"])
def test_graph_with_nan_weights_is_refused_not_reset_every_reading(uni, csv, tmp_path, capsys, monkeypatch, backend):
    """A float graph exported from weights with one NaN (re-signed): refused on load, naming the
    file. Was: every reading's state reset (exit 1, 'its statistics went non-finite', no file named;
    the daemon would have reset every stream at every reading)."""
    import edgernn.export.cell_graph as cell_graph
    import edgernn.export.onnx_export as onnx_export
    from edgernn.backends.base import check_weights
    from edgernn.export.tflite_export import build_tflite

    _backend_or_skip_runtime(backend)
    w = {k: v.copy() for k, v in np.load(uni / "weights.npz").items()}
    w["head.b_logvar"][0] = np.nan
    lax = lambda ws: check_weights({k: np.nan_to_num(v) for k, v in ws.items()})  # noqa: E731 - the exporters' own check let through
    monkeypatch.setattr(onnx_export, "check_weights", lax)
    monkeypatch.setattr(cell_graph, "check_weights", lax)
    name = GRAPHS[backend]
    if backend == "onnx":
        onnx_export.write_onnx(w, uni / name)
    else:
        (uni / name).write_bytes(build_tflite(w))
    register_artifact(uni, name)
    rc = _replay(uni, backend, csv, tmp_path)
    _one_line(capsys, rc, str(uni / name), "NaN or inf")


def test_weights_that_overflow_float32_are_refused(uni, csv, tmp_path, capsys):
    """Finite weights.npz whose head overflows float32 (x 1e38, re-signed): refused naming
    weights.npz. Was: a RuntimeWarning ('overflow encountered in cast') on stderr and every reading
    after the warm-up scored 1e12 (an alert each)."""
    w = dict(np.load(uni / "weights.npz"))
    w["head.W_mean"], w["head.W_logvar"] = w["head.W_mean"] * 1e38, w["head.W_logvar"] * 1e38  # each finite in float32
    save_npz(uni / "weights.npz", w)
    register_artifact(uni, "weights.npz")
    rc = _replay(uni, "numpy", csv, tmp_path)
    _one_line(capsys, rc, str(uni / "weights.npz"), "NaN or inf")


@pytest.mark.parametrize("formats", ["onnx", "tflite-int8"])
def test_export_of_weights_that_overflow_float32_is_refused(uni, capsys, formats):
    """`edgernn export` of such weights: one line naming weights.npz, nothing written. Was: onnx
    exported and registered with an 'inf' parity error (exit 1); tflite-int8 'cannot convert float
    NaN to integer' (no file named) after RuntimeWarnings on stderr."""
    w = dict(np.load(uni / "weights.npz"))
    w["head.W_mean"], w["head.W_logvar"] = w["head.W_mean"] * 1e38, w["head.W_logvar"] * 1e38
    save_npz(uni / "weights.npz", w)
    register_artifact(uni, "weights.npz")
    before = {p.name: p.read_bytes() for p in uni.iterdir()}
    rc = _run(["export", str(uni), "--formats", formats, "--quiet"])
    _one_line(capsys, rc, str(uni / "weights.npz"), "NaN or inf")
    assert {p.name: p.read_bytes() for p in uni.iterdir()} == before


def test_symbolic_graph_width_names_the_file(uni):
    """model.onnx whose input x has a symbolic width (re-signed): ValueError naming the file. Was:
    "invalid literal for int() with base 10: 'F'", no file named."""
    onnx = pytest.importorskip("onnx")
    _backend_or_skip_runtime("onnx")
    model = onnx.load(str(uni / "model.onnx"))
    model.graph.input[0].type.tensor_type.shape.dim[-1].dim_param = "F"
    onnx.save(model, str(uni / "model.onnx"))
    register_artifact(uni, "model.onnx")
    with pytest.raises(ValueError) as info:
        create_backend("onnx", load_bundle(uni))
    assert str(uni / "model.onnx") in str(info.value) and "\n" not in str(info.value)


def test_onnx_graph_for_one_batch_size_is_refused_on_load(uni, tmp_path, capsys):
    """model.onnx whose batch dimension is fixed at 1 (re-signed), replayed with 3 streams: refused on
    load naming the file. Was: an onnxruntime traceback at the first batch of 3 (exit 1)."""
    onnx = pytest.importorskip("onnx")
    _backend_or_skip_runtime("onnx")
    model = onnx.load(str(uni / "model.onnx"))
    for v in [*model.graph.input, *model.graph.output]:
        v.type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, str(uni / "model.onnx"))
    register_artifact(uni, "model.onnx")
    long = tmp_path / "long.csv"
    long.write_text("timestamp,stream,value\n" + "".join(f"{t},{s},{20 + np.sin(t / 8):.4f}\n"
                                                         for t in range(300) for s in "abc"))
    rc = _replay(uni, "onnx", long, tmp_path)
    _one_line(capsys, rc, str(uni / "model.onnx"), "batch dimension")


def test_onnx_graph_that_runs_one_row_only_is_refused_on_load(uni, csv, tmp_path, capsys):
    """model.onnx with x reshaped to [1, F] inside (its inputs still [B, F]; re-signed): refused on
    load, naming the file, with or without a second stream. Was: a single-stream replay ran, one with
    three streams ended in onnxruntime's traceback at the first batch (and its error log line)."""
    onnx = pytest.importorskip("onnx")
    _backend_or_skip_runtime("onnx")
    model = onnx.load(str(uni / "model.onnx"))
    for node in model.graph.node:
        node.input[:] = ["x_one" if i == "x" else i for i in node.input]
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array([1, 1], np.int64), "one_row"))
    model.graph.node.insert(0, onnx.helper.make_node("Reshape", ["x", "one_row"], ["x_one"]))
    onnx.save(model, str(uni / "model.onnx"))
    register_artifact(uni, "model.onnx")
    rc = _replay(uni, "onnx", csv, tmp_path)
    _one_line(capsys, rc, str(uni / "model.onnx"), "cannot run a batch of 3")


def test_onnx_graph_with_tensors_in_another_file_is_refused(uni, csv, tmp_path, capsys):
    """model.onnx re-saved with its weight matrices in model.onnx.data (ONNX external data; the
    manifest re-signed for model.onnx only): refused naming both files, since no sha256 covers the
    second. Was: loaded and run, so that a changed model.onnx.data changed the scores unchecked."""
    onnx = pytest.importorskip("onnx")
    _backend_or_skip_runtime("onnx")
    model = onnx.load(str(uni / "model.onnx"))
    onnx.save_model(model, str(uni / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx.data", size_threshold=1024)
    register_artifact(uni, "model.onnx")
    rc = _replay(uni, "onnx", csv, tmp_path)
    _one_line(capsys, rc, str(uni / "model.onnx"), "(model.onnx.data)")


def _edit_tflite(path: Path, edit) -> None:
    """Rewrite the .tflite at ``path`` with ``edit(subgraph, schema)`` applied (LiteRT's object API)."""
    flatbuffers = pytest.importorskip("flatbuffers")
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(path.read_bytes()), 0))
    edit(model.subgraphs[0], schema)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())


def _rename_h_next(graph, schema):
    for i in graph.outputs:
        if graph.tensors[i].name == b"h_next":
            graph.tensors[i].name = b"state"


def _int8_input(graph, schema):
    for i in graph.inputs:
        if graph.tensors[i].name == b"x":
            graph.tensors[i].type = schema.TensorType.INT8


def _int8_inside(graph, schema):
    inner = next(t for i, t in enumerate(graph.tensors) if i not in {*graph.inputs, *graph.outputs} and t.name == b"ir")
    inner.type = schema.TensorType.INT8


@pytest.mark.parametrize("edit, needles", [
    (_rename_h_next, ("expected outputs pred and h_next", "state")),  # was: KeyError 'h_next' at the first reading
    (_int8_input, ("x is int8", "float32")),  # was: LiteRT's RuntimeError 'failed to prepare' at the first reading
    (_int8_inside, ("cannot run this model", "failed to prepare")),  # the same
])
def test_tflite_graph_that_does_not_fit_is_refused_on_load(uni, csv, tmp_path, capsys, edit, needles):
    """A model.tflite edited (re-signed) so that it loads but cannot run as the cell: one line naming
    the file when the backend is created. Was: a traceback at the first reading (exit 1)."""
    _backend_or_skip_runtime("tflite")
    _edit_tflite(uni / "model.tflite", edit)
    register_artifact(uni, "model.tflite")
    rc = _replay(uni, "tflite", csv, tmp_path)
    _one_line(capsys, rc, str(uni / "model.tflite"), *needles)


@pytest.mark.parametrize("backend", ["tflite", "tflite-int8"])
def test_broken_tflite_message_is_one_line(uni, backend):
    """A .tflite whose last 2,000 bytes are zeroed (re-signed): LiteRT's error has one line per bad
    op; the message keeps the first. Was: ~20 lines."""
    _backend_or_skip_runtime(backend)
    name = GRAPHS[backend]
    data = (uni / name).read_bytes()
    (uni / name).write_bytes(data[:-2000] + bytes(2000))
    register_artifact(uni, name)
    with pytest.raises((BackendUnavailable, ValueError)) as info:
        create_backend(backend, load_bundle(uni))
    assert "\n" not in str(info.value) and str(uni / name) in str(info.value), str(info.value)


def test_zero_hidden_units_are_refused(uni):
    """weights.npz with H = 0 (and cell.hidden: 0, re-signed): refused naming weights.npz. Was:
    loaded, then an IndexError traceback from the kernel at the first reading."""
    w = {k: (v[:0] if k.startswith("gru.") else v[..., :0] if k.startswith("head.W") else v)
         for k, v in np.load(uni / "weights.npz").items()}
    w = {k: (v[:, :0] if k.startswith("gru.W_h") else v) for k, v in w.items()}
    save_npz(uni / "weights.npz", w)
    m = yaml.safe_load((uni / "manifest.yaml").read_text())
    m["cell"]["hidden"] = 0
    (uni / "manifest.yaml").write_text(yaml.safe_dump(m, sort_keys=False))
    register_artifact(uni, "weights.npz")
    with pytest.raises(BundleError) as info:
        load_bundle(uni)
    assert str(uni / "weights.npz") in str(info.value) and "H >= 1" in str(info.value)


@needs_proc_mem
def test_unreadable_manifest_is_one_line(uni, capsys):
    """manifest.yaml that cannot be read (an I/O error; a 0600 file for a service of another user
    alike): one line naming it. Was: an OSError traceback (inspect, replay) or 'cannot write' naming
    the directory (export)."""
    (uni / "manifest.yaml").unlink()
    (uni / "manifest.yaml").symlink_to("/proc/self/mem")
    for argv in (["inspect", str(uni)], ["export", str(uni), "--formats", "onnx", "--quiet"]):
        _one_line(capsys, _run(argv), str(uni / "manifest.yaml"), "cannot read")


@needs_proc_mem
def test_unreadable_artifact_is_one_line(uni, capsys):
    """A listed artifact that cannot be read (no size_bytes listed, so it is hashed): one line naming
    it. Was: an OSError traceback."""
    m = yaml.safe_load((uni / "manifest.yaml").read_text())
    del m["artifacts"]["golden.npz"]["size_bytes"]
    (uni / "manifest.yaml").write_text(yaml.safe_dump(m, sort_keys=False))
    (uni / "golden.npz").unlink()
    (uni / "golden.npz").symlink_to("/proc/self/mem")
    _one_line(capsys, _run(["inspect", str(uni)]), str(uni / "golden.npz"), "cannot read")


def test_huge_artifact_is_refused_by_its_size_before_it_is_read(uni, monkeypatch):
    """model.onnx grown to a 1 GiB sparse file: refused by the size the manifest lists, without
    reading it. Was: every byte hashed first (95 s for 8 GiB here; a sparse terabyte: hours)."""
    with open(uni / "model.onnx", "r+b") as fh:
        fh.truncate(1 << 30)
    hashed = []
    real = bundle_mod.sha256_file
    monkeypatch.setattr(bundle_mod, "sha256_file", lambda p: hashed.append(Path(p).name) or real(p))
    with pytest.raises(BundleError) as info:
        load_bundle(uni)
    msg = str(info.value)
    assert str(uni / "model.onnx") in msg and "sha256 mismatch" in msg and "file 1,073,741,824 bytes" in msg, msg
    assert "model.onnx" not in hashed


def test_export_does_not_write_through_a_symlinked_artifact(uni, tmp_path, capsys):
    """model.onnx a symbolic link to a file outside the bundle (not listed): export refuses, one
    line, and the file it points to is untouched. Was: overwritten with the ONNX graph (and
    chmod 0644), the export reporting success."""
    victim = tmp_path / "precious.txt"
    victim.write_text("precious\n")
    victim.chmod(0o600)
    m = yaml.safe_load((uni / "manifest.yaml").read_text())
    del m["artifacts"]["model.onnx"]
    (uni / "manifest.yaml").write_text(yaml.safe_dump(m, sort_keys=False))
    (uni / "model.onnx").unlink()
    (uni / "model.onnx").symlink_to(victim)
    rc = _run(["export", str(uni), "--formats", "onnx", "--quiet"])
    _one_line(capsys, rc, str(uni / "model.onnx"), "symbolic link", str(victim))
    assert victim.read_text() == "precious\n" and (victim.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize("model", ["univariate", "skab-pump"])
@pytest.mark.parametrize("backend", ["numpy", *GRAPHS])
def test_load_checks_leave_valid_scores_unchanged(model, backend):
    """The shipped bundles load on every backend, and the checks made on load (their probe steps)
    change no output: a detector on create_backend's backend gives the same bits as one on a
    backend built directly."""
    from edgernn.backends import backend_artifact
    from edgernn.backends.numpy_gru import NumpyGRU

    b = load_bundle(SHIPPED / model)
    checked = _backend(backend, b)
    if backend == "numpy":
        direct = NumpyGRU(b.weights)
    else:
        direct = type(checked)(b.artifact_path(backend_artifact(backend)), name=backend)
    rng = np.random.default_rng(1)
    x = 1.0 + rng.standard_normal((300, 3, b.n_features))  # [T, streams, F]
    runs = []
    for be in (checked, direct):
        det = Detector(b, be)
        runs.append(np.stack([det.process(Batch(["a", "b", "c"], [float(t)] * 3, x[t])).block for t in range(len(x))]))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_artifact_name_too_long_is_one_line(uni, capsys):
    """A listed artifact whose name is too long for the file system: one line naming it. Was: an
    OSError traceback (File name too long) from inspect, replay and export."""
    m = yaml.safe_load((uni / "manifest.yaml").read_text())
    m["artifacts"]["x" * 300] = {"sha256": "0" * 64}
    (uni / "manifest.yaml").write_text(yaml.safe_dump(m, sort_keys=False))
    _one_line(capsys, _run(["inspect", str(uni)]), str(uni / ("x" * 300)), "cannot read")


def test_export_of_a_bundle_path_too_long_says_read_not_write(tmp_path, capsys):
    """`edgernn export` of a path too long for the file system: 'cannot read' naming it. Was:
    'cannot write', as if the bundle had been found and a write had failed."""
    path = tmp_path / ("y" * 300)
    _one_line(capsys, _run(["export", str(path), "--formats", "onnx", "--quiet"]), str(path), "cannot read")


def test_inspect_json_of_a_manifest_with_date_keys(uni, capsys):
    """`edgernn inspect --json` of a manifest with a date as a key (YAML reads `2024-01-01:` as a
    date): printed, the key as its text. Was: a TypeError traceback (keys must be str, ...)."""
    import json

    with open(uni / "manifest.yaml", "a") as fh:
        fh.write("notes: {2024-01-01: retrained, 3: three}\n")
    assert _run(["inspect", "--json", str(uni)]) == 0
    assert json.loads(capsys.readouterr().out)["notes"] == {"2024-01-01": "retrained", "3": "three"}


def test_huge_manifest_is_refused_before_it_is_read(uni, capsys):
    """manifest.yaml grown to a 100 MiB sparse file: refused by its size, in MiB. Was: read whole
    into memory and parsed (a 2 GiB one: 15 s, then 'not valid YAML'; a sparse terabyte: memory)."""
    with open(uni / "manifest.yaml", "r+b") as fh:
        fh.truncate(100 << 20)
    _one_line(capsys, _run(["inspect", str(uni)]), str(uni / "manifest.yaml"), "100 MiB", "64 MiB")


def test_a_backend_refused_at_load_is_a_skipped_parity_row_not_a_traceback(uni):
    # `train --recalibrate` and `export` build the model card's parity table over every backend:
    # a graph refused at load (check_shapes / check_finite raise ValueError) ended the run in a
    # traceback naming a temporary directory
    from edgernn.export.parity import benchmark, parity_report

    pytest.importorskip("ai_edge_litert")
    shutil.copyfile(SHIPPED / "skab-pump" / "model.int8.tflite", uni / "model.int8.tflite")
    register_artifact(uni, "model.int8.tflite")
    b = load_bundle(uni)
    report = parity_report(b, ["numpy", "tflite-int8"])
    assert [r["backend"] for r in report["rows"]] == ["numpy"]
    assert "not this model's artifact" in report["skipped"]["tflite-int8"]
    assert "not this model's artifact" in benchmark(b, ["tflite-int8"], batches=(1,), n=10)["tflite-int8"]
