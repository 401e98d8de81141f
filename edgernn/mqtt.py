"""The one module that imports paho-mqtt (2.x, ``CallbackAPIVersion.VERSION2``).

- ``connect_async`` + ``loop_start``: the daemon starts with the broker down; paho's network
  thread reconnects with exponential backoff (``reconnect_min_s`` doubling to ``reconnect_max_s``).
- Persistent session: MQTT 5 with clean start off and a session expiry, or clean_session false on
  3.1.1; subscriptions are QoS 1 and (re)made in ``on_connect``, so readings published while the
  daemon restarts are queued by the broker and arrive afterwards.
- Last will: ``offline`` retained on the status topic; ``online`` retained on every connect.
- Messages are acknowledged by us (manual ack) right after the handler took them, so that at
  shutdown :meth:`hold` can stop taking messages without acknowledging them: the broker keeps them
  for the next start.
- Every publish result is checked: paho refuses silently (``MQTT_ERR_QUEUE_SIZE`` in ``info.rc``)
  beyond ``publish_queue`` outstanding messages; refusals are counted by reason.
- Routing: several handlers may ask for the same filter, or for overlapping ones (``sensors/+/temp``
  and ``sensors/#``). The broker gets one subscription per filter that no other filter covers, at
  the highest QoS asked for anything it covers; every message is matched here against every
  filter and handed to each matching handler exactly once (a broker that delivers one copy per
  overlapping subscription would otherwise double it). It is acknowledged once, after all took it.
- TLS: the CA, certificate and key are loaded when the client is built (``tls.tls_context``); a
  file that is not PEM or a key that does not match its certificate raises ``TlsFileError`` (one
  line, naming the config key): a permanent configuration error, ``serve`` exits 2 without
  retrying. A failed handshake with the broker (unknown CA, wrong host name) is logged with the
  TLS reason and retried with backoff like an unreachable broker: the broker side may be fixed
  while we wait (``last_error`` says why meanwhile; the daemon shows it in systemd's STATUS).
"""

from __future__ import annotations

import logging
import ssl
import sys
import threading
import time
from collections import Counter, deque
from typing import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .decode import topic_safe
from .logs import Throttle
from .tls import TlsFileError, ssl_reason, tls_context  # noqa: F401 - TlsFileError: raised by MqttClient()

log = logging.getLogger("edgernn.mqtt")

# handler(topic, payload) -> True when the message was taken (acknowledge it), False to leave it
# unacknowledged with the broker (only while shutting down).
Handler = Callable[[str, bytes], bool]
_AUTH_CODES = {4, 5, 134, 135}  # 3.1.1: bad user name or password / not authorised; 5: the same
_TOPIC_CACHE_MAX = 10_000  # topics remembered with their handlers (routing with several filters)
_TOPIC_CACHED_LEN = 1_000  # longer topics are matched every time: 10,000 of 65,535 bytes would be 655 MB


def filter_covers(a: str, b: str) -> bool:
    """True when every topic that matches filter ``b`` also matches filter ``a``.

    >>> filter_covers("sensors/#", "sensors/+/temp"), filter_covers("sensors/+/temp", "sensors/#")
    (True, False)
    """
    la, lb = a.split("/"), b.split("/")
    for i, x in enumerate(la):
        if x == "#":
            # '#' also matches the parent level; wildcards at the top never match '$SYS'-like topics
            return not (i == 0 and lb[0].startswith("$"))
        if i >= len(lb):
            return False
        y = lb[i]
        if x == "+":
            if y == "#" or (i == 0 and y.startswith("$")):
                return False
        elif x != y:
            return False
    return len(la) == len(lb)


def plan_subscriptions(asked: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The subscriptions to make for the ``(filter, qos)`` pairs asked: one per filter that no
    other filter covers (the first of equivalent ones), with the highest QoS of what it covers."""
    distinct: dict[str, int] = {}
    for f, q in asked:
        distinct[f] = max(q, distinct.get(f, 0))
    names = list(distinct)
    kept = [f for i, f in enumerate(names)
            if not any(g != f and filter_covers(g, f) and (not filter_covers(f, g) or j < i)
                       for j, g in enumerate(names))]
    return [(f, max(q for g, q in distinct.items() if filter_covers(f, g))) for f in kept]


def _match_filter(f: str) -> str:
    """The filter topics are matched against (``$share/group/f`` matches like ``f``)."""
    return f.split("/", 2)[2] if f.startswith("$share/") and f.count("/") >= 2 else f


class MqttClient:
    # messages no route takes: a persistent session keeps the subscriptions of an older config
    unmatched = 0
    _unmatched_log = None  # a Throttle, made at the first (tests build clients without __init__)

    def __init__(self, cfg, *, status_topic: str | None = None, online: bytes = b"online",
                 offline: bytes = b"offline"):
        self.cfg = cfg
        self.status_topic, self.online, self.offline = status_topic, online, offline
        v5 = cfg.protocol == "5"
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=cfg.client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else cfg.clean_session, manual_ack=True,
        )
        c = self.client
        c.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)
        c.max_queued_messages_set(cfg.publish_queue)
        if cfg.username is not None:
            c.username_pw_set(cfg.username, cfg.password)
        if cfg.tls is not None:
            c.tls_set_context(tls_context(cfg.tls))  # TlsFileError: a permanent config error
        if status_topic:
            c.will_set(status_topic, offline, qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_unmatched
        self._subs: list[tuple[str, int]] = []  # what the broker is asked for (plan_subscriptions)
        self._routes: list[tuple[str, int, Handler, bool]] = []  # (filter, qos, handler, raw_topic)
        self._targets: dict[str, tuple] = {}  # topic -> ((handler, raw_topic), ...) matching it
        self._gate = threading.Lock()
        self._holding = False
        self._pending: deque = deque()  # MQTTMessageInfo of QoS > 0 publishes not yet confirmed
        self._pending_lock = threading.Lock()  # publishers on several threads trim it
        self.connected = threading.Event()
        self.connects = 0
        self.handler_errors = 0
        self.published = 0
        self.publish_refused: Counter[str] = Counter()
        self._fail_log = Throttle(60.0)  # a failure's text: at once, then once a minute while it lasts
        self._fails = 0
        self._drops_log = Throttle(60.0)  # disconnects: logged once a minute at most
        self.last_error: str | None = None  # why the last connection attempt failed; None once connected

    # -- setup -------------------------------------------------------------------------------
    def subscribe(self, topic_filter: str, qos: int, handler: Handler, *, raw_topic: bool = False) -> None:
        """Route messages matching ``topic_filter`` to ``handler`` (call before :meth:`start`).

        Several handlers may use the same or overlapping filters: each gets every matching
        message once (see the module docstring). ``raw_topic``: pass the topic as paho received
        it, UTF-8 bytes, when paho exposes them (``msg._topic``; its ``msg.topic`` decodes them
        again on every access), else the str.
        """
        self._routes.append((topic_filter, qos, handler, raw_topic))
        self._subs = plan_subscriptions([(f, q) for f, q, _h, _r in self._routes])
        self.client.on_message = self._on_message_single if len(self._routes) == 1 else self._on_message_routed

    def _call(self, handler: Handler, raw_topic: bool, msg) -> bool:
        """Hand ``msg`` to one handler; True when taken. Never raises (paho's network thread)."""
        try:
            topic = getattr(msg, "_topic", None) if raw_topic else None
            if topic.__class__ is not bytes:
                topic = msg.topic
            return handler(topic, msg.payload)
        except Exception:  # noqa: BLE001 - a bug must not kill the network thread
            self.handler_errors += 1
            if self.handler_errors <= 3:
                log.exception("message handler failed on %r", msg.topic)
            return True

    def _on_message_single(self, client, userdata, msg):  # one route: no topic matching at all
        with self._gate:
            if self._holding:
                return  # not acknowledged: the broker redelivers it to the next session
            _f, _q, handler, raw = self._routes[0]
            taken = self._call(handler, raw, msg)
        if taken and msg.qos:
            self._ack_in_loop(msg.mid, msg.qos)

    def _on_message_routed(self, client, userdata, msg):
        with self._gate:
            if self._holding:
                return
            taken = True
            targets = self._targets_for(msg)
            if not targets:
                self._count_unmatched(msg)
            for handler, raw in targets:
                taken = self._call(handler, raw, msg) and taken
        if taken and msg.qos:
            self._ack_in_loop(msg.mid, msg.qos)

    def _targets_for(self, msg) -> tuple:
        """The (handler, raw_topic) pairs whose filter matches the message's topic (cached)."""
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # brokers refuse such topics; acknowledge and drop
            return ()
        found = self._targets.get(topic)
        if found is None:
            found = tuple((h, raw) for f, _q, h, raw in self._routes if paho.topic_matches_sub(_match_filter(f), topic))
            if len(topic) <= _TOPIC_CACHED_LEN:
                if len(self._targets) >= _TOPIC_CACHE_MAX:
                    self._targets.clear()
                self._targets[topic] = found
        return found

    def _ack_in_loop(self, mid: int, qos: int) -> None:
        """Acknowledge a message from paho's network thread, inside its on_message callback.

        paho's ``ack`` queues the PUBACK and writes a byte to its wake-up socket pair so that a loop
        blocked in select() notices; that costs two extra system calls and a select() round per
        message (about a quarter of the network thread's time under a flood). Called from the loop
        itself it is not needed: the queued PUBACK makes ``want_write()`` true, so the very next
        select() returns writable and sends it (with any others queued). A publish from the main
        thread racing with this window is sent by that same next loop pass. Without paho's
        private ``_sockpairW`` (another paho version) this is a plain ``ack``.
        """
        c = self.client
        w = getattr(c, "_sockpairW", None)
        if w is None:
            c.ack(mid, qos)
            return
        c._sockpairW = None  # noqa: SLF001
        try:
            c.ack(mid, qos)
        finally:
            c._sockpairW = w  # noqa: SLF001

    def start(self) -> None:
        cfg = self.cfg
        log.info("connecting to %s:%d (MQTT %s, client id %s, %s session)", cfg.host, cfg.port, cfg.protocol,
                 cfg.client_id, "clean" if cfg.clean_session else "persistent")
        if len(self._subs) < len(self._routes):
            log.info("subscriptions: %s (%d pipeline filter(s) share them)",
                     ", ".join(f"{f} (QoS {q})" for f, q in self._subs), len(self._routes))
        if cfg.protocol == "5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0 if cfg.clean_session else cfg.session_expiry_s
            self.client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive,
                                      clean_start=cfg.clean_session, properties=props)
        else:
            self.client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive)
        self.client.loop_start()

    # -- callbacks (network thread) ------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        cfg = self.cfg
        if reason_code.is_failure:
            self._fails += 1
            value = getattr(reason_code, "value", 0)
            hint = ""
            if value in _AUTH_CODES:
                src = cfg.password_source or "no password configured"
                hint = (f" - check mqtt.username ({cfg.username!r}) and the password ({src}); "
                        "retrying with backoff")
            self._log_fail(f"MQTT broker {cfg.host}:{cfg.port} refused the connection: {reason_code}{hint}")
            return
        self.connects += 1
        self._fails = 0
        self.last_error = None
        present = getattr(flags, "session_present", False)
        self._fail_log.forget()  # the next failure is news
        (log.debug if self._drops_log.held() else log.info)("connected to %s:%d (session %s)", cfg.host, cfg.port,
                                                      "resumed" if present else "new")
        if self._subs:
            result, _mid = client.subscribe([(t, q) for t, q in self._subs])
            if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
                log.error("subscribe failed: %s", paho.error_string(result))
        if self.status_topic:
            self.publish(self.status_topic, self.online, qos=1, retain=True)
        self.connected.set()

    def _on_connect_fail(self, client, userdata):
        """paho calls this inside its ``except OSError`` around the connect: the exception says why."""
        self._fails += 1
        exc = sys.exc_info()[1]
        where = f"{self.cfg.host}:{self.cfg.port}"
        retry = f"retrying with backoff (up to {self.cfg.reconnect_max_s:g} s)"
        if isinstance(exc, ssl.SSLError):
            hint = " - check mqtt.tls.ca (the CA that signed the broker's certificate) and the host name" \
                if isinstance(exc, ssl.SSLCertVerificationError) else ""
            self._log_fail(f"TLS handshake with MQTT broker {where} failed: {ssl_reason(exc)}{hint}; {retry}")
        else:
            why = f" ({ssl_reason(exc)})" if exc is not None else ""
            self._log_fail(f"cannot reach MQTT broker {where}{why}; {retry}")

    def _log_fail(self, msg: str) -> None:
        self.last_error = msg
        if self._fail_log.due(msg):
            log.warning("%s", msg)
        else:
            log.debug("%s (attempt %d)", msg, self._fails)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        was = self.connected.is_set()
        self.connected.clear()
        if was and not self._holding:  # (a broker that closes every connection: one line a minute)
            n = self._drops_log.due()
            if n:
                more = f"; {n - 1} more disconnect(s) in the last minute" if n > 1 else ""
                log.warning("disconnected from %s:%d (%s); reconnecting%s", self.cfg.host, self.cfg.port, reason_code, more)
            else:
                log.debug("disconnected from %s:%d (%s); reconnecting", self.cfg.host, self.cfg.port, reason_code)

    def _count_unmatched(self, msg) -> None:
        """Count a message no filter matches (stats ``unmatched``); one WARNING line a minute at most."""
        self.unmatched += 1
        if self._unmatched_log is None:
            self._unmatched_log = Throttle(60.0)
        if self._unmatched_log.due():
            topic = getattr(msg, "_topic", None)  # paho's raw bytes: msg.topic raises on bad UTF-8
            topic = topic.decode("utf-8", "replace") if isinstance(topic, bytes) else msg.topic
            log.warning("%d message(s) since start on topics no pipeline subscribes to, dropped, e.g. on %.80r "
                        "(a subscription of an older config, kept by the persistent session?)", self.unmatched, topic)

    def _on_unmatched(self, client, userdata, msg):  # a message no filter matched: acknowledge it
        self._count_unmatched(msg)
        if msg.qos:
            client.ack(msg.mid, msg.qos)

    # -- publishing (any thread) ------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> bool:
        """Queue a message; returns False (and counts why) when paho refuses it, or when the topic
        holds a code point the broker refuses (mosquitto would close the connection, and a QoS 1
        message is sent again after every reconnect)."""
        try:
            if not topic_safe(topic):
                raise ValueError("the topic holds + # or a control, surrogate or non-character code point")
            info = self.client.publish(topic, payload, qos=qos, retain=retain)
        except (ValueError, TypeError) as exc:
            self.publish_refused["invalid"] += 1
            log.debug("publish to %.120r refused: %s", topic, exc)
            return False
        rc = info.rc
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos > 0):
            self.published += 1
            if qos > 0:  # QoS > 0 while disconnected: queued by paho, sent after reconnecting
                info.rc = MQTTErrorCode.MQTT_ERR_SUCCESS  # else paho's is_published() raises even once sent
                pending = self._pending
                with self._pending_lock:
                    pending.append(info)
                    while pending and pending[0].is_published():
                        pending.popleft()
            return True
        reason = {MQTTErrorCode.MQTT_ERR_QUEUE_SIZE: "queue_full",
                  MQTTErrorCode.MQTT_ERR_NO_CONN: "not_connected"}.get(rc, paho.error_string(rc))
        self.publish_refused[reason] += 1
        return False

    def pending(self) -> int:
        pending = self._pending
        with self._pending_lock:
            while pending and pending[0].is_published():
                pending.popleft()
            return len(pending)

    def wait_published(self, timeout: float) -> bool:
        """Wait until every QoS > 0 message published so far is confirmed by the broker."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() >= deadline or not self.connected.is_set():
                return False
            time.sleep(0.005)
        return True

    # -- shutdown --------------------------------------------------------------------------------
    def hold(self) -> None:
        """Stop taking messages; those arriving from now on stay unacknowledged with the broker."""
        with self._gate:
            self._holding = True

    def stop(self, timeout: float = 2.0) -> None:
        """Publish ``offline`` (retained), wait for outstanding publishes, disconnect, stop the thread."""
        if self.status_topic and self.connected.is_set():
            self.publish(self.status_topic, self.offline, qos=1, retain=True)
        self.wait_published(timeout)
        self._holding = True
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def is_connected(self) -> bool:
        return self.connected.is_set()

    def stats(self) -> dict:
        return {"connected": self.is_connected, "connects": self.connects, "published": self.published,
                "publish_refused": dict(self.publish_refused), "publish_pending": self.pending(),
                "unmatched": self.unmatched,
                "last_error": self.last_error}
