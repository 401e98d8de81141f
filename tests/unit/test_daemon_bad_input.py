"""Bad input reaching the running daemon: never a crash, never another stream's trouble, never
silent, never an unbounded message (no broker: the decoder, the message handler and the MQTT
client's publish, each as the daemon runs them)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from types import SimpleNamespace

import pytest

from edgernn.config import LimitsConfig, PayloadConfig, PipelineConfig
from edgernn.daemon import Daemon, Inbox
from edgernn.decode import Decoder, Reject
from edgernn.logs import Throttle

NOW = 1_700_000_000.0
# code points mosquitto refuses in a topic: it closes the connection of the client that sends one
BROKER_REFUSES = ["x\u0001y", "tab\there", "\x7f", "nel\u0085", "\ud800", "n\ufffe", "\uffff", "\ufdd0",
                  "\U0001fffe"]


def dec(stream="{1}/{2}", subscribe="plant/+/+", limits=None, **payload):
    p = PipelineConfig(name="p", subscribe=subscribe, model="/m", stream=stream,
                       payload=PayloadConfig(**{"value": "value", "timestamp": "ts", **payload}))
    return Decoder(p, ("value",), limits or LimitsConfig())


@pytest.mark.parametrize("name", BROKER_REFUSES)
def test_a_stream_id_a_broker_refuses_in_a_topic_is_a_bad_stream(name):
    # Before: accepted; the first state / alert publish on edgernn/{node}/.../<name> made mosquitto
    # close the daemon's connection ("disconnected ... (Malformed packet)"), again after every
    # reconnect (the QoS 1 message is resent): every stream of every pipeline stopped.
    d = dec(stream="{1}/{sensor}", subscribe="gw/+/batch", readings="data")
    payload = json.dumps({"data": [{"sensor": "ok", "ts": 1, "value": 1}, {"sensor": name, "ts": 1, "value": 2}]})
    got = d.decode("gw/7/batch", payload, now=NOW)
    assert isinstance(got, Reject) and got.reason == "bad_stream", got  # all or nothing, as any bad reading
    assert "which MQTT topic names cannot hold" in got.detail


ACCEPTED = ["Line 1/Temp", "caf\u00e9 \u4e2d", "x\u2028y", "\U0001f600", "a//b", "\u00a0", "\ufffd", "$SYS"]


@pytest.mark.parametrize("name", ACCEPTED)
def test_stream_ids_a_broker_takes_stay_accepted(name):
    d = dec(stream="{1}/{sensor}", subscribe="gw/+/batch")
    (r,) = d.decode("gw/7/batch", json.dumps({"sensor": name, "ts": 1, "value": 2}), now=NOW)
    assert r.stream == f"7/{name}"


def _fake_client(published):
    pytest.importorskip("paho.mqtt")
    from edgernn.mqtt import MqttClient

    m = MqttClient.__new__(MqttClient)
    m.client = SimpleNamespace(publish=lambda *a, **k: published.append(a) or pytest.fail("handed to paho"))
    m.publish_refused = Counter()
    return m


@pytest.mark.parametrize("name", BROKER_REFUSES)
def test_publish_never_sends_a_topic_the_broker_disconnects_for(name):
    # e.g. a stream restored from a snapshot written before such ids were refused
    published = []
    m = _fake_client(published)
    assert m.publish(f"edgernn/n/state/{name}", b"{}", qos=1, retain=True) is False
    assert published == [] and m.publish_refused == {"invalid": 1}


def test_handler_counts_the_reject_and_the_next_message_goes_through(caplog):
    pcfg = PipelineConfig(name="gw", subscribe="gw/+/batch", model="/m", stream="{1}/{sensor}",
                          payload=PayloadConfig(value="value", timestamp="ts"))
    d = Daemon.__new__(Daemon)
    d.cfg = SimpleNamespace(log=SimpleNamespace(rejects_every_s=10.0))
    d.inbox = Inbox(1, 10)
    d._rejects = Throttle(10.0)
    pipe = SimpleNamespace(cfg=pcfg, decoder=Decoder(pcfg, ("value",), LimitsConfig()), rejects=Counter())
    handle = d._handler(0, pipe)
    caplog.set_level("WARNING", logger="edgernn.daemon")
    assert handle(b"gw/7/batch", b'{"sensor": "x\\u0001y", "ts": 1.7e9, "value": 1}') is True
    assert handle(b"gw/7/batch", b'{"sensor": "y", "ts": 1.7e9, "value": 1}') is True
    assert pipe.rejects == {"bad_stream": 1} and d.inbox.drain() == [[("7/y", 1.7e9, (1.0,))]]
    (line,) = [r.getMessage() for r in caplog.records]
    assert "(bad_stream)" in line and "\n" not in line


def test_a_far_future_timestamp_is_named_in_a_short_line():
    # Before: "timestamp 1000000000000000052504760255204420248704468581108159154915854115511802457988..."
    # (309 digits, twice)
    got = dec().decode("plant/a/b", b'{"ts": 1e308, "value": 1}', now=NOW)
    assert got.reason == "bad_timestamp" and len(got.detail) < 160, got
    assert dec().decode("plant/a/b", b'{"ts": 1704067200, "value": 1}', now=NOW).detail.startswith(
        "timestamp 1704067200 is 47.1 days ahead of this device's clock (")


@pytest.mark.parametrize("where", ["value", "ts"])
def test_an_integer_past_pythons_digit_limit_is_non_finite_like_any_huge_number(where):
    # Before: not_json "not JSON (Exceeds the limit (4300 digits) for integer string conversio)"
    # for valid JSON, while a 400-digit integer was non_finite "value is too large"
    other = "ts" if where == "value" else "value"
    payload = b'{"%s": 1, "%s": %s}' % (other.encode(), where.encode(), b"9" * 5000)
    got = dec().decode("plant/a/b", payload, now=NOW)
    assert got == Reject("non_finite", "a number has more than 4300 digits"), got
    assert dec().decode("plant/a/b", b'{"ts": 1, "value": 1', now=NOW).reason == "not_json"


def test_the_topic_cache_holds_a_bounded_amount_of_topic_text():
    # Before: every distinct topic was kept (up to 65,536), whatever its length: 2,000 topics of
    # 60 kB grew the process by 120 MB (65,536 of them: ~4 GB on a small device)
    from edgernn import decode

    d = dec(stream="{1}")  # level 2 is not part of the stream id: any length names a good stream
    for i in range(200):
        topic = b"plant/s%d/" % (i % 3) + b"x" * 60_000 + str(i).encode()
        out = []
        assert d.decode_into(topic, b'{"ts": 1, "value": 2}', NOW, out) is None
        assert out == [(f"s{i % 3}", 1.0, (2.0,))]
    assert sum(map(len, d._cache)) <= decode._TOPIC_CACHE_CHARS + 65_535


def test_a_topic_mismatch_names_the_topic_in_a_short_line():
    got = dec().decode("plant/" + "x" * 60_000, b'{"ts": 1, "value": 1}', now=NOW)
    assert got.reason == "topic_mismatch" and len(got.detail) < 200, len(got.detail)


def _routing_client(acks=None):
    pytest.importorskip("paho.mqtt")
    from edgernn.mqtt import MqttClient

    m = MqttClient.__new__(MqttClient)
    m.client = SimpleNamespace(on_message=None, ack=lambda mid, qos: acks.append(mid))
    m._routes, m._targets, m._gate, m._holding, m.handler_errors = [], {}, threading.Lock(), False, 0
    return m


def test_routing_does_not_remember_very_long_topics():
    m = _routing_client()
    m.subscribe("a/+", 1, lambda topic, payload: True)
    m.subscribe("a/#", 1, lambda topic, payload: True)
    for i in range(50):
        m._targets_for(SimpleNamespace(topic="a/" + "x" * 60_000 + str(i)))
    assert sum(map(len, m._targets)) < 1_000_000
    assert len(m._targets_for(SimpleNamespace(topic="a/" + "y" * 60_000))) == 2  # still routed


def test_home_assistant_does_not_announce_a_restored_stream_no_topic_can_hold(tmp_path, caplog):
    # A snapshot written before such ids were refused: its config would name a state topic that
    # makes mosquitto drop Home Assistant's own connection when it subscribes
    from edgernn.config import parse_config
    from edgernn.homeassistant import StatePublisher

    cfg = parse_config(f"node: bench\nhomeassistant: {{discovery: true}}\npipelines:\n"
                       f"  - {{name: plant, subscribe: plant/+/+, stream: '{{1}}/{{2}}', model: {tmp_path}}}\n",
                       "edgernn.yaml")
    sent = []
    mqtt = SimpleNamespace(subscribe=lambda *a, **k: None, pending=lambda: 0,
                           publish=lambda topic, payload, **k: sent.append((topic, payload)) or True)
    pub = StatePublisher(cfg, mqtt, ["plant"])
    pipe = SimpleNamespace(cfg=SimpleNamespace(name="plant"),
                           detector=SimpleNamespace(state=SimpleNamespace(ids={"bad\x01id": 0, "line1/temp": 1})))
    caplog.set_level("WARNING", logger="edgernn.homeassistant")
    pub.on_start([pipe])
    pub.close()
    messages = sent + list(pub._queue)
    assert len(messages) == 2 and all("line1/temp" in payload for _, payload in messages)
    assert pub._known["plant"] == {"line1/temp"}
    assert "not announcing 1 stream(s)" in caplog.records[-1].getMessage()


def test_a_message_no_pipeline_takes_is_counted_and_logged(caplog):
    # Before: with several routes (two pipelines, or Home Assistant discovery on) a message on a
    # topic matched only by a subscription the persistent session kept from an older config was
    # acknowledged and dropped without a trace (with one route: counted as topic_mismatch)
    acks = []
    m = _routing_client(acks)
    taken = []
    m.subscribe("plant/+/+", 1, lambda topic, payload: taken.append(topic) or True)
    m.subscribe("homeassistant/status", 1, lambda topic, payload: True)
    caplog.set_level("WARNING", logger="edgernn.mqtt")
    for mid, topic in enumerate(("plant/a/b/c", "plant/a/b", "plant/x/y/z")):
        m.client.on_message(m.client, None, SimpleNamespace(topic=topic, _topic=topic.encode(), payload=b"1",
                                                            qos=1, mid=mid))
    assert taken == ["plant/a/b"] and acks == [0, 1, 2] and m.unmatched == 2
    (line,) = [r.getMessage() for r in caplog.records]
    assert "1 message(s) since start on topics no pipeline subscribes to" in line and "'plant/a/b/c'" in line
