"""Payload decoding: every format, topic templates, field paths, and every kind of bad input."""

from __future__ import annotations

import json
import math
import os

import pytest

from edgernn.config import LimitsConfig, PayloadConfig, PipelineConfig
from edgernn.decode import REASONS, Decoder, Reject

NOW = 1_700_000_000.0


def dec(payload=None, subscribe="plant/+/+", stream="{1}/{2}", features=("value",), limits=None, **kw):
    p = PipelineConfig(name="p", subscribe=subscribe, model="/m", stream=stream,
                       payload=payload or PayloadConfig(value="value", timestamp="ts"), **kw)
    return Decoder(p, features, limits or LimitsConfig())


def one(d, topic, payload):
    got = d.decode(topic, payload, now=NOW)
    assert not isinstance(got, Reject), got
    assert len(got) == 1
    return got[0]


def test_json_value_and_timestamp():
    r = one(dec(), "plant/line1/temp", json.dumps({"ts": 1.7e9, "value": 21.5}))
    assert (r.stream, r.ts, r.values) == ("line1/temp", 1.7e9, (21.5,))


@pytest.mark.parametrize("ts,expected", [
    (1_700_000_000, 1.7e9), (1_700_000_000_123, 1_700_000_000.123), (1_700_000_000_123_456, 1_700_000_000.123456),
    (1_700_000_000_123_456_789, 1_700_000_000.1234567), ("2023-11-14T22:13:20Z", 1.7e9),
    ("2023-11-14T23:13:20+01:00", 1.7e9), (12.5, 12.5),
])
def test_timestamp_units_auto(ts, expected):
    assert one(dec(), "plant/a/b", json.dumps({"ts": ts, "value": 1})).ts == pytest.approx(expected, abs=1e-6)


def test_timestamp_unit_explicit_and_receipt_time():
    d = dec(PayloadConfig(value="v", timestamp="t", timestamp_unit="ms"))
    assert one(d, "plant/a/b", '{"t": 5000, "v": 1}').ts == 5.0
    d = dec(PayloadConfig(value="v"))  # no timestamp field: time of receipt
    assert one(d, "plant/a/b", '{"v": 1}').ts == NOW


def test_nested_paths_and_list_index():
    d = dec(PayloadConfig(value="data.temp.0", timestamp="meta.ts"))
    assert one(d, "plant/a/b", '{"meta": {"ts": 10}, "data": {"temp": [3.5, 9]}}').values == (3.5,)


def test_plain_number():
    d = dec(PayloadConfig(format="number"))
    r = one(d, "plant/a/b", b" 21.25\n")
    assert r.values == (21.25,) and r.ts == NOW
    assert d.decode("plant/a/b", b"warm", now=NOW).reason == "not_a_number"
    assert d.decode("plant/a/b", b"nan", now=NOW).reason == "non_finite"
    assert d.decode("plant/a/b", b"-inf", now=NOW).reason == "non_finite"


def test_bare_json_number_for_one_feature():
    d = dec(PayloadConfig(value="value"))
    assert one(d, "plant/a/b", "7").values == (7.0,)


def test_multivariate_object_in_model_feature_order():
    d = dec(PayloadConfig(values=(("pressure", "p"), ("temp", "t")), timestamp="ts"), features=("temp", "pressure"))
    r = one(d, "plant/a/b", '{"ts": 1, "t": 20.0, "p": 1013}')
    assert r.values == (20.0, 1013.0)
    assert d.decode("plant/a/b", '{"ts": 1, "t": 20.0}', now=NOW).reason == "missing_field"
    d = dec(PayloadConfig(timestamp="ts"), features=("temp", "pressure"))  # default paths = feature names
    assert one(d, "plant/a/b", '{"ts": 1, "temp": 1, "pressure": 2}').values == (1.0, 2.0)


def test_mismatched_features_is_a_config_error():
    with pytest.raises(ValueError, match="features"):
        dec(PayloadConfig(values=(("a", "a"),)), features=("temp",))
    with pytest.raises(ValueError, match="payload.values"):
        dec(PayloadConfig(value="v"), features=("a", "b"))


def test_array_of_readings_and_readings_path():
    d = dec()
    got = d.decode("plant/a/b", json.dumps([{"ts": i, "value": i * 1.5} for i in range(5)]), now=NOW)
    assert [(r.ts, r.values[0]) for r in got] == [(i, i * 1.5) for i in range(5)]
    d = dec(PayloadConfig(value="v", timestamp="t", readings="batch"))
    got = d.decode("plant/a/b", '{"gateway": 3, "batch": [{"t": 1, "v": 2}, {"t": 2, "v": 3}]}', now=NOW)
    assert [r.values for r in got] == [(2.0,), (3.0,)]


def test_array_is_all_or_nothing():
    d = dec()
    out = []
    assert d.decode_into("plant/a/b", b'[{"ts": 1, "value": 1}, {"ts": 2, "value": "x"}]', NOW, out) == "wrong_type"
    assert out == []


def test_stream_templates():
    assert one(dec(stream="{topic}"), "plant/a/b", '{"ts":1,"value":1}').stream == "plant/a/b"
    assert one(dec(stream="{pipeline}:{2}"), "plant/a/b", '{"ts":1,"value":1}').stream == "p:b"
    d = dec(subscribe="site/#", stream="{1}")
    assert one(d, "site/x/y/z", '{"ts":1,"value":1}').stream == "x/y/z"
    d = dec(subscribe="gw/+/batch", stream="{1}.{sensor}")
    got = d.decode("gw/7/batch", '[{"sensor": "a", "ts": 1, "value": 1}, {"sensor": 2, "ts": 1, "value": 2}]', now=NOW)
    assert [r.stream for r in got] == ["7.a", "7.2"]
    assert d.decode("gw/7/batch", '[{"ts": 1, "value": 1}]', now=NOW).reason == "missing_field"
    assert d.decode("gw/7/batch", '[{"sensor": "a+b", "ts": 1, "value": 1}]', now=NOW).reason == "bad_stream"
    assert dec().decode("other/a/b", '{"ts":1,"value":1}', now=NOW).reason == "topic_mismatch"


@pytest.mark.parametrize("payload,reason", [
    (b"{not json", "not_json"),
    (b"\x93junk\xc3\x28", "not_utf8"),
    (b"", "empty"),
    (b"[]", "empty"),
    (b'{"ts": 1}', "missing_field"),
    (b'{"value": 1}', "missing_field"),
    (b'{"ts": 1, "value": null}', "missing_field"),
    (b'{"ts": 1, "value": "21.5"}', "wrong_type"),
    (b'{"ts": 1, "value": true}', "wrong_type"),
    (b'{"ts": 1, "value": [1]}', "wrong_type"),
    (b'{"ts": 1, "value": NaN}', "non_finite"),
    (b'{"ts": 1, "value": Infinity}', "non_finite"),
    (b'{"ts": 1, "value": 1e999}', "non_finite"),
    (b'{"ts": 1, "value": 1' + b"0" * 400 + b"}", "non_finite"),
    (b'{"ts": "yesterday", "value": 1}', "bad_timestamp"),
    (b'{"ts": NaN, "value": 1}', "bad_timestamp"),
    (b'{"ts": 99999999999, "value": 1}', "bad_timestamp"),  # ~2286 in seconds: far future
    (b'{"ts": {"a": 1}, "value": 1}', "wrong_type"),
    (b'"a string"', "wrong_type"),
    (b"[1, 2]", "wrong_type"),  # numbers in an array need a timestamp field here
    (b"[" * 20000, "not_json"),
    (b'{"ts": 1, "value": 1, "pad": "' + b"x" * 70000 + b'"}', "too_large"),
    (json.dumps([{"ts": i, "value": 1} for i in range(1001)]).encode(), "too_many_readings"),
])
def test_bad_payloads_are_rejected_with_a_reason(payload, reason):
    got = dec().decode("plant/a/b", payload, now=NOW)
    assert isinstance(got, Reject) and got.reason == reason, got
    assert got.reason in REASONS


def test_random_junk_never_raises():
    d = dec()
    rng = __import__("random").Random(0)
    for n in range(2000):
        payload = os.urandom(rng.randint(0, 64)) if n % 2 else bytes(rng.choice(b'{}[]":,0123456789.eE-+ntruefalsN') for _ in range(rng.randint(0, 40)))
        out = []
        reason = d.decode_into("plant/a/b", payload, NOW, out)
        assert reason is None or reason in REASONS
        for stream, ts, values in out:
            assert all(math.isfinite(v) for v in values) and math.isfinite(ts)


def test_limits_are_configurable():
    d = dec(limits=LimitsConfig(max_payload_bytes=10, max_readings_per_message=2, max_future_s=0))
    assert d.decode("plant/a/b", b'{"ts": 1, "value": 12345}', now=NOW).reason == "too_large"
    d = dec(limits=LimitsConfig(max_readings_per_message=2, max_future_s=0))
    assert d.decode("plant/a/b", b'[{"ts":1,"value":1},{"ts":1,"value":1},{"ts":1,"value":1}]', now=NOW).reason == "too_many_readings"
    assert one(d, "plant/a/b", b'{"ts": 99999999999, "value": 1}').ts == 99999999999


# -- decode_into's fast path (flat {"ts", "value"} objects) must agree with the general path -------
_FAST_CASES = [
    b'{"ts": 1700000000.5, "value": 21.5}', b'{"ts": 1700000000, "value": 21}', b'{"value": 1.5, "ts": 12.5}',
    b'{"ts": 1700000000123, "value": -0.0}', b'{"ts": 1700000000123456, "value": 1e300}',
    b'{"ts": 1700000000123456789, "value": 3}', b'{"ts": 99999999999, "value": 1}', b'{"ts": 1e400, "value": 1}',
    b'{"ts": 1, "value": 1e400}', b'{"ts": 1, "value": NaN}', b'{"ts": NaN, "value": 1}', b'{"ts": 1, "value": true}',
    b'{"ts": true, "value": 1}', b'{"ts": 1, "value": null}', b'{"ts": null, "value": 1}', b'{"value": 1}',
    b'{"ts": 1}', b'{"ts": 1, "value": "2"}', b'{"ts": "2023-11-14T22:13:20Z", "value": 1}',
    b'{"ts": 1, "value": ' + b"9" * 400 + b"}", b'{"ts": ' + b"9" * 400 + b', "value": 1}', b'21.5', b'[1, 2]',
    b'[{"ts": 1, "value": 2}]', b'{"ts": 1, "value": 2} x', b'', b'{', b'\xff', b'{"ts": -5, "value": -7.25}',
]


@pytest.mark.parametrize("unit", ["auto", "s", "ms", "us", "ns", "iso"])
@pytest.mark.parametrize("ts_field", ["ts", None])
def test_decode_into_fast_path_matches_the_general_path(unit, ts_field):
    d = dec(PayloadConfig(value="value", timestamp=ts_field, timestamp_unit=unit))
    assert d._flat
    for payload in _FAST_CASES:
        for topic in ("plant/a/b", b"plant/a/b", "bad/topic", b"bad/topic"):
            d.decode_into(topic, b'{"ts": 1, "value": 1}', NOW, [])  # warm the topic cache
            fast: list = []
            reason = d.decode_into(topic, payload, NOW, fast)
            slow: list = []
            assert (reason, fast) == (d._decode(topic, payload, NOW, slow)[0], slow), (payload, topic)


def test_decode_into_takes_the_fast_path_for_a_flat_reading(monkeypatch):
    d = dec()
    out: list = []
    assert d.decode_into(b"plant/a/b", b'{"ts": 1, "value": 1}', NOW, out) is None  # fills the topic cache
    monkeypatch.setattr(d, "_decode", lambda *a: pytest.fail("general path taken"))
    assert d.decode_into(b"plant/a/b", b'{"ts": 1700000000.5, "value": 2.5}', NOW, out) is None
    assert out == [("a/b", 1.0, (1.0,)), ("a/b", 1_700_000_000.5, (2.5,))]


def test_fast_path_is_off_where_it_does_not_apply():
    assert not dec(PayloadConfig(value="data.temp", timestamp="ts"))._flat
    assert not dec(PayloadConfig(value="value", timestamp="meta.ts"))._flat
    assert not dec(stream="{1}/{sensor}")._flat
    assert not dec(PayloadConfig(format="number"))._flat
    assert not dec(PayloadConfig(value="value", timestamp="ts", readings="readings"))._flat


@pytest.mark.parametrize("stream", ["{1}/{2}", "{topic}", "{1}/{sensor}"])
def test_raw_topic_bytes_decode_like_the_str(stream):
    d = dec(stream=stream)
    for payload in (b'{"ts": 1, "value": 2, "sensor": "x"}', b'[{"ts": 1, "value": 2, "sensor": "y"}]', b'{"ts": 1}'):
        for topic in ("plant/l\u00e9/b", "plant/a", "plant/a/b/c"):
            a: list = []
            b: list = []
            assert d.decode_into(topic, payload, NOW, a) == d.decode_into(topic.encode(), payload, NOW, b)
            assert a == b
