"""The daemon: MQTT in, one Detector per pipeline, alerts / status / stats out.

Threads: paho's network thread decodes and enqueues (``Inbox``, bounded); the main thread drains
whatever has accumulated (at low load a batch is one reading, processed at once; under load the
main thread wakes once per batch: when ``limits.max_batch`` readings wait or after
``limits.batch_wait_ms``), steps it in one ``Detector.process`` call per pipeline, publishes
alerts, and does the timed work (stats, snapshots, watchdog). Under a flood (the last batch already
held ``FLOOD_BATCH`` readings) the wait stretches to ``FLOOD_WAIT_FACTOR`` x ``batch_wait_ms``: the
main thread's CPU per reading falls with fewer, larger batches (measured on 2 cores: 4.8 instead of
8 us a message at 20 ms instead of 5 ms), and that CPU is taken from the network thread through the
GIL. It adds up to that much latency, but only then: a burst that merely crosses ``BUSY_RATE``
waits ``batch_wait_ms`` at most (a 20 ms wait there measured p99 19 ms at 2,000 readings/s).

Shutdown (SIGTERM / SIGINT): finish the batch -> stop taking messages (those arriving now stay
unacknowledged with the broker) -> process what is already in the inbox -> snapshot -> publish
``offline`` (retained) and wait for outstanding alerts -> disconnect -> exit 0. When the final
snapshot cannot be written the cause is logged at ERROR and the exit status is 1 (systemd shows the
unit failed: the state learned since the last good snapshot is lost). SIGHUP does not stop the
daemon (it says that the config is read only at start), unless it was started from a terminal.

A periodic snapshot that fails (a full or read-only disk) is counted, logged once per problem, and
retried every interval until it works; the last good snapshot stays in place. A state directory
deleted while running is made again, a snapshot file changed by something else is written again.

Startup refuses (``serve`` exits 2, one line naming ``state.dir``) a snapshot path that exists but
is not a regular file, or a state directory where no file can be created: otherwise the first
sign would be a failed snapshot minutes later, or a silent "no snapshot" after every restart.

Evictions (more live streams than ``max_streams``: a topic flood, or a typo in a publisher) are
logged at WARNING with the evicted stream ids, at most once per ``log.rejects_every_s`` per
pipeline (the count of the ones in between follows in the next line), besides the counter.

What survives a crash (SIGKILL, power loss): the last snapshot (at most ``snapshot_interval_s``
old) and every reading the broker had not yet delivered (persistent session, QoS 1). Readings
that were delivered and acknowledged after the last snapshot are not replayed: their alerts were
already published, but their effect on the per-stream state is lost, so those streams resume
from the snapshot's state (a short gap in their history; ``max_gap_s`` resets the hidden state if
the gap is long). Readings still in the inbox at the kill (normally a few milliseconds' worth)
are lost.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np

from . import sdnotify
from .backends import create_backend
from .bundle import load_bundle
from .decode import Decoder
from .detector import Batch, Detector
from .fileio import target_problem
from .logs import Throttle
from .timestamps import duration_text
from .settings import resolve as resolve_settings

log = logging.getLogger("edgernn.daemon")


BUSY_RATE = 4000.0  # readings/s above which the main loop lets batches fill (measured: 2,000/s stays immediate)
FLOOD_BATCH = 64  # a drained batch this large: a flood (2,000/s fills it only after a 30 ms stall)
FLOOD_WAIT_FACTOR = 4.0  # under a flood, let batches fill for up to this x batch_wait_ms


def batch_wait(busy: bool, last_batch: int, max_wait: float) -> float | None:
    """How long the main loop lets the next batch fill (seconds), or None: take the first reading."""
    if not busy or max_wait <= 0:
        return None
    return max_wait * FLOOD_WAIT_FACTOR if last_batch >= FLOOD_BATCH else max_wait


class Inbox:
    """Bounded hand-over from the network thread to the main thread, one list per pipeline.

    ``put`` appends a message's readings (all or nothing); ``drain`` takes everything at once.
    When full: ``block`` waits for space (back-pressure: paho stops reading the socket, the broker
    queues), ``drop_newest`` drops the incoming message, ``drop_oldest`` drops the oldest readings.
    """

    def __init__(self, n_pipelines: int, size: int, when_full: str = "block"):
        self.size, self.when_full = size, when_full
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._ready = threading.Event()
        self._want = 1  # put() wakes the consumer when the count reaches this (see wait)
        self._bufs: list[list] = [[] for _ in range(n_pipelines)]
        self._count = 0
        self.closed = False
        self.drops = 0  # readings dropped because the inbox was full
        self.high_water = 0

    def put(self, pipe: int, items: list) -> bool:
        """False only when the inbox closed while waiting (the message should not be acknowledged)."""
        n = len(items)
        with self._lock:
            if self.closed:
                return False
            if self._count + n > self.size:
                if n > self.size or self.when_full == "drop_newest":
                    self.drops += n
                    return True
                if self.when_full == "drop_oldest":
                    need = self._count + n - self.size
                    for buf in self._bufs:
                        k = min(need, len(buf))
                        del buf[:k]
                        need -= k
                        self._count -= k
                        self.drops += k
                        if need <= 0:
                            break
                else:
                    while self._count + n > self.size and not self.closed:
                        self._space.wait(0.05)
                    if self.closed:
                        return False
            buf = self._bufs[pipe]
            if n == 1:
                buf.append(items[0])
            else:
                buf.extend(items)
            before = self._count
            self._count = count = before + n
            if count > self.high_water:
                self.high_water = count
        want = self._want
        if before < want <= count:  # crossed the consumer's threshold: wake it (once)
            self._ready.set()
        return True

    def wait(self, timeout: float, want: int = 1) -> None:
        """Return when at least ``want`` readings are waiting, on :meth:`wake`, or after ``timeout``.

        ``want`` 1: as soon as anything arrives. Larger (under load): one wake-up per batch instead
        of one per poll; every wake-up of this thread takes the GIL from the network thread.
        """
        self._want = want
        if self._count >= want:
            self._ready.clear()
            return
        if self._ready.wait(timeout):
            self._ready.clear()

    def wake(self) -> None:
        self._ready.set()

    def drain(self) -> list[list]:
        with self._lock:
            bufs = self._bufs
            self._bufs = [[] for _ in bufs]
            self._count = 0
            self._space.notify_all()
        return bufs

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._space.notify_all()

    def __len__(self) -> int:
        return self._count


@dataclass
class Pipeline:
    cfg: object
    bundle: object
    detector: Detector
    decoder: Decoder
    snapshot_path: Path
    rejects: Counter = field(default_factory=Counter)  # decode rejects (network thread)
    processed: int = 0  # readings handed to the detector
    model_info: dict = field(default_factory=dict)


def check_snapshot_path(path: Path) -> str | None:
    """Why snapshots cannot be written to ``path`` (None: they can). Creates a probe file and
    removes it: permission bits alone do not tell (root, read-only mounts)."""
    why = target_problem(path, replaced=True)
    if why in ("is a directory", "is not a regular file"):
        return f"snapshot path {path} {why}; remove it or choose another state.dir"
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.probe."):
            pass
    except OSError as exc:
        return f"cannot write snapshots in {path.parent}: {exc.strerror or exc}"
    return None


class PipelineError(ValueError):
    """A pipeline cannot be built; ``key`` is the config key at fault (model, backend, payload, max_streams)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def build_pipeline(cfg, pcfg, limits) -> Pipeline:
    """Load the bundle and backend of one pipeline. Raises PipelineError naming the key at fault."""
    from .backends import BackendUnavailable
    from .bundle import BundleError

    try:
        bundle = load_bundle(pcfg.model)
    except BundleError as exc:
        raise PipelineError("model", str(exc)) from None
    try:
        backend = create_backend(pcfg.backend, bundle)
    except (BackendUnavailable, ValueError) as exc:
        raise PipelineError("backend", str(exc)) from None
    try:  # schema defaults < the model's detector_defaults < the config's settings
        future = {"max_future_s": limits.max_future_s} if limits.max_future_s > 0 else {"max_future_s": 1e12}
        settings = resolve_settings(bundle, {**future, **pcfg.settings})  # limits.max_future_s: 0 = off
    except ValueError as exc:
        raise PipelineError("model", str(exc)) from None
    try:  # every stream's state is allocated up front
        detector = Detector(bundle, backend, settings)
    except MemoryError:
        raise PipelineError("max_streams", f"not enough memory for the state of {settings.max_streams} streams: "
                            "lower max_streams (or limits.max_streams)") from None
    try:
        decoder = Decoder(pcfg, bundle.features, limits)
    except ValueError as exc:
        raise PipelineError("payload", str(exc)) from None
    return Pipeline(cfg=pcfg, bundle=bundle, detector=detector, decoder=decoder,
                    snapshot_path=cfg.state_dir / f"{pcfg.name}.npz",
                    model_info={"name": bundle.name, "version": bundle.version, "sha256": bundle.sha256,
                                "backend": pcfg.backend})


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


class Daemon:
    def __init__(self, config, *, pipelines: list[Pipeline] | None = None, install_signals: bool = True,
                 on_event=None):
        from .mqtt import MqttClient  # paho only when a daemon is built

        self.cfg = config
        self.pipes = pipelines if pipelines is not None else [
            build_pipeline(config, p, config.limits) for p in config.pipelines]
        self.install_signals = install_signals
        self.on_event = on_event  # optional callback(pipeline_name, event) for embedding (demo)
        lim = config.limits
        self.inbox = Inbox(len(self.pipes), lim.inbox_size, lim.when_full)
        self.mqtt = MqttClient(config.mqtt, status_topic=config.topic("status"))
        for i, p in enumerate(self.pipes):
            self.mqtt.subscribe(p.cfg.subscribe, p.cfg.qos, self._handler(i, p), raw_topic=True)
        self._stop = threading.Event()
        self._tty, self._hups = False, 0  # SIGHUP: see _hangup
        self.chunk = max(1, min(lim.max_batch, min(p.cfg.max_streams for p in self.pipes)))
        # counters of the main thread
        self.started = time.time()
        self.processed = 0
        self.alerts: Counter[str] = Counter()
        self.process_errors = 0
        self.snapshot_info: dict = {"ts": None, "readings": 0, "streams": 0, "errors": 0}
        self._snap_processed = -1
        self._snap_written: dict[str, tuple] = {}  # pipeline -> (inode, size, mtime) of the file it wrote last
        self._snap_failing: dict[str, tuple[str, int]] = {}  # pipeline -> (why, failed attempts) while failing
        self._iv_readings = 0
        self._iv_batches: list[int] = []
        self._iv_step: list[float] = []
        every = config.log.rejects_every_s  # one line per pipeline and reason per interval, with how many
        self._rejects = Throttle(every)  # decode rejects (paho's thread)
        self._refused = Throttle(every)  # readings the detector refused (the main thread's)
        self._drops, self._drops_seen = Throttle(every), 0  # a full inbox: inbox.drops already counted in
        self._evictions = Throttle(every)
        self._status_shown = ""  # the last STATUS= line sent to systemd
        self.observers = self._integrations()  # retained state, Home Assistant, Prometheus

    def _integrations(self) -> list:
        """Observers told of every batch and event (see homeassistant.py, metrics.py). Raises
        metrics.MetricsUnavailable when the metrics section cannot be served."""
        from .homeassistant import StatePublisher

        out = [StatePublisher(self.cfg, self.mqtt, [p.cfg.name for p in self.pipes])]
        if getattr(self.cfg, "metrics", None) is not None:
            from .metrics import Metrics

            out.append(Metrics(self))
        return out

    def _notify(self, hook: str, *args) -> None:
        """Call ``hook`` (on_start, on_batch, on_event, on_stats, close) of every observer that has it."""
        for obs in self.observers:
            fn = getattr(obs, hook, None)
            if fn is None:
                continue
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - an integration's bug must not stop the daemon
                self.process_errors += 1
                if self.process_errors <= 3:
                    log.exception("%s.%s failed", type(obs).__name__, hook)

    def _drain_evictions(self, p: Pipeline) -> list:
        """Stream ids evicted since the last call (StateStore.evicted_ids, emptied here)."""
        state = p.detector.state
        evicted = getattr(state, "evicted_ids", None)
        if not evicted:
            return []
        state.evicted_ids = []
        return evicted

    # -- network thread ----------------------------------------------------------------------
    def _handler(self, index: int, pipe: Pipeline):
        decode_into, put, rejects = pipe.decoder.decode_into, self.inbox.put, pipe.rejects
        clock = time.time

        def handle(topic: str | bytes, payload: bytes) -> bool:  # topic: paho's raw bytes when it has them
            out: list = []
            reason = decode_into(topic, payload, clock(), out)
            if reason is not None:
                rejects[reason] += 1
                self._log_reject(pipe, reason, topic)
                return True
            return put(index, out)

        return handle

    def _log_reject(self, pipe: Pipeline, reason: str, topic: str | bytes) -> None:
        """Rate-limited: one line per pipeline and reason per ``log.rejects_every_s``, with the
        detail of the decode that rejected it (the message is not decoded again)."""
        n = self._rejects.due(f"{pipe.cfg.name}:{reason}")
        if n:
            if topic.__class__ is not str:
                topic = bytes(topic).decode("utf-8", "replace")
            text = getattr(pipe.decoder, "reject_detail", "")
            log.warning("pipeline %s: rejected %d message(s) (%s), e.g. on %s: %s", pipe.cfg.name, n, reason,
                        topic[:80], text)

    def _log_refused(self, p: Pipeline, streams: list, ts: np.ndarray, res) -> None:
        """Readings the detector refused, logged like decode rejects (one line per pipeline and reason
        per ``log.rejects_every_s``, with how many), naming a stream: out_of_order (behind the
        stream's clock: a sensor's clock set back keeps its stream out until it catches up), future,
        state_reset. Duplicates (QoS 1 redeliveries after a reconnect) are only counted."""
        for i, reason in enumerate(res.reject_reason):
            if reason is None or reason == "duplicate":
                continue
            n = self._refused.due(f"{p.cfg.name}:{reason}")
            if not n:
                continue
            detail, state = "", p.detector.state
            if reason == "out_of_order" and streams[i] in state.ids:
                clock = float(state.num[state.ids[streams[i]], state.layout.last_ts])
                detail = (f": {duration_text(clock - float(ts[i]))} behind the stream's last reading ({clock:.3f}; a clock set "
                          "back? its readings are taken again once they pass it)")
            log.warning("pipeline %s: rejected %d reading(s) (%s), e.g. stream %s at ts %.3f%s", p.cfg.name, n,
                        reason, streams[i][:80], float(ts[i]), detail)

    def _log_drops(self) -> None:
        """Readings dropped by a full inbox (``limits.when_full`` drop_*): one WARNING line per
        ``log.rejects_every_s`` with how many since the last line (held ones once the interval ends)."""
        drops = self.inbox.drops
        n = self._drops.due(count=drops - self._drops_seen)
        self._drops_seen = drops
        if n:
            log.warning("inbox full (limits.inbox_size %d, when_full %s): dropped %d reading(s), %d since start",
                        self.inbox.size, self.inbox.when_full, n, drops)

    def _log_evictions(self, pipe: Pipeline, evicted: list) -> None:
        """Log evicted stream ids at most once per ``log.rejects_every_s`` (the count in between follows)."""
        if not evicted:
            return
        name = pipe.cfg.name
        n = self._evictions.due(name, len(evicted))
        if n:
            shown = ", ".join(evicted[-5:])
            log.warning("pipeline %s: evicted %d stream(s) and their learned state (max_streams %d reached), "
                        "latest: %s", name, n, pipe.detector.state.capacity, shown)

    # -- main thread ---------------------------------------------------------------------------
    def request_stop(self, *_args) -> None:
        """Stop, asked from another thread (an embedding program, a test): the main loop wakes at once."""
        self._stop.set()
        self.inbox.wake()

    def _terminate(self, *_args) -> None:
        """SIGTERM / SIGINT. A handler runs on the main thread between two of its steps, possibly while
        that thread holds the inbox's wake-up lock (inside Inbox.wait): waking the inbox from here
        could wait on that lock forever. So only the stop flag is set (no lock the main thread ever
        holds); the main loop sees it within its wait of at most 1 s."""
        self._stop.set()

    def _hangup(self, *_args) -> None:
        """SIGHUP. From a terminal that closed (the daemon was started from one): stop as on
        SIGTERM. Otherwise (``kill -HUP``, a reload) carry on, said by the main loop within its 1 s
        wait: the config is read only at start. (The default action would kill the daemon without a
        snapshot.) Like _terminate, it takes no lock."""
        if self._tty:
            self._terminate()
        else:
            self._hups += 1

    def check_state(self) -> list[tuple[Pipeline, str]]:
        """Pipelines whose snapshots cannot be written, with why (empty: all fine)."""
        return [(p, why) for p in self.pipes if (why := check_snapshot_path(p.snapshot_path)) is not None]

    def _restore(self) -> None:
        self.cfg.state_dir.mkdir(parents=True, exist_ok=True)
        for p in self.pipes:
            if not self.cfg.state.restore:
                continue
            try:
                ok, msg = p.detector.state.restore(p.snapshot_path, p.bundle.sha256)
            except Exception as exc:  # noqa: BLE001 - a bad snapshot must not stop the daemon
                ok, msg = False, f"snapshot {p.snapshot_path} not restored ({type(exc).__name__}: {exc}); starting fresh"
            if ok:  # how far the streams were rolled back (readings since then were not replayed)
                msg += f" (written {duration_text(time.time() - p.snapshot_path.stat().st_mtime)} ago)"
            (log.info if ok or "no snapshot" in msg else log.warning)("pipeline %s: %s", p.cfg.name, msg)
            if ok:
                self._clamp_clocks(p)

    def _clamp_clocks(self, p: Pipeline) -> None:
        """Restored streams whose clock is beyond now + clock_skew_s (the snapshot was written while
        the wall clock was ahead, set back since) take that clock, as a live reading would: else
        every reading until the clock catches up (a day, a year) is out_of_order."""
        state = p.detector.state
        rows = np.fromiter(state.ids.values(), np.intp, len(state.ids))
        col = state.layout.last_ts
        cap = time.time() + p.detector.settings.clock_skew_s
        ahead = rows[state.num[rows, col] > cap]
        if len(ahead):
            log.warning("pipeline %s: %d restored stream(s) had readings up to %s ahead of the clock (was it set "
                        "back?): their clock is now + clock_skew_s, so that current readings are not out_of_order",
                        p.cfg.name, len(ahead), duration_text(float(state.num[ahead, col].max()) - cap))
            state.num[ahead, col] = cap

    def snapshot(self, force: bool = False) -> bool:
        """Write every pipeline's snapshot; False when one failed. Each failure is counted (stats
        ``snapshot.errors``) and logged at ERROR once per problem: again only when its reason
        changes, and at the final snapshot; the recovery is logged too. A failed snapshot is
        retried at the next interval even when nothing new was processed; ``ts`` / ``readings`` /
        ``streams`` stay those of the last good one (the file it wrote is kept: atomic writes).
        Also rewritten when idle: a snapshot file changed or removed by something else since we
        wrote it, and a state directory deleted while running (made again)."""
        if not force and self.processed == self._snap_processed and all(map(self._snap_intact, self.pipes)):
            return True
        streams, ok = 0, True
        for p in self.pipes:
            name, path = p.cfg.name, p.snapshot_path
            try:
                if not path.parent.is_dir():
                    log.warning("pipeline %s: state directory %s is gone (deleted while running?): making it again",
                                name, path.parent)
                    path.parent.mkdir(parents=True, exist_ok=True)
                streams += p.detector.state.snapshot(path, p.bundle.sha256)
                st = path.stat()
                self._snap_written[name] = (st.st_ino, st.st_size, st.st_mtime_ns)
            except Exception as exc:  # noqa: BLE001 - OSError mostly; never stop the loop for it
                ok = False
                self.snapshot_info["errors"] += 1
                why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                if force or self._snap_failing.get(name, (None,))[0] != why:
                    every = self.cfg.state.snapshot_interval_s
                    log.error("pipeline %s: snapshot to %s failed: %s%s", name, path, why, "" if force else
                              f"; the last good snapshot is kept, retrying every {every:g} s (logged again if the "
                              "reason changes)")
                self._snap_failing[name] = (why, self._snap_failing.get(name, (why, 0))[1] + 1)
            else:
                if name in self._snap_failing:
                    log.warning("pipeline %s: snapshot to %s written again, after %d failed attempt(s)", name, path,
                                self._snap_failing.pop(name)[1])
        if ok:
            self._snap_processed = self.processed
            self.snapshot_info.update(ts=time.time(), readings=self.processed, streams=streams)
        return ok

    def _snap_intact(self, p: Pipeline) -> bool:
        """True when the snapshot file is still the one this daemon wrote last (one stat); when it is
        not (replaced, changed or removed by something else) says so, once."""
        written = self._snap_written.pop(p.cfg.name, None)
        if written is None:
            return False
        try:
            st = p.snapshot_path.stat()
            now = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            now = None
        if now == written:
            self._snap_written[p.cfg.name] = written
            return True
        log.warning("pipeline %s: snapshot %s was %s since it was written: writing it again", p.cfg.name,
                    p.snapshot_path, "removed" if now is None else "replaced or changed by something else")
        return False

    def process(self, index: int, items: list) -> None:
        p = self.pipes[index]
        det, F = p.detector, p.detector.F
        for start in range(0, len(items), self.chunk):
            part = items[start:start + self.chunk] if len(items) > self.chunk else items
            n = len(part)
            streams, ts, values = zip(*part)  # one pass in C; values: a tuple of F floats per reading
            ts = np.fromiter(ts, np.float64, n)
            x = np.fromiter(chain.from_iterable(values), np.float64, n * F).reshape(n, F)
            streams = list(streams)
            t0, accepted = time.perf_counter(), getattr(det, "accepted", None)  # taken so far (None: a stand-in)
            try:
                res = det.process(Batch(streams, ts, x), now=time.time())  # the wall clock: future timestamps
            except Exception:  # noqa: BLE001 - a bug on one batch must not stop the daemon
                self.process_errors += 1
                if self.process_errors <= 3:
                    log.exception("pipeline %s: processing a batch of %d failed", p.cfg.name, n)
                continue
            seconds = time.perf_counter() - t0
            if accepted is not None and det.accepted - accepted != n:  # the detector refused some
                self._log_refused(p, streams, ts, res)
            self._iv_step.append(seconds)
            evicted = self._drain_evictions(p)  # drained once here: every user gets this list
            self._notify("on_batch", p, streams, ts, evicted, seconds, res)
            self._log_evictions(p, evicted)
            self._iv_batches.append(n)
            p.processed += n
            self.processed += n
            self._iv_readings += n
            for ev in res.events:
                self._publish_event(p, ev)

    def _publish_event(self, p: Pipeline, ev) -> None:
        self.alerts[ev.kind] += 1
        d = ev.to_dict()
        d["pipeline"] = p.cfg.name
        d["node"] = self.cfg.node
        d["model"] = p.model_info
        d["emitted"] = time.time()  # when the daemon sent it (ts is the reading's own timestamp)
        topic = self.cfg.topic("alerts", stream=ev.stream, pipeline=p.cfg.name)
        t = self.cfg.topics
        if not self.mqtt.publish(topic, json.dumps(_finite(d)), qos=t.alert_qos, retain=t.alert_retain):
            log.warning("alert %s %s could not be queued for publishing (publish queue full?)", ev.kind, ev.alert_id)
        self._notify("on_event", p, ev)
        if self.on_event is not None:
            self.on_event(p.cfg.name, ev)

    def stats(self, interval: float) -> dict:
        step = np.array(self._iv_step) * 1e3 if self._iv_step else None
        batches = self._iv_batches
        rejects: Counter[str] = Counter()
        pipes = {}
        for p in self.pipes:
            dec, det = dict(p.rejects), p.detector.stats()
            rejects.update(dec)
            rejects.update(det.get("rejects", {}))
            pipes[p.cfg.name] = {"processed": p.processed, "accepted": det.get("accepted"), "streams": len(p.detector.state),
                                 "evictions": p.detector.state.evictions, "rejects": {**dec, **det.get("rejects", {})},
                                 "model": p.model_info}
        out = {
            "node": self.cfg.node, "ts": time.time(), "uptime_s": round(time.time() - self.started, 3),
            "interval_s": round(interval, 3),
            "readings_per_s": round(self._iv_readings / interval, 2) if interval > 0 else None,
            "readings_total": self.processed,
            "rejects": dict(rejects), "rejects_total": sum(rejects.values()),
            "streams": sum(len(p.detector.state) for p in self.pipes),
            "evictions": sum(p.detector.state.evictions for p in self.pipes),
            "inbox": {"depth": len(self.inbox), "size": self.inbox.size, "high_water": self.inbox.high_water,
                      "drops": self.inbox.drops, "when_full": self.inbox.when_full},
            "batches": {"count": len(batches), "mean": round(float(np.mean(batches)), 2) if batches else 0,
                        "max": max(batches) if batches else 0},
            "step_ms": {"p50": round(float(np.percentile(step, 50)), 4), "p99": round(float(np.percentile(step, 99)), 4),
                        "max": round(float(step.max()), 4)} if step is not None else None,
            "alerts": dict(self.alerts), "process_errors": self.process_errors,
            "mqtt": self.mqtt.stats(), "snapshot": dict(self.snapshot_info), "pipelines": pipes,
        }
        self._iv_readings = 0
        self._iv_batches = []
        self._iv_step = []
        return out

    def run(self) -> int:
        cfg = self.cfg
        if self.install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._terminate)
            signal.signal(signal.SIGINT, self._terminate)
            self._tty = sys.stdin.isatty() or sys.stderr.isatty()  # now: a hung-up terminal is no tty
            signal.signal(signal.SIGHUP, self._hangup)
        for line in cfg.summary():
            log.info("%s", line)
        self._restore()
        self._notify("on_start", self.pipes)
        # Everything loaded so far (models, runtimes, state) lives for the whole run: keep it out of
        # the cyclic collector's full passes, which otherwise stall the loop for tens of ms.
        gc.collect()
        gc.freeze()
        self.mqtt.start()
        sdnotify.notify("READY=1")
        self._update_status()
        wd = sdnotify.watchdog_interval()
        now = time.monotonic()
        next_wd = now if wd else math.inf
        next_status = now + 1.0
        stats_iv, snap_iv = cfg.stats.interval_s, cfg.state.snapshot_interval_s
        last_stats = now
        next_stats = now + stats_iv if stats_iv > 0 else math.inf
        next_snap = now + snap_iv if snap_iv > 0 else math.inf
        inbox = self.inbox
        max_wait = cfg.limits.batch_wait_ms / 1e3
        busy = False
        drained = 0
        rate, last_drain = 0.0, time.monotonic()  # smoothed arrival rate, readings/s
        while not self._stop.is_set():
            # Under load (busy, see below) one wake-up per batch: when a full batch is waiting or
            # after batch_wait_ms (x FLOOD_WAIT_FACTOR under a flood), whichever comes first.
            # Otherwise at the first reading.
            timeout = max(0.0, min(next_wd, next_stats, next_snap, time.monotonic() + 1.0) - time.monotonic())
            fill = batch_wait(busy, drained, max_wait)
            if fill is not None:
                inbox.wait(min(timeout, fill), self.chunk)
            else:
                inbox.wait(timeout)
            bufs = inbox.drain()
            drained = 0
            for i, items in enumerate(bufs):
                if items:
                    drained += len(items)
                    self.process(i, items)
            # Under load (arrivals faster than BUSY_RATE readings/s, smoothed), let the next batch
            # fill for up to batch_wait_ms; below that a reading is processed the moment it arrives.
            t = time.monotonic()
            if drained:
                rate += 0.2 * (drained / max(t - last_drain, 1e-4) - rate)
                last_drain = t
            busy = rate > BUSY_RATE or len(inbox) >= 16
            if inbox.drops != self._drops_seen or self._drops.held():
                self._log_drops()
            if self._hups:
                log.warning("SIGHUP received (%d): the config is read only at start, restart the daemon to apply a "
                            "new one (systemctl restart edgernn); still running", self._hups)
                self._hups = 0
            now = time.monotonic()
            if now >= next_wd:
                sdnotify.notify("WATCHDOG=1")
                next_wd = now + wd
            if now >= next_status:
                self._update_status()
                next_status = now + 1.0
            if now >= next_snap:
                self.snapshot()
                next_snap = now + snap_iv
            if now >= next_stats:
                self.mqtt.publish(cfg.topic("stats"), json.dumps(_finite(self.stats(now - last_stats))), qos=0)
                last_stats, next_stats = now, now + stats_iv
                self._notify("on_stats")
        return self.shutdown()

    def _update_status(self) -> None:
        """The one-line ``systemctl status`` text: running, or why the broker cannot be reached
        (a TLS handshake failure, a refused login) while paho keeps retrying."""
        from .tls import broker_refusal

        cfg, problem = self.cfg, self.mqtt.last_error
        if problem is None and not self.mqtt.is_connected and cfg.mqtt.tls is not None:
            problem = broker_refusal()  # our certificate refused after the handshake (tls.py)
        text = f"broker trouble: {problem}" if problem else \
            f"running {len(self.pipes)} pipeline(s), broker {cfg.mqtt.host}:{cfg.mqtt.port}"
        if text != self._status_shown:
            sdnotify.notify(f"STATUS={text}")
            self._status_shown = text

    def shutdown(self) -> int:
        sdnotify.notify("STOPPING=1")
        log.info("stopping: finishing the inbox, writing a snapshot, going offline")
        self.inbox.close()  # producers waiting for space give up (their messages stay unacknowledged)
        self.mqtt.hold()  # from here on nothing is taken: the broker keeps it for the next start
        for i, items in enumerate(self.inbox.drain()):
            if items:
                self.process(i, items)
        saved = self.snapshot(force=True)
        if saved:
            log.info("snapshot: %d stream(s), %d reading(s) processed since start -> %s",
                     self.snapshot_info["streams"], self.processed, self.cfg.state_dir)
        else:
            log.error("final snapshot failed (see above): the state learned since the last good snapshot is "
                      "lost; exiting with status 1")
        self._notify("close")
        self.mqtt.stop()
        log.info("stopped")
        return 0 if saved else 1
