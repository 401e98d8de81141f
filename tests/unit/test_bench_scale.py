"""edgernn bench --streams: the scale table (µs per reading with N live streams, bytes per stream),
several backends in one run, the one-line errors; and pin_blas."""

from __future__ import annotations

import json
import os

import numpy as np

from edgernn.cli import main
from edgernn.commands.bench import cycle_for, state_bytes, stream_values
from edgernn.state import StateStore
from edgernn.threads import blas_threads, pin_blas


def test_scale_table_in_json(tiny_bundle, tmp_path, capsys):
    model = tiny_bundle(F=1, H=8, warmup=16)
    out = tmp_path / "bench.json"
    rc = main(["bench", "--model", str(model), "--backend", "numpy,persistence", "--batch", "1,2", "--streams", "4,7",
               "--seconds", "0.02", "--rounds", "1", "--no-peers", "--json", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    scale = doc["scale"]
    # every backend x batch x streams (7 streams at batch 2: whole groups only -> 6)
    assert {(r["backend"], r["batch"], r["streams"]) for r in scale} == {
        (b, B, n) for b in ("numpy", "persistence") for B, ns in ((1, (4, 7)), (2, (4, 6))) for n in ns}
    for r in scale:
        assert set(r) >= {"backend", "batch", "streams", "us_per_reading", "bytes_per_stream"}
        assert r["us_per_reading"] > 0 and r["bytes_per_stream"] > 0
    assert doc["results"] and "peers" in doc and doc["settings"]["streams"] == [4, 7]
    assert doc["machine"]["blas_pinning"]
    printed = capsys.readouterr().out
    assert "bytes/stream" in printed and "scale:" in printed


def test_the_bench_runs_the_bundle_with_its_detector_defaults(tiny_bundle, tmp_path):
    """The scale table measures the detector every command runs: the bundle's detector_defaults
    apply (a mixture bundle with weight_memory keeps its weight correction: 12 more bytes per stream
    for K = 3)."""
    from edgernn.bundle import load_bundle, write_bundle
    from edgernn.settings import write_model_defaults
    from unit_helpers import random_weights

    model = write_bundle(tmp_path / "k3", name="k3", version="0", features=["v"], weights=random_weights(1, 8, K=3))
    bytes_of = {}
    for name, defaults in (("plain", None), ("corrected", {"weight_memory": 100.0})):
        if defaults:
            write_model_defaults(model, defaults)
        out = tmp_path / f"{name}.json"
        assert main(["bench", "--model", str(model), "--backend", "numpy", "--batch", "1", "--streams", "4",
                     "--seconds", "0.02", "--rounds", "1", "--no-peers", "--json", str(out)]) == 0
        bytes_of[name] = json.loads(out.read_text())["scale"][0]["bytes_per_stream"]
    assert bytes_of["corrected"] == bytes_of["plain"] + 12, bytes_of
    assert load_bundle(model).manifest["detector_defaults"] == {"weight_memory": 100.0}


def test_the_bench_warms_streams_until_every_look_scores(tiny_bundle):
    """warm_readings: past warm-up and settling, and past level_settle's wait, so the level and
    spread looks are scored on the readings the bench times (they were silent for the first 96
    readings of the timed part with univariate's defaults)."""
    from edgernn.bundle import load_bundle
    from edgernn.commands.bench import warm_readings
    from edgernn.detector import Batch, Detector, DetectorSettings

    bundle = load_bundle(tiny_bundle(F=1, H=8, warmup=64))
    det = Detector(bundle, settings=DetectorSettings(warmup=64, fast_window=32.0, level_settle=4.0))
    n = warm_readings(det)
    assert n == 64 // 2 + 4 * 32 + 16  # the settle wait is the longer one here
    det.record_looks = True
    x = np.sin(np.arange(n + 1) / 7.0)[:, None]
    r = det.process(Batch(["s"] * (n + 1), np.arange(n + 1, dtype=float), x))
    assert np.isfinite(r.looks["level"][-1]) and np.isnan(r.looks["level"][n - 17])  # scored only once settled
    plain = Detector(bundle, settings=DetectorSettings(warmup=64))
    assert warm_readings(plain) == 64 + plain.settings.settle + 16


def test_bad_arguments_are_one_line(tiny_bundle, capsys):
    model = str(tiny_bundle(F=1, H=8, warmup=16))
    assert main(["bench", "--model", model, "--backend", "numpy,nope"]) == 2
    assert "unknown nope" in capsys.readouterr().err
    assert main(["bench", "--model", model, "--batch", "4", "--streams", "2"]) == 2
    assert "smaller than the largest batch" in capsys.readouterr().err
    assert main(["bench", "--model", model, "--streams", "10,x"]) == 2
    assert "--streams '10,x'" in capsys.readouterr().err


def test_state_bytes_counts_the_slab_and_hidden_state():
    store = StateStore(1, 32, capacity=1000)
    per = state_bytes(store) / 1000
    assert per >= 32 * 4 + store.layout.width * 8  # h float32[H] + slab float64[K] per stream


def test_values_fit_a_memory_budget():
    assert cycle_for(1000, 1) == 4096 and cycle_for(100_000, 1) == 256
    v = stream_values(3, 2, cycle=256)
    assert v.shape == (3, 256, 2) and np.isfinite(v).all()
    wrap = np.abs(v[:, 0] - v[:, -1])  # [3, 2] the step from the cycle's end back to its start
    steps = np.abs(np.diff(v, axis=1)).max(axis=1)  # [3, 2] the largest step inside the cycle
    assert (wrap <= steps).all()  # seamless: no jump at the wrap


def test_pin_blas_sets_one_thread_and_pins_live_pools(monkeypatch):
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    how = pin_blas()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1" and os.environ["OMP_NUM_THREADS"] == "1"
    pools = blas_threads()
    if pools:  # threadpoolctl installed: numpy is loaded here, so its pool was pinned
        assert how.startswith("threadpoolctl") and set(pools.values()) == {1}


def test_all_backends_says_which_listed_backend_cannot_load(tiny_bundle, tmp_path, capsys):
    """--backend all with a corrupt model.onnx: its rows were dropped silently (exit 0, nothing said)
    while `replay --backend onnx` refused the file. Now one line on stderr, a 'missing' line under
    the table and in the JSON; the other backends run (exit 0). Named by itself: exit 2, one line."""
    from edgernn.bundle import register_artifact

    model = tiny_bundle(F=1, H=8, warmup=16, fresh=True)
    (model / "model.onnx").write_bytes(b"not a protobuf" * 10)
    register_artifact(model, "model.onnx")
    out = tmp_path / "bench.json"
    rc = main(["bench", "--model", str(model), "--backend", "all", "--batch", "1", "--seconds", "0.02",
               "--rounds", "1", "--no-peers", "--json", str(out)])
    printed = capsys.readouterr()
    assert rc == 0
    left_out = [line for line in printed.err.splitlines() if "left out" in line]
    assert len(left_out) == 1 and "backend onnx left out" in left_out[0]  # (or: onnxruntime not installed)
    assert "missing: no onnx rows" in printed.out
    doc = json.loads(out.read_text())
    assert set(doc["missing_backends"]) == {"onnx"} and doc["missing_backends"]["onnx"] in left_out[0]
    assert {r["backend"] for r in doc["results"]} == {"numpy", "persistence"}
    assert main(["bench", "--model", str(model), "--backend", "onnx"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "onnx" in err
