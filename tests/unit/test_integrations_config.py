"""The integrations' pure parts: config sections, HA ids, the surprise of an event."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from edgernn.config import ConfigError, parse_config
from edgernn.homeassistant import StatePublisher, alerts_filter, slug, surprise_of
from edgernn.scoring import likelihood_from_log10p

BASE = """
node: bench
pipelines:
  - {name: plant, subscribe: plant/+/+, stream: "{1}/{2}", model: MODEL}
"""


def load(extra: str, model_dir) -> object:
    return parse_config(BASE.replace("MODEL", str(model_dir)) + extra, "edgernn.yaml")


def test_sections_as_written_in_the_issue(tmp_path):
    cfg = load("homeassistant: {discovery: true}\nmetrics: {host: 127.0.0.1, port: 9108}\n", tmp_path)
    assert cfg.homeassistant.discovery is True and cfg.homeassistant.prefix == "homeassistant"
    assert (cfg.metrics.host, cfg.metrics.port) == ("127.0.0.1", 9108)
    plain = load("", tmp_path)
    assert plain.homeassistant.discovery is False and plain.metrics is None


@pytest.mark.parametrize("extra, message", [
    ("metrics: {port: 70000}\n", "metrics.port: 70000"),
    ("homeassistant: {discovery: yes please}\n", "homeassistant.discovery: expected true or false"),
    ("homeassistant: {discover: true}\n", "did you mean 'discovery'"),
])
def test_section_errors_name_file_line_key(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load(extra, tmp_path)


def test_object_ids_are_safe_and_distinct():
    ids = {slug(s) for s in ("line1/temp", "line1_temp", "Line1/Temp", "line1/temp ", "ü/x", "", "a" * 200)}
    assert len(ids) == 7
    assert all(set(i) <= set("abcdefghijklmnopqrstuvwxyz0123456789_") for i in ids)
    assert slug("plant") == "plant" and slug("line1_temp") == "line1_temp"  # already safe: unchanged


def test_entity_configs_of_two_pipelines_differ(tmp_path):
    cfg = load("homeassistant: {discovery: true}\n", tmp_path)
    mqtt = SimpleNamespace(subscribe=lambda *a, **k: None)
    pub = StatePublisher(cfg, mqtt, ["a", "b"])
    a, b = pub.entity_configs("a", "s/1"), pub.entity_configs("b", "s/1")
    assert a["binary_sensor"]["unique_id"] != b["binary_sensor"]["unique_id"]
    assert a["binary_sensor"]["name"] == "a s/1 alert"
    assert pub.config_topic("sensor", "a", "s/1").startswith("homeassistant/sensor/edgernn_bench/a_s_1_")


@pytest.mark.parametrize("s", [0.5, 3.0, 9.53, 11.9, 13.0, 40.0, 250.0])
def test_surprise_from_likelihood_inverts_the_detector_map(s):
    lik = float(likelihood_from_log10p(np.array([-s]))[0])
    got = surprise_of(SimpleNamespace(likelihood=lik))
    assert got == pytest.approx(s, rel=2e-3 if s > 12 else 1e-6, abs=2e-3)


def test_surprise_prefers_the_event_field_and_is_never_infinite():
    assert surprise_of(SimpleNamespace(surprise=7.25, likelihood=0.5)) == 7.25
    assert surprise_of(SimpleNamespace(likelihood=1.0)) is None
    assert str(surprise_of(SimpleNamespace(likelihood=0.0))) == "0.0"  # unscored readings: not "-0.0"
    assert surprise_of(SimpleNamespace(surprise=math.inf, likelihood=1.0)) is None


def test_step_histograms_equal_prometheus_clients_own():
    pc = pytest.importorskip("prometheus_client")
    from edgernn.metrics import BATCH_BUCKETS, STEP_BUCKETS, _StepHistograms

    rng = np.random.default_rng(0)
    ours, reg = _StepHistograms(), pc.CollectorRegistry()
    ref_b = pc.Histogram("edgernn_batch_readings", "", ["pipeline"], buckets=BATCH_BUCKETS, registry=reg)
    ref_s = pc.Histogram("edgernn_step_seconds", "", ["pipeline"], buckets=STEP_BUCKETS, registry=reg)
    ours.FOLD_EVERY = 97  # some folds happen in add(), the rest at collect()
    sizes = list(rng.integers(1, 10_000, 500)) + list(BATCH_BUCKETS)  # values on the bounds too
    for i, n in enumerate(sizes):
        pipe, sec = ("a", "b")[i % 2], float(STEP_BUCKETS[i % len(STEP_BUCKETS)] * (1.0 if i % 3 else 1.7))
        ours.add(pipe, int(n), sec)
        ref_b.labels(pipe).observe(int(n))
        ref_s.labels(pipe).observe(sec)
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in ours.collect() for s in f.samples}
    want = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in reg.collect() for s in f.samples
            if not s.name.endswith("_created")}
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert got[k] == pytest.approx(v), k


def test_alerts_filter(tmp_path):
    assert alerts_filter(load("", tmp_path)) == "edgernn/bench/alerts/#"
    mid = load("topics: {alerts: '{prefix}/{stream}/alert'}\n", tmp_path)
    assert alerts_filter(mid) is None
    per = load("topics: {alerts: 'site/{node}/{pipeline}/{stream}'}\n", tmp_path)
    assert alerts_filter(per) == "site/bench/+/#"
