"""Prometheus /metrics of a real daemon: parsed by prometheus_client's own parser, counters move as
readings arrive; a missing package or a busy port is one line at startup."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from .conftest import ROOT, Publisher, Watcher, daemon_config, free_port, series, wait_until

pytestmark = pytest.mark.integration
parser = pytest.importorskip("prometheus_client.parser")


def scrape(port: int) -> dict:
    """(name, sorted labels) -> value for every sample of http://127.0.0.1:port/metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    out = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_parse_and_move(broker, bundle_dir, tmp_path, daemons):
    port = free_port()
    d = daemons(tmp_path, daemon_config(broker.port, bundle_dir, tmp_path / "state",
                                        metrics={"host": "127.0.0.1", "port": port}))
    watch = Watcher(broker.port)
    since = time.monotonic()
    d.start()
    watch.wait_online(since)
    first = wait_until(lambda: _try_scrape(port), 10, what="/metrics answering")
    assert value(first, "edgernn_mqtt_connected") == 1.0
    assert value(first, "edgernn_readings_accepted_total", pipeline="plant") == 0.0
    model = [dict(labels) for (name, labels) in first if name == "edgernn_model_info"]
    assert model and model[0]["pipeline"] == "plant" and model[0]["model"] == "fixture"
    assert [dict(labels)["node"] for (name, labels) in first if name == "edgernn_build_info"] == ["bench"]

    pub = Publisher(broker.port)
    streams, ts, x = series(2, 120, seed=9)
    x[100, 0] += 20  # one spike after warm-up: an alert
    pub.readings([(s, float(ts[t]), float(x[t, j])) for t in range(120) for j, s in enumerate(streams)])
    pub.send("plant/bad/x", b"{not json").wait_for_publish(5)
    watch.wait_stats(lambda s: s["readings_total"] >= 240 and s["rejects_total"] >= 1, what="readings processed")
    wait_until(lambda: watch.alerts(), 5, what="an alert")
    second = scrape(port)
    assert value(second, "edgernn_readings_accepted_total", pipeline="plant") == 240
    assert value(second, "edgernn_rejects_total", pipeline="plant", reason="not_json") == 1
    assert value(second, "edgernn_streams", pipeline="plant") == 3 - 1  # the rejected stream is no stream
    raised = [v for (name, labels), v in second.items()
              if name == "edgernn_alerts_total" and ("kind", "raised") in labels]
    assert sum(raised) == sum(a["event"] == "raised" for a in watch.alerts()) >= 1
    batches = value(second, "edgernn_batch_readings_count", pipeline="plant")
    assert batches >= 1 and value(second, "edgernn_batch_readings_sum", pipeline="plant") == 240
    assert value(second, "edgernn_step_seconds_count", pipeline="plant") == batches
    assert value(second, "edgernn_step_seconds_bucket", pipeline="plant", le="+Inf") == batches
    assert value(second, "edgernn_inbox_dropped_total") == 0 and value(second, "edgernn_mqtt_connects_total") == 1 \
        and value(second, "edgernn_mqtt_unmatched_total") == 0 and value(second, "edgernn_snapshot_errors_total") == 0
    assert ("edgernn_retained_waiting", ()) in second and ("edgernn_uptime_seconds", ()) in second

    pub.readings([(streams[0], float(ts[-1]) + 1 + k, 0.0) for k in range(5)])
    watch.wait_stats(lambda s: s["readings_total"] >= 245, what="5 more readings")
    third = scrape(port)
    assert value(third, "edgernn_readings_accepted_total", pipeline="plant") == 245
    assert math.isnan(first["edgernn_snapshot_age_seconds", ()])  # no snapshot yet: NaN, not 0
    age = wait_until(lambda: (a := value(scrape(port), "edgernn_snapshot_age_seconds")) >= 0 and [a], 5,
                     what="a snapshot (every 0.5 s in these tests)")
    assert age[0] < 5
    assert d.stop() == 0
    pub.close()
    watch.close()


def _try_scrape(port: int):
    try:
        return scrape(port)
    except OSError:
        return None


def serve_once(config_path, env=None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "edgernn", "serve", "-c", str(config_path)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, env={**os.environ, **(env or {})})


def test_missing_package_or_busy_port_is_one_line(broker, bundle_dir, tmp_path, daemons):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        d = daemons(tmp_path, daemon_config(broker.port, bundle_dir, tmp_path / "state",
                                            metrics={"host": "127.0.0.1", "port": port}))
        r = serve_once(d.config_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"metrics.port: cannot serve /metrics on 127.0.0.1:{port}" in r.stderr and ".yaml:" in r.stderr

    hidden = tmp_path / "hide" / "prometheus_client"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('hidden for this test')\n")
    r = serve_once(d.config_path, env={"PYTHONPATH": f"{hidden.parent}:{ROOT}"})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "pip install 'edgernn[metrics]'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
