"""Settings declared once (edgernn/settings.py): the dataclasses, the range checks, the config keys,
the CLI flags, the model's detector_defaults and the config's JSON Schema all derive from it."""

from __future__ import annotations

import dataclasses
import doctest
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from unit_helpers import REPO

from edgernn import settings as schema
from edgernn.config import ConfigError, json_schema, load_config
from edgernn.settings import ALERTS, DETECTOR, SETTINGS, AlertSettings, DetectorSettings

UNIVARIATE = REPO / "firmware_models" / "univariate"
BASE = """\
node: bench
mqtt: {host: 127.0.0.1, port: 18830}
state: {dir: /tmp/edgernn-state}
pipelines:
  - name: plant
    subscribe: plant/+/+
    stream: "{1}/{2}"
    payload: {format: json, value: value, timestamp: ts}
    model: MODEL
"""


def write(tmp_path, text, model=UNIVARIATE, name="edgernn.yaml"):
    p = tmp_path / name
    p.write_text(text.replace("MODEL", str(model)))
    return p


def outside(s) -> object:
    """A value just outside the setting's range (None when it has no bound)."""
    step = 1 if s.kind is int else 1e-3
    for bound, sign in ((s.ge, -1), (s.gt, 0), (s.le, 1), (s.lt, 0)):
        if bound is not None:
            return s.kind(bound + sign * step)
    return None


BOUNDED = [s for s in SETTINGS if s.kind in (int, float) and outside(s) is not None]


def test_the_dataclasses_are_the_declarations():
    fields = {f.name: f for f in dataclasses.fields(DetectorSettings)}
    assert set(fields) == {s.name for s in SETTINGS if s.group == DETECTOR} | {ALERTS}
    assert {f.name for f in dataclasses.fields(AlertSettings)} == {s.name for s in SETTINGS if s.group == ALERTS}
    d, a = DetectorSettings(), AlertSettings()
    for s in SETTINGS:
        assert getattr(d if s.group == DETECTOR else a, s.name) == s.default, s.name
        assert s.help and s.describe().startswith(s.help)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.settle = 3
    assert doctest.testmod(schema).failed == 0


@pytest.mark.parametrize("s", BOUNDED, ids=lambda s: s.key)
def test_every_range_is_checked_by_the_dataclass_and_reported_by_name(s):
    bad = outside(s)
    name, msg = schema.problems({s.name: bad}, s.group)[0]
    assert name == s.name and "out of range" in msg and s.range_text() in msg
    cls = DetectorSettings if s.group == DETECTOR else AlertSettings
    with pytest.raises(ValueError, match=re.escape(s.name)):
        cls(**{s.name: bad})
    inside = [v for v in (s.default, s.ge, s.le, None if s.gt is None else s.gt + 0.5,
                          None if s.lt is None else s.lt - 0.5) if v is not None]
    assert schema.problems({s.name: s.kind(inside[0])}, s.group) == []


def test_problems_lists_everything_at_once():
    found = schema.problems({"seasonal_trust": 2.0, "settle": "x", "reference_rowz": 3, "alerts": {"k": 3, "n": 2}})
    names = [n for n, _ in found]
    assert names == ["seasonal_trust", "settle", "reference_rowz", "alerts"], found
    assert "did you mean 'reference_rows'" in found[2][1]
    with pytest.raises(ValueError) as exc:
        schema.build({"seasonal_trust": 2.0, "day_offset_s": float("nan")})
    assert "seasonal_trust" in str(exc.value) and "day_offset_s" in str(exc.value)  # day_offset_s checked once


def test_every_setting_is_a_pipeline_key_and_reaches_the_detector(tmp_path):
    from edgernn.daemon import build_pipeline

    changed = {}
    for s in SETTINGS:  # a valid value different from the default, for every setting
        if s.name == "max_future_s":  # not a pipeline key: limits.max_future_s sets it (checked below)
            continue
        v = (not s.default) if s.kind is bool else s.default if s.default is not None else s.kind(s.le or s.lt or 5)
        if s.kind in (int, float) and s.default is not None and s.name not in ("k", "n"):
            v = s.kind(s.default + (1 if s.lt is None and s.le is None else 0))
        if s.zero_off and s.default == 0:  # off by default: a value inside its range
            v = s.kind((s.ge if s.ge is not None else s.gt) + 1)
        if s.name == "adapt":
            v = 0.25
        if s.name == "threshold":
            v = 0.999
        changed[s] = v
    det_keys = "".join(f"    {s.name}: {json.dumps(v)}\n" for s, v in changed.items() if s.group == DETECTOR)
    alert_keys = ", ".join(f"{s.name}: {json.dumps(v)}" for s, v in changed.items() if s.group == ALERTS)
    cfg = load_config(write(tmp_path, BASE + det_keys + f"    alerts: {{{alert_keys}}}\n"))
    det = build_pipeline(cfg, cfg.pipelines[0], cfg.limits).detector
    for s, v in changed.items():
        got = getattr(det.settings if s.group == DETECTOR else det.settings.alerts, s.name)
        assert got == v, s.key
    assert det.settings.max_future_s == cfg.limits.max_future_s  # the daemon's one future-timestamp limit


def test_config_reports_every_error_with_file_line_and_key(tmp_path):
    text = BASE.replace("port: 18830", "port: 0, keepalive: 1").replace("state:", "stats: {interval_s: -1}\nstate:")
    text += "    seasonal_trust: 2\n    refrence_rows: 5\n    alerts: {k: 3, n: 2, cooldwn: 1}\n  - name: plant\n"
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msgs = exc.value.messages
    want = [":2: mqtt.port: 0 is out of range", ":2: mqtt.keepalive: 1 is out of range",
            ":3: stats.interval_s: -1.0 is out of range", ":11: pipelines[0].seasonal_trust: 2.0 is out of range",
            ":12: pipelines[0].refrence_rows: unknown key (did you mean 'reference_rows'?)",
            ":13: pipelines[0].alerts.cooldwn: unknown key (did you mean 'cooldown'?)",
            ":13: pipelines[0].alerts: need k <= n", ":14: pipelines[1].subscribe: missing (required)",
            ":14: pipelines[1].model: missing (required)", ":14: pipelines[1].name: duplicate pipeline name"]
    for w in want:
        assert any(m.startswith(str(p)) and w in m for m in msgs), (w, msgs)
    assert len(msgs) == len(want), msgs
    assert str(exc.value) == "\n".join(msgs)


def test_check_config_prints_every_problem_one_per_line(tmp_path, capsys):
    from edgernn.commands import check_config

    p = write(tmp_path, BASE.replace("port: 18830", "port: x") + "    warmup: -1\n")

    class A:
        config, quiet, schema = str(p), False, False

    assert check_config.run(A) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: {p}:2: mqtt.port: expected an integer, got a string",
                   f"error: {p}:10: pipelines[0].warmup: -1 is out of range: must be >= 0"]


def test_new_sections_homeassistant_and_metrics(tmp_path):
    cfg = load_config(write(tmp_path, BASE))
    assert cfg.homeassistant.discovery is False and cfg.homeassistant.prefix == "homeassistant"
    assert cfg.metrics is None  # absent: off
    text = BASE + "homeassistant: {discovery: true}\nmetrics: {port: 9200}\n"
    cfg = load_config(write(tmp_path, text))
    assert cfg.homeassistant.discovery is True and cfg.homeassistant.prefix == "homeassistant"
    assert (cfg.metrics.host, cfg.metrics.port) == ("127.0.0.1", 9200)
    assert any("metrics: http://127.0.0.1:9200/metrics" in line for line in cfg.summary())
    assert load_config(write(tmp_path, BASE + "metrics:\n")).metrics.port == 9108
    with pytest.raises(ConfigError, match=r":10: homeassistant.prefix: 'ha/#': a topic prefix without"):
        load_config(write(tmp_path, BASE + "homeassistant: {discovery: true, prefix: ha/#}\n"))
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, BASE + "metrics: {port: 70000}\nhomeassistant: {discovery: yes please}\n"))
    assert sorted(m.split(": ", 1)[1] for m in exc.value.messages) == [
        "homeassistant.discovery: expected true or false, got a string",
        "metrics.port: 70000 is out of range: must be in [1, 65535]"]


# -- model defaults --------------------------------------------------------------------------------
@pytest.fixture
def model_with_defaults(tmp_path):
    d = tmp_path / "model"
    shutil.copytree(UNIVARIATE, d)
    m = yaml.safe_load((d / "manifest.yaml").read_text())
    m["detector_defaults"] = {"reference_rows": 40, "reference_drift": 0.5, "settle": 4, "alerts": {"cooldown": 7}}
    (d / "manifest.yaml").write_text(yaml.safe_dump(m))
    return d


def test_model_defaults_sit_between_the_schema_and_the_config(tmp_path, model_with_defaults):
    from edgernn.bundle import load_bundle
    from edgernn.daemon import build_pipeline

    b = load_bundle(model_with_defaults)
    s = schema.resolve(b)
    assert (s.reference_rows, s.reference_drift, s.settle, s.alerts.cooldown) == (40, 0.5, 4, 7)
    assert s.reference_window == 8.0 and s.alerts.clear_after == 16  # the schema's
    s = schema.resolve(b, {"reference_rows": 0, "alerts": {"k": 2, "n": 3}})
    assert (s.reference_rows, s.reference_drift, s.alerts.cooldown, s.alerts.k) == (0, 0.5, 7, 2)
    p = write(tmp_path, BASE + "    settle: 9\n    alerts: {k: 2, n: 2}\n", model_with_defaults)
    cfg = load_config(p)
    det = build_pipeline(cfg, cfg.pipelines[0], cfg.limits).detector
    assert (det.settings.settle, det.reference_rows, det.settings.alerts.cooldown) == (9, 40, 7)
    out = run_cli("check-config", p)  # says where each setting that is not the schema's default came from
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == ("  pipeline 'plant' detector settings: settle=9 (config), reference_rows=40 "
                                           "(model), reference_drift=0.5 (model), alerts.k=2 (config), alerts.n=2 "
                                           "(config), alerts.cooldown=7 (model)")


def test_bad_model_defaults_are_refused_naming_the_manifest(tmp_path, model_with_defaults, capsys):
    from edgernn.commands import check_config

    m = yaml.safe_load((model_with_defaults / "manifest.yaml").read_text())
    m["detector_defaults"] = {"reference_peak": 2.0, "alerts": {"k": 0}}
    (model_with_defaults / "manifest.yaml").write_text(yaml.safe_dump(m))
    p = write(tmp_path, BASE, model_with_defaults)

    class A:
        config, quiet, schema = str(p), False, False

    assert check_config.run(A) == 2
    err = capsys.readouterr().err
    manifest = model_with_defaults / "manifest.yaml"
    line = {k: i + 1 for i, t in enumerate(manifest.read_text().splitlines()) for k in ("k", "reference_peak")
            if t.strip().startswith(f"{k}:")}
    assert err.startswith(f"error: {p}:9: pipelines[0].model: ")
    assert f"{manifest}:{line['reference_peak']}: detector_defaults.reference_peak: 2.0 is out of range: must be in " \
           "[0, 1)" in err
    assert f"{manifest}:{line['k']}: detector_defaults.alerts.k: 0 is out of range" in err and "Traceback" not in err


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "edgernn", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=300)


def test_replay_flags_win_over_model_defaults(tmp_path, model_with_defaults):
    import edgernn

    csv = Path(edgernn.__file__).parent / "data" / "demo_sensor.csv"  # the package's copy (a wheel has no repo)
    out = run_cli("replay", csv, "--model", model_with_defaults, "--quiet", "--settle", "5", "--reference-rows", "0")
    assert out.returncode == 0, out.stderr
    bad = run_cli("replay", csv, "--model", model_with_defaults, "--seasonal-trust", "2")
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "edgernn replay: --seasonal-trust: 2.0 is out of range: must be in (0, 1] (a variance ratio)")


# -- CLI flags ---------------------------------------------------------------------------------------
def _parser(command, *sub):
    import argparse
    import importlib

    from edgernn.cli import COMMANDS

    p = argparse.ArgumentParser()
    importlib.import_module(COMMANDS[command][0]).add_arguments(p)
    if sub:
        p = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices[sub[0]]
    return p


@pytest.mark.parametrize("command", [("replay",), ("eval", "nab"), ("eval", "skab"), ("eval", "events"), ("serve",)])
def test_every_exposed_setting_is_a_flag_with_unit_and_default(command):
    p = _parser(*command)
    flags = {o: a for a in p._actions for o in a.option_strings}
    for s in SETTINGS:
        if not s.cli or (command == ("eval", "skab") and s.name == "reference_rows"):
            assert not s.cli or "--reference-rows" not in flags  # skab sets it from --reference/--train-rows
            continue
        for f in s.flag_names:
            assert f in flags, (command, f)
            assert "default:" in flags[f].help and (not s.unit or f"[{s.unit}]" in flags[f].help)
    for old in ("--threshold", "--warmup", "--reference-rows", "--seasonal", "--day-offset", "--seasonal-trust",
                "--reference-window", "--reference-drift", "--reference-peak"):
        assert command == ("eval", "skab") and old == "--reference-rows" or old in flags


def test_serve_flags_override_every_pipeline(tmp_path):
    from dataclasses import replace

    from edgernn.commands.common import settings_from_args

    p = _parser("serve")
    args = p.parse_args(["-c", "x.yaml", "--seasonal", "off", "--alerts-cooldown", "3", "--day-offset", "3600"])
    over = settings_from_args(args, "serve")
    assert over == {"seasonal": False, "day_offset_s": 3600.0, "alerts": {"cooldown": 3}}
    cfg = load_config(write(tmp_path, BASE + "    alerts: {k: 1, n: 2}\n    seasonal_trust: 0.3\n"))
    pipe = replace(cfg, pipelines=tuple(q.with_overrides(over) for q in cfg.pipelines)).pipelines[0]
    assert pipe.settings == {"seasonal_trust": 0.3, "seasonal": False, "day_offset_s": 3600.0, "max_streams": 10000,
                             "alerts": {"k": 1, "n": 2, "cooldown": 3}}


# -- JSON Schema ---------------------------------------------------------------------------------------
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def validate(value, s: dict, path: str = "") -> list[str]:
    """A small JSON Schema (draft 2020-12) validator: the keywords json_schema() uses."""
    errs: list[str] = []
    types = s.get("type")
    if types is not None:
        ok = any(_is(value, t) for t in ([types] if isinstance(types, str) else types))
        if not ok:
            return [f"{path}: {value!r} is not {types}"]
    if "enum" in s and value not in s["enum"]:
        errs.append(f"{path}: {value!r} not in {s['enum']}")
    if "oneOf" in s:
        if sum(not validate(value, sub, path) for sub in s["oneOf"]) != 1:
            errs.append(f"{path}: not exactly one of oneOf")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for word, fails in (("minimum", lambda b: value < b), ("exclusiveMinimum", lambda b: value <= b),
                            ("maximum", lambda b: value > b), ("exclusiveMaximum", lambda b: value >= b)):
            if word in s and fails(s[word]):
                errs.append(f"{path}: {value} violates {word} {s[word]}")
    if isinstance(value, str) and "pattern" in s and not re.search(s["pattern"], value):
        errs.append(f"{path}: {value!r} does not match {s['pattern']}")
    if isinstance(value, dict):
        props = s.get("properties", {})
        errs += [f"{path}.{k}: required" for k in s.get("required", ()) if k not in value]
        for k, v in value.items():
            if k in props:
                errs += validate(v, props[k], f"{path}.{k}")
            elif s.get("additionalProperties") is False:
                errs.append(f"{path}.{k}: not allowed")
            elif isinstance(s.get("additionalProperties"), dict):
                errs += validate(v, s["additionalProperties"], f"{path}.{k}")
    if isinstance(value, list):
        if len(value) < s.get("minItems", 0):
            errs.append(f"{path}: fewer than {s['minItems']} items")
        errs += [e for i, v in enumerate(value) for e in validate(v, s.get("items", {}), f"{path}[{i}]")]
    return errs


def _is(v, t: str) -> bool:
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return isinstance(v, _TYPES[t])


def test_json_schema_validates_the_example_config_and_catches_mistakes():
    sch = json_schema()
    assert sch["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    json.dumps(sch)  # plain JSON
    example = yaml.safe_load((REPO / "deploy" / "edgernn.example.yaml").read_text())
    assert validate(example, sch) == []
    pipe = sch["properties"]["pipelines"]["items"]["properties"]
    for s in SETTINGS:  # every detector and alert setting, with its default and description
        if s.name == "max_streams":
            assert pipe[s.name]["description"].endswith("default: limits.max_streams)")
            continue
        if s.name == "max_future_s":  # limits.max_future_s, not a pipeline key
            assert s.name not in pipe
            continue
        prop = pipe[s.name] if s.group == DETECTOR else pipe["alerts"]["properties"][s.name]
        assert prop["description"] == s.describe() and prop.get("default") == s.default
    bad = {**example, "metrics": {"port": 0}, "homeassistant": {"discovery": "yes"}, "mqtt": {"prot": 5},
           "pipelines": [{**example["pipelines"][0], "seasonal_trust": 2, "alerts": {"k": 17}}]}
    errs = validate(bad, sch)
    assert sorted(e.split(":")[0] for e in errs) == [".homeassistant.discovery", ".metrics.port", ".mqtt.prot",
                                                    ".pipelines[0].alerts.k", ".pipelines[0].seasonal_trust"], errs
    assert validate({"node": "x"}, sch) == [".pipelines: required"]


def test_check_config_schema_command():
    out = run_cli("check-config", "--schema")
    assert out.returncode == 0 and json.loads(out.stdout) == json_schema()


# -- TLS files -----------------------------------------------------------------------------------------
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI needed to make certificates")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", *ec, "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=CA")
    openssl("req", "-x509", *ec, "-nodes", "-keyout", "c.key", "-out", "c.crt", "-days", "2", "-subj", "/CN=client")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", "other.key")
    openssl("pkey", "-in", "c.key", "-out", "enc.key", "-aes256", "-passout", "pass:secret")
    (d / "garbage.crt").write_text("this is not a certificate\n")
    return d


def tls_config(tmp_path, pki, **files):
    tls = ", ".join(f"{k}: {pki / v}" for k, v in files.items())
    return write(tmp_path, BASE.replace("port: 18830}", f"port: 18830, tls: {{{tls}}}}}"))


@needs_openssl
def test_good_tls_files_load(tmp_path, pki):
    cfg = load_config(tls_config(tmp_path, pki, ca="ca.crt", cert="c.crt", key="c.key"))
    assert cfg.mqtt.tls.ca == str(pki / "ca.crt") and cfg.mqtt.port == 18830


@needs_openssl
@pytest.mark.parametrize("files,want", [
    (dict(ca="garbage.crt"), "mqtt.tls.ca: {pki}/garbage.crt: not a PEM certificate"),
    (dict(ca="c.key"), "mqtt.tls.ca: {pki}/c.key: not a PEM certificate"),
    (dict(ca="ca.crt", cert="c.crt", key="other.key"), "mqtt.tls.key: {pki}/other.key does not match the client "
                                                       "certificate {pki}/c.crt"),
    (dict(cert="c.crt", key="enc.key"), "mqtt.tls.key: {pki}/enc.key: the private key is encrypted"),
    (dict(cert="garbage.crt", key="c.key"), "mqtt.tls.cert: {pki}/garbage.crt: not a PEM certificate"),
    (dict(cert="c.crt", key="garbage.crt"), "mqtt.tls.key: {pki}/garbage.crt: not a PEM private key"),
    (dict(ca="missing.crt"), "mqtt.tls.ca: file not found: {pki}/missing.crt"),
])
def test_bad_tls_files_are_one_line_each(tmp_path, pki, files, want):
    p = tls_config(tmp_path, pki, **files)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    (msg,) = exc.value.messages
    assert msg.startswith(f"{p}:2: ") and want.format(pki=pki) in msg, msg


@needs_openssl
def test_serve_refuses_bad_tls_with_one_line(tmp_path, pki):
    p = tls_config(tmp_path, pki, ca="ca.crt", cert="c.crt", key="other.key")
    out = run_cli("serve", "-c", p)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        f"edgernn serve: {p}:2: mqtt.tls.key: {pki}/other.key does not match the client certificate {pki}/c.crt"]


def test_schema_round_trip_every_default_the_schema_states_is_what_the_parser_gives(tmp_path):
    """A config written from the JSON Schema's own defaults (every key that has one) validates
    against the schema, loads, and loads to exactly those values: schema and parser agree."""
    from edgernn.config import parse_config

    sch = json_schema()["properties"]
    doc = yaml.safe_load(BASE.replace("MODEL", str(UNIVARIATE)))
    for section in ("mqtt", "topics", "state", "stats", "limits", "log", "homeassistant", "metrics"):
        defaults = {k: p["default"] for k, p in sch[section]["properties"].items() if "default" in p}
        doc[section] = {**defaults, **(doc.get(section) or {})}
    pipe_props = sch["pipelines"]["items"]["properties"]
    doc["pipelines"][0].update({k: p["default"] for k, p in pipe_props.items() if "default" in p and k != "alerts"})
    doc["pipelines"][0]["alerts"] = {k: p["default"] for k, p in pipe_props["alerts"]["properties"].items()}
    assert validate(doc, json_schema()) == []
    cfg = parse_config(yaml.safe_dump(doc), "roundtrip.yaml")
    for section in ("topics", "state", "stats", "limits", "log", "homeassistant", "metrics"):
        for k, v in doc[section].items():
            assert getattr(getattr(cfg, section), k) == v, (section, k)
    p = cfg.pipelines[0]
    for s in SETTINGS:
        if s.default is not None and s.name != "max_streams":
            assert (getattr(p, s.name) if s.group == DETECTOR else dict(p.alerts)[s.name]) == s.default, s.key
    assert (p.stream, p.backend, cfg.mqtt.protocol, cfg.mqtt.keepalive) == ("{topic}", "numpy", "5", 30)


def test_write_model_defaults_merges_over_the_bundle_and_none_removes(tmp_path):
    """A copy of the shipped univariate bundle: overrides merged over its detector_defaults (alerts
    key by key), None removes a setting, the bundle still loads and resolves to the new values."""
    from edgernn.bundle import load_bundle
    from edgernn.settings import resolve, write_model_defaults

    dst = tmp_path / "u"
    shutil.copytree(REPO / "firmware_models" / "univariate", dst)
    before = load_bundle(dst).manifest["detector_defaults"]
    assert before["alert_rate_weight"] == 0.3
    got = write_model_defaults(dst, {"onset_rearm": 0, "alerts": {"cooldown": 5}})
    assert got == {**before, "onset_rearm": 0, "alerts": {"cooldown": 5}}
    s = resolve(load_bundle(dst))
    assert (s.onset_rearm, s.alerts.cooldown, s.alert_rate_weight) == (0, 5, 0.3)
    got = write_model_defaults(dst, {"alert_rate_weight": None})
    assert "alert_rate_weight" not in got and resolve(load_bundle(dst)).alert_rate_weight == 0.0


def test_write_model_defaults_refuses_defaults_the_schema_does_not_accept(tmp_path):
    """A value of the wrong type (settle must be an integer) or a None inside alerts: a ValueError
    naming the bundle and the setting, and the manifest left as it was (the bundle still loads)."""
    from edgernn.bundle import load_bundle
    from edgernn.settings import write_model_defaults

    dst = tmp_path / "u"
    shutil.copytree(REPO / "firmware_models" / "univariate", dst)
    before = (dst / "manifest.yaml").read_text()
    for bad in ({"settle": 2.5}, {"alerts": {"cooldown": None}}):
        with pytest.raises(ValueError, match=r"detector_defaults \(not written\).*(settle|alerts\.cooldown)"):
            write_model_defaults(dst, bad)
    assert (dst / "manifest.yaml").read_text() == before and load_bundle(dst).manifest["detector_defaults"]
    assert write_model_defaults(dst, {"settle": 3})["settle"] == 3


def test_a_setting_that_is_off_at_zero_takes_zero_or_its_range():
    """weight_memory: 0 (off) or >= 2 readings (a memory under 2 would let one reading move the
    correction by more than its own size); errors, help and JSON Schema say both."""
    s = {x.name: x for x in SETTINGS}["weight_memory"]
    assert s.problem(0.0) is None and s.problem(2.0) is None and s.problem(1000.0) is None
    for bad in (0.5, 1.0, -1.0, float("nan")):
        assert s.problem(bad) == f"{bad!r} is out of range: must be 0 (off) or >= 2"
    assert "0 (off) or >= 2" in s.describe()
    assert s.json_schema()["anyOf"] == [{"const": 0}, {"minimum": 2}]
