"""Inbox wake-up thresholds, the in-loop ack, the JSON fast path (no broker, no timing)."""

import json
import threading

import pytest

from edgernn.daemon import Inbox
from edgernn.decode import _loads_fast


def test_inbox_wait_returns_at_once_when_enough_is_waiting():
    box = Inbox(1, 100)
    box.put(0, [("s", 1.0, (1.0,))] * 3)
    box.wait(60.0, want=3)  # would hang the test if it waited
    assert len(box) == 3


def test_inbox_put_wakes_the_consumer_when_the_threshold_is_crossed():
    box = Inbox(1, 100)
    woke = threading.Event()

    def consumer():
        box.wait(60.0, want=5)
        woke.set()

    t = threading.Thread(target=consumer)
    t.start()
    for _ in range(5):
        assert not woke.is_set()
        box.put(0, [("s", 1.0, (1.0,))])
    assert woke.wait(10)
    t.join(10)


def test_inbox_wake_interrupts_a_wait():
    box = Inbox(1, 100)
    t = threading.Thread(target=box.wait, args=(60.0, 50))
    t.start()
    box.wake()
    t.join(10)
    assert not t.is_alive()


class _FakePaho:
    def __init__(self, pair=True, fail=False):
        if pair:
            self._sockpairW = object()
        self.fail, self.acks, self.pair_during_ack = fail, [], []

    def ack(self, mid, qos):
        self.pair_during_ack.append(getattr(self, "_sockpairW", "absent"))
        if self.fail:
            raise RuntimeError("boom")
        self.acks.append((mid, qos))


def _mqtt_client(fake):
    pytest.importorskip("paho.mqtt")
    from edgernn.mqtt import MqttClient

    m = MqttClient.__new__(MqttClient)
    m.client = fake
    return m


def test_ack_in_loop_skips_the_wakeup_pair_and_restores_it():
    fake = _FakePaho()
    pair = fake._sockpairW
    _mqtt_client(fake)._ack_in_loop(7, 1)
    assert fake.acks == [(7, 1)] and fake.pair_during_ack == [None] and fake._sockpairW is pair
    fake.fail = True
    with pytest.raises(RuntimeError):
        _mqtt_client(fake)._ack_in_loop(8, 1)
    assert fake._sockpairW is pair


def test_ack_in_loop_without_the_private_attribute_is_a_plain_ack():
    fake = _FakePaho(pair=False)
    _mqtt_client(fake)._ack_in_loop(3, 1)
    assert fake.acks == [(3, 1)] and fake.pair_during_ack == ["absent"]


@pytest.mark.parametrize("payload", [
    b'{"ts": 1700000000.5, "value": 21.5}', b'[{"v": 1}, {"v": 2}]', b'{"a": 1}  \n', b'{"a": NaN}', b'{"a": 1} x',
    b'{"a": 1}{}', b"{", b"[" * 100_000, b'\xef\xbb\xbf{"a": 1}', b'{\x00"\x00}\x00', b'{"a": "\xed\xa0\x80"}',
    b'{"a": "\xff"}', b' {"a": 1}', b'{"a": 1,}', bytearray(b'{"x": 2}'), memoryview(b'{"x": 3}'), b"",
])
def test_json_fast_path_matches_json_loads(payload):
    def outcome(f):
        try:
            return "ok", json.dumps(f(payload), sort_keys=True)
        except Exception as exc:  # noqa: BLE001
            return "error", type(exc).__name__, str(exc)

    assert outcome(_loads_fast) == outcome(json.loads)


class _Msg:
    def __init__(self, topic, raw=True):
        if raw:
            self._topic = topic.encode()
        self.topic, self.payload, self.qos, self.mid = topic, b"1", 1, 5


class _MsgNoRaw:
    __slots__ = ("topic", "payload", "qos", "mid")

    def __init__(self, topic):
        self.topic, self.payload, self.qos, self.mid = topic, b"1", 1, 5


@pytest.mark.parametrize("raw_topic", [True, False])
def test_on_message_passes_the_raw_topic_bytes_only_when_asked_and_available(raw_topic):
    fake = _FakePaho()
    m = _mqtt_client(fake)
    m._subs, m._callbacks, m._gate, m._holding = [], [], threading.Lock(), False
    seen = []
    m.subscribe("plant/+/+", 1, lambda topic, payload: seen.append(topic) or True, raw_topic=raw_topic)
    on_message = m._callbacks[0][1]
    on_message(fake, None, _Msg("plant/a/b"))
    on_message(fake, None, _MsgNoRaw("plant/a/c"))  # a paho without the private attribute
    assert seen == ([b"plant/a/b", "plant/a/c"] if raw_topic else ["plant/a/b", "plant/a/c"])
    assert fake.acks == [(5, 1), (5, 1)]


def test_batch_wait_stretches_only_under_a_flood():
    from edgernn.daemon import FLOOD_BATCH, FLOOD_WAIT_FACTOR, batch_wait

    assert batch_wait(False, 10_000, 0.005) is None  # not busy: the first reading, at once
    assert batch_wait(True, 10_000, 0.0) is None  # batching switched off
    assert batch_wait(True, 0, 0.005) == 0.005  # busy (a burst over BUSY_RATE): batch_wait_ms
    assert batch_wait(True, FLOOD_BATCH - 1, 0.005) == 0.005
    assert batch_wait(True, FLOOD_BATCH, 0.005) == pytest.approx(0.005 * FLOOD_WAIT_FACTOR)
    assert FLOOD_WAIT_FACTOR > 1
