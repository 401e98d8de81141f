"""Daemon configuration: YAML (``yaml.safe_load`` semantics) -> frozen dataclasses.

Every error is one line ``FILE:LINE: key.path: message``, and a file is checked to the end: a
``ConfigError`` carries every problem found (``.messages``), not only the first. Unknown keys are
errors with a did-you-mean hint (a typo never silently becomes a default). Secrets are never
inline: the MQTT password comes from ``password_file``, ``password_env`` or a systemd credential
(``$CREDENTIALS_DIRECTORY``), and no repr, summary or error message contains it. TLS files are
loaded with Python's ``ssl`` module here, so a CA file that is not PEM or a client key that does
not match its certificate is a config error, not a crash of the daemon.

Every key is declared once, below (sections) or in ``edgernn.settings`` (the detector and alert
keys of ``pipelines[]``); ``json_schema()`` derives the JSON Schema of the whole file from them.

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

import logging
import os
import re
import shlex
import socket
import string
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


from . import settings as schema
from .decode import TOPIC_MALFORMED
from .settings import Setting, did_you_mean
from .yamlpos import ConfigError, file_line, yaml_lines  # noqa: F401 - ConfigError is this module's error too

DEFAULT_CREDENTIAL = "mqtt-password"  # LoadCredential=mqtt-password:/etc/edgernn/mqtt-password
MQTT_STRING_MAX = 65535  # bytes of a user name or password: MQTT's two-byte length (paho's thread dies beyond)
log = logging.getLogger("edgernn.config")
PAYLOAD_FORMATS = ("json", "number")
TIMESTAMP_UNITS = ("auto", "s", "ms", "us", "ns", "iso")
WHEN_FULL = ("block", "drop_newest", "drop_oldest")
LOG_LEVELS = ("debug", "info", "warning", "error")
PROTOCOLS = {"5": "5", "5.0": "5", "v5": "5", "3.1.1": "3.1.1", "311": "3.1.1", "v311": "3.1.1"}
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"


# -- the keys of each section, declared once (reader, defaults and JSON Schema derive from them) ----
def _keys(section: str, *entries) -> tuple[Setting, ...]:
    return tuple(Setting(name, kind, default, help_, unit, group=section, **kw)
                 for name, kind, default, help_, unit, kw in entries)


PORT = dict(ge=1, le=65535)
SESSION_EXPIRY_MAX = 2**32 - 1  # 0xFFFFFFFF: the session never expires
MQTT_KEYS = _keys(
    "mqtt",
    ("host", str, "127.0.0.1", "broker host name or address", "", {}),
    ("port", int, None, "broker port", "", dict(optional="1883, or 8883 with tls", **PORT)),
    ("client_id", str, None, "MQTT client id; keep it stable (persistent session)", "", dict(optional="edgernn-{node}")),
    ("protocol", str, "5", "MQTT protocol version", "", dict(choices=("5", "3.1.1"))),
    ("keepalive", int, 30, "MQTT keepalive", "s", dict(ge=5, le=65535)),
    ("username", str, None, "user name (the password comes from password_file, password_env or "
     "password_credential, never inline)", "", dict(optional="anonymous")),
    ("password_file", str, None, "file holding the password (relative: to this config file)", "", dict(optional="none")),
    ("password_env", str, None, "environment variable holding the password", "", dict(optional="none")),
    ("password_credential", str, None, "systemd credential (LoadCredential=) holding the password", "",
     dict(optional=f"{DEFAULT_CREDENTIAL} when present")),
    ("qos", int, 1, "subscription QoS (1: the broker keeps readings sent while the daemon restarts)", "",
     dict(choices=(0, 1))),
    ("session_expiry_s", int, 86400, "MQTT 5: how long the broker keeps the session while the daemon is away", "s",
     dict(ge=0, le=SESSION_EXPIRY_MAX, range_help="(MQTT 5's Session Expiry Interval is a four-byte integer: "
          f"at most {SESSION_EXPIRY_MAX})")),
    ("clean_session", bool, False, "no persistent session (readings sent while down are lost)", "", {}),
    ("reconnect_min_s", float, 1.0, "first reconnect delay (doubles up to reconnect_max_s)", "s", dict(gt=0)),
    ("reconnect_max_s", float, 60.0, "longest reconnect delay", "s", dict(gt=0)),
    ("publish_queue", int, 10000, "outgoing QoS 1 messages held while the broker is slow or away", "messages",
     dict(ge=1)),
)
TLS_KEYS = _keys(
    "tls",
    ("ca", str, None, "PEM CA bundle that signed the broker's certificate", "", dict(optional="the system CAs")),
    ("cert", str, None, "PEM client certificate (mutual TLS; needs key)", "", dict(optional="none")),
    ("key", str, None, "PEM private key of the client certificate (unencrypted)", "", dict(optional="none")),
    ("insecure", bool, False, "skip the broker hostname check (testing only)", "", {}),
)
TOPICS_KEYS = _keys(
    "topics",
    ("prefix", str, "edgernn/{node}", "topic prefix; placeholder {node}", "", {}),
    ("alerts", str, "{prefix}/alerts/{stream}", "alert topic; placeholders {prefix} {node} {stream} {pipeline}", "", {}),
    ("status", str, "{prefix}/status", "retained online / offline topic (last will)", "", {}),
    ("stats", str, "{prefix}/stats", "stats topic", "", {}),
    ("alert_qos", int, 1, "QoS of alert messages", "", dict(choices=(0, 1, 2))),
    ("alert_retain", bool, False, "publish alerts retained", "", {}),
)
STATE_KEYS = _keys(
    "state",
    ("dir", str, "", "state directory ('': $STATE_DIRECTORY under systemd, else ./edgernn-state)", "", {}),
    ("snapshot_interval_s", float, 60.0, "seconds between atomic snapshots (0: only at shutdown)", "s", dict(ge=0)),
    ("restore", bool, True, "restore the snapshot at start (only when its model sha256 matches)", "", {}),
)
STATS_KEYS = _keys("stats", ("interval_s", float, 10.0, "seconds between stats messages (0: none)", "s", dict(ge=0)))
LIMITS_KEYS = _keys(
    "limits",
    ("max_streams", int, 10_000, "live streams per pipeline; the least recently seen is evicted beyond", "streams",
     dict(ge=1, le=schema.BY_KEY["max_streams"].le, range_help=schema.BY_KEY["max_streams"].range_help)),
    ("inbox_size", int, 100_000, "readings waiting for the main thread", "readings", dict(ge=1)),
    ("when_full", str, "block", "inbox full: block (back-pressure to the broker) or drop", "", dict(choices=WHEN_FULL)),
    ("max_payload_bytes", int, 65_536, "larger MQTT payloads are rejected", "bytes", dict(ge=1)),
    ("max_readings_per_message", int, 1_000, "more readings in one message are rejected", "readings", dict(ge=1)),
    ("max_batch", int, 4_096, "readings per detector call", "readings", dict(ge=1)),
    ("batch_wait_ms", float, 5.0, "under load only: wait up to this long while a batch is still filling", "ms",
     dict(ge=0)),
    ("max_future_s", float, 30 * 86400.0, "timestamps further ahead of the clock are rejected (0: off)", "s", dict(ge=0)),
)
LOG_KEYS = _keys(
    "log",
    ("level", str, "info", "log level", "", dict(choices=LOG_LEVELS)),
    ("rejects_every_s", float, 10.0, "at most one log line per reject reason per this many seconds", "s", dict(ge=0)),
)
HOMEASSISTANT_KEYS = _keys(
    "homeassistant",
    ("discovery", bool, False, "publish Home Assistant MQTT discovery for every stream", "", {}),
    ("prefix", str, "homeassistant", "Home Assistant's discovery prefix", "", {}),
)
METRICS_KEYS = _keys(
    "metrics",
    ("host", str, "127.0.0.1", "address the Prometheus /metrics endpoint listens on", "", {}),
    ("port", int, 9108, "port of the /metrics endpoint", "", PORT),
)
PAYLOAD_KEYS = _keys(
    "payload",
    ("format", str, "json", "json object(s) or a plain number", "", dict(choices=PAYLOAD_FORMATS)),
    ("value", str, None, "field path of the single value (univariate models)", "", dict(optional="none")),
    ("timestamp", str, None, "field path of the timestamp", "", dict(optional="the time of receipt")),
    ("timestamp_unit", str, "auto", "unit of the timestamp field", "", dict(choices=TIMESTAMP_UNITS)),
    ("readings", str, None, "field path of an array of readings inside the object", "", dict(optional="none")),
)
PIPELINE_KEYS = _keys(
    "pipelines",
    ("name", str, None, "pipeline name (letters, digits, _ . -); names the snapshot file", "", {}),
    ("subscribe", str, None, "MQTT topic filter", "", {}),
    ("stream", str, "{topic}", "stream id template: {1}.. wildcard captures, {topic}, {pipeline}, payload fields",
     "", {}),
    ("model", str, None, "model bundle directory (relative: the working directory, then this file's)", "", {}),
    ("qos", int, None, "subscription QoS", "", dict(choices=(0, 1), optional="mqtt.qos")),
    ("backend", str, "numpy", "inference backend", "", {}),
)
PIPELINE_REQUIRED = ("name", "subscribe", "model")
DETECTOR_KEYS = tuple(s for s in schema.group(schema.DETECTOR)  # limits gives these
                      if s.name not in ("max_streams", "max_future_s"))
ALERT_KEYS = schema.group(schema.ALERTS)
TOP_KEYS = ("node", "mqtt", "topics", "state", "stats", "limits", "log", "homeassistant", "metrics", "pipelines")


def _section_class(name: str, keys, doc: str):
    return schema.dataclass_of(name, keys, doc, module=__name__)


# -- dataclasses ---------------------------------------------------------------------------------
TlsConfig = _section_class("TlsConfig", TLS_KEYS, "mqtt.tls: CA, client certificate and key (absolute paths).")
TopicsConfig = _section_class("TopicsConfig", TOPICS_KEYS, "topics: templates of the published topics.")
StateConfig = _section_class("StateConfig", STATE_KEYS, "state: where and how often the streams' state is saved.")
StatsConfig = _section_class("StatsConfig", STATS_KEYS, "stats: the JSON stats topic.")
LimitsConfig = _section_class("LimitsConfig", LIMITS_KEYS, "limits: bounds on memory, payloads and batches.")
LogConfig = _section_class("LogConfig", LOG_KEYS, "log: level and reject rate limit.")
HomeAssistantConfig = _section_class("HomeAssistantConfig", HOMEASSISTANT_KEYS, "homeassistant: MQTT discovery.")
MetricsConfig = _section_class("MetricsConfig", METRICS_KEYS, "metrics: the Prometheus /metrics endpoint (absent: off).")


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
    tls: Any = None  # TlsConfig | None
    qos: int = 1  # subscription QoS (1: the broker queues readings while the daemon restarts)
    session_expiry_s: int = 86400  # MQTT 5 persistent session lifetime after a disconnect
    clean_session: bool = False  # True: no persistent session (readings sent while down are lost)
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    publish_queue: int = 10000  # outgoing QoS 1 messages held while the broker is slow or away


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
    """One pipeline. Detector settings given in the file are in ``detector`` / ``alerts`` (name,
    value) pairs; reading ``p.<setting>`` gives the value given, else the schema default."""

    name: str
    subscribe: str
    model: str  # absolute path of the bundle directory
    stream: str = "{topic}"
    payload: PayloadConfig = field(default_factory=PayloadConfig)
    qos: int = 1
    backend: str = "numpy"
    detector: tuple[tuple[str, Any], ...] = ()  # detector settings given (edgernn.settings names)
    alerts: tuple[tuple[str, Any], ...] = ()  # alert settings given
    max_streams: int = 10_000

    def __getattr__(self, name: str):
        s = schema.BY_KEY.get(name)
        if s is None or s.group != schema.DETECTOR or name.startswith("_"):
            raise AttributeError(name)
        return dict(self.detector).get(name, s.default)

    @property
    def settings(self) -> dict:
        """The overrides a detector of this pipeline runs with (over the model's defaults)."""
        return {**dict(self.detector), "max_streams": self.max_streams, schema.ALERTS: dict(self.alerts)}

    def with_overrides(self, values: dict) -> "PipelineConfig":
        """A copy with these settings (e.g. from the command line) over the file's."""
        values = dict(values)
        alerts = {**dict(self.alerts), **values.pop(schema.ALERTS, {})}
        max_streams = values.pop("max_streams", self.max_streams)
        return replace(self, detector=tuple({**dict(self.detector), **values}.items()),
                       alerts=tuple(alerts.items()), max_streams=max_streams)


@dataclass(frozen=True)
class Config:
    node: str
    mqtt: MqttConfig
    topics: Any
    state: Any
    stats: Any
    limits: Any
    log: Any
    pipelines: tuple[PipelineConfig, ...]
    source: str = ""
    lines: dict = field(default_factory=dict, repr=False, compare=False)
    homeassistant: Any = field(default_factory=HomeAssistantConfig)
    metrics: Any = None  # MetricsConfig, or None: no /metrics endpoint

    def where(self, path: str) -> str:
        """``FILE:LINE`` of a key path (for errors found after loading, e.g. a bad bundle)."""
        return file_line(self.source, self.lines, path)

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
            f"home assistant discovery: {'on, prefix ' + self.homeassistant.prefix if self.homeassistant.discovery else 'off'}; "
            f"metrics: {f'http://{self.metrics.host}:{self.metrics.port}/metrics' if self.metrics else 'off'}",
        ]
        for p in self.pipelines:
            out.append(f"pipeline {p.name!r}: {p.subscribe} (QoS {p.qos}) -> stream {p.stream!r}, "
                       f"{p.payload.format} payload, model {p.model} on {p.backend}, max {p.max_streams} streams")
        return out


# -- YAML with line numbers ------------------------------------------------------------------


@dataclass
class _Ctx:
    """Where the document came from, and every problem found so far."""

    source: str
    lines: dict
    base: Path
    errors: list = field(default_factory=list)

    def error(self, path: str, msg: str) -> None:
        self.errors.append(f"{file_line(self.source, self.lines, path)}: {path}: {msg}" if path
                           else f"{self.source}:1: {msg}")

    def path(self, raw: str) -> Path:
        p = Path(os.path.expanduser(raw))
        return p if p.is_absolute() else self.base / p


class _Reader:
    """One mapping of the document: unknown keys reported (with a hint), typed access that reports
    a bad value and goes on with the default, so that one pass finds every problem."""

    def __init__(self, ctx: _Ctx, data: Any, path: str, allowed):
        self.ctx, self.path = ctx, path
        allowed = tuple(allowed)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            ctx.error(path, f"expected a mapping, got {schema._kind(data)}")
            data = {}
        for key in [k for k in data if k not in allowed]:
            ctx.error(self.sub(key), f"unknown key{did_you_mean(str(key), allowed)}; allowed: {', '.join(allowed)}")
        self.data = {k: v for k, v in data.items() if k in allowed}

    def sub(self, key) -> str:
        return f"{self.path}.{key}" if self.path else str(key)

    def has(self, key) -> bool:
        return self.data.get(key) is not None

    def value(self, s: Setting, default=...):
        """The value of a declared key (its default when absent; None when required and absent)."""
        default = s.default if default is ... else default
        if not self.has(s.name):
            return default
        v = self.data[s.name]
        if s.kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if s.kind is str and isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)
        problem = s.problem(v)
        if problem:
            self.ctx.error(self.sub(s.name), problem)
            return default
        return v

    def values(self, keys) -> dict:
        return {s.name: self.value(s) for s in keys}

    def required(self, s: Setting, check=None, hint: str = ""):
        if not self.has(s.name):
            self.ctx.error(self.sub(s.name), "missing (required)")
            return None
        v = self.value(s)
        if v is not None and check is not None and not check(v):
            self.ctx.error(self.sub(s.name), f"{v!r} is not valid: {hint}")
        return v


def _section(ctx: _Ctx, data: Any, name: str, keys, cls):
    return cls(**_Reader(ctx, data, name, (s.name for s in keys)).values(keys))


# -- sections ----------------------------------------------------------------------------------
def _mqtt(ctx: _Ctx, data, node: str, resolve_secrets: bool) -> MqttConfig:
    keys = {s.name: s for s in MQTT_KEYS}
    if isinstance(data, dict) and "password" in data:
        ctx.error("mqtt.password", "inline passwords are not accepted (config files get copied and "
                  "printed); use password_file, password_env or password_credential (systemd LoadCredential)")
        data = {k: v for k, v in data.items() if k != "password"}
    r = _Reader(ctx, data, "mqtt", (*keys, "tls"))
    if r.has("protocol") and str(r.data["protocol"]) not in PROTOCOLS:
        ctx.error("mqtt.protocol", f"{str(r.data['protocol'])!r} is not one of: 5, 3.1.1")
    protocol = PROTOCOLS.get(str(r.data.get("protocol") or "5"), "5")
    tls = _tls(ctx, r.data.get("tls")) if r.has("tls") else None
    v = {k: r.value(s) for k, s in keys.items() if k not in ("protocol",) and not k.startswith("password_")}
    sources = [k for k in ("password_file", "password_env", "password_credential") if r.has(k)]
    if len(sources) > 1:
        ctx.error(f"mqtt.{sources[1]}", f"choose one password source (also given: {sources[0]})")
    if sources and v["username"] is None:
        ctx.error(f"mqtt.{sources[0]}", "a password needs mqtt.username")
    password, source = None, ""
    if resolve_secrets and len(sources) <= 1:
        password, source = _password(ctx, r, sources[0] if sources else None, v["username"])
    bad_user = v["username"] is not None and _mqtt_string_problem(v["username"])
    if bad_user:
        ctx.error("mqtt.username", f"{_short(v['username'])} {bad_user}")
    bad_host = _host_problem(v["host"])
    if bad_host:
        ctx.error("mqtt.host", bad_host)
    return MqttConfig(**{**v, "port": v["port"] or (8883 if tls else 1883),
                         "client_id": v["client_id"] if v["client_id"] is not None else f"edgernn-{node}"},
                      protocol=protocol, password=password, password_source=source, tls=tls)


_HOST_PATTERN = r"^[^\s\x00-\x1f\x7f]+$"  # what the JSON Schema can say; _host_problem says more


def _host_problem(host: str) -> str | None:
    """What paho's connect would choke on (its network thread dies on it: no retry, no log), or None."""
    if not host.strip():
        return f"{host!r}: empty; give the broker's host name or address"
    if not re.match(_HOST_PATTERN, host):
        return f"{host!r} is not a host name or address (it contains blanks or control characters)"
    try:
        host.encode("idna")  # as socket.getaddrinfo will: labels of 1..63 characters
    except UnicodeError as exc:
        return f"{host!r} is not a valid host name ({exc.__cause__ or exc})"
    return None


def _tls(ctx: _Ctx, raw):
    """``tls: true`` (system CAs), or a mapping of files, each loaded with ``ssl`` to check it."""
    if raw is True:
        return TlsConfig()
    if raw is False:
        return None
    t = _Reader(ctx, raw, "mqtt.tls", (s.name for s in TLS_KEYS))
    v = t.values(TLS_KEYS)
    for key in ("ca", "cert", "key"):
        if v[key] is not None:
            p = ctx.path(v[key])
            v[key] = str(p)
            if not p.is_file():
                ctx.error(f"mqtt.tls.{key}", f"not a file: {p}" if p.exists() else f"file not found: {p}")
                v[key] = None
    if t.has("cert") != t.has("key"):
        ctx.error("mqtt.tls", "cert and key go together (client certificate and its private key)")
    if v["cert"] is None or v["key"] is None:  # one of the pair missing (reported): nothing more to check
        v["cert"] = v["key"] = None
    tls = TlsConfig(**v)
    if _check_tls_files(ctx, tls) and tls.key:
        _warn_if_world_readable(ctx, "mqtt.tls.key", Path(tls.key))
    return tls


def _check_tls_files(ctx: _Ctx, tls) -> bool:
    """Load the CA bundle and the client certificate + key the way the MQTT client will (tls.py)."""
    from .tls import TlsFileError, tls_context

    try:
        tls_context(tls)
    except TlsFileError as exc:
        ctx.error(exc.key, str(exc))
        return False
    return True


def _password(ctx: _Ctx, r: _Reader, source: str | None, username: str | None) -> tuple[str | None, str]:
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    name = r.value(next(s for s in MQTT_KEYS if s.name == source)) if source else None
    if source and name is None:  # not a string: reported
        return None, ""
    if source == "password_credential" and not creds:
        ctx.error("mqtt.password_credential", "$CREDENTIALS_DIRECTORY is not set (run under systemd "
                  f"with LoadCredential={name}:/path/to/secret)")
        return None, ""
    if source == "password_file":
        path = ctx.path(name)
        return _secret_file(ctx, "mqtt.password_file", path, f"file {path}")
    if source == "password_credential":
        return _secret_file(ctx, "mqtt.password_credential", Path(creds) / name, f"systemd credential {name}")
    if source == "password_env":
        if name not in os.environ:
            ctx.error("mqtt.password_env", f"environment variable {name} is not set")
            return None, ""
        return _checked_secret(ctx, "mqtt.password_env", os.environ[name], f"environment variable {name}")
    if username is not None and creds and (Path(creds) / DEFAULT_CREDENTIAL).is_file():
        return _secret_file(ctx, "mqtt.username", Path(creds) / DEFAULT_CREDENTIAL,
                            f"systemd credential {DEFAULT_CREDENTIAL}")
    return None, ""


def _secret_file(ctx: _Ctx, key: str, path: Path, label: str) -> tuple[str | None, str]:
    """The password in a file (UTF-8, a BOM dropped, its trailing newline - LF or CRLF - removed), or
    (None, "") with the problem reported under ``key``. Reads no more than a password can be."""
    try:
        with open(path, "rb") as f:
            data = f.read(MQTT_STRING_MAX + 6)  # + a BOM and a CRLF: /dev/zero or a log never fills memory
        if len(data) > MQTT_STRING_MAX + 5:
            raise ValueError(f"larger than a password can be (MQTT allows at most {MQTT_STRING_MAX:,} bytes)")
        secret = data.decode("utf-8-sig").rstrip("\r\n")
    except (OSError, ValueError) as exc:  # ValueError: too large, not UTF-8, a NUL in the path
        ctx.error(key, f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
        return None, ""
    secret, label = _checked_secret(ctx, key, secret, label)
    if secret is not None and key == "mqtt.password_file":  # (a systemd credential is the service's own)
        _warn_if_world_readable(ctx, key, path)
    return secret, label


def _checked_secret(ctx: _Ctx, key: str, secret: str, label: str) -> tuple[str | None, str]:
    """``(secret, label)``, or (None, "") with what paho could not send (or an empty password) reported."""
    problem = "is empty" if not secret else _mqtt_string_problem(secret)
    if problem:
        ctx.error(key, f"the password in {label} {problem}")
        return None, ""
    return secret, label


def _mqtt_string_problem(text: str) -> str | None:
    """Why paho cannot send this user name or password (it fails at start or in its network thread), or None."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid UTF-8 text (MQTT sends user names and passwords as UTF-8)"
    if size > MQTT_STRING_MAX:
        return f"is {size:,} bytes long; MQTT allows at most {MQTT_STRING_MAX:,}"
    return None


def _warn_if_world_readable(ctx: _Ctx, key: str, path: Path) -> None:
    """A secret every local user can read is logged as a warning (the config still loads)."""
    try:
        mode = path.stat().st_mode & 0o777
    except (OSError, ValueError):
        return
    if mode & 0o004:
        log.warning("%s: %s: %s is readable by every user (mode %04o); restrict it: chmod o-rwx %s",
                    file_line(ctx.source, ctx.lines, key), key, path, mode, shlex.quote(str(path)))


_TOPIC_PLACEHOLDERS = {"prefix": {"node"}, "alerts": {"prefix", "node", "stream", "pipeline"},
                       "status": {"prefix", "node"}, "stats": {"prefix", "node"}}


def _template_fields(template: str, allowed) -> tuple[set, str | None]:
    """The placeholders of a ``str.format`` topic template, parsed as ``Config.topic`` will format it
    (``{{`` and ``}}`` are literal braces, not placeholders), and what is wrong with it, or None."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:  # a lone { or }
        return set(), f"{template!r}: {exc} (write {{{{ or }}}} for a literal brace)"
    names = {name for _, name, _, _ in parts if name is not None}
    unknown = sorted(names - set(allowed))
    if unknown:
        return names, (f"unknown placeholder {{{unknown[0]}}}; allowed: "
                       + ", ".join("{%s}" % a for a in sorted(allowed)))
    if any(name is not None and (spec or conv) for _, name, spec, conv in parts):
        return names, f"{template!r}: a placeholder takes no !conversion or :format spec"
    return names, None


def _topics(ctx: _Ctx, data, node: str):
    t = _section(ctx, data, "topics", TOPICS_KEYS, TopicsConfig)
    fine = True
    for key, allowed in _TOPIC_PLACEHOLDERS.items():
        value = getattr(t, key)
        names, problem = _template_fields(value, allowed)
        if problem:
            ctx.error(f"topics.{key}", problem)
        elif key == "alerts" and "stream" not in names:
            ctx.error("topics.alerts", f"{value!r} needs a {{stream}} placeholder (one topic per stream)")
        if "+" in value or "#" in value:
            ctx.error(f"topics.{key}", "a topic to publish to cannot contain + or #")
        fine = fine and problem is None
    if fine:  # as Config.topic renders them (a stream id is never empty nor holds what a topic cannot: decode.py)
        prefix = t.prefix.format(node=node)
        in_prefix = _topic_name_problem(prefix) if prefix else None  # ('' is fine where a template adds levels)
        if in_prefix:
            ctx.error("topics.prefix", f"{_short(t.prefix)} {in_prefix}")
        for key in ("alerts", "status", "stats") if not in_prefix else ():
            topic = getattr(t, key).format(prefix=prefix, node=node, stream="s", pipeline="p")
            problem = _topic_name_problem(topic)
            if problem:
                ctx.error(f"topics.{key}", f"{_short(getattr(t, key))} (prefix {_short(prefix)}) {problem}")
    return t


def _short(text: str, most: int = 60) -> str:
    """repr(text), its middle cut to '...' past ``most`` characters (a message stays one readable line)."""
    return repr(text) if len(text) <= most else repr(text[: most // 2]) + "..." + repr(text[-most // 2:])


def _topic_name_problem(topic: str) -> str | None:
    """What MQTT forbids in a topic name (publish, will): empty, U+0000, more than 65,535 bytes."""
    if not topic:
        return "gives an empty topic, which MQTT does not allow"
    bad = TOPIC_MALFORMED.search(topic)
    if bad:
        return f"holds {bad.group()!r}, which MQTT does not allow in a topic (the broker drops the connection)"
    if len(topic.encode("utf-8", "surrogatepass")) > 65535:
        return "gives a topic longer than MQTT's 65,535 bytes"
    return None


def _homeassistant(ctx: _Ctx, data):
    ha = _section(ctx, data, "homeassistant", HOMEASSISTANT_KEYS, HomeAssistantConfig)
    if not ha.prefix or "+" in ha.prefix or "#" in ha.prefix or ha.prefix.startswith("/") or ha.prefix.endswith("/"):
        ctx.error("homeassistant.prefix", f"{ha.prefix!r}: a topic prefix without + or # and without a leading "
                  "or trailing / (Home Assistant's default: homeassistant)")
    return ha


def _payload(ctx: _Ctx, data, path: str) -> PayloadConfig:
    r = _Reader(ctx, data, path, (*(s.name for s in PAYLOAD_KEYS), "values"))
    v = r.values(PAYLOAD_KEYS)
    values: tuple = ()
    if r.has("values"):
        raw = r.data["values"]
        if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
            values = tuple((x, x) for x in raw)
        elif isinstance(raw, dict) and all(isinstance(x, str) for x in raw.values()):
            values = tuple((str(k), x) for k, x in raw.items())
        else:
            ctx.error(f"{path}.values", "expected a list of field paths or a mapping feature: field path")
        if r.has("value"):
            ctx.error(f"{path}.values", "give either value (one feature) or values (several), not both")
    p = PayloadConfig(values=values, **v)
    if p.format == "number" and (p.value or p.values or p.timestamp or p.readings):
        ctx.error(f"{path}.format", "a plain number payload has no fields (value/values/timestamp/readings)")
    return p


def _check_filter(ctx: _Ctx, path: str, topic: str) -> int:
    """Validate an MQTT subscription filter; return the number of wildcard captures."""
    levels = topic.split("/")
    if not topic:
        ctx.error(path, "empty topic filter")
    elif TOPIC_MALFORMED.search(topic) or len(topic.encode("utf-8", "surrogatepass")) > 65535:
        bad = TOPIC_MALFORMED.search(topic)
        ctx.error(path, f"{_short(topic)}: " + (f"holds {bad.group()!r}" if bad else "longer than 65,535 bytes")
                  + ", which MQTT does not allow in a filter")
    for i, lv in enumerate(levels):
        if ("+" in lv and lv != "+") or ("#" in lv and (lv != "#" or i != len(levels) - 1)):
            ctx.error(path, f"{topic!r}: + and # must fill a whole level, # only at the end")
            break
    return sum(lv in ("+", "#") for lv in levels)


def _detector_settings(ctx: _Ctx, r: _Reader, path: str) -> tuple[tuple, tuple]:
    """The detector and alert settings a pipeline gives, checked against the schema (every problem)."""
    given = {s.name: r.value(s) for s in DETECTOR_KEYS if r.has(s.name)}
    given = {k: v for k, v in given.items() if v is not None}
    alerts: dict = {}
    if r.has("alerts"):
        a = _Reader(ctx, r.data["alerts"], f"{path}.alerts", (s.name for s in ALERT_KEYS))
        alerts = {s.name: a.value(s) for s in ALERT_KEYS if a.has(s.name)}
        alerts = {k: v for k, v in alerts.items() if v is not None}
        for name, msg in schema.problems(alerts, schema.ALERTS):
            ctx.error(f"{path}.alerts" + (f".{name}" if name else ""), msg)
    return tuple(given.items()), tuple(alerts.items())


def _model_dir(ctx: _Ctx, path: str, raw: str | None) -> str:
    """A bundle directory: a path (the working directory first, then next to the config file) or a
    shipped model's name (``univariate``)."""
    if raw is None:
        return ""
    from .models import ModelNotFound, find_model

    try:
        return str(find_model(os.path.expanduser(raw), ctx.base))
    except ModelNotFound as exc:
        ctx.error(f"{path}.model", str(exc))
        return raw


def _pipeline(ctx: _Ctx, data, i: int, limits, mqtt: MqttConfig) -> PipelineConfig:
    path = f"pipelines[{i}]"
    own = {s.name: s for s in PIPELINE_KEYS}
    r = _Reader(ctx, data, path, (*own, "payload", *(s.name for s in DETECTOR_KEYS), schema.ALERTS, "max_streams"))
    name = r.required(own["name"], lambda v: bool(_NAME_RE.match(v)), "letters, digits, _ . -")
    subscribe = r.required(own["subscribe"])
    stream = r.value(own["stream"])
    if subscribe is not None:
        captures = _check_filter(ctx, f"{path}.subscribe", subscribe)
        for tok in re.findall(r"\{([^{}]*)\}", stream):
            if tok.isdigit() and not 1 <= int(tok) <= captures:
                ctx.error(f"{path}.stream", f"{{{tok}}}: the filter {subscribe!r} has {captures} wildcard(s) "
                          f"(captures are numbered from 1)")
            if not tok:
                ctx.error(f"{path}.stream", "empty {} placeholder")
    detector, alerts = _detector_settings(ctx, r, path)
    return PipelineConfig(
        name=name or "", subscribe=subscribe or "", model=_model_dir(ctx, path, r.required(own["model"])),
        stream=stream, payload=_payload(ctx, r.data.get("payload"), f"{path}.payload"),
        qos=r.value(own["qos"], mqtt.qos), backend=r.value(own["backend"]), detector=detector, alerts=alerts,
        max_streams=r.value(schema.BY_KEY["max_streams"], limits.max_streams),
    )


def _pipelines(ctx: _Ctx, r: _Reader, limits, mqtt) -> tuple[PipelineConfig, ...]:
    raw = r.data.get("pipelines")
    if raw is None:
        ctx.error("pipelines", "missing (required)")
        return ()
    if not isinstance(raw, list) or not raw:
        ctx.error("pipelines", "needs a list of at least one pipeline" if isinstance(raw, list)
                  else f"expected a list, got {schema._kind(raw)}")
        return ()
    pipes = tuple(_pipeline(ctx, p, i, limits, mqtt) for i, p in enumerate(raw))
    names = [p.name for p in pipes]
    for i, n in enumerate(names):
        if n and n in names[:i]:
            ctx.error(f"pipelines[{i}].name", f"duplicate pipeline name {n!r}")
    return pipes


def parse_config(text: str, source: str = "<config>", *, base: Path | None = None,
                 resolve_secrets: bool = True) -> Config:
    """Validate a whole document; raise one ConfigError carrying every problem found."""
    data, lines = yaml_lines(text, source)
    ctx = _Ctx(source, lines, base or Path.cwd())
    r = _Reader(ctx, data, "", TOP_KEYS)
    node_key = Setting("node", str, socket.gethostname().split(".")[0] or "edge", "")
    node = r.value(node_key)
    if not _NAME_RE.match(node):
        ctx.error("node", f"{node!r} is not valid: letters, digits, _ . - (it becomes a topic level)")
    mqtt = _mqtt(ctx, r.data.get("mqtt"), node, resolve_secrets)
    state = _section(ctx, r.data.get("state"), "state", STATE_KEYS, StateConfig)
    if state.dir and not Path(state.dir).is_absolute():
        state = replace(state, dir=str(ctx.base / state.dir))
    limits = _section(ctx, r.data.get("limits"), "limits", LIMITS_KEYS, LimitsConfig)
    cfg = Config(
        node=node, mqtt=mqtt, topics=_topics(ctx, r.data.get("topics"), node), state=state,
        stats=_section(ctx, r.data.get("stats"), "stats", STATS_KEYS, StatsConfig), limits=limits,
        log=_section(ctx, r.data.get("log"), "log", LOG_KEYS, LogConfig),
        pipelines=_pipelines(ctx, r, limits, mqtt), source=source, lines=lines,
        homeassistant=_homeassistant(ctx, r.data.get("homeassistant")),
        metrics=(_section(ctx, r.data["metrics"], "metrics", METRICS_KEYS, MetricsConfig)
                 if "metrics" in r.data else None),  # absent: no /metrics endpoint
    )
    if ctx.errors:  # in the order of the file's lines
        raise ConfigError(sorted(ctx.errors, key=lambda m: int(m[len(source) + 1:].split(":", 1)[0])))
    return cfg


MAX_CONFIG_BYTES = 4 * 2**20  # a config is a few kB; more is not one


def load_config(path: str | os.PathLike, *, resolve_secrets: bool = True) -> Config:
    """Read and validate a config file. Raises ``ConfigError`` (one line per problem) when anything is off."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:  # (at most MAX_CONFIG_BYTES: -c /dev/zero read for ever)
            data = fh.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{p}: larger than {MAX_CONFIG_BYTES // 2**20} MiB: not an edgernn config file")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from None
    return parse_config(text, str(p), base=p.resolve().parent, resolve_secrets=resolve_secrets)


# -- JSON Schema (draft 2020-12) of the whole file, derived from the declarations above ---------------
def _object(keys, description: str, extra: dict | None = None, required=()) -> dict:
    props = {s.name: s.json_schema() for s in keys}
    props.update(extra or {})
    out = {"type": "object", "description": description, "properties": props, "additionalProperties": False}
    if required:
        out["required"] = list(required)
    return out


def _pipeline_schema() -> dict:
    from .backends import BACKEND_NAMES

    string_map = {"type": "object", "additionalProperties": {"type": "string"}}
    payload = _object(PAYLOAD_KEYS, "how readings are read from a message", {
        "values": {"description": "field paths of several features (a list, or a mapping feature: field path)",
                   "oneOf": [{"type": "array", "items": {"type": "string"}}, string_map]}})
    own = [s if s.name != "backend" else replace(s, choices=BACKEND_NAMES) for s in PIPELINE_KEYS]
    extra = {"payload": payload,
             "alerts": _object(ALERT_KEYS, "the alert state machine (k of n to raise, hysteresis to clear)"),
             "max_streams": replace(schema.BY_KEY["max_streams"], default=None,
                                    optional="limits.max_streams").json_schema()}
    extra["name"] = {**own[0].json_schema(), "pattern": _NAME_PATTERN}
    return _object((*own[1:], *DETECTOR_KEYS), "one topic filter -> one model", extra, PIPELINE_REQUIRED)


def _mqtt_schema() -> dict:
    tls = {"description": "TLS to the broker: true (system CAs) or the files",
           "oneOf": [{"type": "boolean"}, _object(TLS_KEYS, "TLS files (relative: to this config file)")]}
    keys = [s for s in MQTT_KEYS if s.name != "protocol"]
    protocol = {"description": "MQTT protocol version (default: 5)", "default": "5",
                "enum": sorted(set(PROTOCOLS)) + [5, 5.0, 311]}
    host = {**next(s for s in keys if s.name == "host").json_schema(), "pattern": _HOST_PATTERN}
    return _object(keys, "the MQTT broker connection", {"tls": tls, "protocol": protocol, "host": host})


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a daemon config file: types, defaults, enums, ranges."""
    node = {"type": "string", "pattern": _NAME_PATTERN, "description": "node name, a topic level in "
            "edgernn/{node}/... (default: the host name)"}
    props = {"node": node, "mqtt": _mqtt_schema(),
             "topics": _object(TOPICS_KEYS, "topics the daemon publishes to"),
             "state": _object(STATE_KEYS, "per-stream state snapshots"),
             "stats": _object(STATS_KEYS, "the stats topic"),
             "limits": _object(LIMITS_KEYS, "bounds on memory, payloads and batches"),
             "log": _object(LOG_KEYS, "logging"),
             "homeassistant": _object(HOMEASSISTANT_KEYS, "Home Assistant MQTT discovery"),
             "metrics": _object(METRICS_KEYS, "Prometheus /metrics endpoint (section absent: off)"),
             "pipelines": {"type": "array", "minItems": 1, "items": _pipeline_schema(),
                           "description": "each: an MQTT topic filter, how to read its payloads, a model"}}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "edgernn daemon config",
            **_object((), "edgernn serve -c FILE: the daemon's config", props, ("pipelines",))}
