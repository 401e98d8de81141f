"""Daemon config: the acceptance config loads as-is; errors name file, line and key; no secrets leak."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from edgernn.config import ConfigError, load_config

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI needed to make certificates")

ACCEPTANCE = """\
node: bench
mqtt:
  host: 127.0.0.1
  port: 18830
  client_id: edgernn-bench
state:
  dir: /tmp/edgernn-state
pipelines:
  - name: plant
    subscribe: plant/+/+
    stream: "{1}/{2}"          # wildcard captures of the topic, 1-based
    payload: {format: json, value: value, timestamp: ts}
    model: MODEL
"""


@pytest.fixture
def model(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    return d


def write(tmp_path, text, model=None, name="edgernn.yaml"):
    p = tmp_path / name
    p.write_text(text.replace("MODEL", str(model)) if model else text)
    return p


def error(tmp_path, text, model) -> str:
    p = write(tmp_path, text, model)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    return str(exc.value)


def test_acceptance_config_loads_with_defaults(tmp_path, model):
    cfg = load_config(write(tmp_path, ACCEPTANCE, model))
    assert cfg.node == "bench"
    m = cfg.mqtt
    assert (m.host, m.port, m.client_id, m.protocol, m.qos, m.clean_session) == ("127.0.0.1", 18830, "edgernn-bench", "5", 1, False)
    assert m.session_expiry_s > 0 and m.tls is None and m.username is None
    (p,) = cfg.pipelines
    assert (p.name, p.subscribe, p.stream, p.model) == ("plant", "plant/+/+", "{1}/{2}", str(model))
    assert (p.payload.format, p.payload.value, p.payload.timestamp) == ("json", "value", "ts")
    assert str(cfg.state_dir) == "/tmp/edgernn-state"
    assert cfg.topic("alerts", stream="a/b") == "edgernn/bench/alerts/a/b"
    assert cfg.topic("status") == "edgernn/bench/status" and cfg.topic("stats") == "edgernn/bench/stats"
    assert cfg.limits.when_full in ("block", "drop_newest", "drop_oldest")


def test_unknown_key_names_file_line_and_path(tmp_path, model):
    text = ACCEPTANCE.replace("    payload:", "    paylod_typo: 1\n    payload:")
    msg = error(tmp_path, text, model)
    assert msg.startswith(f"{tmp_path / 'edgernn.yaml'}:12: pipelines[0].paylod_typo: unknown key")
    nested = ACCEPTANCE.replace("  client_id: edgernn-bench", "  client_id: edgernn-bench\n  keepalive_s: 5")
    msg = error(tmp_path, nested, model)
    assert ":6: mqtt.keepalive_s: unknown key" in msg and "keepalive" in msg


@pytest.mark.parametrize("old,new,where", [
    ("port: 18830", "port: many", ":4: mqtt.port: expected an integer"),
    ("port: 18830", "port: 70000", ":4: mqtt.port: 70000 is out of range: must be in [1, 65535]"),
    ("format: json", "format: xml", ":12: pipelines[0].payload.format: 'xml' is not one of"),
    ('stream: "{1}/{2}"', 'stream: "{1}/{3}"', ":11: pipelines[0].stream: {3}"),
    ("subscribe: plant/+/+", "subscribe: plant/a+/#/x", ":10: pipelines[0].subscribe:"),
    ("  - name: plant\n", "  - name: plant\n    alerts: {k: 3, n: 2}\n", ":10: pipelines[0].alerts: need k <= n"),
    ("  port: 18830\n", "  port: 18830\n  protocol: 4\n", ":5: mqtt.protocol: '4' is not one of"),
    ("  - name: plant\n", "  - name: plant\n    reference_rows: -5\n", ":10: pipelines[0].reference_rows:"),
    ("  - name: plant\n", "  - name: plant\n    seasonal_trust: 2\n", ":10: pipelines[0].seasonal_trust:"),
    ("  - name: plant\n", "  - name: plant\n    seasonal: maybe\n", ":10: pipelines[0].seasonal: expected true or false"),
    ("  - name: plant\n", "  - name: plant\n    day_offset_s: 1e9\n", ":10: pipelines[0].day_offset_s:"),
])
def test_bad_values(tmp_path, model, old, new, where):
    assert where in error(tmp_path, ACCEPTANCE.replace(old, new), model)


def test_missing_required_and_model(tmp_path, model):
    assert ":9: pipelines[0].subscribe: missing" in error(tmp_path, ACCEPTANCE.replace("    subscribe: plant/+/+\n", ""), model)
    msg = error(tmp_path, ACCEPTANCE, tmp_path / "nope")
    assert ":13: pipelines[0].model: model bundle directory not found" in msg


def test_yaml_syntax_error_has_line(tmp_path, model):
    msg = error(tmp_path, ACCEPTANCE.replace("  host: 127.0.0.1", "  host: [127.0.0.1"), model)
    assert msg.startswith(str(tmp_path / "edgernn.yaml") + ":") and "not valid YAML" in msg


def test_inline_password_rejected(tmp_path, model):
    text = ACCEPTANCE.replace("  client_id: edgernn-bench", "  client_id: edgernn-bench\n  username: u\n  password: hunter2")
    msg = error(tmp_path, text, model)
    assert "mqtt.password: inline passwords are not accepted" in msg and "hunter2" not in msg


def test_password_sources_never_printed(tmp_path, model, monkeypatch):
    (tmp_path / "pw").write_text("hunter2\n")
    base = ACCEPTANCE.replace("  client_id: edgernn-bench", "  client_id: edgernn-bench\n  username: u\n  EXTRA")
    cfg = load_config(write(tmp_path, base.replace("EXTRA", "password_file: pw"), model))
    assert cfg.mqtt.password == "hunter2"  # relative to the config file, trailing newline dropped
    assert "hunter2" not in repr(cfg) and "hunter2" not in "\n".join(cfg.summary())
    assert "file " in cfg.mqtt.password_source

    monkeypatch.setenv("MY_PW", "from-env")
    cfg = load_config(write(tmp_path, base.replace("EXTRA", "password_env: MY_PW"), model))
    assert cfg.mqtt.password == "from-env"
    monkeypatch.delenv("MY_PW")
    assert "mqtt.password_env: environment variable MY_PW is not set" in error(
        tmp_path, base.replace("EXTRA", "password_env: MY_PW"), model)

    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("from-systemd")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    cfg = load_config(write(tmp_path, base.replace("  EXTRA\n", ""), model))  # default credential name
    assert cfg.mqtt.password == "from-systemd" and cfg.mqtt.password_source == "systemd credential mqtt-password"
    msg = error(tmp_path, base.replace("EXTRA", "password_file: missing-file"), model)
    assert ":7: mqtt.password_file: cannot read" in msg


def test_pipeline_detector_settings_reach_the_daemons_detector(tmp_path):
    from unit_helpers import REPO

    from edgernn.daemon import build_pipeline

    text = ACCEPTANCE.replace("  - name: plant\n", "  - name: plant\n    reference_rows: 50\n    warmup: 20\n")
    cfg = load_config(write(tmp_path, text, REPO / "firmware_models" / "univariate"))
    det = build_pipeline(cfg, cfg.pipelines[0], cfg.limits).detector
    assert det.reference_rows == 50 and det.warmup == 20 and "reference" in det.looks
    assert det.seasonal and det.seasonal_trust == 0.5 and det.day_offset == 0.0  # the defaults
    text = ACCEPTANCE.replace("  - name: plant\n", "  - name: plant\n    seasonal_trust: 0.3\n    day_offset_s: 3600\n")
    cfg = load_config(write(tmp_path, text, REPO / "firmware_models" / "univariate"))
    det = build_pipeline(cfg, cfg.pipelines[0], cfg.limits).detector
    assert det.seasonal and det.seasonal_trust == 0.3 and det.day_offset == 3600.0
    text = ACCEPTANCE.replace("  - name: plant\n", "  - name: plant\n    seasonal: false\n")
    cfg = load_config(write(tmp_path, text, REPO / "firmware_models" / "univariate"))
    det = build_pipeline(cfg, cfg.pipelines[0], cfg.limits).detector
    assert not det.seasonal and "seasonal" not in det.looks


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a client certificate + key signed by it, and a second key that matches nothing (EC P-256)."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test CA")
    openssl("req", *ec, "-keyout", "c.key", "-out", "c.csr", "-subj", "/CN=client")
    openssl("x509", "-req", "-in", "c.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "c.crt",
            "-days", "2")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", "other.key")
    return d


@needs_openssl
def test_full_options(tmp_path, model, pki):
    for name in ("ca.crt", "c.crt", "c.key"):
        shutil.copy(pki / name, tmp_path / name)
    text = f"""\
node: pi-1
mqtt:
  host: broker.local
  protocol: "3.1.1"
  keepalive: 20
  tls: {{ca: ca.crt, cert: c.crt, key: c.key}}
  qos: 0
topics: {{prefix: "site/{{node}}"}}
state: {{dir: st, snapshot_interval_s: 5}}
stats: {{interval_s: 2}}
limits: {{max_streams: 50, inbox_size: 10, when_full: drop_oldest}}
log: {{level: debug}}
pipelines:
  - name: multi
    subscribe: "factory/#"
    stream: "{{1}}-{{sensor}}"
    payload: {{values: {{temp: d.t, pressure: d.p}}, timestamp: time, timestamp_unit: ms, readings: batch}}
    model: {model}
    backend: numpy
    threshold: 0.999
    reference_rows: 300
    reference_drift: 0.5
    reference_peak: 0.3
    alerts: {{k: 2, n: 3, cooldown: 5}}
    max_streams: 20
"""
    cfg = load_config(write(tmp_path, text))
    assert cfg.mqtt.protocol == "3.1.1" and cfg.mqtt.port == 8883 and cfg.mqtt.tls.ca == str(tmp_path / "ca.crt")
    assert cfg.topic("alerts", stream="s") == "site/pi-1/alerts/s"
    assert cfg.state_dir == tmp_path / "st"
    p = cfg.pipelines[0]
    assert p.qos == 0 and p.max_streams == 20 and dict(p.alerts) == {"k": 2, "n": 3, "cooldown": 5}
    assert p.payload.values == (("temp", "d.t"), ("pressure", "d.p")) and p.payload.readings == "batch"
    assert p.reference_rows == 300 and p.reference_window == 8.0
    assert p.reference_drift == 0.5 and p.reference_peak == 0.3
    bad = write(tmp_path, text.replace("reference_peak: 0.3", "reference_peak: 1.5"))
    with pytest.raises(ConfigError, match=r"pipelines\[0\]\.reference_peak"):
        load_config(bad)


def test_check_config_command(tmp_path, model, capsys):
    from edgernn.commands import check_config

    p = write(tmp_path, ACCEPTANCE.replace("port: 18830", "port: x"), model)

    class A:
        config, quiet = str(p), False

    assert check_config.run(A) == 2
    assert f"{p}:4: mqtt.port" in capsys.readouterr().err
    p = write(tmp_path, ACCEPTANCE, model)
    A.config = str(p)
    assert check_config.run(A) == 2  # an empty directory is not a model bundle
    assert ":13: pipelines[0].model:" in capsys.readouterr().err
