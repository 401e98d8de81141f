"""Retained per-stream state, and Home Assistant MQTT discovery of every stream.

**Retained state** (always on): ``{prefix}/state/{stream}`` (``edgernn/{node}/state/{stream}`` by
default; ``{prefix}/state/{pipeline}/{stream}`` on a node of several pipelines, see below),
published retained (QoS 1) when a stream is first seen and on every raised / update / cleared
event, so a dashboard that connects later sees at once what is active::

    {"state": "problem", "event": "raised", "alert_id": "line1/temp#3", "reason": "instant",
     "top_feature": "value", "surprise": 9.53, "features_carrying": ["value"], "ts": 1700000123.0,
     "since": 1700000123.0,
     "pipeline": "plant", "stream": "line1/temp", "emitted": 1700000123.4}

``state`` is ``problem`` while an alert is active, else ``ok``; ``surprise`` is -log10 of the
reading's tail probability (9.5: a 1 in 3e9 reading); ``ts`` the reading's own timestamp; ``since``
when the alert was raised. A stream restored from a snapshot keeps the state the broker already
holds for it (nothing is published until its next event). When a stream is evicted
(``limits.max_streams``) its retained state is cleared (an empty retained message).

**Discovery** (``homeassistant: {discovery: true}``): per stream a ``binary_sensor`` (device class
``problem``: on while an alert is active, the state message as its attributes) and a ``sensor`` of
its surprise (state class ``measurement``): the largest surprise of the stream's readings since
the last refresh, retained on ``{prefix}/surprise/{stream}`` (several pipelines:
``{prefix}/surprise/{pipeline}/{stream}``) every ``stats.interval_s`` (10 s by default) for the
streams that had readings (so a dashboard graphs how unusual each stream has
been, not only its alerts). Both are grouped under one device per node (``edgernn {node}``) and
available while the daemon's status topic says ``online`` (its last will says ``offline``).
Config messages are retained, published when a stream is first seen (or restored) and again
whenever Home Assistant announces itself (``{prefix}/status`` = ``online``, its birth message;
at most every ``REANNOUNCE_EVERY_S``, one round queued at a time);
an evicted stream's configs and surprise are removed (empty retained messages), which removes
its entities. ``edgernn decommission -c CONFIG`` removes them all for a node.

Topic: ``homeassistant/binary_sensor/edgernn_{node}/{object_id}/config``; object ids are the
pipeline and stream lower-cased to ``[a-z0-9_]``, plus 6 hex digits of a hash whenever that changed
the id (``Line 1/Temp`` -> ``plant_line_1_temp_55b52d``), so distinct streams never share an entity.

**Several pipelines** (``pipelines:`` of more than one): the same stream id may come from two of
them (``temperature`` and ``vibration`` both see ``pump1``), so their state and surprise topics carry
the pipeline as a level of its own: ``{prefix}/state/{pipeline}/{stream}`` and
``{prefix}/surprise/{pipeline}/{stream}`` (a pipeline name is letters, digits, ``_ . -``: one
topic-safe level, so no other pipeline / stream pair makes the same topic); entity names start with
the pipeline. A node of one pipeline keeps ``{prefix}/state/{stream}``. Moving a node from one
pipeline to several (or back) moves its topics: a restored stream's new state topic holds nothing
until its next event, and the old ones stay retained until ``edgernn decommission``.
Object ids join ``slug(pipeline) + "_" + slug(stream)``, which only two pipelines whose slugs make
one a prefix of the other plus ``_`` (or equal) can confuse (``a_b`` + ``c`` and ``a`` + ``b_c``:
``a_b_c``), and then only for the shorter one's streams whose slug starts with the rest of the
longer name (``b``). Those ids alone get 6 more hex digits, of a hash of ``{pipeline}/{stream}``
(unambiguous: no pipeline name holds ``/``): ``a`` + ``b_c`` is ``a_b_c_f53c27``, ``a_b`` + ``c``
stays ``a_b_c`` (``colliding_heads``). This follows from the configured names alone, so ids are the
same at every start whatever order streams arrive in; pipelines such as ``pump`` and ``pump_2``
change no id unless ``pump`` has a stream named like ``2_...``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
import time
from collections import deque

from . import __version__
from .decode import topic_safe
from .logs import Throttle

log = logging.getLogger("edgernn.homeassistant")
QOS = 1
_UNSAFE = re.compile(r"[^a-z0-9_]+")
COMPONENTS = ("binary_sensor", "sensor")
REANNOUNCE_EVERY_S = 10.0  # Home Assistant birth messages: every config again at most this often
_REANNOUNCED = object()  # queued after the configs a Home Assistant birth message made us send again


def slug(text: str, limit: int = 64) -> str:
    """An id HA accepts (``[a-z0-9_]``) that stays distinct for distinct inputs."""
    out = _UNSAFE.sub("_", text.lower()).strip("_")[:limit] or "x"
    if out != text:
        out += "_" + _hash6(text)
    return out


def _hash6(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:6]


def node_id(node: str) -> str:
    return slug(f"edgernn_{node}")


def pair_hash(pipeline: str, stream: str) -> str:
    """6 hex digits telling (pipeline, stream) pairs apart (no pipeline name holds ``/``)."""
    return _hash6(f"{pipeline}/{stream}")


def colliding_heads(pipelines: list[str]) -> dict[str, list[str]]:
    """pipeline -> the stream-slug heads whose joined object ids another pipeline's could equal.

    ``slug(p) + "_" + slug(s)`` of two pipelines can only meet when one's slug ``a`` plus ``_`` is a
    prefix of the other's ``b``: then a stream of the shorter one whose slug is the rest ``r`` of
    ``b`` (``b = a + "_" + r``), or starts with ``r + "_"``, joins like a stream of the longer one.
    Those streams (head ``r``) get a hash of the pair; every other id stays as it was. Two
    pipelines with the same slug: every stream of both (head ""). From the names alone."""
    slugs = {p: slug(p) for p in pipelines}
    heads: dict[str, list[str]] = {}
    for p, a in slugs.items():
        for q, b in slugs.items():
            if p != q and b == a:
                heads.setdefault(p, []).append("")
            elif p != q and b.startswith(a + "_"):
                heads.setdefault(p, []).append(b[len(a) + 1 :])
    return heads


def state_prefix(cfg) -> str:
    """``{topics.prefix}/state``: the retained per-stream state lives below it."""
    return f"{cfg.topics.prefix.format(node=cfg.node)}/state"


def surprise_prefix(cfg) -> str:
    """``{topics.prefix}/surprise``: each stream's peak surprise (HA discovery only) below it."""
    return f"{cfg.topics.prefix.format(node=cfg.node)}/surprise"


def discovery_filter(cfg) -> str:
    """The topic filter matching every discovery config of this node (decommission)."""
    return f"{cfg.homeassistant.prefix}/+/{node_id(cfg.node)}/+/config"


def alerts_filter(cfg) -> str | None:
    """A filter matching every alert topic of this node (retained when topics.alert_retain is on),
    or None when {stream} is not the template's last level (no filter can match it then)."""
    mark = "\x00"
    topic = cfg.topic("alerts", stream=mark, pipeline="+")
    return topic[:-1] + "#" if topic.endswith("/" + mark) else None


def surprise_from_likelihood(likelihood: float) -> float:
    """-log10 p from the detector's likelihood (1 - p down to p = 1e-12, then
    1 - 1e-12 (1 + ln(s / 12))^-0.2: inverted here). inf when it rounded to 1."""
    p = 1.0 - float(likelihood)
    if p >= 1e-12:
        return 0.0 - math.log10(p)  # p = 1 (unscored): 0.0, not -0.0
    if p > 0:
        return 12.0 * math.exp(min((p / 1e-12) ** -5.0 - 1.0, 700.0))
    return math.inf


def surprise_of(ev) -> float | None:
    """-log10 p of an event's reading (``Event.surprise`` when the detector gives it), 3 decimals;
    None when not finite."""
    s = getattr(ev, "surprise", None)
    s = surprise_from_likelihood(ev.likelihood) if s is None else float(s)
    return round(s, 3) if math.isfinite(s) else None


def _finite(x) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def event_state(pipeline: str, ev) -> dict:
    """The retained state message after an event."""
    active = ev.kind != "cleared"
    return {"state": "problem" if active else "ok", "event": ev.kind, "alert_id": ev.alert_id,
            "reason": ev.reason or None, "top_feature": ev.top_feature, "surprise": surprise_of(ev),
            "features_carrying": list(getattr(ev, "carrying", ())) or None,  # most surprising first
            "ts": _finite(ev.ts), "since": _finite(ev.started), "pipeline": pipeline, "stream": ev.stream, "emitted": time.time()}


def first_state(pipeline: str, stream: str, ts: float | None) -> dict:
    """The retained state message of a stream seen for the first time (no event yet)."""
    return {"state": "ok", "event": None, "alert_id": None, "reason": None, "top_feature": None, "surprise": 0.0,
            "features_carrying": None, "ts": _finite(ts), "since": None, "pipeline": pipeline, "stream": stream,
            "emitted": time.time()}


class StatePublisher:
    """Retained state per stream and (optionally) HA discovery. The main thread calls ``on_start``,
    ``on_batch``, ``on_event``, ``on_stats``, ``close``; paho's thread hands over HA's birth
    message; both only queue messages, which a sender thread publishes. ``mqtt`` is the daemon's
    ``MqttClient``."""

    def __init__(self, cfg, mqtt, pipelines: list[str]):
        self.cfg, self.mqtt = cfg, mqtt
        self.discovery = cfg.homeassistant.discovery
        self.prefix = cfg.homeassistant.prefix
        self.node_id = node_id(cfg.node)
        self.state_prefix = state_prefix(cfg)
        self.surprise_prefix = surprise_prefix(cfg)
        self.status_topic = cfg.topic("status")
        # entity names, state and surprise topics carry the pipeline only when it tells them apart
        self.several = len(pipelines) > 1
        self._heads = colliding_heads(pipelines)  # streams whose object ids get a hash of the pair
        self._known: dict[str, set] = {name: set() for name in pipelines}  # pipeline -> announced streams
        self._rows: dict[str, int] = {}  # pipeline -> live + evicted streams at the last look
        self._lock = threading.Lock()
        self.announced = 0
        self.removed = 0
        # Outgoing retained messages wait here in order (a state never overtakes an older one); a
        # sender thread hands them to the client while fewer than half of mqtt.publish_queue QoS 1
        # messages are unconfirmed: 10,000 new streams (30,000 messages) never make paho refuse
        # them or crowd out alerts, and the main thread never waits for the broker.
        self._queue: deque = deque()
        self.budget = max(1, cfg.mqtt.publish_queue // 2)
        # ... and at most max_waiting of them: streams that come and go faster than the broker
        # confirms (a stream template that makes an id per message: 7 messages per stream
        # announced and evicted) grew it by ~35,000 a second; beyond, a message is dropped, counted
        # (publish_refused: retained_backlog) and logged once a minute at most
        self.max_waiting = max(10_000, 8 * sum(p.max_streams for p in cfg.pipelines))
        self.dropped = 0
        self._drop_log = Throttle(60.0)
        self._births = 0  # Home Assistant birth messages not answered yet
        self._reannouncing = False  # configs queued for them, the _REANNOUNCED mark not yet reached
        self._next_reannounce = 0.0  # monotonic
        self._wake = threading.Event()
        self._closing = False
        self._sender = threading.Thread(target=self._send_loop, name="edgernn-retained", daemon=True)
        self._sender.start()
        # discovery: pipeline -> stream -> its peak likelihood since the last refresh (monotone in
        # surprise), published as its surprise at every stats tick (or every refresh_s, stats off)
        self._peaks: dict[str, dict[str, float]] = {}
        self.refresh_s = cfg.stats.interval_s if cfg.stats.interval_s > 0 else 10.0
        self._next_refresh = time.monotonic() + self.refresh_s
        if self.discovery:
            mqtt.subscribe(f"{self.prefix}/status", QOS, self._on_ha_status)

    @property
    def waiting(self) -> int:
        """Messages queued here, not yet handed to the MQTT client."""
        return len(self._queue)

    # -- topics and payloads -------------------------------------------------------------------
    def state_topic(self, pipeline: str, stream: str) -> str:
        return f"{self.state_prefix}/{pipeline}/{stream}" if self.several else f"{self.state_prefix}/{stream}"

    def surprise_topic(self, pipeline: str, stream: str) -> str:
        return f"{self.surprise_prefix}/{pipeline}/{stream}" if self.several else f"{self.surprise_prefix}/{stream}"

    def object_id(self, pipeline: str, stream: str) -> str:
        tail = slug(stream)
        obj = f"{slug(pipeline)}_{tail}"
        hit = any(h == "" or tail == h or tail.startswith(h + "_") for h in self._heads.get(pipeline, ()))
        return f"{obj}_{pair_hash(pipeline, stream)}" if hit else obj

    def config_topic(self, component: str, pipeline: str, stream: str) -> str:
        return f"{self.prefix}/{component}/{self.node_id}/{self.object_id(pipeline, stream)}/config"

    def entity_configs(self, pipeline: str, stream: str) -> dict[str, dict]:
        """component -> discovery config of one stream's two entities."""
        obj = self.object_id(pipeline, stream)
        label = f"{pipeline} {stream}" if self.several else stream
        state_topic = self.state_topic(pipeline, stream)
        common = {
            "state_topic": state_topic, "json_attributes_topic": state_topic,
            "availability_topic": self.status_topic, "payload_available": "online",
            "payload_not_available": "offline", "qos": QOS,
            "device": {"identifiers": [self.node_id], "name": f"edgernn {self.cfg.node}", "manufacturer": "edgernn",
                       "model": "GRU anomaly detector", "sw_version": __version__},
            "origin": {"name": "edgernn", "sw_version": __version__},
        }
        alert = {**common, "name": f"{label} alert", "unique_id": f"{self.node_id}_{obj}_alert",
                 "default_entity_id": f"binary_sensor.{self.node_id}_{obj}_alert", "device_class": "problem",
                 "value_template": "{{ value_json.state }}", "payload_on": "problem", "payload_off": "ok"}
        surprise = {**common, "name": f"{label} surprise", "unique_id": f"{self.node_id}_{obj}_surprise",
                    "default_entity_id": f"sensor.{self.node_id}_{obj}_surprise", "state_class": "measurement",
                    "state_topic": self.surprise_topic(pipeline, stream), "icon": "mdi:chart-bell-curve",
                    "suggested_display_precision": 1}
        return {"binary_sensor": alert, "sensor": surprise}

    # -- hooks (main thread) ---------------------------------------------------------------------
    def on_batch(self, pipe, streams: list, ts, evicted: list, seconds: float, res=None) -> None:  # noqa: ARG002
        """After a batch: remove the evicted streams, announce the ones seen for the first time,
        keep each stream's peak surprise (discovery) and send them every ``refresh_s``."""
        name = pipe.cfg.name
        if self.discovery and res is not None:
            self._track_peaks(name, streams, res)
        known = self._known[name]
        if evicted:
            self._remove(name, evicted)
        state = pipe.detector.state
        rows = len(state) + state.evictions  # grows exactly when the batch created a stream's row
        if rows != self._rows.get(name):
            self._rows[name] = rows
            new = set(streams).difference(known)
            if new:
                ids = state.ids
                new = [s for s in new if s in ids]  # accepted (a stream of rejects only is no entity)
                if new:
                    self._announce(name, new, dict(zip(streams, ts.tolist())))
        if self._peaks and time.monotonic() >= self._next_refresh:
            self._refresh_peaks()

    def on_stats(self) -> None:
        """The daemon's stats tick (every stats.interval_s): refresh the surprise sensors."""
        if self._peaks:
            self._refresh_peaks()

    def _track_peaks(self, pipeline: str, streams: list, res) -> None:
        """Per stream, the largest likelihood (monotone in surprise) of this batch's readings."""
        values = res.likelihood  # float64[B]; NaN for rejected readings (never > anything)
        peaks = self._peaks.get(pipeline)
        if peaks is None:
            peaks = self._peaks[pipeline] = {}
        if len(streams) == 1:
            v = float(values[0])
            if v > peaks.get(streams[0], -1.0):
                peaks[streams[0]] = v
            return
        get = peaks.get
        for sid, v in zip(streams, values.tolist()):
            if v > get(sid, -1.0):
                peaks[sid] = v

    def _refresh_peaks(self) -> None:
        """Each stream's peak surprise since the last refresh, retained on its surprise topic."""
        peaks, self._peaks = self._peaks, {}
        self._next_refresh = time.monotonic() + self.refresh_s
        for pipeline, streams in peaks.items():
            for sid, lik in streams.items():
                s = surprise_from_likelihood(lik)
                self._publish(self.surprise_topic(pipeline, sid), f"{min(s, 1e300):.4g}")  # "9.531", "1.2e+05"

    def on_start(self, pipes: list) -> None:
        """After the snapshots were restored: the restored streams' configs again (their retained
        state on the broker is still right: nothing is published for it until their next event)."""
        for pipe in pipes:
            self._announce(pipe.cfg.name, list(pipe.detector.state.ids), None)

    def on_event(self, pipe, ev) -> None:
        name = pipe.cfg.name
        self._publish(self.state_topic(name, ev.stream), json.dumps(event_state(name, ev)))

    def close(self, timeout: float = 2.0) -> None:
        """Before the daemon disconnects: send what still waits, for up to ``timeout`` seconds
        (what is left is announced again at the next start)."""
        if self._peaks:
            self._refresh_peaks()
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline and self._sender.is_alive():
            time.sleep(0.01)
        self._closing = True
        self._wake.set()
        self._sender.join(timeout)
        if self._queue:
            log.info("%d retained announcement(s) not sent before stopping", len(self._queue))

    # -- the sender thread ---------------------------------------------------------------------
    def _send_loop(self) -> None:
        while not self._closing:
            self._wake.wait(1.0)
            self._wake.clear()
            self._reannounce()
            while self._queue and not self._closing:
                if not self._flush():
                    time.sleep(0.05)  # no room: the broker is confirming (or we are offline)
                self._reannounce()

    def _flush(self) -> int:
        """Publish waiting messages while fewer than ``budget`` are unconfirmed; returns how many."""
        q, publish = self._queue, self.mqtt.publish
        room = self.budget - self.mqtt.pending()
        sent = 0
        while q and sent < room:
            topic, payload = q.popleft()
            if topic is _REANNOUNCED:  # every config of the last re-announce is handed over
                self._reannouncing = False
                continue
            if not publish(topic, payload, qos=QOS, retain=True):
                log.debug("retained message to %r not queued (see the publish_refused stats)", topic[:120])
            sent += 1
        return sent

    # -- announce / remove -------------------------------------------------------------------
    def _announce(self, pipeline: str, streams: list, first_ts: dict | None) -> None:
        """``first_ts`` given: new streams (an ``ok`` state each); None: restored (configs only)."""
        unsafe = [s for s in streams if not topic_safe(s)]
        if unsafe:  # restored from a snapshot written before decode refused such ids: a config naming
            # its state topic would make the broker drop Home Assistant's connection when it subscribes
            log.warning("not announcing %d stream(s) whose ids no MQTT topic can hold, e.g. %.60r",
                        len(unsafe), unsafe[0])
            streams = [s for s in streams if s not in unsafe]
        with self._lock:
            self._known[pipeline].update(streams)
        for s in streams:
            if self.discovery:
                self._publish_configs(pipeline, s)
            if first_ts is not None:
                self._publish(self.state_topic(pipeline, s), json.dumps(first_state(pipeline, s, first_ts.get(s))))
        self.announced += len(streams)

    def _remove(self, pipeline: str, streams: list) -> None:
        with self._lock:
            self._known[pipeline].difference_update(streams)
        peaks = self._peaks.get(pipeline, {})
        for s in streams:
            self._publish(self.state_topic(pipeline, s), b"")
            if self.discovery:
                peaks.pop(s, None)
                self._publish(self.surprise_topic(pipeline, s), b"")
                for component in COMPONENTS:
                    self._publish(self.config_topic(component, pipeline, s), b"")
        self.removed += len(streams)

    def _publish_configs(self, pipeline: str, stream: str) -> None:
        for component, config in self.entity_configs(pipeline, stream).items():
            self._publish(self.config_topic(component, pipeline, stream), json.dumps(config))

    def _publish(self, topic: str, payload) -> None:
        if len(self._queue) >= self.max_waiting:
            self._drop(topic)
            return
        self._queue.append((topic, payload))  # deque.append: safe from paho's thread too
        self._wake.set()

    def _drop(self, topic: str) -> None:
        self.dropped += 1
        refused = getattr(self.mqtt, "publish_refused", None)
        if refused is not None:
            refused["retained_backlog"] += 1
        n = self._drop_log.due()
        if n:
            log.warning("%d retained state / discovery message(s) waiting for the broker: dropped %d more (%d "
                        "since start), e.g. to %.120r (streams come and go faster than the broker confirms: "
                        "check the pipelines' stream templates and limits.max_streams)", len(self._queue),
                        n, self.dropped, topic)

    # -- Home Assistant's birth message (paho's network thread) ---------------------------------------
    def _on_ha_status(self, topic, payload: bytes) -> bool:
        if bytes(payload).strip().lower() != b"online":
            return True
        with self._lock:
            self._births += 1  # the sender thread announces (_reannounce)
        self._wake.set()
        return True

    def _reannounce(self) -> None:
        """(Sender thread.) After Home Assistant's birth message(s): every stream's configs again,
        at most once per ``REANNOUNCE_EVERY_S`` and never while the last round's are still queued
        (each birth queued them all at once: 50 births in a second held 100,000 messages for 1,000
        streams, RSS 53 -> 148 MB). Births in between are answered by the next round."""
        if not self._births or self._reannouncing or time.monotonic() < self._next_reannounce:
            return
        with self._lock:
            births, self._births = self._births, 0
            known = [(p, s) for p, streams in self._known.items() for s in streams]
        self._reannouncing = True
        self._next_reannounce = time.monotonic() + REANNOUNCE_EVERY_S
        log.info("Home Assistant is online%s: announcing %d stream(s) again",
                 f" ({births} birth messages)" if births > 1 else "", len(known))
        for pipeline, stream in known:
            self._publish_configs(pipeline, stream)
        self._queue.append((_REANNOUNCED, None))
