"""The mixture head (K Gaussians per feature): the weight contract, the kernel's equivalent z (both
kernel modes), and what it is for: a switch between levels the model expects is not a surprise,
a spike to a level it does not expect is."""

from __future__ import annotations

import math

import numpy as np
import pytest
from unit_helpers import plain_kernel_module, random_weights

from edgernn import detector as detector_module
from edgernn import kernel
from edgernn.backends.base import check_weights, components
from edgernn.backends.numpy_gru import NumpyGRU
from edgernn.bundle import BundleError, load_bundle, write_bundle, write_manifest
from edgernn.detector import Batch, Detector, DetectorSettings


@pytest.fixture(params=["compiled", "plain"])
def kern(request, monkeypatch):
    if request.param == "compiled":
        if not kernel.COMPILED:
            pytest.skip("the kernel is not compiled here")
        return kernel
    plain = plain_kernel_module()
    monkeypatch.setattr(detector_module, "kernel", plain)
    return plain


def test_gauss_tail_z_inverts_the_tail(kern):
    for z in (0.0, 1e-6, 0.5, 1.0, 2.5, 6.0, 12.0, 37.0, 38.0, 120.0, 3000.0):
        back = kern.gauss_tail_z(kern.gauss_tail_log10(z) * math.log(10.0))
        assert back == pytest.approx(z, rel=1e-9, abs=1e-7)
    assert kern.gauss_tail_z(0.0) == 0.0 and kern.gauss_tail_z(1e-300) == 0.0


def test_gauss_tail_z_start_converges_at_any_depth(kern):
    """Newton from the rational start: the root of ln(2 Phi(-z)) = ln p across ln p in [-1e6, 0]
    (ln p back within 1e-12 relative, or z within 1e-9 of 0 near p = 1) and the same z as Newton
    iterated to 1e-13 from sqrt(-2 ln p), the former start (1e-9 relative)."""
    ln10 = math.log(10.0)
    for ln_p in -np.concatenate([np.logspace(-12, 6, 400), np.linspace(1.0, 1e6, 50)]):
        z = kern.gauss_tail_z(float(ln_p))
        ref = math.sqrt(-2.0 * ln_p)
        for _ in range(200):  # the former iteration, in full
            g = kern.gauss_tail_log10(ref) * ln10
            step = (g - ln_p) / (-math.sqrt(2.0 / math.pi) * math.exp(-0.5 * ref * ref - g))
            ref = max(ref - step, 0.0)
            if abs(step) <= 1e-13 * (1.0 + ref):
                break
        assert z == pytest.approx(ref, rel=1e-9, abs=1e-15), ln_p
        assert kern.gauss_tail_log10(z) * ln10 == pytest.approx(ln_p, rel=1e-12, abs=1e-16), ln_p


def test_weight_contract():
    w = random_weights(2, 8, seed=1, K=3)
    assert check_weights(w) == (2, 8) and components(w) == 3
    assert w["head.W_mean"].shape == (6, 8) and w["head.b_logit"].shape == (6,)
    assert NumpyGRU(w).step(np.zeros((4, 2), np.float32), np.zeros((4, 8), np.float32))[0].shape == (4, 18)
    missing = dict(w)
    del missing["head.W_logit"]
    with pytest.raises(ValueError, match="head.W_logit"):
        check_weights(missing)
    one = random_weights(2, 8, seed=1)
    with pytest.raises(ValueError, match="head.W_logit"):
        check_weights({**one, "head.W_logit": w["head.W_logit"]})  # a Gaussian head has no logits
    with pytest.raises(ValueError, match="head.W_mean"):
        check_weights({**one, "head.W_mean": np.zeros((3, 8), np.float32)})  # 3 rows: not K F
    for shape in ((8, 2, 1), (8,), ()):  # a tampered gru.W_ir: "too many values to unpack" before
        with pytest.raises(ValueError, match=r"weight gru.W_ir has shape .*expected \(H, F\): 2 dimensions"):
            check_weights({**one, "gru.W_ir": np.zeros(shape, np.float32)})


def test_manifest_head_must_match_the_weights(tmp_path):
    out = write_bundle(tmp_path / "m", name="m", version="0", features=["v"], weights=random_weights(1, 8, K=3))
    b = load_bundle(out)
    assert b.components == 3 and b.manifest["head"]["type"] == "mixture" and b.manifest["head"]["components"] == 3
    b.manifest["head"]["components"] = 2
    write_manifest(out, b.manifest)
    with pytest.raises(BundleError, match="K=3"):
        load_bundle(out)


def _level_weights(K: int, sigma: float, step: float, stay_logit: float = 2.0) -> dict:
    """A head that ignores h: component 0 predicts 'same level' (x), components 1, 2 'a step of
    +-step' (normalised units), all with std sigma; K = 1: only 'same level'."""
    w = random_weights(1, 8, seed=3, gain=0.3, K=K)
    w["head.W_mean"][:] = 0.0
    w["head.W_logvar"][:] = 0.0
    w["head.b_logvar"][:] = 2.0 * math.log(sigma)
    w["head.b_mean"][:] = [0.0, step, -step][:K]
    if K > 1:
        w["head.W_logit"][:] = 0.0
        w["head.b_logit"][:] = [stay_logit, 0.0, 0.0]
    return w


def _run(bundle_dir, x, warmup=100):
    det = Detector(load_bundle(bundle_dir), settings=DetectorSettings(warmup=warmup, seasonal=False))
    ts = 1_700_000_000.0 + 60.0 * np.arange(len(x))
    r = det.process(Batch(["s"] * len(x), ts, x[:, None]))
    return det, r


@pytest.mark.parametrize("spike, clip, least", [(5.0, 10.0, 50.0), (60.0, 1000.0, 2500.0)])
def test_identical_components_score_as_one_gaussian(tmp_path, kern, spike, clip, least):
    """K = 3 copies of one Gaussian (equal logits) is that Gaussian: same scores to 1e-9; the second
    spike is deep enough (z > 50, tail < 1e-500) that _mix_z leaves its linear sum for log space."""
    one = _level_weights(1, 0.3, 0.0)
    three = {k: (np.concatenate([v] * 3) if k.startswith("head.") else v) for k, v in one.items()}
    three["head.W_logit"] = np.zeros((3, 8), np.float32)
    three["head.b_logit"] = np.zeros(3, np.float32)
    rng = np.random.default_rng(0)
    x = 20.0 + np.cumsum(rng.standard_normal(400)) * 0.2
    x[300] += spike
    d1 = write_bundle(tmp_path / "k1", name="k1", version="0", features=["v"], weights=one, input_clip=clip)
    d3 = write_bundle(tmp_path / "k3", name="k3", version="0", features=["v"], weights=three, input_clip=clip)
    (det1, r1), (det3, r3) = _run(d1, x), _run(d3, x)
    assert (det1.components, det3.components) == (1, 3)
    ok = np.isfinite(r1.score)
    assert ok.sum() > 250 and r1.score[ok].max() > least  # the spike is there
    np.testing.assert_allclose(r3.score[ok], r1.score[ok], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(r3.expected, r1.expected, rtol=1e-12)
    np.testing.assert_allclose(r3.sigma, r1.sigma, rtol=1e-12)


def test_a_level_switch_the_mixture_expects_is_not_a_surprise(tmp_path, kern):
    """A hard on/off signal (levels 0 and 10, normalised about -1 / +1): the Gaussian head
    (same-level only) is surprised by every edge, the K = 3 head (same level or a step of 2) by
    none; a spike to a third level surprises both."""
    rng = np.random.default_rng(5)
    level = (np.arange(1200) // 50) % 2 * 10.0  # an edge every 50 readings
    x = level + 0.05 * rng.standard_normal(len(level))
    x[1111] = 25.0  # a third level: a fault
    d1 = write_bundle(tmp_path / "k1", name="k1", version="0", features=["v"], weights=_level_weights(1, 0.02, 2.0))
    d3 = write_bundle(tmp_path / "k3", name="k3", version="0", features=["v"], weights=_level_weights(3, 0.02, 2.0))
    (_, r1), (_, r3) = _run(d1, x), _run(d3, x)
    edges = np.flatnonzero(np.diff(level) != 0) + 1
    edges = edges[edges > 150]
    assert r1.score[edges].min() > 1e3  # the Gaussian head: a 100-sigma surprise at every edge
    assert r3.score[edges].max() < 10.0  # the mixture: an expected step
    assert r3.score[1111] > 1e3 and r1.score[1111] > 1e3  # the fault, under both
    assert r3.expected[edges[0], 0] == pytest.approx(x[edges[0] - 1], abs=0.5)  # the most probable: stay


def test_logvar_max_leaves_no_catch_all_component(tmp_path, kern):
    """A K = 3 head whose third component is wide (std e^2 normalised units) explains a level shift
    of ~6 normalised units; the same weights under a bundle with head.logvar_max 0 (``edgernn train
    --logvar-max 0``: every component's std <= the stream's) do not. The persistence baseline on
    that bundle keeps its own cap (a trained head's cap is not the baseline's)."""
    from edgernn.backends import BASELINE, create_backend

    w = _level_weights(3, 0.3, 2.0)
    w["head.b_mean"][2] = 0.0
    w["head.b_logvar"][2] = 4.0  # the catch-all: std e^2
    rng = np.random.default_rng(7)
    x = 20.0 + 0.05 * rng.standard_normal(600)
    x[400:] += 0.3  # a level shift of ~6 stream stds
    wide = write_bundle(tmp_path / "wide", name="w", version="0", features=["v"], weights=w)
    capped = write_bundle(tmp_path / "cap", name="c", version="0", features=["v"], weights=w, logvar_max=0.0)
    (_, rw), (det_c, rc) = _run(wide, x), _run(capped, x)
    assert rw.score[400] < 5.0 < 30.0 < rc.score[400]  # absorbed by the wide component / a fault
    assert det_c._params()["lvmax"] == 0.0
    base = Detector(load_bundle(capped), create_backend(BASELINE, load_bundle(capped)), DetectorSettings(warmup=100))
    assert base._params()["lvmax"] == 6.0 and base._params()["lvmin"] == det_c._params()["lvmin"]


def test_the_mixture_spread_look_follows_the_predicted_spread(tmp_path, kern):
    """A mixture head's second spread statistic follows the model's own predicted spread: the
    stream's mspr_fast is the EW mean (rate max(1 / fast_window, 1 / n)) of its most probable
    component's variance (sigma / std, normalised units), as a naive recursion over the alerts'
    sigma computes it; with a head whose spread ignores x, a noise burst leaves it flat while the
    values' spread statistic (the Gaussian head's look) sees the burst."""
    rng = np.random.default_rng(11)
    x = 20.0 + 0.05 * rng.standard_normal(1500)
    x[900:1000] += 0.6 * rng.standard_normal(100)  # a noise burst: 12x the noise
    w = random_weights(1, 8, seed=4, gain=1.0, K=3)  # a spread that moves with h, so with x
    d3 = write_bundle(tmp_path / "k3", name="k3", version="0", features=["v"], weights=w)
    det, r = _run(d3, x)
    row = det.state.get("s")
    s2 = (r.sigma[:, 0] / np.sqrt(row["norm_var"][0])) ** 2  # [N] sigma_n^2 (std fixed after warm-up)
    mfv = 0.0
    for n, v in enumerate(s2, start=1):
        mfv += max(1.0 / det.settings.fast_window, 1.0 / n) * (v - mfv)
    assert np.ptp(s2[200:]) > 0.1 * s2[200:].mean()  # the spread does move
    assert float(row["mspr_fast"][0]) == pytest.approx(mfv, rel=1e-3)
    flat = _level_weights(3, 0.3, 2.0)
    d1 = write_bundle(tmp_path / "k1", name="k1", version="0", features=["v"], weights=_level_weights(1, 0.3, 2.0))
    df = write_bundle(tmp_path / "kf", name="kf", version="0", features=["v"], weights=flat)
    (det1, _), (detf, _) = _run(d1, x), _run(df, x)
    assert "mspr_fast" not in det1.state.get("s") or det1.state.get("s")["mspr_fast"].size == 0  # K = 1: no columns
    assert float(detf.state.get("s")["mspr_fast"][0]) == pytest.approx(0.09, rel=1e-3)  # 0.3^2, burst or not


def _naive_wb_step(pred: np.ndarray, wb: np.ndarray, c: float, rate: float, lv: tuple) -> np.ndarray:
    """One reading of the weight correction as its docstring states it, in numpy (K = 3, F = 1):
    a_k <- a_k (1 + rate (g_k / w_k - 1)), g_k / w_k = N_k(c) / sum_j w_j N_j(c) (capped at 100),
    w the stored (corrected) weights; |ln a_k| <= ln 10."""
    mu, lvar, logit = pred[0:3], np.clip(pred[3:6], *lv), pred[6:9]
    s = np.exp(0.5 * lvar)
    dens = np.exp(-0.5 * ((c - mu) / s) ** 2) / s  # [K] N_k(c) without the common 1 / sqrt(2 pi)
    w = np.exp(logit - logit.max())
    w /= w.sum()
    ratio = np.minimum(dens / (w * dens).sum(), 100.0)
    return np.clip(wb + np.log1p(rate * (ratio - 1.0)), -math.log(10.0), math.log(10.0))


def test_weight_memory_corrects_the_mixture_weights_by_what_the_stream_does(tmp_path, kern):
    """weight_memory m > 0: each stream learns a log correction of the mixture's weights (wbias,
    added to the logits the model predicts), an online EM step per reading after warm-up, as the
    naive formula computes it from the stored prediction. On a quiet stream a wide catch-all
    component never explains a reading, so its weight falls (to the floor, one decade): a level
    shift it used to absorb is then a surprise. On an on/off signal whose edges the step components
    explain, those keep their weight and the edges stay unsurprising. m = 0 (the default) is bit
    for bit the detector without it, and keeps no column."""
    w = _level_weights(3, 1.0, 2.0)  # 'same level' as wide as the stream (normalised sd 1)
    w["head.b_mean"][2] = 0.0
    w["head.b_logvar"][2] = 4.0  # the catch-all: std e^2, weight e^0 / (e^2 + 2)
    d = write_bundle(tmp_path / "wide", name="w", version="0", features=["v"], weights=w)
    rng = np.random.default_rng(7)
    x = 20.0 + 0.05 * rng.standard_normal(1500)
    x[1300:] += 0.4  # a level shift of ~8 stream stds
    ts = 1_700_000_000.0 + 60.0 * np.arange(len(x))

    def run(m, xs, check=False):
        s = DetectorSettings(warmup=100, seasonal=False, **({} if m is None else {"weight_memory": m}))
        det = Detector(load_bundle(d), settings=s)
        out = []
        for i in range(len(xs)):
            before = det.state.get("s")
            out.append(det.process(Batch(["s"], ts[i:i + 1], xs[i:i + 1, None])))
            if check and before is not None and i > 100:  # past warm-up: the naive step from the stored row
                mean, sd = before["norm_mean"][0], math.sqrt(before["norm_var"][0])
                c = float(np.clip((xs[i] - mean) / sd, -10.0, 10.0))
                lv = (det._params()["lvmin"], det._params()["lvmax"])
                want = _naive_wb_step(before["pred"], before["wbias"], c, 1.0 / m, lv)
                np.testing.assert_allclose(det.state.get("s")["wbias"], want, rtol=1e-4, atol=1e-5)
        return det, np.array([float(r.score[0]) for r in out])

    (d0, s0), (dn, sn), (dm, sm) = run(0.0, x), run(None, x), run(200.0, x, check=True)
    np.testing.assert_array_equal(s0, sn)  # off: bit for bit
    assert "wbias" not in d0.state.get("s") and dm.state.get("s")["wbias"].size == 3
    assert dm.state.bytes_per_stream() == d0.state.bytes_per_stream() + 12
    wb = run(200.0, x[:1300])[0].state.get("s")["wbias"]  # before the shift
    assert wb[2] < min(-0.5, wb[0] - 0.5), wb  # the catch-all faded (to its maximum-likelihood weight); "same level" kept its own
    assert sm[1300] > 1.2 * s0[1300] > 1.2 * 4.0, (s0[1300], sm[1300])  # the shift: more of a surprise with it
    level = (np.arange(1200) // 50) % 2 * 10.0  # an edge every 50 readings, as above
    on_off = level + 0.05 * rng.standard_normal(len(level))
    edges = np.flatnonzero(np.diff(level) != 0) + 1
    _, se = run(200.0, on_off)
    assert se[edges[edges > 150]].max() < 10.0
    # the wave path (finish_wave: streams interleaved in one batch) keeps the same corrections
    both = Detector(load_bundle(d), settings=DetectorSettings(warmup=100, seasonal=False, weight_memory=200.0))
    n = 900
    sids = ["quiet", "on_off"] * n
    tt = np.repeat(ts[:n], 2)
    xx = np.stack([x[:n], on_off[:n]], axis=1).reshape(-1, 1)
    both.process(Batch(sids, tt, xx))
    for sid, alone in (("quiet", run(200.0, x[:n])[0]), ("on_off", run(200.0, on_off[:n])[0])):
        np.testing.assert_allclose(both.state.get(sid)["wbias"], alone.state.get("s")["wbias"], rtol=1e-6, atol=1e-7)
