"""The detector core's promises under hostile sequences, checked differentially on the shipped
models and every backend: a reading's outputs (score, likelihood, onset, surprise, expected, sigma,
flags, reject reason, events) do not depend on how the readings are cut into batches, nor on other
streams' readings interleaved with them (hostile ones included); a huge Python int in a Reading,
a backend returning NaN for one row, many streams beyond max_streams and the plain-Python kernel
on a negative EW variance neither raise nor leak into other streams."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from unit_helpers import plain_kernel_module

from edgernn import detector as detector_module
from edgernn import kernel
from edgernn.backends import BACKEND_NAMES, BackendUnavailable, create_backend
from edgernn.bundle import load_bundle
from edgernn.detector import Batch, Detector, DetectorSettings, Reading

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("univariate", "skab-pump")
T0 = 1.7e9
# Float ONNX / TFLite kernels may block rows differently by batch size (tests/contract: a few
# float32 ulps). Measured here: bit-identical outputs for every backend; the float runtimes are
# held to a tolerance all the same, so another CPU's kernel choice is not a failure.
FLOAT_RUNTIMES = ("onnx", "tflite")
ODD_NAMES = ("", " ", "a/b/#", "+", "名前", "x" * 300, "\x00", "s0 ")


pytestmark = pytest.mark.usefixtures("each_kernel_mode")  # conftest.py: the installed kernel, then plain Python


def _bundle(model):
    return load_bundle(ROOT / "firmware_models" / model)


def _backend(name, bundle):
    try:
        return create_backend(name, bundle)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


def _det(bundle, backend_name="numpy", backend=None, **settings) -> Detector:
    settings = {"warmup": 20, "max_gap_s": 600.0, **settings}
    return Detector(bundle, backend=backend or _backend(backend_name, bundle), settings=DetectorSettings(**settings))


def _hostile(F, n, seed, streams, rate=0.25, future=True):
    """n readings (stream, ts, values) of sine-like streams, a share ``rate`` of them hostile:
    NaN / inf / 1e300 / 1e-300 / -1e200 values, NaN / 1e300 / far-ahead timestamps, redeliveries,
    the same timestamp with other values, out-of-order, long gaps, a stream restarting its clock."""
    rng = np.random.default_rng(seed)
    clock, last, out = dict.fromkeys(streams, T0), {}, []
    for _ in range(n):
        s = streams[int(rng.integers(len(streams)))]
        clock[s] += 1.0
        ts, v = clock[s], [math.sin(clock[s] / 7.0 + f) + 0.1 * rng.normal() for f in range(F)]
        k = int(rng.integers(14)) if rng.random() < rate else -1
        f = int(rng.integers(F))
        if k in (0, 1, 2, 3, 4):
            v[f] = (math.nan, math.inf, 1e300, 1e-300, -1e200)[k]
        elif k == 5:
            ts = math.nan
        elif k in (6, 7) and s in last:
            ts = last[s][0]
            v = list(last[s][1]) if k == 6 else v  # a redelivery / the same ts with other values
        elif k == 8:
            ts = clock[s] - 50.0  # out of order
        elif k == 9:
            clock[s] += 5000.0  # a gap beyond max_gap_s
            ts = clock[s]
        elif k == 10 and future:
            ts = (1e300, clock[s] + 1e6)[int(rng.integers(2))]  # far ahead (with now: rejected / capped)
        elif k == 11:
            clock[s] -= 5.0  # the stream restarts its clock (out of order until it passes its last)
        last[s] = (ts, list(v))
        out.append((s, ts, v))
    return out


def _run(det, seq, cuts, now=None):
    """Feed ``seq`` in batches starting at ``cuts``; per reading (Result row, flags, accepted,
    reject reason, its events as dicts)."""
    rows, bounds = [], [*cuts, len(seq)]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        part = seq[lo:hi]
        res = det.process(Batch([p[0] for p in part], np.array([p[1] for p in part], np.float64),
                                np.array([p[2] for p in part], np.float64).reshape(len(part), -1)), now)
        for j in range(len(part)):
            events = [e.to_dict() for e in res.events if e.position == j]
            rows.append((res.block[j].copy(), tuple(res.flags[j]), bool(res.accepted[j]), res.reject_reason[j], events))
    return rows


def _random_cuts(n, seed, most=40):
    rng = np.random.default_rng(seed)
    cuts = [0]
    while cuts[-1] < n:
        cuts.append(cuts[-1] + int(rng.integers(1, most)))
    return cuts[:-1]


def _assert_same(got, want, exact=True, where=""):
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g[1:4] == w[1:4], f"{where} reading {i}: flags / accepted / reject {g[1:4]} != {w[1:4]}"
        if exact:
            np.testing.assert_array_equal(g[0], w[0], err_msg=f"{where} reading {i}")
            assert repr(g[4]) == repr(w[4]), f"{where} reading {i}: events"
        else:
            np.testing.assert_allclose(g[0], w[0], rtol=1e-5, atol=1e-9, equal_nan=True, err_msg=f"{where} reading {i}")
            assert [(e["event"], e["alert_id"], e["reason"]) for e in g[4]] == \
                   [(e["event"], e["alert_id"], e["reason"]) for e in w[4]], f"{where} reading {i}: events"


@pytest.mark.parametrize("backend_name", BACKEND_NAMES)
@pytest.mark.parametrize("model", MODELS)
def test_hostile_sequences_give_the_same_outputs_however_batched(model, backend_name):
    bundle = _bundle(model)
    exact = backend_name not in FLOAT_RUNTIMES
    for now in (None, T0 + 600.0):  # (far-ahead timestamps with now only: without, one locks its stream out)
        seq = _hostile(bundle.n_features, 700, seed=3, streams=("a", "b", *ODD_NAMES[:3]), future=now is not None)
        want = _run(_det(bundle, backend_name), seq, range(len(seq)), now)  # one reading at a time
        assert sum(w[2] for w in want) > 150 and any(w[3] for w in want)  # scored and rejected both
        for cuts in (_random_cuts(len(seq), 1), _random_cuts(len(seq), 2, 6), [0]):
            _assert_same(_run(_det(bundle, backend_name), seq, cuts, now), want, exact, f"{model} {backend_name} now={now}")


@pytest.mark.parametrize("backend_name", BACKEND_NAMES)
@pytest.mark.parametrize("model", MODELS)
def test_a_stream_is_not_touched_by_hostile_streams_interleaved_with_it(model, backend_name):
    bundle = _bundle(model)
    F = bundle.n_features
    mine = _hostile(F, 300, seed=5, streams=("mine",), rate=0.1, future=False)
    others = _hostile(F, 600, seed=6, streams=ODD_NAMES, rate=0.6)
    rng = np.random.default_rng(7)
    where = np.sort(rng.choice(len(mine) + len(others), len(mine), replace=False))  # mine's positions
    mixed, it_mine, it_other = [], iter(mine), iter(others)
    for i in range(len(mine) + len(others)):
        mixed.append(next(it_mine) if i in set(where.tolist()) else next(it_other))
    alone = _run(_det(bundle, backend_name), mine, range(len(mine)))
    together = _run(_det(bundle, backend_name), mixed, _random_cuts(len(mixed), 8))
    got = [together[i] for i in where.tolist()]
    for row in got:
        for e in row[4]:
            assert e["stream"] == "mine"
    # events carry no batch position in to_dict: compared as they are
    _assert_same(got, alone, backend_name not in FLOAT_RUNTIMES, f"{model} {backend_name}")


@pytest.mark.parametrize("model", MODELS)
def test_evictions_do_not_depend_on_the_batching(model):
    """More streams than max_streams: which stream is evicted, and so every later output, is the
    one-at-a-time one however the readings are batched. Before: random batches changed hundreds
    of outputs (a wave evicted by its own order, or a stream of the same wave), and one batch
    with more new streams than the store holds raised OverflowError."""
    bundle = _bundle(model)
    seq = _hostile(bundle.n_features, 500, seed=9, streams=tuple("abcdef"), rate=0.0)
    want = _run(_det(bundle, max_streams=3), seq, range(len(seq)))
    for cuts in (_random_cuts(len(seq), 1, 6), _random_cuts(len(seq), 2, 4), _random_cuts(len(seq), 3, 40), [0]):
        det = _det(bundle, max_streams=3)
        _assert_same(_run(det, seq, cuts), want, True, f"{model} cuts {cuts[:4]}")
        assert det.state.evictions > 100


def test_a_batch_of_more_new_streams_than_max_streams_is_scored_not_raised():
    bundle = _bundle("univariate")
    det = _det(bundle, max_streams=2)
    res = det.process(Batch(["a", "b", "c", "d"], np.full(4, T0), np.ones((4, 1))))
    assert res.accepted.all() and det.state.evictions == 2 and set(det.state.ids) == {"c", "d"}


def test_process_readings_with_a_python_int_beyond_float64_rejects_it():
    """Before: OverflowError from batch_from_readings (a value or a timestamp of 10**400)."""
    det = _det(_bundle("univariate"))
    res = det.process_readings([Reading("x", 1.0, (10**400,))])
    assert res.reject_reason == ["non_finite"]
    res = det.process_readings([Reading("x", 10**400, (1.0,)), Reading("y", 2.0, (-(10**400),)), Reading("z", 3.0, (2,))])
    assert res.reject_reason == ["non_finite", "non_finite", None]
    assert det.stats()["rejects"] == {"non_finite": 3} and set(det.state.ids) == {"z"}


class _Poison:
    """A real backend whose ``at``-th call returns NaN in row 0 of ``what`` (pred or h)."""

    def __init__(self, real, what, at=40):
        self.real, self.what, self.at, self.calls = real, what, at, 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def step(self, x, h):
        pred, h_next = (np.array(a) for a in self.real.step(x, h))
        self.calls += 1
        if self.calls == self.at:
            (pred if self.what == "pred" else h_next)[0] = np.nan
        return pred, h_next


@pytest.mark.parametrize("what", ["pred", "h"])
@pytest.mark.parametrize("backend_name", ["numpy", "persistence"])
def test_a_backend_nan_for_one_row_resets_that_stream_only_and_is_counted(backend_name, what):
    """Before, persistence (a float32 h): a NaN h made the compiled kernel raise TypeError from
    likelihood() at the next reading (plain Python: NaN scores for ever, accepted, never counted)."""
    bundle = _bundle("univariate")
    seq = _hostile(1, 600, seed=11, streams=("a", "b", "c"), rate=0.0)
    cuts = list(range(0, len(seq), 3))
    want = _run(_det(bundle, backend_name), seq, cuts)
    det = _det(bundle, backend=_Poison(_backend(backend_name, bundle), what))
    got = _run(det, seq, cuts)
    differ = [i for i, (g, w) in enumerate(zip(got, want)) if not np.array_equal(g[0], w[0], equal_nan=True)]
    poisoned = {seq[i][0] for i in differ}
    assert len(poisoned) <= 1  # only the stream of row 0 of that call
    if backend_name == "persistence" or what == "pred":  # a float32 h / a prediction: that stream starts over
        assert det.stats()["state_resets"] == 1 and len(poisoned) == 1
        sid = poisoned.pop()
        last = [g for g, s in zip(got, seq) if s[0] == sid][-100:]
        assert all(math.isfinite(g[0][3]) for g in last)  # scored again after its new warm-up
    # (a GRU's NaN h goes into its int16 Q15 store as the bound, state.py: no reset, no NaN)
    assert all(math.isfinite(g[0][3]) for g in got if g[2])  # every accepted reading has a surprise


def test_the_plain_kernel_gives_the_compiled_numbers_on_a_negative_ew_variance(each_kernel_mode, monkeypatch):
    """Gaussian noise on the pump model: a level statistic's EW variance rounds slightly below
    -1e-4 at its first update; C's sqrt gives NaN there, the plain-Python kernel raised ValueError."""
    bundle = _bundle("skab-pump")
    rng = np.random.default_rng(1)
    seq = [("p", T0 + t, rng.normal(size=8).tolist()) for t in range(200)]
    if each_kernel_mode == "plain":
        monkeypatch.setattr(detector_module, "kernel", kernel)  # the reference: as installed
    want = _run(_det(bundle, warmup=32, max_gap_s=None), seq, range(len(seq)))
    monkeypatch.setattr(detector_module, "kernel", plain_kernel_module())
    got = _run(_det(bundle, warmup=32, max_gap_s=None), seq, range(len(seq)))
    _assert_same(got, want, True, "plain vs installed kernel")


def test_a_store_call_never_evicts_one_of_its_own_streams_for_another():
    """Before: rows_for(["a", "c"]) on a full store evicted the least recently seen stream, "a"
    itself, and gave "a" and "c" the same row."""
    from edgernn.state import StateStore

    st = StateStore(1, 4, capacity=2)
    st.rows_for(["a"])
    st.rows_for(["b"])
    rows = st.rows_for(["a", "c"])
    assert rows[0] != rows[1] and set(st.ids) == {"a", "c"} and st.evicted_ids == ["b"]
    with pytest.raises(OverflowError):  # more distinct streams in one call than the store holds
        st.rows_for(["x", "y", "z"])
