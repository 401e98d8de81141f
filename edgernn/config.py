"""Daemon configuration: YAML (``yaml.safe_load`` semantics) -> frozen dataclasses.

Every error is one line ``FILE:LINE: key.path: message``; unknown keys are errors (a typo never
silently becomes a default). Secrets are never inline: the MQTT password comes from
``password_file``, ``password_env`` or a systemd credential (``$CREDENTIALS_DIRECTORY``), and no
repr, summary or error message contains it.

Minimal config (everything else has defaults, see ``deploy/edgernn.example.yaml``)::

    node: bench
    mqtt: {host: 127.0.0.1, port: 18830, client_id: edgernn-bench}
    state: {dir: /tmp/edgernn-state}
    pipelines:
      - name: plant
        subscribe: plant/+/+
        stream: "{1}/{2}"
        payload: {format: json, value: value, timestamp: ts}
        model: firmware_models/univariate
"""

from __future__ import annotations

import math
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CREDENTIAL = "mqtt-password"  # LoadCredential=mqtt-password:/etc/edgernn/mqtt-password
PAYLOAD_FORMATS = ("json", "number")
TIMESTAMP_UNITS = ("auto", "s", "ms", "us", "ns", "iso")
WHEN_FULL = ("block", "drop_newest", "drop_oldest")
PROTOCOLS = {"5": "5", "5.0": "5", "v5": "5", "3.1.1": "3.1.1", "311": "3.1.1", "v311": "3.1.1"}
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


class ConfigError(ValueError):
    """A config problem: one line, ``FILE:LINE: key.path: message``."""


# -- dataclasses ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TlsConfig:
    ca: str | None = None  # CA bundle that signed the broker's certificate (None: system CAs)
    cert: str | None = None  # client certificate (mutual TLS) ...
    key: str | None = None  # ... and its private key
    insecure: bool = False  # skip the broker hostname check (never in production)


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""
    protocol: str = "5"  # "5" or "3.1.1"
    keepalive: int = 30
    username: str | None = None
    password: str | None = field(default=None, repr=False, compare=False)
    password_source: str = ""  # where the password came from (safe to print)
    tls: TlsConfig | None = None
    qos: int = 1  # subscription QoS (1: the broker queues readings while the daemon restarts)
    session_expiry_s: int = 86400  # MQTT 5 persistent session lifetime after a disconnect
    clean_session: bool = False  # True: no persistent session (readings sent while down are lost)
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    publish_queue: int = 10000  # outgoing QoS 1 messages held while the broker is slow or away


@dataclass(frozen=True)
class TopicsConfig:
    prefix: str = "edgernn/{node}"
    alerts: str = "{prefix}/alerts/{stream}"
    status: str = "{prefix}/status"
    stats: str = "{prefix}/stats"
    alert_qos: int = 1
    alert_retain: bool = False


@dataclass(frozen=True)
class StateConfig:
    dir: str = ""  # "" -> $STATE_DIRECTORY (systemd) or ./edgernn-state
    snapshot_interval_s: float = 60.0  # 0: only on shutdown
    restore: bool = True


@dataclass(frozen=True)
class StatsConfig:
    interval_s: float = 10.0  # 0: no stats topic


@dataclass(frozen=True)
class LimitsConfig:
    max_streams: int = 10_000  # per pipeline; least recently seen stream evicted beyond
    inbox_size: int = 100_000  # readings waiting for the main thread
    when_full: str = "block"  # block (back-pressure to the broker) | drop_newest | drop_oldest
    max_payload_bytes: int = 65_536
    max_readings_per_message: int = 1_000
    max_batch: int = 4_096  # readings per Detector.process call
    batch_wait_ms: float = 5.0  # under load only: wait up to this long while a batch is still filling
    max_future_s: float = 30 * 86400.0  # timestamps further ahead of the clock are rejected (0: off)


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    rejects_every_s: float = 10.0  # at most one log line per reject reason per this many seconds


@dataclass(frozen=True)
class PayloadConfig:
    format: str = "json"  # json | number
    value: str | None = None  # field path of the single value (univariate models)
    values: tuple[tuple[str, str], ...] = ()  # (feature, field path) for multivariate models
    timestamp: str | None = None  # field path; None or absent -> time of receipt
    timestamp_unit: str = "auto"  # auto | s | ms | us | ns | iso
    readings: str | None = None  # field path of an array of readings inside an object


@dataclass(frozen=True)
class PipelineConfig:
    name: str
    subscribe: str
    model: str  # absolute path of the bundle directory
    stream: str = "{topic}"
    payload: PayloadConfig = field(default_factory=PayloadConfig)
    qos: int = 1
    backend: str = "numpy"
    threshold: float | None = None
    warmup: int | None = None
    settle: int | None = None
    max_gap_s: float | None = None
    adapt: float | None = None
    reference_rows: int = 0  # > 0: the reference look against each stream's first readings
    reference_window: float = 8.0
    reference_drift: float = 0.0  # > 0: the reference look allows each feature's drift at this multiple of its slope
    reference_peak: float = 0.0  # > 0: the reference look's peak gate (a change relaxed below this fraction has ended)
    seasonal: bool = True  # the seasonal (time-of-day) look, univariate models (DetectorSettings.seasonal)
    seasonal_trust: float = 0.5
    day_offset_s: float = 0.0  # seconds added to timestamps for the time of day / weekday (local time)
    alerts: tuple[tuple[str, Any], ...] = ()  # AlertSettings overrides
    max_streams: int = 10_000


@dataclass(frozen=True)
class Config:
    node: str
    mqtt: MqttConfig
    topics: TopicsConfig
    state: StateConfig
    stats: StatsConfig
    limits: LimitsConfig
    log: LogConfig
    pipelines: tuple[PipelineConfig, ...]
    source: str = ""
    lines: dict = field(default_factory=dict, repr=False, compare=False)

    def where(self, path: str) -> str:
        """``FILE:LINE`` of a key path (for errors found after loading, e.g. a bad bundle)."""
        return _where(self.source, self.lines, path)

    def topic(self, kind: str, **fields) -> str:
        prefix = self.topics.prefix.format(node=self.node)
        return getattr(self.topics, kind).format(prefix=prefix, node=self.node, **fields)

    @property
    def state_dir(self) -> Path:
        if self.state.dir:
            return Path(self.state.dir)
        env = os.environ.get("STATE_DIRECTORY")
        return Path(env.split(":")[0]) if env else Path("edgernn-state")

    def summary(self) -> list[str]:
        """Human-readable lines (no secrets) for check-config and the startup log."""
        m = self.mqtt
        auth = f"user {m.username!r}, password from {m.password_source or 'nowhere (none sent)'}" if m.username else "anonymous"
        tls = "off" if m.tls is None else f"on (ca={m.tls.ca or 'system'}, client cert={'yes' if m.tls.cert else 'no'})"
        out = [
            f"node {self.node!r}: broker {m.host}:{m.port} MQTT {m.protocol}, client id {m.client_id!r}, {auth}, TLS {tls}",
            f"topics: alerts {self.topic('alerts', stream='<stream>')}, status {self.topic('status')} (retained), "
            f"stats {self.topic('stats')} every {self.stats.interval_s:g} s",
            f"state: {self.state_dir} (snapshot every {self.state.snapshot_interval_s:g} s, restore {'on' if self.state.restore else 'off'})",
            f"limits: inbox {self.limits.inbox_size} ({self.limits.when_full} when full), "
            f"payload <= {self.limits.max_payload_bytes} B, <= {self.limits.max_readings_per_message} readings/message",
        ]
        for p in self.pipelines:
            out.append(f"pipeline {p.name!r}: {p.subscribe} (QoS {p.qos}) -> stream {p.stream!r}, "
                       f"{p.payload.format} payload, model {p.model} on {p.backend}, max {p.max_streams} streams")
        return out


# -- YAML with line numbers ------------------------------------------------------------------
def _where(source: str, lines: dict, path: str) -> str:
    probe = path
    while probe and probe not in lines:  # fall back to the nearest parent key that has a line
        parent = re.sub(r"(\.[^.\[\]]+|\[\d+\])$", "", probe)
        if parent == probe:
            break
        probe = parent
    return f"{source}:{lines.get(probe, 1)}"


def _compose(text: str, source: str) -> tuple[Any, dict]:
    """Parse like ``yaml.safe_load`` and record the line of every key path."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError(f"{source}:{line}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}:1: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    lines: dict[str, int] = {}

    def walk(n, path):
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                p = f"{path}.{k.value}" if path else str(k.value)
                lines[p] = k.start_mark.line + 1
                walk(v, p)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                p = f"{path}[{i}]"
                lines[p] = v.start_mark.line + 1
                walk(v, p)

    if node is not None:
        walk(node, "")
    return data, lines


class _Reader:
    """Typed access to one mapping of the document, with errors that carry file:line:path."""

    def __init__(self, ctx: "_Ctx", data: Any, path: str, allowed: tuple[str, ...]):
        self.ctx, self.path = ctx, path
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ctx.error(path, f"expected a mapping, got {_kind(data)}")
        for key in data:
            if key not in allowed:
                hint = _close(str(key), allowed)
                raise ctx.error(self.sub(key), f"unknown key{hint}; allowed: {', '.join(allowed)}")
        self.data = data

    def sub(self, key) -> str:
        return f"{self.path}.{key}" if self.path else str(key)

    def has(self, key) -> bool:
        return key in self.data and self.data[key] is not None

    def get(self, key, kind, default=..., *, check=None, hint=""):
        p = self.sub(key)
        if key not in self.data or self.data[key] is None:
            if default is ...:
                raise self.ctx.error(p, "missing (required)")
            return default
        v = self.data[key]
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if kind is str and isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)
        if not isinstance(v, kind) or (isinstance(v, bool) and kind is not bool):
            want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.ctx.error(p, f"expected {_TYPE_WORDS.get(want, want)}, got {_kind(v)}")
        if check is not None and not check(v):
            raise self.ctx.error(p, f"{v!r} is not valid{': ' + hint if hint else ''}")
        return v

    def choice(self, key, choices, default):
        v = self.get(key, str, default)
        if v not in choices:
            raise self.ctx.error(self.sub(key), f"{v!r} is not one of: {', '.join(choices)}")
        return v


_TYPE_WORDS = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
               "dict": "a mapping", "list": "a list"}


def _kind(v) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "nothing"}.get(type(v), type(v).__name__)


def _close(key: str, allowed) -> str:
    import difflib

    m = difflib.get_close_matches(key, allowed, n=1)
    return f" (did you mean {m[0]!r}?)" if m else ""


@dataclass
class _Ctx:
    source: str
    lines: dict
    base: Path

    def error(self, path: str, msg: str) -> ConfigError:
        return ConfigError(f"{_where(self.source, self.lines, path)}: {path}: {msg}" if path
                           else f"{self.source}:1: {msg}")

    def file(self, r: _Reader, key: str, *, must_exist: bool = True) -> str | None:
        if not r.has(key):
            return None
        p = Path(os.path.expanduser(r.get(key, str)))
        if not p.is_absolute():
            p = self.base / p
        if must_exist and not p.is_file():
            raise self.error(r.sub(key), f"file not found: {p}")
        return str(p)


def _positive(v) -> bool:
    return v > 0


def _non_negative(v) -> bool:
    return v >= 0


# -- sections ----------------------------------------------------------------------------------
def _mqtt(ctx: _Ctx, data, node: str, resolve_secrets: bool) -> MqttConfig:
    r = _Reader(ctx, data, "mqtt", ("host", "port", "client_id", "protocol", "keepalive", "username",
                                    "password", "password_file", "password_env", "password_credential",
                                    "tls", "qos", "session_expiry_s", "clean_session", "reconnect_min_s",
                                    "reconnect_max_s", "publish_queue"))
    if "password" in r.data:
        raise ctx.error("mqtt.password", "inline passwords are not accepted (config files get copied and "
                        "printed); use password_file, password_env or password_credential (systemd LoadCredential)")
    proto_raw = str(r.get("protocol", (str, int, float), "5"))
    if proto_raw not in PROTOCOLS:
        raise ctx.error("mqtt.protocol", f"{proto_raw!r} is not one of: 5, 3.1.1")
    tls = None
    if r.has("tls"):
        raw = r.data["tls"]
        if raw is True:
            tls = TlsConfig()
        elif raw is not False:
            t = _Reader(ctx, raw, "mqtt.tls", ("ca", "cert", "key", "insecure"))
            tls = TlsConfig(ca=ctx.file(t, "ca"), cert=ctx.file(t, "cert"), key=ctx.file(t, "key"),
                            insecure=t.get("insecure", bool, False))
            if (tls.cert is None) != (tls.key is None):
                raise ctx.error("mqtt.tls", "cert and key go together (client certificate and its private key)")
    username = r.get("username", str, None)
    password, source = None, ""
    sources = [k for k in ("password_file", "password_env", "password_credential") if r.has(k)]
    if len(sources) > 1:
        raise ctx.error(f"mqtt.{sources[1]}", f"choose one password source (also given: {sources[0]})")
    if sources and username is None:
        raise ctx.error(f"mqtt.{sources[0]}", "a password needs mqtt.username")
    if resolve_secrets:
        password, source = _password(ctx, r, sources[0] if sources else None, username)
    return MqttConfig(
        host=r.get("host", str, "127.0.0.1"),
        port=r.get("port", int, 8883 if tls else 1883, check=lambda v: 0 < v < 65536, hint="1-65535"),
        client_id=r.get("client_id", str, f"edgernn-{node}"),
        protocol=PROTOCOLS[proto_raw],
        keepalive=r.get("keepalive", int, 30, check=lambda v: 5 <= v <= 65535, hint="5-65535 seconds"),
        username=username, password=password, password_source=source, tls=tls,
        qos=r.get("qos", int, 1, check=lambda v: v in (0, 1), hint="0 or 1"),
        session_expiry_s=r.get("session_expiry_s", int, 86400, check=_non_negative),
        clean_session=r.get("clean_session", bool, False),
        reconnect_min_s=r.get("reconnect_min_s", float, 1.0, check=_positive),
        reconnect_max_s=r.get("reconnect_max_s", float, 60.0, check=_positive),
        publish_queue=r.get("publish_queue", int, 10000, check=_positive),
    )


def _password(ctx: _Ctx, r: _Reader, source: str | None, username: str | None) -> tuple[str | None, str]:
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if source == "password_file":
        path = ctx.file(r, "password_file", must_exist=False)
        try:
            return _read_secret(Path(path)), f"file {path}"
        except OSError as exc:
            raise ctx.error("mqtt.password_file", f"cannot read {path}: {exc.strerror}") from None
    if source == "password_env":
        name = r.get("password_env", str)
        if name not in os.environ:
            raise ctx.error("mqtt.password_env", f"environment variable {name} is not set")
        return os.environ[name], f"environment variable {name}"
    if source == "password_credential":
        name = r.get("password_credential", str)
        if not creds:
            raise ctx.error("mqtt.password_credential", "$CREDENTIALS_DIRECTORY is not set (run under systemd "
                            f"with LoadCredential={name}:/path/to/secret)")
        path = Path(creds) / name
        try:
            return _read_secret(path), f"systemd credential {name}"
        except OSError as exc:
            raise ctx.error("mqtt.password_credential", f"cannot read {path}: {exc.strerror}") from None
    if username is not None and creds and (Path(creds) / DEFAULT_CREDENTIAL).is_file():
        return _read_secret(Path(creds) / DEFAULT_CREDENTIAL), f"systemd credential {DEFAULT_CREDENTIAL}"
    return None, ""


def _read_secret(path: Path) -> str:
    return path.read_text(encoding="utf-8").rstrip("\r\n")


def _topics(ctx: _Ctx, data) -> TopicsConfig:
    r = _Reader(ctx, data, "topics", ("prefix", "alerts", "status", "stats", "alert_qos", "alert_retain"))
    t = TopicsConfig(
        prefix=r.get("prefix", str, TopicsConfig.prefix), alerts=r.get("alerts", str, TopicsConfig.alerts),
        status=r.get("status", str, TopicsConfig.status), stats=r.get("stats", str, TopicsConfig.stats),
        alert_qos=r.get("alert_qos", int, 1, check=lambda v: v in (0, 1, 2), hint="0, 1 or 2"),
        alert_retain=r.get("alert_retain", bool, False),
    )
    for key, allowed in (("prefix", {"node"}), ("alerts", {"prefix", "node", "stream", "pipeline"}),
                         ("status", {"prefix", "node"}), ("stats", {"prefix", "node"})):
        value = getattr(t, key)
        names = set(re.findall(r"\{([^{}]*)\}", value))
        if names - allowed:
            raise ctx.error(f"topics.{key}", f"unknown placeholder {{{sorted(names - allowed)[0]}}}; allowed: "
                            + ", ".join("{%s}" % a for a in sorted(allowed)))
        if "+" in value or "#" in value:
            raise ctx.error(f"topics.{key}", "a topic to publish to cannot contain + or #")
    if "{stream}" not in t.alerts:
        raise ctx.error("topics.alerts", "needs {stream}")
    return t


def _payload(ctx: _Ctx, data, path: str) -> PayloadConfig:
    r = _Reader(ctx, data, path, ("format", "value", "values", "timestamp", "timestamp_unit", "readings"))
    fmt = r.choice("format", PAYLOAD_FORMATS, "json")
    values: tuple = ()
    if r.has("values"):
        raw = r.data["values"]
        if isinstance(raw, list) and all(isinstance(v, str) for v in raw):
            values = tuple((v, v) for v in raw)
        elif isinstance(raw, dict) and all(isinstance(v, str) for v in raw.values()):
            values = tuple((str(k), v) for k, v in raw.items())
        else:
            raise ctx.error(f"{path}.values", "expected a list of field paths or a mapping feature: field path")
        if r.has("value"):
            raise ctx.error(f"{path}.values", "give either value (one feature) or values (several), not both")
    p = PayloadConfig(
        format=fmt, value=r.get("value", str, None), values=values,
        timestamp=r.get("timestamp", str, None), timestamp_unit=r.choice("timestamp_unit", TIMESTAMP_UNITS, "auto"),
        readings=r.get("readings", str, None),
    )
    if fmt == "number" and (p.value or p.values or p.timestamp or p.readings):
        raise ctx.error(f"{path}.format", "a plain number payload has no fields (value/values/timestamp/readings)")
    return p


def _check_filter(ctx: _Ctx, path: str, topic: str) -> int:
    """Validate an MQTT subscription filter; return the number of wildcard captures."""
    levels = topic.split("/")
    if not topic:
        raise ctx.error(path, "empty topic filter")
    for i, lv in enumerate(levels):
        if ("+" in lv and lv != "+") or ("#" in lv and (lv != "#" or i != len(levels) - 1)):
            raise ctx.error(path, f"{topic!r}: + and # must fill a whole level, # only at the end")
    return sum(lv in ("+", "#") for lv in levels)


def _pipeline(ctx: _Ctx, data, i: int, limits: LimitsConfig, mqtt: MqttConfig) -> PipelineConfig:
    path = f"pipelines[{i}]"
    r = _Reader(ctx, data, path, ("name", "subscribe", "stream", "payload", "model", "qos", "backend", "threshold",
                                  "warmup", "settle", "max_gap_s", "adapt", "reference_rows", "reference_window",
                                  "reference_drift", "reference_peak", "seasonal", "seasonal_trust", "day_offset_s",
                                  "alerts", "max_streams"))
    name = r.get("name", str, check=lambda v: bool(_NAME_RE.match(v)), hint="letters, digits, _ . -")
    subscribe = r.get("subscribe", str)
    captures = _check_filter(ctx, f"{path}.subscribe", subscribe)
    stream = r.get("stream", str, "{topic}")
    for tok in re.findall(r"\{([^{}]*)\}", stream):
        if tok.isdigit() and not 1 <= int(tok) <= captures:
            raise ctx.error(f"{path}.stream", f"{{{tok}}}: the filter {subscribe!r} has {captures} wildcard(s) "
                            f"(captures are numbered from 1)")
        if not tok:
            raise ctx.error(f"{path}.stream", "empty {} placeholder")
    model_raw = r.get("model", str)
    from .models import ModelNotFound, find_model

    try:  # a path (the working directory first, then next to the config file) or a shipped name
        model = find_model(model_raw, ctx.base)
    except ModelNotFound as exc:
        raise ctx.error(f"{path}.model", str(exc)) from None
    alerts: list = []
    if r.has("alerts"):
        from .alerts import AlertSettings

        fields = tuple(AlertSettings.__dataclass_fields__)
        a = _Reader(ctx, r.data["alerts"], f"{path}.alerts", fields)
        for key in a.data:
            kind = float if isinstance(getattr(AlertSettings(), key), float) else int
            alerts.append((key, a.get(key, kind)))
        try:
            AlertSettings(**dict(alerts))
        except ValueError as exc:
            raise ctx.error(f"{path}.alerts", str(exc)) from None
    return PipelineConfig(
        name=name, subscribe=subscribe, model=str(model), stream=stream,
        payload=_payload(ctx, r.data.get("payload"), f"{path}.payload"),
        qos=r.get("qos", int, mqtt.qos, check=lambda v: v in (0, 1), hint="0 or 1"),
        backend=r.get("backend", str, "numpy"),
        threshold=r.get("threshold", float, None, check=lambda v: 0 < v <= 1, hint="a likelihood in (0, 1]"),
        warmup=r.get("warmup", int, None, check=_non_negative),
        settle=r.get("settle", int, None, check=_non_negative),
        max_gap_s=r.get("max_gap_s", float, None, check=_positive),
        adapt=r.get("adapt", float, None, check=lambda v: 0 <= v < 1, hint="0 <= adapt < 1"),
        reference_rows=r.get("reference_rows", int, 0, check=_non_negative),
        reference_window=r.get("reference_window", float, 8.0, check=lambda v: v >= 1, hint=">= 1 reading"),
        reference_drift=r.get("reference_drift", float, 0.0, check=lambda v: v >= 0, hint=">= 0 (0: off)"),
        reference_peak=r.get("reference_peak", float, 0.0, check=lambda v: 0 <= v < 1, hint="0 <= peak < 1 (0: off)"),
        seasonal=r.get("seasonal", bool, True),
        seasonal_trust=r.get("seasonal_trust", float, 0.5, check=lambda v: 0 < v <= 1,
                             hint="a variance ratio in (0, 1]"),
        day_offset_s=r.get("day_offset_s", float, 0.0, check=lambda v: math.isfinite(v) and abs(v) <= 7 * 86400,
                           hint="seconds, at most a week either way"),
        alerts=tuple(alerts),
        max_streams=r.get("max_streams", int, limits.max_streams, check=_positive),
    )


def parse_config(text: str, source: str = "<config>", *, base: Path | None = None,
                 resolve_secrets: bool = True) -> Config:
    data, lines = _compose(text, source)
    ctx = _Ctx(source, lines, base or Path.cwd())
    r = _Reader(ctx, data, "", ("node", "mqtt", "topics", "state", "stats", "limits", "log", "pipelines"))
    node = r.get("node", str, socket.gethostname().split(".")[0] or "edge",
                 check=lambda v: bool(_NAME_RE.match(v)), hint="letters, digits, _ . - (it becomes a topic level)")
    mqtt = _mqtt(ctx, r.data.get("mqtt"), node, resolve_secrets)
    s = _Reader(ctx, r.data.get("state"), "state", ("dir", "snapshot_interval_s", "restore"))
    state_dir = s.get("dir", str, "")
    if state_dir and not Path(state_dir).is_absolute():
        state_dir = str(ctx.base / state_dir)
    state = StateConfig(dir=state_dir, snapshot_interval_s=s.get("snapshot_interval_s", float, 60.0, check=_non_negative),
                        restore=s.get("restore", bool, True))
    st = _Reader(ctx, r.data.get("stats"), "stats", ("interval_s",))
    stats = StatsConfig(interval_s=st.get("interval_s", float, 10.0, check=_non_negative))
    lm = _Reader(ctx, r.data.get("limits"), "limits", tuple(LimitsConfig.__dataclass_fields__))
    limits = LimitsConfig(
        max_streams=lm.get("max_streams", int, 10_000, check=_positive),
        inbox_size=lm.get("inbox_size", int, 100_000, check=_positive),
        when_full=lm.choice("when_full", WHEN_FULL, "block"),
        max_payload_bytes=lm.get("max_payload_bytes", int, 65_536, check=_positive),
        max_readings_per_message=lm.get("max_readings_per_message", int, 1_000, check=_positive),
        max_batch=lm.get("max_batch", int, 4_096, check=_positive),
        batch_wait_ms=lm.get("batch_wait_ms", float, 5.0, check=_non_negative),
        max_future_s=lm.get("max_future_s", float, 30 * 86400.0, check=_non_negative),
    )
    lg = _Reader(ctx, r.data.get("log"), "log", ("level", "rejects_every_s"))
    log = LogConfig(level=lg.choice("level", ("debug", "info", "warning", "error"), "info"),
                    rejects_every_s=lg.get("rejects_every_s", float, 10.0, check=_non_negative))
    raw_pipes = r.get("pipelines", list)
    if not raw_pipes:
        raise ctx.error("pipelines", "needs at least one pipeline")
    pipes = tuple(_pipeline(ctx, p, i, limits, mqtt) for i, p in enumerate(raw_pipes))
    names = [p.name for p in pipes]
    for i, n in enumerate(names):
        if n in names[:i]:
            raise ctx.error(f"pipelines[{i}].name", f"duplicate pipeline name {n!r}")
    return Config(node=node, mqtt=mqtt, topics=_topics(ctx, r.data.get("topics")), state=state, stats=stats,
                  limits=limits, log=log, pipelines=pipes, source=source, lines=lines)


def load_config(path: str | os.PathLike, *, resolve_secrets: bool = True) -> Config:
    """Read and validate a config file. Raises ``ConfigError`` (one line) when anything is off."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from None
    return parse_config(text, str(p), base=p.resolve().parent, resolve_secrets=resolve_secrets)
