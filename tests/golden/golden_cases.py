"""The golden recordings: their inputs, how each is run, and what is stored of its outputs.

Four cases, each a list of (stream, ts, values) readings fed to ``Detector.process`` in batches:

  demo        edgernn/data/demo_sensor.csv through firmware_models/univariate, batches of 64
  fleet       12 simulated univariate streams (edgernn.sim.Fleet, seed 3) interleaved, with gaps,
              exact value repeats, NaN / inf values and out-of-order readings; batches of 40 in which
              a stream can appear several times (so waves are exercised); max_gap_s = 120
  days        one univariate stream, 15 days at 10-minute readings with a weekday/weekend daily
              profile and an evening spike on day 12: the seasonal look becomes trusted
  skab_synth  an 8-feature recording through firmware_models/skab-pump, synthetic around the
              model's normalisation (the inputs are stored in the fixture)
  skab_valve  the first 1,200 rows of SKAB valve1/0.csv through skab-pump when /work/shared/data
              holds it (inputs not stored: SKAB is GPL; the test skips without the file)

Stored per reading: score, likelihood, onset, alert, event, expected[F], sigma[F], the reject
reason; and the event list (kind, stream, alert id, ts, position, reason, feature, score,
likelihood). make_golden.py writes them; test_golden.py compares them (1e-9).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MODELS = REPO / "firmware_models"
SKAB_VALVE = Path("/work/shared/data/skab/valve1/0.csv")
CASES = ("demo", "fleet", "days", "skab_synth", "skab_valve")
MODEL_OF = {"demo": "univariate", "fleet": "univariate", "days": "univariate", "skab_synth": "skab-pump",
            "skab_valve": "skab-pump"}
BATCH_OF = {"demo": 64, "fleet": 40, "days": 64, "skab_synth": 50, "skab_valve": 64}
SETTINGS_OF = {"fleet": {"max_gap_s": 120.0}}
STORED_INPUTS = ("fleet", "days", "skab_synth")  # regenerable too, but stored so a numpy change cannot move them


def fleet_inputs():
    """12 interleaved streams, 300 readings each at 10 s, with gaps, repeats, bad values."""
    from edgernn.sim import Fleet

    fleet = Fleet(n_sensors=12, n_readings=300, seed=3, first_fault=120)
    rng = np.random.default_rng(3)
    streams, ts, x = [], [], []
    for k, readings in fleet.steps():
        for _topic, sid, t, v in readings:
            s = int(sid.rsplit("sensor", 1)[1])
            if s == 2 and 150 <= k < 170:  # a 200 s silence: hidden state reset
                continue
            if s == 5 and 200 <= k < 230:  # repeats of one value
                v = 41.25
            streams.append(sid), ts.append(t), x.append(v)
    x = np.array(x)
    ts = np.array(ts)
    bad = rng.choice(len(x), 6, replace=False)
    x[bad[:3]] = np.nan
    x[bad[3:5]] = np.inf
    ts[bad[5]] = np.nan
    order = np.arange(len(x))
    # a reading moved 30 places later: it arrives after newer ones of its stream (out of order)
    late = int(np.flatnonzero(np.array(streams) == "line1/sensor1")[200])
    order = np.insert(np.delete(order, late), late + 30, late)
    return [streams[i] for i in order], ts[order], x[order][:, None]


def days_inputs():
    """15 days at 10-minute readings; a weekday and a weekend profile; one spike on day 12."""
    rng = np.random.default_rng(11)
    n = 15 * 144
    t0 = 1_700_006_400.0  # 2023-11-15 00:00 UTC, a Wednesday
    ts = t0 + 600.0 * np.arange(n)
    hour = (ts % 86400.0) / 3600.0
    weekend = ((np.floor(ts / 86400.0) + 3) % 7) >= 5
    day = np.exp(-((hour - 13.0) / 3.0) ** 2)
    x = 20.0 + np.where(weekend, 2.0, 6.0) * day + 0.3 * rng.standard_normal(n)
    x[12 * 144 + 120] += 5.0  # 20:00 on day 12, when the profile is low
    return ["room"] * n, ts, x[:, None]


def skab_synth_inputs():
    """600 readings at 1 s of 8 features around skab-pump's normalisation; a shift of feature 2 at 400."""
    from edgernn.bundle import load_bundle

    b = load_bundle(MODELS / "skab-pump")
    rng = np.random.default_rng(5)
    n = 600
    t = np.arange(n)[:, None]
    z = 0.6 * np.sin(2 * np.pi * t / rng.uniform(30, 90, 8)) + 0.4 * rng.standard_normal((n, 8))
    z[400:460, 2] += 4.0
    x = b.norm_mean + b.norm_std * z
    return ["pump"] * n, 1_583_744_073.0 + t[:, 0].astype(float), x


def demo_inputs():
    from edgernn.recording import read_recording

    rec = read_recording(REPO / "edgernn/data/demo_sensor.csv", ("value",))
    return list(rec.streams), rec.ts, rec.x


def skab_valve_inputs():
    from edgernn.bundle import load_bundle
    from edgernn.recording import read_recording

    rec = read_recording(SKAB_VALVE, load_bundle(MODELS / "skab-pump").features)
    return list(rec.streams[:1200]), rec.ts[:1200], rec.x[:1200]


def inputs(case: str):
    """(streams list[str], ts float64[N], x float64[N, F]) of a case: stored when the fixture has them."""
    path = HERE / f"{case}.npz"
    if case in STORED_INPUTS and path.exists():
        with np.load(path, allow_pickle=False) as d:
            names = [str(s) for s in d["stream_names"]]
            return [names[i] for i in d["stream_index"]], d["in_ts"], d["in_x"]
    return globals()[f"{case}_inputs"]()


def run(case: str, backend=None, kernel=None, batch: int | None = None):
    """Run a case through a fresh Detector; returns (outputs dict of arrays, events list of dicts)."""
    from edgernn.bundle import load_bundle
    from edgernn.detector import Batch, Detector, DetectorSettings

    streams, ts, x = inputs(case)
    det = Detector(load_bundle(MODELS / MODEL_OF[case]), backend, DetectorSettings(**SETTINGS_OF.get(case, {})))
    N, F = x.shape
    out = {"score": np.full(N, np.nan), "likelihood": np.full(N, np.nan), "onset": np.full(N, np.nan),
           "alert": np.zeros(N, bool), "event": np.zeros(N, np.int8), "expected": np.full((N, F), np.nan),
           "sigma": np.full((N, F), np.nan)}
    rejects, events = [""] * N, []
    step = batch or BATCH_OF[case]
    for lo in range(0, N, step):
        hi = min(lo + step, N)
        res = det.process(Batch(streams[lo:hi], ts[lo:hi], x[lo:hi]))
        for name in out:
            out[name][lo:hi] = getattr(res, name)
        rejects[lo:hi] = [r or "" for r in res.reject_reason]
        events += [{"kind": e.kind, "stream": e.stream, "alert_id": e.alert_id, "ts": e.ts,
                    "position": e.position + lo, "reason": e.reason, "feature": e.feature, "score": e.score,
                    "likelihood": e.likelihood} for e in res.events]
    out["reject"] = np.array(rejects)
    return out, events


def save(case: str) -> Path:
    out, events = run(case)
    arrays = dict(out)
    if case in STORED_INPUTS:
        streams, ts, x = inputs(case)
        names = sorted(set(streams))
        arrays.update(stream_names=np.array(names), stream_index=np.array([names.index(s) for s in streams], np.int16),
                      in_ts=ts, in_x=x)
    arrays["events_json"] = np.array(json.dumps(events))
    path = HERE / f"{case}.npz"
    np.savez_compressed(path, **arrays)
    return path


def load(case: str):
    with np.load(HERE / f"{case}.npz", allow_pickle=False) as d:
        data = {k: d[k] for k in d.files}
    return data, json.loads(str(data.pop("events_json")))
