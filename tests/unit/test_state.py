"""StateStore snapshots: a restored detector carries on exactly where the old one stopped; snapshots
of another model, or corrupt files, are refused with a reason and never raise."""

from __future__ import annotations

import os

import numpy as np
import pytest
from unit_helpers import sine_series

from edgernn.bundle import load_bundle
from edgernn.detector import Batch, Detector, DetectorSettings
from edgernn.state import StateStore


def _data(n=300, streams=("a", "b", "c"), spike=("b", 200)):
    per = {sid: sine_series(n, seed=20 + k, F=2) for k, sid in enumerate(streams)}
    if spike[1] < n:
        per[spike[0]][spike[1], 0] += 10 * per[spike[0]][:, 0].std()
    sids = [sid for i in range(n) for sid in streams]
    ts = np.array([1000.0 + i for i in range(n) for _ in streams])
    x = np.array([per[sid][i] for i in range(n) for sid in streams])
    return sids, ts, x


def _run(det, sids, ts, x, chunk=30):  # 30 divides the 450-reading halves: same batches in both runs
    out = []
    for lo in range(0, len(sids), chunk):
        r = det.process(Batch(sids[lo : lo + chunk], ts[lo : lo + chunk], x[lo : lo + chunk]))
        out.append((r.score, r.likelihood, r.alert, r.event, r.expected,
                    [(e.kind, e.stream, e.alert_id, e.ts, e.score, e.started) for e in r.events]))
    return out


@pytest.fixture
def bundle(tiny_bundle):
    # a random GRU: its head depends on h, so a lost or shuffled hidden state changes the scores
    return load_bundle(tiny_bundle(F=2, H=16, seed=8, warmup=40))


def _settings():
    return DetectorSettings(max_streams=16, max_gap_s=3600.0)


def test_snapshot_restore_continues_identically(bundle, tmp_path):
    sids, ts, x = _data()
    half = len(sids) // 2  # 150 readings per stream each side
    a = Detector(bundle, settings=_settings())
    run_a = _run(a, sids, ts, x)

    b1 = Detector(bundle, settings=_settings())
    first = _run(b1, sids[:half], ts[:half], x[:half])
    assert b1.state.snapshot(tmp_path / "snap.npz", bundle.sha256) == 3
    b2 = Detector(bundle, settings=_settings())
    ok, reason = b2.state.restore(tmp_path / "snap.npz", bundle.sha256, resettle=False)
    assert ok, reason
    second = _run(b2, sids[half:], ts[half:], x[half:])

    flat = lambda runs, i: np.concatenate([r[i] for r in runs])  # noqa: E731
    for i, name in enumerate(("score", "likelihood", "alert", "event", "expected")):
        np.testing.assert_array_equal(flat(run_a, i), flat(first + second, i), err_msg=name)
    assert [e for r in run_a for e in r[5]] == [e for r in first + second for e in r[5]]
    assert any(e[0] == "raised" for r in run_a for e in r[5]), "test data should exercise the alert state"
    for sid in ("a", "b", "c"):  # the whole slab row, column by column (layout.columns), and h
        sa, sb = a.state.get(sid), b2.state.get(sid)
        assert set(sa) == {name for name, width, _, _ in a.state.layout.columns if width != 0} | {"h"}
        for k in sa:
            np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


def test_restored_streams_resettle_before_they_score(bundle, tmp_path):
    """A SIGKILL rolls state back to the last snapshot: the first readings after a restore are
    not scored (no alert burst), for ``settle`` readings, then scoring resumes."""
    sids, ts, x = _data()
    half = len(sids) // 2
    b1 = Detector(bundle, settings=_settings())
    _run(b1, sids[: half // 2], ts[: half // 2], x[: half // 2])  # the snapshot: older than what follows
    b1.state.snapshot(tmp_path / "snap.npz", bundle.sha256)
    b2 = Detector(bundle, settings=_settings())
    ok, reason = b2.state.restore(tmp_path / "snap.npz", bundle.sha256)
    assert ok and "re-settles" in reason
    settle = _settings().settle
    res = b2.process(Batch(sids[half:], ts[half:], x[half:]))
    per = {sid: res.score[[i for i, s in enumerate(sids[half:]) if s == sid]] for sid in ("a", "b", "c")}
    for sid, score in per.items():
        assert np.isnan(score[:settle]).all() and np.isfinite(score[settle + 1 :]).all(), sid
    assert not [e for e in res.events if e.kind == "raised" and e.position < 3 * settle]

def test_restore_without_snapshot_is_a_restart(bundle, tmp_path):
    st = StateStore(2, 16)
    ok, reason = st.restore(tmp_path / "absent.npz", bundle.sha256)
    assert not ok and "absent.npz" in reason and len(st) == 0


def test_snapshot_of_another_model_is_refused(bundle, tiny_bundle, tmp_path):
    det = Detector(bundle)
    sids, ts, x = _data(n=50)
    _run(det, sids, ts, x)
    det.state.snapshot(tmp_path / "s.npz", bundle.sha256)
    other = load_bundle(tiny_bundle(F=2, H=16, seed=9, warmup=40))
    assert other.sha256 != bundle.sha256
    fresh = Detector(other)
    ok, reason = fresh.state.restore(tmp_path / "s.npz", other.sha256)
    assert not ok and "model" in reason and len(fresh.state) == 0


def test_snapshot_with_other_shapes_is_refused(bundle, tmp_path):
    st = StateStore(2, 16)
    st.rows_for(["a"])
    st.snapshot(tmp_path / "s.npz", bundle.sha256)
    other = StateStore(2, 8)  # another hidden size, same sha claimed
    ok, reason = other.restore(tmp_path / "s.npz", bundle.sha256)
    assert not ok and reason and len(other) == 0


@pytest.mark.parametrize("content", [b"", b"garbage, not a zip", b"PK\x03\x04truncated"])
def test_corrupt_snapshot_is_refused_without_exception(bundle, tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    st = StateStore(2, 16)
    ok, reason = st.restore(path, bundle.sha256)
    assert not ok and "bad.npz" in reason and len(st) == 0


def test_truncated_real_snapshot_is_refused(bundle, tmp_path):
    det = Detector(bundle)
    sids, ts, x = _data(n=50)
    _run(det, sids, ts, x)
    det.state.snapshot(tmp_path / "s.npz", bundle.sha256)
    data = (tmp_path / "s.npz").read_bytes()
    (tmp_path / "s.npz").write_bytes(data[: len(data) // 2])
    st = StateStore(2, 16)
    ok, reason = st.restore(tmp_path / "s.npz", bundle.sha256)
    assert not ok and len(st) == 0


def test_pickled_snapshot_is_refused(bundle, tmp_path):
    path = tmp_path / "p.npz"
    np.savez(path, version=np.array(1), model_sha256=np.array(bundle.sha256),
             ids=np.array([object()], dtype=object), num=np.zeros((1, 3)), h=np.zeros((1, 16)))
    ok, _ = StateStore(2, 16).restore(path, bundle.sha256)
    assert not ok


def test_atomic_snapshot_leaves_no_temp_files(bundle, tmp_path):
    det = Detector(bundle)
    sids, ts, x = _data(n=20)
    _run(det, sids, ts, x)
    for _ in range(3):  # overwrite in place
        det.state.snapshot(tmp_path / "s.npz", bundle.sha256)
    assert sorted(os.listdir(tmp_path)) == ["s.npz"]


def test_failed_snapshot_keeps_the_previous_one(bundle, tmp_path, monkeypatch):
    det = Detector(bundle)
    sids, ts, x = _data(n=20)
    _run(det, sids, ts, x)
    det.state.snapshot(tmp_path / "s.npz", bundle.sha256)
    before = (tmp_path / "s.npz").read_bytes()

    import edgernn.fileio

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(edgernn.fileio.os, "fsync", full)
    _run(det, sids, [t + 100 for t in ts], x)
    with pytest.raises(OSError):
        det.state.snapshot(tmp_path / "s.npz", bundle.sha256)
    assert (tmp_path / "s.npz").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["s.npz"]


def test_restore_keeps_the_most_recent_streams_when_capacity_is_smaller(bundle, tmp_path):
    big = Detector(bundle, settings=DetectorSettings(max_streams=10))
    for i, sid in enumerate(["old", "mid", "new"]):
        big.process(Batch([sid], np.array([float(i)]), np.array([[1.0, 2.0]])))
    big.state.snapshot(tmp_path / "s.npz", bundle.sha256)
    small = Detector(bundle, settings=DetectorSettings(max_streams=2))
    ok, reason = small.state.restore(tmp_path / "s.npz", bundle.sha256)
    assert ok, reason
    assert small.state.get("old") is None and small.state.get("mid") and small.state.get("new")


def test_empty_store_snapshot_round_trip(bundle, tmp_path):
    StateStore(2, 16).snapshot(tmp_path / "e.npz", bundle.sha256)
    st = StateStore(2, 16)
    ok, reason = st.restore(tmp_path / "e.npz", bundle.sha256)
    assert ok, reason
    assert len(st) == 0


def test_snapshot_metadata_round_trips_as_scalars(bundle, tmp_path):
    """What restore relies on: the version and the model sha come back as the 0-d scalars written."""
    StateStore(2, 16).snapshot(tmp_path / "m.npz", bundle.sha256)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as data:
        version, sha, layout = data["format"], data["model_sha256"], data["layout"]
    assert version.shape == () and sha.shape == () and layout.shape == ()
    assert str(sha) == bundle.sha256 and str(layout) == StateStore(2, 16).layout.signature()


@pytest.mark.parametrize("fields", ["vector_version", "missing_ids", "missing_last_seen"])
def test_malformed_snapshot_fields_are_refused_without_exception(bundle, tmp_path, fields):
    L = StateStore(2, 16).layout
    snap = {"format": np.array(7), "layout": np.array(L.signature()), "model_sha256": np.array(bundle.sha256),
            "ids": np.array(["a"]), "num": np.zeros((1, L.width)), "num4": np.zeros((1, L.width4), np.float32), "h": np.zeros((1, 16), np.float32),
            "last_seen": np.zeros(1, np.int64)}
    if fields == "vector_version":
        snap["format"] = np.array([7, 7])
    elif fields == "missing_ids":
        del snap["ids"]
    else:
        del snap["last_seen"]
    np.savez(tmp_path / "m.npz", **snap)
    st = StateStore(2, 16)
    ok, reason = st.restore(tmp_path / "m.npz", bundle.sha256)
    assert not ok and reason and len(st) == 0


def test_snapshot_of_another_layout_is_refused(bundle, tmp_path, monkeypatch):
    st = StateStore(2, 16)
    st.rows_for(["a"])
    st.snapshot(tmp_path / "s.npz", bundle.sha256)
    other = StateStore(2, 16)
    monkeypatch.setattr(other.layout, "signature", lambda: "[[\"norm_mean\", 2]]")  # a future layout
    ok, reason = other.restore(tmp_path / "s.npz", bundle.sha256)
    assert not ok and "layout" in reason and len(other) == 0


def test_crafted_snapshot_is_refused_before_it_allocates(bundle, tmp_path):
    """A small file whose members declare (or decompress to) gigabytes: refused from the zip
    directory and the npy headers, without loading the arrays (issue 13: 2.3 MB -> 2.4 GB)."""
    import tracemalloc
    import zipfile

    L = StateStore(2, 16).layout
    path = tmp_path / "bomb.npz"
    rows = 2_000_000  # 2e6 rows x (width float64 + 16 float32): gigabytes once loaded
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, L.width)))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in {"format": np.array(7), "layout": np.array(L.signature()),
                          "model_sha256": np.array(bundle.sha256), "ids": np.array(["a"] * 10),
                          "num4": np.zeros((10, L.width4), np.float32),
                          "h": np.zeros((10, 16), np.float32), "last_seen": np.zeros(10, np.int64)}.items():
            with zf.open(f"{name}.npy", "w") as fh:
                np.lib.format.write_array(fh, arr)
        with zf.open("num.npy", "w", force_zip64=True) as fh:  # zeros compress ~1000:1
            np.lib.format.write_array_header_1_0(fh, {**header, "shape": (rows, L.width)})
            block = bytes(8 * L.width * 10_000)  # 10,000 rows of data written: 20 MB, ~20 kB deflated
            fh.write(block)
    assert path.stat().st_size < 5e6
    st = StateStore(2, 16)
    tracemalloc.start()
    ok, reason = st.restore(path, bundle.sha256)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert not ok and "num" in reason and len(st) == 0, reason
    assert peak < 20e6, f"restore allocated {peak / 1e6:.0f} MB before refusing"


def test_snapshot_path_that_is_a_directory_is_reported_as_such(bundle, tmp_path):
    ok, reason = StateStore(2, 16).restore(tmp_path, bundle.sha256)
    assert not ok and "directory" in reason


def test_evicted_ids_are_listed_until_the_caller_clears_them():
    st = StateStore(1, 4, capacity=2)
    st.rows_for(["a"])
    st.rows_for(["b"])
    st.rows_for(["c"])  # evicts a (least recently seen)
    st.rows_for(["b"])
    st.rows_for(["d"])  # evicts c
    assert st.evicted_ids == ["a", "c"] and st.evictions == 2
    st.evicted_ids.clear()
    st.rows_for(["e"])
    assert st.evicted_ids == ["b"]


def test_lru_ticks_renumbered_before_they_wrap_evict_the_same_streams(monkeypatch):
    """last_seen is uint32: near its limit the ticks are replaced by their ranks (ties kept), and
    the streams evicted afterwards are the ones a store with unbounded ticks evicts."""
    from edgernn import state as state_module

    rng = np.random.default_rng(5)
    waves = [[f"s{k}" for k in rng.choice(40, size=rng.integers(1, 6), replace=False)] for _ in range(400)]
    evicted = []
    for limit in (state_module.TICK_LIMIT, 7):
        monkeypatch.setattr(state_module, "TICK_LIMIT", limit)
        st = StateStore(1, 4, capacity=12)
        rows = [st.rows_for(w).tolist() if len(w) > 1 else [st.row_for(w[0])] for w in waves]
        assert st._tick < 20 if limit == 7 else st._tick == len(waves)
        evicted.append((st.evicted_ids, rows, sorted(st.ids.items())))
    assert evicted[0][0] and evicted[0] == evicted[1]


def test_bytes_per_stream_counts_every_array_of_the_store():
    st = StateStore(1, 32, capacity=1000)
    arrays = st.num.nbytes + st.num4.nbytes + st.h.nbytes + st.last_seen.nbytes
    assert st.bytes_per_stream() == arrays / 1000
    assert st.bytes_per_stream() == st.layout.row_bytes + 4 * 32 + st.last_seen.itemsize


def test_a_shipped_univariate_stream_fits_issue_10s_800_bytes():
    """Issue 10's bar: at most 800 resident bytes per stream for the shipped univariate model with its
    own detector defaults (every per-stream array: both slabs, the int16 hidden state, the LRU tick)."""
    from edgernn.backends import create_backend
    from edgernn.settings import resolve

    shipped = load_bundle(os.path.join(os.path.dirname(__file__), "..", "..", "firmware_models", "univariate"))
    det = Detector(shipped, create_backend("numpy", shipped), resolve(shipped, {}))
    assert det.calm and det.state.layout.offsets["wbias"] >= 0  # the columns the defaults switch on are there
    assert det.state.bytes_per_stream() <= 800, det.state.bytes_per_stream()


# -- the hidden state's storage: int16 Q15 for a bounded (GRU) state, float32 otherwise ----------
def test_bounded_hidden_state_round_trips_within_half_a_q15_step():
    st = StateStore(1, 32, capacity=64, h_bound=1.0)
    assert st.h.dtype == np.int16
    rng = np.random.default_rng(3)
    h = rng.uniform(-1.0, 1.0, (64, 32)).astype(np.float32)  # [B, H]
    h[0, :4] = (-1.0, 1.0, 0.0, 0.5 / 32767)  # the ends, zero, a value on a rounding edge
    rows = rng.permutation(64)
    st.scatter_h(rows, h)
    back = st.gather_h(rows)
    assert back.dtype == np.float32 and back.shape == (64, 32)
    assert np.abs(back - h).max() <= 1 / 65534 + 1e-7  # + float32 rounding of the product
    assert back[0, 0] == -1.0 and back[0, 1] == 1.0 and back[0, 2] == 0.0
    st.scatter_h(slice(5, 6), np.array([[1.5, -7.0] + [np.inf] + [0.25] * 29], np.float32))  # out of range: clipped
    np.testing.assert_array_equal(st.gather_h(slice(5, 6))[0, :3], [1.0, -1.0, 1.0])
    st.zero_h(rows[:3])
    assert not st.gather_h(rows[:3]).any()
    assert st.bytes_per_stream() == st.layout.row_bytes + 2 * 32 + st.last_seen.itemsize


def test_gru_detector_stores_q15_and_persistence_float32(bundle, tmp_path):
    """The backend declares how h is stored: a persistence detector keeps its unbounded h (a value,
    a variance, a count) exactly, as float32; a GRU's h is int16. A snapshot holds h as stored
    (restore is bit-identical) and one with the other dtype is refused, not converted."""
    from edgernn.backends import create_backend

    sids, ts, x = _data(n=120)
    dets = {name: Detector(bundle, backend=create_backend(name, bundle), settings=_settings())
            for name in ("numpy", "persistence")}
    assert dets["numpy"].state.h.dtype == np.int16 and dets["persistence"].state.h.dtype == np.float32
    for name, det in dets.items():
        _run(det, sids, ts, x)
        row = det.state.ids["a"]
        assert np.abs(det.state.gather_h(slice(row, row + 1))).max() > 0.01, name  # h was stepped
        det.state.snapshot(tmp_path / f"{name}.npz", bundle.sha256)
        again = Detector(bundle, backend=create_backend(name, bundle), settings=_settings())
        ok, reason = again.state.restore(tmp_path / f"{name}.npz", bundle.sha256, resettle=False)
        assert ok, reason
        for sid in ("a", "b", "c"):
            a_row, b_row = det.state.ids[sid], again.state.ids[sid]
            np.testing.assert_array_equal(det.state.h[a_row], again.state.h[b_row])
            assert det.state.h[a_row].dtype == again.state.h[b_row].dtype
    p = dets["persistence"]
    count = p.state.gather_h(slice(p.state.ids["a"], p.state.ids["a"] + 1))[0]
    assert np.abs(count).max() > 1.0  # persistence's h is unbounded: Q15 could not hold it
    for made, into in (("numpy", "persistence"), ("persistence", "numpy")):
        det = Detector(bundle, backend=create_backend(into, bundle), settings=_settings())
        ok, reason = det.state.restore(tmp_path / f"{made}.npz", bundle.sha256)
        assert not ok and "hidden state" in reason and len(det.state) == 0, reason


def test_q15_store_saturates_non_finite_without_wrapping():
    import warnings

    st = StateStore(1, 4, capacity=2, h_bound=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value encountered in cast"
        st.scatter_h(slice(0, 1), np.array([[np.nan, -np.inf, 3e9, -1.00001]], np.float32))
    np.testing.assert_array_equal(st.h[0], [32767, -32767, 32767, -32767])  # never wraps to the other sign


@pytest.mark.parametrize("mode", ["installed", "plain"])
def test_q15_round_trip_matches_numpy_rint_on_ties_bounds_and_strided_rows(mode):
    """The kernel's Q15 store (_q15: float32 product, clamp, round half to even by adding and
    subtracting 1.5 x 2^52) gives numpy's rint on ties, at the bounds and for non-finite values, on
    contiguous rows (the compiled pointer loops) and strided ones (the general loop); the load is
    the stored integer x scale rounded to float32."""
    from unit_helpers import plain_kernel_module

    from edgernn import kernel as installed

    k = plain_kernel_module() if mode == "plain" else installed
    to_q15 = 1024.0  # a power of two: h = (n + 0.5) / 1024 is an exact tie
    ties = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 32766.5, -32766.5, 3.5, -3.5]) / to_q15
    odd = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 32767.4 / to_q15, -32767.6 / to_q15, 40.0, -40.0])
    rng = np.random.default_rng(3)
    h = np.concatenate([ties, odd, rng.uniform(-33, 33, 13)]).astype(np.float32)  # [32]
    prod = h * np.float32(to_q15)  # float32 products, as the kernel rounds them
    with np.errstate(invalid="ignore"):
        want = np.rint(np.clip(np.where(np.isnan(prod), 32767.0, prod), -32767, 32767)).astype(np.int16)
    assert want[0] == 0 and want[1] == 2 and want[2] == 2 and want[6] == 32766  # ties to even
    for stride in (1, 2):
        hq = np.zeros((3, 32 * stride), np.int16)
        store = hq[:, ::stride]
        src = np.zeros((1, 32 * stride), np.float32)
        src[0, ::stride] = h
        k.q15_store(src[:, ::stride], to_q15, np.array([1], np.intp), store)
        np.testing.assert_array_equal(store[1], want)
        assert not store[0].any() and not store[2].any()
        out = np.zeros((1, 32 * stride), np.float32)
        k.q15_load(store, np.array([1], np.intp), 1.0 / to_q15, out[:, ::stride])
        np.testing.assert_array_equal(out[0, ::stride], (want.astype(np.float64) / to_q15).astype(np.float32))


def test_one_check_of_where_a_file_can_be_written(tmp_path):
    # fileio.target_problem: shared by the commands' --out / --json (replay's --plot too), export and snapshots
    import os

    from edgernn.fileio import target_problem

    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    (tmp_path / "file").write_text("x")
    assert target_problem(tmp_path) == "is a directory"
    assert target_problem(tmp_path / "new.csv") is None
    assert target_problem(tmp_path / "no" / "x.csv") == f"{tmp_path / 'no'} does not exist"
    assert target_problem(tmp_path / "no" / "x.csv", make_dirs=True) is None  # (made by the writer)
    assert target_problem(tmp_path / "file" / "x.csv", make_dirs=True) == f"{tmp_path / 'file'} is not a directory"
    assert target_problem("/dev/null") is None and target_problem(fifo) is None  # written as they are
    assert target_problem(fifo, replaced=True) == "is not a regular file"  # a snapshot or an artifact
    assert target_problem(tmp_path / ("a" * 300 + ".csv")) == "cannot check: File name too long"  # (a traceback)
