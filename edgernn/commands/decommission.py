"""Remove a node from the broker and from Home Assistant, then exit.

    edgernn decommission -c /etc/edgernn/edgernn.yaml [--dry-run] [--force]

Clears (with empty retained messages) every retained message the daemon of this node left on the
broker: the Home Assistant discovery configs of its streams (their entities and the node's device
disappear from Home Assistant), the per-stream state and surprise under edgernn/{node}/state/ and
edgernn/{node}/surprise/, alerts left
retained (topics.alert_retain) and its online/offline status. It finds them by subscribing to those topics and collecting what the
broker holds, so streams the daemon no longer remembers are removed too.

Stop the daemon first (systemctl stop edgernn): a running daemon announces its streams again.
While the node's status says online this command refuses unless --force.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time

from .common import fail, number_problem

MAX_WAIT_S = 600.0  # --wait: collecting stops after 10x this at the latest (inf never stopped)


def add_arguments(parser) -> None:
    parser.add_argument("-c", "--config", required=True, help="the daemon's config (YAML): node, broker, topics")
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    parser.add_argument("--force", action="store_true", help="even while the node's status says online")
    parser.add_argument("--wait", type=float, default=1.0, metavar="SECONDS",
                        help=f"collect retained messages until none arrived for this long, 0 to "
                             f"{MAX_WAIT_S:g} (default: %(default)s s)")


class Retained:
    """One MQTT session that collects this node's retained messages, then clears them."""

    def __init__(self, cfg):
        from ..homeassistant import alerts_filter, discovery_filter, state_prefix, surprise_prefix
        from ..mqtt import MqttClient

        mcfg = dataclasses.replace(cfg.mqtt, client_id=f"{cfg.mqtt.client_id}-decommission", clean_session=True)
        self.client = MqttClient(mcfg)
        self.found: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._last = time.monotonic()
        filters = [discovery_filter(cfg), f"{state_prefix(cfg)}/#", f"{surprise_prefix(cfg)}/#", cfg.topic("status"),
                   alerts_filter(cfg)]
        for topic_filter in filter(None, filters):
            self.client.subscribe(topic_filter, 1, self._take)

    def _take(self, topic, payload: bytes) -> bool:  # paho's network thread
        with self._lock:
            self.found[topic] = bytes(payload)
            self._last = time.monotonic()
        return True

    def collect(self, quiet_s: float, connect_timeout: float = 10.0) -> dict[str, bytes] | None:
        """topic -> payload of the node's retained messages, once none arrived for ``quiet_s``
        (None: the broker is not reachable)."""
        self.client.start()
        if not self.client.connected.wait(connect_timeout):
            return None
        self._last = time.monotonic()
        deadline = time.monotonic() + max(10 * quiet_s, 10.0)
        while time.monotonic() < deadline and time.monotonic() - self._last < quiet_s:
            time.sleep(0.05)
        with self._lock:
            return {t: p for t, p in self.found.items() if p}

    def clear(self, topics: list[str]) -> int:
        """An empty retained message to every topic; returns how many the broker confirmed."""
        sent = sum(self.client.publish(t, b"", qos=1, retain=True) for t in topics)
        return sent if self.client.wait_published(30.0) else 0

    def close(self) -> None:
        self.client.stop()


def run(args) -> int:
    from ..config import ConfigError, load_config

    problem = number_problem("--wait", args.wait, ge=0, le=MAX_WAIT_S)
    if problem:
        return fail("decommission", problem)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:  # every problem of the file, one line each (as serve)
        for line in exc.messages:
            fail("decommission", line)
        return 2
    session = Retained(cfg)
    try:
        return _decommission(cfg, session, args)
    finally:
        session.close()


def _decommission(cfg, session: Retained, args) -> int:
    from ..homeassistant import state_prefix, surprise_prefix

    broker = f"{cfg.mqtt.host}:{cfg.mqtt.port}"
    found = session.collect(max(0.1, args.wait))
    if found is None:
        return fail("decommission", f"cannot reach the MQTT broker {broker} (see the log above)")
    status = cfg.topic("status")
    if found.get(status, b"").strip() == b"online" and not args.force:
        return fail("decommission", f"node {cfg.node!r} looks online ({status} says online): stop its daemon "
                    "first (systemctl stop edgernn), or pass --force")
    states = sorted(t for t in found if t.startswith((state_prefix(cfg) + "/", surprise_prefix(cfg) + "/")))
    configs = sorted(t for t in found if t.startswith(cfg.homeassistant.prefix + "/") and t.endswith("/config"))
    alerts = sorted(set(found) - set(states) - set(configs) - {status})
    topics = configs + states + alerts + ([status] if status in found else [])
    summary = (f"node {cfg.node!r} on {broker}: {len(configs)} Home Assistant discovery config(s), "
               f"{len(states)} retained stream state(s) and surprise(s), {len(alerts)} retained alert(s), "
               f"status {'set' if status in found else 'not set'}")
    if args.dry_run:
        print(f"would remove {summary}")
        for t in topics:
            print(f"  {t}")
        return 0
    done = session.clear(topics) if topics else 0
    if done != len(topics):
        return fail("decommission", f"the broker confirmed {done} of {len(topics)} removals; run it again")
    print(f"removed {summary}", file=sys.stdout)
    return 0
