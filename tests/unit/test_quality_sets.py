"""benchmarks/quality_synthetic.py: the labelled sets it writes, and that a run uses the model's
detector_defaults (as `edgernn replay` does)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from unit_helpers import load_benchmark

from edgernn.bundle import load_bundle
from edgernn.recording import parse_timestamp, read_recording

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def qs():
    return load_benchmark("quality_synthetic")


def test_counts_set_has_each_fault_and_kind_and_counts_stay_counts(qs, tmp_path):
    n = qs.write_counts(tmp_path, per_fault=2, clean=4, length=1000, seed=5)
    assert n == 2 * len(qs.COUNT_FAULTS) + 4
    with open(tmp_path / "labels.csv", newline="") as fh:
        labels = [row["label"] for row in csv.DictReader(fh)]
    assert sorted(labels) == sorted(f for f in qs.COUNT_FAULTS for _ in range(2))
    files = sorted(p for p in tmp_path.glob("*.csv") if p.name != "labels.csv")
    assert len(files) == n and {p.name.split("_")[0] for p in files} == set(qs.COUNT_KINDS)
    for p in files:
        if p.name.startswith(("counts_", "bursty_")) and "_clean_" in p.name:
            x = read_recording(p, ["value"]).x[:, 0]
            assert len(x) == 1000 and (x >= 0).all() and np.array_equal(x, np.round(x))


def test_sets_are_reproducible_from_their_seed(qs, tmp_path):
    for write in (qs.write_duty, qs.write_counts):
        a, b, c = tmp_path / f"{write.__name__}a", tmp_path / f"{write.__name__}b", tmp_path / f"{write.__name__}c"
        write(a, per_fault=1, clean=1, length=1000, seed=3), write(b, per_fault=1, clean=1, length=1000, seed=3)
        write(c, per_fault=1, clean=1, length=1000, seed=4)
        names = sorted(p.name for p in a.iterdir())
        assert names == sorted(p.name for p in b.iterdir())
        assert all((a / m).read_bytes() == (b / m).read_bytes() for m in names)
        assert any((a / m).read_bytes() != (c / m).read_bytes() for m in names if m != "labels.csv")


def test_run_uses_the_models_detector_defaults(qs, tmp_path):
    """A bundle whose detector_defaults set warmup to the whole recording raises nothing and scores nothing."""
    qs.write_duty(tmp_path / "set", per_fault=1, clean=1, length=1000, seed=2)
    shutil.copytree(ROOT / "firmware_models" / "univariate", tmp_path / "m")
    man = tmp_path / "m" / "manifest.yaml"
    manifest = yaml.safe_load(man.read_text())
    manifest.setdefault("detector_defaults", {})["warmup"] = 1000  # beside the bundle's own defaults
    man.write_text(yaml.safe_dump(manifest, sort_keys=False))
    recs, labels = qs.load_set(tmp_path / "set", ["value"])
    plain = qs.evaluate(recs, labels, load_bundle(ROOT / "firmware_models" / "univariate"), "numpy")
    warm = qs.evaluate(recs, labels, load_bundle(tmp_path / "m"), "numpy")
    assert plain["clean_readings"] > 0 and warm["clean_readings"] == 0 and warm["detected"] == 0


def test_false_alerts_are_listed_with_their_reading_and_look_and_settings_apply(qs, tmp_path):
    """Each false alert of a run is (stream, reading index, look), on a clean stream or before its
    fault; ``settings`` override the bundle's (here a threshold low enough for many false alerts)."""
    qs.write_duty(tmp_path / "set", per_fault=1, clean=2, length=1200, seed=11)
    recs, labels = qs.load_set(tmp_path / "set", ["value"])
    bundle = load_bundle(ROOT / "firmware_models" / "univariate")
    loose = qs.evaluate(recs, labels, bundle, "numpy", settings={"threshold": 0.9})
    assert loose["false_alerts"] == len(loose["false"]) > 0
    length = {s: len(ts) for s, ts, _ in recs}
    for stream, i, look in loose["false"]:
        assert 0 <= i < length[stream] and look in ("instant", "smoothed", "level", "spread", "stuck", "seasonal")
        first = min((a for _, a, _ in labels.get(stream, [])), default=np.inf)
        ts = dict((s, t) for s, t, _ in recs)[stream]
        assert ts[i] < first
    shipped = qs.evaluate(recs, labels, bundle, "numpy")
    assert shipped["false_alerts"] < loose["false_alerts"]


def test_chance_catches_tell_how_much_recall_false_alerts_alone_give(qs, tmp_path):
    """chance_catches is the Poisson expectation (0 at no false alerts, near 1 per event for a long window
    at a high rate); a run reports it per kind and in total, and a looser threshold (more false alerts)
    expects more events caught by chance."""
    assert qs.chance_catches(0.0, [100, 5000]) == 0.0
    assert qs.chance_catches(1e-3, [100]) == pytest.approx(1 - np.exp(-0.1))
    assert qs.chance_catches(25e-4, [5000]) > 0.99
    qs.write_duty(tmp_path / "set", per_fault=1, clean=2, length=1200, seed=11)
    recs, labels = qs.load_set(tmp_path / "set", ["value"])
    bundle = load_bundle(ROOT / "firmware_models" / "univariate")
    loose = qs.evaluate(recs, labels, bundle, "numpy", settings={"threshold": 0.9})
    shipped = qs.evaluate(recs, labels, bundle, "numpy")
    assert 0.0 <= shipped["by_chance"] < loose["by_chance"] <= loose["events"]
    assert loose["by_chance"] == pytest.approx(sum(v["by_chance"] for v in loose["per_kind"].values()))


def test_duty_and_counts_faults_start_where_fault_at_says(qs, tmp_path):
    """write_duty / write_counts(fault_at=(FROM, TO)): each fault starts between FROM and TO of the
    recording; the default is the sets as they were (0.4, 0.8)."""
    for write in (qs.write_duty, qs.write_counts):
        for at, lo, hi in (((0.2, 0.3), 200, 300), (qs.FAULT_AT, 400, 800)):
            out = tmp_path / f"{write.__name__}{at[0]}"
            write(out, per_fault=2, clean=0, length=1000, seed=3, fault_at=at)
            with open(out / "labels.csv", newline="") as fh:
                starts = [round((parse_timestamp(r["start"]) - 1.7e9) / 60.0) for r in csv.DictReader(fh)]
            assert starts and all(lo <= s <= hi for s in starts), (write.__name__, at, starts)
        a, b = tmp_path / f"{write.__name__}d1", tmp_path / f"{write.__name__}d2"
        write(a, per_fault=1, clean=1, length=1000, seed=3), write(b, per_fault=1, clean=1, length=1000, seed=3, fault_at=(0.4, 0.8))
        assert all((a / m.name).read_bytes() == m.read_bytes() for m in b.iterdir())
    with pytest.raises(SystemExit):  # the command line refuses a range outside (0.05, 0.95) with one line
        qs.main(["duty", "--out", str(tmp_path / "bad"), "--fault-at", "0.5,1.2"])


def test_quantised_set_sits_on_its_resolution_and_has_each_fault(qs, tmp_path):
    """write_quantised: clean recordings are slow and on a grid (few distinct values, long runs of
    one value), every fault of QUANT_FAULTS is there, and the kinds cycle through QUANT_KINDS."""
    n = qs.write_quantised(tmp_path, per_fault=2, clean=3, length=2000, seed=5)
    assert n == 2 * len(qs.QUANT_FAULTS) + 3
    with open(tmp_path / "labels.csv", newline="") as fh:
        assert sorted(r["label"] for r in csv.DictReader(fh)) == sorted(f for f in qs.QUANT_FAULTS for _ in range(2))
    files = sorted(p for p in tmp_path.glob("*.csv") if p.name != "labels.csv")
    assert {p.name.split("_")[1] for p in files} == set(qs.QUANT_KINDS)
    for p in files:
        if "_clean_" in p.name:
            x = read_recording(p, ["value"]).x[:, 0]
            steps = np.abs(np.diff(x))
            res = steps[steps > 0].min()
            assert np.allclose(np.round(x / res) * res, x, atol=res * 1e-6)  # on the grid
            assert (steps == 0).mean() > 0.5 and len(np.unique(x)) < 100  # mostly repeats, few values


def test_smooth_set_sizes_its_faults_by_the_noise_inside_a_large_swing(qs, tmp_path):
    """smooth_signal: a slow swing 10-100x the noise, and a fault scale of twice the noise sd; the set's
    spikes are 10-18 noise sd, yet smaller than the swing (what the soft set's signal-sized faults never
    test); every fault of SMOOTH_FAULTS is there."""
    rng = np.random.default_rng(3)
    for _ in range(5):
        x, scale = qs.smooth_signal(rng, 3000)
        noise = np.std(np.diff(x)) / np.sqrt(2)  # the slow swing hardly moves from one reading to the next
        assert noise == pytest.approx(scale / 2, rel=0.2) and np.std(x) > 5 * noise
    n = qs.write_smooth(tmp_path, per_fault=2, clean=2, length=3000, seed=4)
    assert n == 2 * len(qs.SMOOTH_FAULTS) + 2
    rows = _labelled_faults(tmp_path, qs.SMOOTH_FAULTS, 2)
    for r in rows:
        if r["label"] == "spike":
            _assert_spike_sized_by_the_noise(tmp_path / f"{r['stream']}.csv")


def _labelled_faults(out: Path, faults, per_fault: int) -> list[dict]:
    """labels.csv's rows, checked to hold per_fault of each fault."""
    with open(out / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["label"] for r in rows) == sorted(f for f in faults for _ in range(per_fault))
    return rows


def _assert_spike_sized_by_the_noise(path: Path) -> None:
    """The recording's one spike stands at least 8 noise sd off its neighbours, inside its range."""
    x = read_recording(path, ["value"]).x[:, 0]
    noise = np.median(np.abs(np.diff(x))) / 0.954  # median |N(0, 2 sd^2)|: robust to the spike
    i = int(np.argmax(np.abs(x - np.convolve(x, np.ones(9) / 9, mode="same"))[5:-5])) + 5
    step = abs(x[i] - (x[i - 1] + x[i + 1]) / 2)
    assert 8 * noise < step < np.ptp(x), (step, noise, np.ptp(x))


def test_sensors_set_is_pressure_temperature_and_humidity_at_their_usual_values(qs, tmp_path):
    """sensor_signal(rng, j, n): recording j is a pressure (near 1013), a temperature (15-25 plus its
    swing) or a humidity (40-70 plus its swing) by j % 3, its noise half the fault scale and its
    daily swing far larger; write_sensors labels one spike (a single reading at least 8 noise sd off
    its neighbours, inside the recording's range) or dip (3-8 readings) per faulty recording."""
    rng = np.random.default_rng(5)
    for j, (kind, lo, hi) in enumerate((("pressure", 995, 1031), ("temperature", 5, 35), ("humidity", 25, 85))):
        name, x, scale = qs.sensor_signal(rng, j, 2880)
        noise = np.std(np.diff(x, 2)) / np.sqrt(6)  # second differences: blind to the swing's slope
        assert name == kind and lo < x.min() and x.max() < hi, (kind, x.min(), x.max())
        assert noise == pytest.approx(scale / 2, rel=0.1) and np.ptp(x) > 5 * noise
    n = qs.write_sensors(tmp_path, per_fault=3, clean=3, length=2000, seed=7)
    assert n == 3 * len(qs.SENSOR_FAULTS) + 3
    for r in _labelled_faults(tmp_path, qs.SENSOR_FAULTS, 3):
        assert r["stream"].split("_")[0] in ("pressure", "temperature", "humidity")
        if r["label"] == "dip":
            assert 2 <= (parse_timestamp(r["end"]) - parse_timestamp(r["start"])) / 60 <= 7
        else:
            assert r["start"] == r["end"]
            _assert_spike_sized_by_the_noise(tmp_path / f"{r['stream']}.csv")


def test_iot_set_has_every_fault_on_the_sensors_and_loses_their_daily_swing(qs, tmp_path):
    """write_iot: the sensors set's pressures, temperatures and humidities with each of edgernn.synth's
    seven faults, sized by the clean recording's sd; lost periodicity takes the daily swing away, so
    the labelled stretch is flat but for the noise (and a temperature's weather)."""
    n = qs.write_iot(tmp_path, per_fault=3, clean=3, length=2000, seed=7)
    assert n == 3 * len(qs.IOT_FAULTS) + 3 and "lost_periodicity" in qs.IOT_FAULTS
    for r in _labelled_faults(tmp_path, qs.IOT_FAULTS, 3):
        assert r["stream"].split("_")[0] in ("pressure", "temperature", "humidity")
        if r["label"] == "lost_periodicity" and r["stream"].startswith(("pressure", "humidity")):
            rec = read_recording(tmp_path / f"{r['stream']}.csv", ["value"])
            lost = (rec.ts >= parse_timestamp(r["start"])) & (rec.ts <= parse_timestamp(r["end"]))
            x = rec.x[:, 0]
            assert np.ptp(x[lost]) < 0.2 * np.ptp(x[~lost]), (np.ptp(x[lost]), np.ptp(x[~lost]))


def test_duty0_set_reads_an_exact_zero_when_off_with_the_duty_sets_draws(qs, tmp_path):
    """write_duty0: the duty set's multiplicative on/off signals with an off level of 0, so each off
    stretch is a run of exact zeros (30-240 readings) and every on reading is positive; the duty set's
    six faults; duty_parts(off_zero=True) draws the same numbers, so where the signal is on it is the
    duty set's signal; and the duty set's own signals are what they were before off_zero existed
    (numbers taken from that version)."""
    n = qs.write_duty0(tmp_path, per_fault=2, clean=2, length=2000, seed=7)
    assert n == 2 * len(qs.DUTY_FAULTS) + 2
    _labelled_faults(tmp_path, qs.DUTY_FAULTS, 2)
    x = read_recording(tmp_path / "duty_zero_clean_000.csv", ["value"]).x[:, 0]
    off = x == 0.0
    assert 0.1 < off.mean() < 0.9 and np.all(x[~off] > 0.0)
    edges = np.flatnonzero(np.diff(off.astype(np.int8))) + 1
    inner = [(a, b) for a, b in zip(edges[:-1], edges[1:]) if off[a]]  # whole off stretches
    assert inner and all(30 <= b - a <= 240 for a, b in inner), inner
    a, level = qs.duty_parts(np.random.default_rng(3), 2000, "multiplicative")
    b, level0 = qs.duty_parts(np.random.default_rng(3), 2000, "multiplicative", off_zero=True)
    on = level0 > 0.0
    assert np.array_equal(level > level.min(), on) and np.array_equal(a[on], b[on]) and np.all(b[~on] == 0.0)
    before = {"additive": ([0.47098679654923475, 0.4438875844425716, 0.4903953458695607], 2671.8062288485894),
              "multiplicative": ([0.5038682271402398, 0.49582239377817067, 0.5096306807870913], 2670.2689414650595)}
    for model, (first, total) in before.items():
        x, level = qs.duty_parts(np.random.default_rng(3), 2000, model)
        assert np.allclose(x[:3], first, rtol=1e-12) and np.isclose(x.sum(), total, rtol=1e-12), model
        assert np.isclose(level.sum(), 2667.7481312180817, rtol=1e-12)


def test_duty7_set_has_every_fault_and_its_lost_periodicity_is_a_third_level(qs, tmp_path):
    """write_duty7: the duty set's on/off signals with each of edgernn.synth's seven faults; lost
    periodicity takes the on/off part away, so the labelled stretch sits at the middle of the two
    levels (far from both, by the noise) where no clean reading sits."""
    n = qs.write_duty7(tmp_path, per_fault=2, clean=2, length=2000, seed=7)
    assert n == 2 * len(qs.DUTY7_FAULTS) + 2 and "lost_periodicity" in qs.DUTY7_FAULTS
    for r in _labelled_faults(tmp_path, qs.DUTY7_FAULTS, 2):
        if r["label"] == "lost_periodicity":
            rec = read_recording(tmp_path / f"{r['stream']}.csv", ["value"])
            lost = (rec.ts >= parse_timestamp(r["start"])) & (rec.ts <= parse_timestamp(r["end"]))
            x = rec.x[:, 0]
            low, high = np.percentile(x[~lost], [10, 90])
            mid = np.median(x[lost])
            assert low + 0.3 * (high - low) < mid < high - 0.3 * (high - low), (low, mid, high)
            assert np.mean(np.abs(x[~lost] - mid) < 0.1 * (high - low)) < 0.02  # no clean reading there
    with pytest.raises(ValueError, match="--length 200 is too short"):  # a signal that never switches
        qs.write_duty7(tmp_path / "short", per_fault=1, clean=1, length=200, seed=7)
