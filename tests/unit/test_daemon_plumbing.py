"""Inbox wake-up thresholds, the in-loop ack, the JSON fast path (no broker, no timing)."""

import json
import threading

import pytest

from edgernn.daemon import Inbox
from edgernn.decode import _loads_fast
from edgernn.logs import Throttle


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


def _routing_client(fake):
    m = _mqtt_client(fake)
    m._routes, m._targets, m._gate, m._holding, m.handler_errors = [], {}, threading.Lock(), False, 0
    return m


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
    m = _routing_client(fake)
    seen = []
    m.subscribe("plant/+/+", 1, lambda topic, payload: seen.append(topic) or True, raw_topic=raw_topic)
    on_message = fake.on_message
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


# -- routing: several pipelines on the same or overlapping filters -------------------------------
@pytest.mark.parametrize("a, b, covers", [
    ("sensors/#", "sensors/+/temp", True), ("sensors/+/temp", "sensors/#", False),
    ("sensors/#", "sensors", True), ("#", "a/b/c", True), ("+/+", "a/b", True), ("+/+", "a/#", False),
    ("a/+", "a/b/c", False), ("a/b", "a/b", True), ("a/b", "a/c", False), ("#", "$SYS/x", False),
    ("+/x", "$SYS/x", False), ("a/+/c", "a/b/c", True), ("a/b/c", "a/+/c", False),
])
def test_filter_covers(a, b, covers):
    pytest.importorskip("paho.mqtt")
    from edgernn.mqtt import filter_covers

    assert filter_covers(a, b) is covers


def test_plan_subscriptions_one_per_filter_highest_qos_covered_ones_merged():
    pytest.importorskip("paho.mqtt")
    from edgernn.mqtt import plan_subscriptions

    assert plan_subscriptions([("z2m/+", 0), ("z2m/+", 1)]) == [("z2m/+", 1)]
    assert plan_subscriptions([("sensors/+/temp", 1), ("sensors/#", 0)]) == [("sensors/#", 1)]
    assert plan_subscriptions([("a/+", 0), ("b/+", 1), ("a/+", 1)]) == [("a/+", 1), ("b/+", 1)]
    assert plan_subscriptions([("#", 0), ("+/#", 1)]) == [("#", 1)]  # equivalent: the first one kept


class _RoutedMsg(_Msg):
    def __init__(self, topic, qos=1, mid=9):
        super().__init__(topic)
        self.qos, self.mid = qos, mid


def test_routed_messages_reach_every_matching_handler_once_and_are_acked_once():
    fake = _FakePaho()
    m = _routing_client(fake)
    got = {"temp": [], "hum": [], "all": []}
    for name, flt in (("temp", "z2m/+"), ("hum", "z2m/+"), ("all", "z2m/#")):
        m.subscribe(flt, 1, lambda topic, payload, name=name: got[name].append(topic) or True)
    assert m._subs == [("z2m/#", 1)]  # one broker subscription covers all three
    on_message = fake.on_message
    for mid, topic in enumerate(("z2m/kitchen", "z2m/kitchen", "z2m/a/b", "other/x")):
        on_message(fake, None, _RoutedMsg(topic, mid=mid))
    assert got == {"temp": ["z2m/kitchen"] * 2, "hum": ["z2m/kitchen"] * 2,
                   "all": ["z2m/kitchen", "z2m/kitchen", "z2m/a/b"]}
    assert fake.acks == [(0, 1), (1, 1), (2, 1), (3, 1)]  # each message once, matched or not


def test_a_failing_handler_does_not_starve_the_others():
    fake = _FakePaho()
    m = _routing_client(fake)
    seen = []

    def broken(topic, payload):
        raise RuntimeError("bug")

    m.subscribe("a/+", 1, broken)
    m.subscribe("a/+", 1, lambda topic, payload: seen.append(topic) or True)
    fake.on_message(fake, None, _RoutedMsg("a/b"))
    assert seen == ["a/b"] and m.handler_errors == 1 and fake.acks == [(9, 1)]


def test_a_message_not_taken_by_one_handler_is_not_acknowledged():
    fake = _FakePaho()
    m = _routing_client(fake)
    m.subscribe("a/+", 1, lambda topic, payload: True)
    m.subscribe("a/+", 1, lambda topic, payload: False)  # e.g. its inbox closed at shutdown
    fake.on_message(fake, None, _RoutedMsg("a/b"))
    assert fake.acks == []


# -- TLS files: one line naming the key, never a traceback ----------------------------------------
class _Tls:
    def __init__(self, ca=None, cert=None, key=None, insecure=False):
        self.ca, self.cert, self.key, self.insecure = ca, cert, key, insecure


def test_tls_context_names_the_bad_file(tmp_path):
    from edgernn.tls import TlsFileError, tls_context

    junk = tmp_path / "ca.crt"
    junk.write_text("this is not a certificate\n")
    with pytest.raises(TlsFileError) as err:
        tls_context(_Tls(ca=junk))
    assert err.value.key == "mqtt.tls.ca" and str(junk) in str(err.value) and "\n" not in str(err.value)
    assert "_ssl.c" not in str(err.value)
    with pytest.raises(TlsFileError) as err:
        tls_context(_Tls(cert=junk, key=junk))
    assert err.value.key == "mqtt.tls.cert" and "PEM" in str(err.value)
    assert tls_context(_Tls(insecure=True)).check_hostname is False  # system CAs, host name not checked


# -- snapshots: a path that cannot be written is found at startup -------------------------------------
def test_check_snapshot_path(tmp_path):
    from edgernn.daemon import check_snapshot_path

    assert check_snapshot_path(tmp_path / "plant.npz") is None
    assert list(tmp_path.iterdir()) == []  # the probe file is gone
    (tmp_path / "plant.npz").mkdir()
    assert "is a directory" in check_snapshot_path(tmp_path / "plant.npz")
    assert "cannot write snapshots" in check_snapshot_path(tmp_path / "missing" / "plant.npz")


def test_evictions_are_logged_rate_limited_with_the_ids(caplog):
    from types import SimpleNamespace

    from edgernn.daemon import Daemon
    from edgernn.state import StateStore

    store = StateStore(1, 4, capacity=2)
    d = Daemon.__new__(Daemon)
    d.cfg = SimpleNamespace(log=SimpleNamespace(rejects_every_s=3600.0))
    d._evictions = Throttle(3600.0)
    pipe = SimpleNamespace(cfg=SimpleNamespace(name="plant"), detector=SimpleNamespace(state=store))
    caplog.set_level("WARNING", logger="edgernn.daemon")
    store.rows_for(["a", "b"])
    store.rows_for(["c"])  # evicts a
    d._log_evictions(pipe, d._drain_evictions(pipe))
    store.rows_for(["d"])  # evicts b: within the interval, counted for the next line
    d._log_evictions(pipe, d._drain_evictions(pipe))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "evicted 1 stream(s)" in lines[0] and "latest: a" in lines[0]
    assert store.evicted_ids == [] and d._evictions.held("plant") == 1
    d._evictions._last["plant"] -= 7200  # the interval has passed
    store.rows_for(["e"])
    d._log_evictions(pipe, d._drain_evictions(pipe))
    assert "evicted 2 stream(s)" in caplog.records[-1].getMessage()


def test_a_reject_is_decoded_once_and_logged_with_its_detail(caplog, monkeypatch):
    from collections import Counter
    from types import SimpleNamespace

    from edgernn.config import LimitsConfig, PayloadConfig, PipelineConfig
    from edgernn.daemon import Daemon, Inbox
    from edgernn.decode import Decoder

    pcfg = PipelineConfig(name="plant", subscribe="plant/+/+", model="/m", stream="{1}/{2}",
                          payload=PayloadConfig(value="value", timestamp="ts"))
    decoder = Decoder(pcfg, ("value",), LimitsConfig())
    calls = []
    general = decoder._decode
    monkeypatch.setattr(decoder, "_decode", lambda *a: calls.append(1) or general(*a))
    monkeypatch.setattr(decoder, "decode", lambda *a, **k: pytest.fail("decoded a second time for the log"))
    d = Daemon.__new__(Daemon)
    d.cfg = SimpleNamespace(log=SimpleNamespace(rejects_every_s=10.0))
    d.inbox = Inbox(1, 10)
    d._rejects = Throttle(10.0)
    pipe = SimpleNamespace(cfg=pcfg, decoder=decoder, rejects=Counter())
    caplog.set_level("WARNING", logger="edgernn.daemon")
    assert d._handler(0, pipe)(b"plant/a/b", b'{"ts": 1.7e9, "value": "hot"}') is True
    assert calls == [1] and pipe.rejects == {"wrong_type": 1}
    (line,) = [r.getMessage() for r in caplog.records]
    assert "rejected 1 message(s) (wrong_type), e.g. on plant/a/b: " in line and "value" in line


def test_connect_failures_are_logged_with_their_reason(caplog):
    import ssl
    from types import SimpleNamespace

    pytest.importorskip("paho.mqtt")
    from edgernn.mqtt import MqttClient

    m = MqttClient.__new__(MqttClient)
    m.cfg = SimpleNamespace(host="broker.lan", port=8883, reconnect_max_s=30.0)
    m._fails, m._fail_log = 0, Throttle(60.0)
    caplog.set_level("WARNING", logger="edgernn.mqtt")
    for exc in (ConnectionRefusedError(111, "Connection refused"),
                ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                                                "unable to get local issuer certificate (_ssl.c:1006)")):
        m._fails = 0  # each as a first failure: logged at once
        try:
            raise exc
        except OSError:  # paho calls on_connect_fail inside its except block
            m._on_connect_fail(None, None)
    refused, tls = [r.getMessage() for r in caplog.records]
    assert refused == ("cannot reach MQTT broker broker.lan:8883 (Connection refused); "
                       "retrying with backoff (up to 30 s)")
    assert tls.startswith("TLS handshake with MQTT broker broker.lan:8883 failed: [SSL: CERTIFICATE_VERIFY_FAILED] "
                          "certificate verify failed: unable to get local issuer certificate - check mqtt.tls.ca")


@pytest.mark.skipif(__import__("shutil").which("openssl") is None, reason="openssl CLI needed")
def test_tls_context_mismatched_and_encrypted_keys(tmp_path):
    import subprocess

    from edgernn.tls import TlsFileError, tls_context

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    openssl("req", "-x509", *ec, "-nodes", "-keyout", "a.key", "-out", "a.crt", "-days", "1", "-subj", "/CN=a")
    openssl("req", "-x509", *ec, "-nodes", "-keyout", "b.key", "-out", "b.crt", "-days", "1", "-subj", "/CN=b")
    openssl("pkey", "-in", "a.key", "-out", "a.enc.key", "-aes256", "-passout", "pass:secret")
    cert = tmp_path / "a.crt"
    tls_context(_Tls(ca=cert, cert=cert, key=tmp_path / "a.key"))  # the right pair loads
    with pytest.raises(TlsFileError) as err:
        tls_context(_Tls(ca=cert, cert=cert, key=tmp_path / "b.key"))
    assert err.value.key == "mqtt.tls.key" and "does not match the client certificate" in str(err.value)
    with pytest.raises(TlsFileError) as err:  # never a passphrase prompt on the terminal
        tls_context(_Tls(ca=cert, cert=cert, key=tmp_path / "a.enc.key"))
    assert err.value.key == "mqtt.tls.key" and "encrypted" in str(err.value)


def test_age_in_human_units():
    from edgernn.timestamps import duration_text as _age

    assert [_age(s) for s in (-1, 42, 720, 5 * 3600, 3 * 86400)] == ["0 s", "42 s", "12 min", "5.0 h", "3.0 days"]


def test_process_passes_the_wall_clock():
    import time
    from types import SimpleNamespace

    from edgernn.daemon import Daemon
    from edgernn.state import StateStore

    seen = []

    class Det:
        F, state = 1, StateStore(1, 4, capacity=8)

        def process(self, batch, now=None):
            seen.append(now)
            return SimpleNamespace(events=[])

    pipe = SimpleNamespace(cfg=SimpleNamespace(name="plant"), detector=Det(), processed=0)
    d = Daemon.__new__(Daemon)
    d.pipes, d.chunk, d.processed, d._iv_readings, d._iv_step, d._iv_batches = [pipe], 64, 0, 0, [], []
    d.observers = []  # no integrations in this unit test
    d._evictions, d.process_errors = Throttle(60.0), 0
    before = time.time()
    d.process(0, [("a/b", 1.7e9, (1.0,)), ("a/c", 1.7e9, (2.0,))])
    assert d.processed == 2 and len(seen) == 1
    assert before <= seen[0] <= time.time()


@pytest.mark.parametrize("handler", ["_terminate", "_hangup"])
def test_a_signal_while_the_main_thread_holds_the_inbox_wake_up_lock_does_not_deadlock(handler):
    """A signal handler runs on the main thread between two of its steps, for instance while it holds
    the inbox's wake-up lock inside Inbox.wait. The SIGTERM / SIGHUP handlers must take no lock that
    thread can hold: here a worker stands in for the main thread, holds that lock and runs the handler
    as the interpreter would. (Before, SIGTERM woke the inbox from the handler and could wait on that
    lock forever: the daemon then never stopped.) A daemon built from the example config, never run."""
    from pathlib import Path

    from edgernn.config import load_config
    from edgernn.daemon import Daemon

    cfg = load_config(Path(__file__).resolve().parents[2] / "deploy" / "edgernn.example.yaml")
    daemon = Daemon(cfg, install_signals=False)
    daemon._tty = True  # a hung-up terminal: SIGHUP stops, as SIGTERM
    done = threading.Event()

    def main_thread_in_inbox_wait():
        with daemon.inbox._ready._cond:  # what Inbox.wait holds around its wait (threading.Event)
            getattr(daemon, handler)(1, None)
        done.set()

    t = threading.Thread(target=main_thread_in_inbox_wait, daemon=True)
    t.start()
    assert done.wait(5), "the signal handler waited on a lock its own thread holds"
    assert daemon._stop.is_set()
