"""Bad config input found by fuzzing: each is one line ``FILE:LINE: key: message`` and exit code 2
from both check-config and serve -- never a traceback, a hang, or a daemon that starts and then
cannot work (paho's network thread dying on a value check-config had passed)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from edgernn.config import ConfigError, parse_config
from unit_helpers import REPO

BASE = """\
node: fz
mqtt: {host: 127.0.0.1, port: 18999}
state: {dir: STATE}
pipelines:
  - name: plant
    subscribe: plant/+/+
    stream: "{1}/{2}"
    payload: {format: json, value: value, timestamp: ts}
    model: univariate
"""


def parse(text: str):
    return parse_config(text.replace("STATE", "/tmp/edgernn-unused-state"), "f.yaml", base=REPO,
                        resolve_secrets=False)


def one_error(text: str) -> str:
    with pytest.raises(ConfigError) as exc:
        parse(text)
    assert len(exc.value.messages) == 1, exc.value.messages
    return exc.value.messages[0]


def with_mqtt(**kw) -> str:
    extra = "".join(f", {k}: {v}" for k, v in kw.items())
    return BASE.replace("port: 18999}", f"port: 18999{extra}}}")


def run(tmp_path, command: str, text: str | bytes) -> subprocess.CompletedProcess:
    p = tmp_path / "bad.yaml"
    data = text if isinstance(text, bytes) else text.replace("STATE", str(tmp_path / "state")).encode()
    p.write_bytes(data)
    args = ["check-config", str(p)] if command == "check-config" else ["serve", "-c", str(p)]
    return subprocess.run([sys.executable, "-m", "edgernn", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=60)


# -- 1. mqtt.session_expiry_s: a four-byte integer in MQTT 5 ---------------------------------------
def test_session_expiry_is_bounded_by_four_bytes():
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    cfg = parse(with_mqtt(session_expiry_s=2**32 - 1))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = cfg.mqtt.session_expiry_s
    assert props.pack()  # what paho's network thread sends: 2**32 raised struct.error there
    for bad in (2**32, 10**30):
        msg = one_error(with_mqtt(session_expiry_s=bad))
        assert msg.startswith("f.yaml:2: mqtt.session_expiry_s:") and "4294967295" in msg


# -- 2. mqtt.host ------------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["''", "'   '", "a..b", "a" * 64, "'bad host'", '"tab\\there"', '"nul\\0"'])
def test_host_paho_cannot_connect_to_is_an_error(host):
    assert one_error(with_mqtt(host=host).replace("host: 127.0.0.1, ", "")).startswith("f.yaml:2: mqtt.host:")


@pytest.mark.parametrize("host", ["broker.local", "broker.local.", "'::1'", "10.0.0.7", "münchen.example"])
def test_ordinary_hosts_load(host):
    assert parse(with_mqtt(host=host).replace("host: 127.0.0.1, ", "")).mqtt.host == host.strip("'")


# -- 3. topic templates --------------------------------------------------------------------------------
@pytest.mark.parametrize("topics,where", [
    ('prefix: "{"', "topics.prefix: '{': Single '{'"),
    ('prefix: "a}"', "topics.prefix: 'a}': Single '}'"),
    ('alerts: "{prefix}/alerts/{stream}}"', "topics.alerts: '{prefix}/alerts/{stream}}': Single '}'"),
    ('status: "{prefix}/status{"', "topics.status: '{prefix}/status{'"),
    ('stats: "{prefix}/{}"', "topics.stats: unknown placeholder {}"),
    ('stats: "{prefix}/{0}"', "topics.stats: unknown placeholder {0}"),
    ('alerts: "{prefix}/{stream.x}"', "topics.alerts: unknown placeholder {stream.x}"),
    ('alerts: "{prefix}/{stream!r}"', "topics.alerts: '{prefix}/{stream!r}': a placeholder takes no"),
    ('alerts: "{prefix}/{stream:>9}"', "topics.alerts: '{prefix}/{stream:>9}': a placeholder takes no"),
    ('alerts: "{prefix}/alerts/{{stream}}"', "topics.alerts: '{prefix}/alerts/{{stream}}' needs a {stream}"),
    # what MQTT forbids in a topic name (paho raised ValueError at will_set / publish: the daemon died)
    ('prefix: "", status: "{prefix}"', "topics.status: '{prefix}' (prefix '') gives an empty topic, which MQTT"),
    ('stats: ""', "topics.stats: '' (prefix 'edgernn/fz') gives an empty topic"),
    ('alerts: "a\\0/{stream}"', "topics.alerts: 'a\\x00/{stream}' (prefix 'edgernn/fz') holds '\\x00', which MQTT"),
    ('prefix: "site\\x01"', "topics.prefix: 'site\\x01' holds '\\x01', which MQTT does not allow in a topic"),
    ('stats: "{prefix}/' + "s" * 70000 + '"', "topics.stats: '{prefix}/sssssssssssssssssssss'...'sssss"),
])
def test_bad_topic_template_is_one_line(topics, where):
    assert one_error(BASE + f"topics: {{{topics}}}\n").startswith(f"f.yaml:10: {where}")


def test_a_subscription_filter_with_a_nul_is_one_line():
    text = BASE.replace("subscribe: plant/+/+", 'subscribe: "pl\\0ant/+/+"')
    assert one_error(text).startswith("f.yaml:6: pipelines[0].subscribe: 'pl\\x00ant/+/+': holds '\\x00', which MQTT")


def test_literal_braces_in_a_topic_template():
    cfg = parse(BASE + 'topics: {alerts: "{prefix}/{{x}}/{stream}"}\n')
    assert cfg.topic("alerts", stream="a/b", pipeline="plant") == "edgernn/fz/{x}/a/b"


# -- 4. max_streams ------------------------------------------------------------------------------------
def test_max_streams_has_an_upper_bound():
    from edgernn.settings import problems

    msg = one_error(BASE + "limits: {max_streams: 1000000000}\n")
    assert msg.startswith("f.yaml:10: limits.max_streams: 1000000000 is out of range") and "allocated" in msg
    msg = one_error(BASE.replace("    model:", "    max_streams: 1000000000\n    model:"))
    assert msg.startswith("f.yaml:9: pipelines[0].max_streams: 1000000000 is out of range")
    assert problems({"max_streams": 10**9}) and not problems({"max_streams": 10_000_000})


def test_state_that_does_not_fit_in_memory_is_a_pipeline_error(monkeypatch):
    from edgernn import daemon

    def no_memory(*_a, **_k):
        raise MemoryError

    cfg = parse(BASE)
    monkeypatch.setattr(daemon, "Detector", no_memory)
    with pytest.raises(daemon.PipelineError, match="not enough memory for the state of 10000 streams") as exc:
        daemon.build_pipeline(cfg, cfg.pipelines[0], cfg.limits)
    assert exc.value.key == "max_streams"


# -- 5. YAML that no config file needs -----------------------------------------------------------------
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(  # 9**9 values once expanded, from 400 bytes
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))


@pytest.mark.parametrize("text,where", [
    (BASE + "\x00\n", "f.yaml:10: not valid YAML: unacceptable character #x0000"),
    ("a: &a [*a]\n", "f.yaml:1: a: an alias inside its own anchor"),
    ("a: &a {b: *a}\n", "f.yaml:1: a: an alias inside its own anchor"),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", "f.yaml:1: nested deeper than 64 levels"),
    ("a: &a [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[x]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n"
     "b: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[*a]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
     "f.yaml:2: b: aliases nest deeper than 64 levels"),
    (BOMB, "f.yaml:6: f: anchors and aliases expand to more than 100000 values"),
])
def test_yaml_beyond_a_config_file_is_one_line(text, where):
    t0 = time.monotonic()
    assert one_error(text).startswith(where)
    assert time.monotonic() - t0 < 5


def test_anchors_and_merge_keys_still_work():
    text = BASE.replace("  - name: plant\n", "  - &p\n    name: plant\n") + "  - {<<: *p, name: other}\n"
    cfg = parse(text)
    assert [p.name for p in cfg.pipelines] == ["plant", "other"]
    assert cfg.pipelines[1].subscribe == "plant/+/+"


# -- 6. duplicate keys ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text,where", [
    ("node: a\n" + BASE, "f.yaml:2: node: duplicate key (first on line 1)"),
    (BASE.replace("port: 18999}", "port: 1, port: 18999}"), "f.yaml:2: mqtt.port: duplicate key"),
    (BASE.replace("    model:", "    stream: x\n    model:"),
     "f.yaml:9: pipelines[0].stream: duplicate key (first on line 7)"),
    (BASE + "state: {dir: /tmp}\n", "f.yaml:10: state: duplicate key (first on line 3)"),
])
def test_duplicate_key_is_one_line(text, where):
    assert one_error(text).startswith(where)


# -- both commands, end to end -------------------------------------------------------------------------
CASES = {
    "session_expiry": with_mqtt(session_expiry_s=2**32),
    "empty_host": with_mqtt(host="''").replace("host: 127.0.0.1, ", ""),
    "lone_brace": BASE + 'topics: {prefix: "{"}\n',
    "empty_status_topic": BASE + 'topics: {prefix: "", status: "{prefix}"}\n',
    "max_streams": BASE + "limits: {max_streams: 1000000000}\n",
    "nul_byte": (BASE + "\x00\n").encode(),
    "bomb": BOMB,
    "duplicate": "node: a\n" + BASE,
}


@pytest.mark.parametrize("command", ["check-config", "serve"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_commands_exit_2_with_one_line(tmp_path, command, case):
    out = run(tmp_path, command, CASES[case])
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{tmp_path / 'bad.yaml'}:" in lines[0], out.stderr[-2000:]
