"""Prometheus ``/metrics`` for the daemon (opt-in: ``metrics: {host: 127.0.0.1, port: 9108}``).

Needs ``prometheus_client`` (``pip install 'edgernn[metrics]'``); its WSGI app is served in a
daemon thread, at most ``MAX_CLIENTS`` connections at once, each closed after ``CLIENT_TIMEOUT_S``
of silence. Two kinds of figures:

- observed by the main thread as they happen: batch sizes and step latency (histograms), alerts
  by pipeline, kind (raised / update / cleared) and reason (the look that fired);
- read from the daemon's own counters at scrape time (nothing added to the hot path): readings
  accepted, rejects by reason (decode and detector), inbox drops, evictions, live streams, MQTT
  connection state, reconnects and refused publishes, snapshot age, processing errors.

A scrape (``curl -s 127.0.0.1:9108/metrics``)::

    edgernn_readings_accepted_total{pipeline="plant"} 12840.0
    edgernn_rejects_total{pipeline="plant",reason="bad_json"} 3.0
    edgernn_alerts_total{kind="raised",pipeline="plant",reason="instant"} 2.0
    edgernn_mqtt_connected 1.0
    edgernn_step_seconds_bucket{le="0.0005",pipeline="plant"} 9120.0
"""

from __future__ import annotations

import errno
import logging
import math
import socket
import sys
import threading
import time
from collections import Counter, deque
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from .logs import Throttle

log = logging.getLogger("edgernn.metrics")
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)  # readings
STEP_BUCKETS = (50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1.0)  # s
MAX_CLIENTS = 16  # /metrics connections served at once; more are closed at once, counted and logged
CLIENT_TIMEOUT_S = 10.0  # a connection silent this long (any one read or write) is closed


class MetricsUnavailable(RuntimeError):
    """The metrics section is set but cannot be served; ``key`` is the config key at fault."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def _import():
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise MetricsUnavailable("metrics", "needs the prometheus_client package: pip install 'edgernn[metrics]' "
                                 "(or remove the metrics section)") from None
    return prometheus_client


class Metrics:
    """Registry + HTTP server of one daemon. ``on_batch`` / ``on_event`` from the main thread."""

    def __init__(self, daemon, *, serve: bool = True):
        pc = _import()
        self.daemon = daemon
        self.registry = pc.CollectorRegistry()
        self._steps = _StepHistograms()
        self.registry.register(self._steps)
        self._alerts = pc.Counter("edgernn_alerts", "Alert events published, by kind and by the look that fired",
                                  ["pipeline", "kind", "reason"], registry=self.registry)
        self.registry.register(_DaemonCollector(daemon))
        self.server = None
        if serve:
            self.start(daemon.cfg.metrics.host, daemon.cfg.metrics.port)

    def start(self, host: str, port: int) -> None:
        try:
            self.server = _serve(host, port, self.registry)
        except (OSError, UnicodeError) as exc:  # UnicodeError: a host name no DNS label can hold
            bad_host = isinstance(exc, (socket.gaierror, UnicodeError)) or \
                exc.errno in (errno.EADDRNOTAVAIL, errno.EINVAL)  # no such address here
            raise MetricsUnavailable("metrics.host" if bad_host else "metrics.port",
                                     f"cannot serve /metrics on {host}:{port}: "
                                     f"{getattr(exc, 'strerror', None) or exc}") from None
        log.info("Prometheus metrics on http://%s:%d/metrics", host, port)

    def on_batch(self, pipe, streams: list, ts, evicted: list, seconds: float, res=None) -> None:  # noqa: ARG002
        self._steps.add(pipe.cfg.name, len(streams), seconds)

    def on_event(self, pipe, ev) -> None:
        self._alerts.labels(pipe.cfg.name, ev.kind, ev.reason or "none").inc()

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def _serve(host: str, port: int, registry):
    """prometheus_client's WSGI app on a server of our own (its ``start_http_server`` gives every
    connection a thread with no timeout: 250 idle connections took all of a 256-descriptor daemon's
    files, and snapshots and the broker reconnect failed with "Too many open files"). Serves in a
    daemon thread; returns the server."""
    from prometheus_client import make_wsgi_app

    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    server_class = type("MetricsServer", (_Server,), {"address_family": family})
    server = make_server(sockaddr[0], port, make_wsgi_app(registry), server_class, _Handler)
    threading.Thread(target=server.serve_forever, name="edgernn-metrics", daemon=True).start()
    return server


class _Handler(WSGIRequestHandler):
    timeout = CLIENT_TIMEOUT_S  # StreamRequestHandler: on every read and write of the connection

    def log_message(self, format, *args) -> None:  # noqa: A002 - no line per request
        pass


class _Server(ThreadingMixIn, WSGIServer):
    """A thread per connection, at most ``MAX_CLIENTS`` at once: a connection beyond them is
    closed at once (counted, logged once a minute at most); a client's errors are one DEBUG line."""

    daemon_threads = True  # a hanging client never delays the daemon's exit
    refused = 0

    def server_activate(self) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self._refused_log = Throttle(60.0)
        super().server_activate()

    def verify_request(self, request, client_address) -> bool:
        if self._slots.acquire(blocking=False):
            return True
        self.refused += 1
        if self._refused_log.due():
            log.warning("/metrics: %d connection(s) open at once, closed one from %s (%d since start): idle or "
                        "slow clients are closed after %g s", MAX_CLIENTS, client_address[0], self.refused,
                        CLIENT_TIMEOUT_S)
        return False

    def process_request(self, request, client_address) -> None:
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        # socketserver prints a traceback to stderr; a client that timed out or went away is no bug
        log.debug("/metrics: connection from %s ended: %r", client_address[0], sys.exc_info()[1])


class _StepHistograms:
    """Batch size and step latency histograms per pipeline, observed for a tenth of the cost of
    prometheus_client's ``Histogram.observe`` (two of those cost ~5 us per batch here, as much as
    a batch of one's whole detector step): the main thread appends (pipeline, n, seconds) to a
    deque; a scrape (or, unscraped, every ``FOLD_EVERY`` batches) folds them into bucket counts."""

    FOLD_EVERY = 10_000

    def __init__(self):
        import numpy as np

        self._np = np
        self._todo: deque = deque()
        self._lock = threading.Lock()  # one fold at a time (scrape thread vs the main thread)
        self._counts: dict = {}  # pipeline -> (int64[len(BATCH_BUCKETS) + 1], int64[len(STEP_BUCKETS) + 1])
        self._sums: dict = {}  # pipeline -> [readings, seconds]

    def add(self, pipeline: str, n: int, seconds: float) -> None:
        self._todo.append((pipeline, n, seconds))
        if len(self._todo) >= self.FOLD_EVERY:
            self._fold()

    def _fold(self) -> None:
        np, todo = self._np, self._todo
        with self._lock:
            taken = [todo.popleft() for _ in range(len(todo))]  # popleft: nothing appended meanwhile is lost
            for name in {t[0] for t in taken}:
                n = np.array([t[1] for t in taken if t[0] == name], np.float64)  # [k]
                sec = np.array([t[2] for t in taken if t[0] == name], np.float64)  # [k]
                counts = self._counts.setdefault(name, (np.zeros(len(BATCH_BUCKETS) + 1, np.int64),
                                                        np.zeros(len(STEP_BUCKETS) + 1, np.int64)))
                # bucket i holds le=bounds[i] (the last: +Inf); side="left": a value equal to a bound is in it
                counts[0][:] += np.bincount(np.searchsorted(BATCH_BUCKETS, n), minlength=len(counts[0]))
                counts[1][:] += np.bincount(np.searchsorted(STEP_BUCKETS, sec), minlength=len(counts[1]))
                sums = self._sums.setdefault(name, [0.0, 0.0])
                sums[0] += float(n.sum())
                sums[1] += float(sec.sum())

    def collect(self):
        from prometheus_client.core import HistogramMetricFamily

        self._fold()
        batch = HistogramMetricFamily("edgernn_batch_readings", "Readings per detector step (one batched call)",
                                      labels=["pipeline"])
        step = HistogramMetricFamily("edgernn_step_seconds", "Wall time of one detector step over a batch",
                                     labels=["pipeline"])
        with self._lock:
            for name, (cb, cs) in self._counts.items():
                batch.add_metric([name], _cumulative(BATCH_BUCKETS, cb), self._sums[name][0])
                step.add_metric([name], _cumulative(STEP_BUCKETS, cs), self._sums[name][1])
        yield batch
        yield step


def _cumulative(bounds, counts) -> list:
    """[(le, cumulative count)] with le as Prometheus writes it, ending at +Inf."""
    from prometheus_client.utils import floatToGoString

    les = [floatToGoString(b) for b in bounds] + ["+Inf"]
    return list(zip(les, counts.cumsum().tolist()))


class _DaemonCollector:
    """Reads the daemon's counters when Prometheus scrapes (HTTP thread; plain reads of ints and
    dict copies, atomic under the GIL)."""

    def __init__(self, daemon):
        self.d = daemon

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        d = self.d
        accepted = CounterMetricFamily("edgernn_readings_accepted", "Readings the detector accepted and scored",
                                       labels=["pipeline"])
        rejects = CounterMetricFamily("edgernn_rejects", "Readings or messages rejected, by reason",
                                      labels=["pipeline", "reason"])
        evictions = CounterMetricFamily("edgernn_evictions", "Streams evicted (limits.max_streams, least recently "
                                        "seen first)", labels=["pipeline"])
        streams = GaugeMetricFamily("edgernn_streams", "Live streams (with per-stream state)", labels=["pipeline"])
        models = GaugeMetricFamily("edgernn_model_info", "The model bundle each pipeline runs (always 1)",
                                   labels=["pipeline", "model", "version", "backend", "sha256"])
        for p in d.pipes:
            name, det = p.cfg.name, p.detector.stats()
            accepted.add_metric([name], det.get("accepted") or 0)
            both = Counter(dict(p.rejects))  # decode rejects (network thread) + the detector's
            both.update(det.get("rejects", {}))
            for reason, n in both.items():
                rejects.add_metric([name, reason], n)
            evictions.add_metric([name], p.detector.state.evictions)
            streams.add_metric([name], len(p.detector.state))
            info = p.model_info
            models.add_metric([name, str(info.get("name")), str(info.get("version")), str(info.get("backend")),
                               str(info.get("sha256"))[:12]], 1)
        yield from (accepted, rejects, evictions, streams, models)
        yield from self._daemon_wide()

    def _daemon_wide(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from . import __version__

        d, m = self.d, self.d.mqtt
        build = GaugeMetricFamily("edgernn_build_info", "edgernn version and node (always 1)", labels=["version", "node"])
        build.add_metric([__version__, d.cfg.node], 1)
        yield build
        yield CounterMetricFamily("edgernn_inbox_dropped", "Readings dropped because the inbox was full "
                                  "(limits.when_full)", value=d.inbox.drops)
        yield GaugeMetricFamily("edgernn_inbox_depth", "Readings waiting for the main thread", value=len(d.inbox))
        yield CounterMetricFamily("edgernn_process_errors", "Batches whose processing failed (a bug: see the log)",
                                  value=d.process_errors)
        yield GaugeMetricFamily("edgernn_mqtt_connected", "1 while connected to the MQTT broker",
                                value=1.0 if m.is_connected else 0.0)
        yield CounterMetricFamily("edgernn_mqtt_connects", "Successful connections to the broker (1 + reconnects)",
                                  value=m.connects)
        yield CounterMetricFamily("edgernn_mqtt_unmatched", "Messages no pipeline's filter matches (a subscription "
                                  "an older config left in the persistent session), dropped", value=m.unmatched)
        refused = CounterMetricFamily("edgernn_mqtt_publish_refused", "Publishes the MQTT client refused, by reason",
                                      labels=["reason"])
        for reason, n in dict(m.publish_refused).items():
            refused.add_metric([reason], n)
        yield refused
        yield CounterMetricFamily("edgernn_snapshot_errors", "State snapshots that could not be written (a full or "
                                  "read-only disk: see the log; the last good one is kept)",
                                  value=d.snapshot_info.get("errors", 0))
        ts = d.snapshot_info.get("ts")
        yield GaugeMetricFamily("edgernn_snapshot_age_seconds", "Seconds since the last state snapshot (NaN: none "
                                "yet)", value=time.time() - ts if ts else math.nan)
        yield GaugeMetricFamily("edgernn_uptime_seconds", "Seconds since the daemon started",
                                value=time.time() - d.started)
        waiting = sum(getattr(o, "waiting", 0) for o in d.observers)
        yield GaugeMetricFamily("edgernn_retained_waiting", "Retained state / discovery messages waiting for room "
                                "in the MQTT client's queue", value=waiting)
