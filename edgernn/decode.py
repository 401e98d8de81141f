"""(topic, payload) -> readings or a Reject. Never raises.

Payload formats (``payload.format`` of a pipeline):

- ``number``: the payload is one number (``21.5``); the timestamp is the time of receipt.
- ``json``: an object ``{"ts": 1700000000.5, "value": 21.5}`` with field paths (``data.temp``,
  ``readings.0.v``) for the value (``value``), several features (``values``: feature -> path, for
  multivariate models) and the timestamp; a JSON array of such objects (batched telemetry), or an
  object holding that array under ``readings``. A bare JSON number is accepted for one-feature
  models. Timestamps: epoch s / ms / us / ns (``auto`` tells them apart by size) or ISO 8601.

Stream ids come from a template: ``{1}``, ``{2}`` ... are the topic levels matched by the
subscription's wildcards (1-based, ``#`` captures the rest of the topic), ``{topic}`` the whole
topic, ``{pipeline}`` the pipeline name, and any other ``{name}`` a field path of the reading.

The daemon uses :meth:`Decoder.decode_into` (appends ``(stream, ts, values)`` tuples to a list,
returns None or a reject reason); :meth:`Decoder.decode` is the readable form for tests and tools.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from dataclasses import dataclass

from .readings import Reading
from .timestamps import number_to_seconds as _to_seconds
from .timestamps import duration_text, parse_iso, utc_text

# The standard library's json: orjson would be ~10x faster but rejects NaN / Infinity / bad UTF-8
# with other reasons, and reject reasons are part of what we promise (stats, tests).
_loads = json.loads
_JSON_ERRORS: tuple = (ValueError, RecursionError, TypeError)
_scan_once = json.JSONDecoder().scan_once  # the C scanner json.loads uses, without its Python wrapping
_ws_end = re.compile(r"[ \t\n\r]*").match  # json's own definition of whitespace


def _loads_fast(payload):
    """``json.loads(payload)`` for the common case, ~2.5x cheaper (1 us instead of 2.6 us a message).

    json.loads on bytes first guesses the encoding (UTF-8/16/32, BOM), decodes with surrogatepass,
    then runs the same C scanner and checks for trailing data. Here: a payload that starts with
    ``{`` or ``[`` followed by a non-NUL byte is UTF-8 for json.loads too; it is decoded strictly and
    scanned directly. Anything else (other encodings, surrogates, bad or trailing data, non-bytes)
    goes to json.loads itself, so results and errors are exactly those of json.loads.
    """
    try:
        c = payload[0]
        if (c == 123 or c == 91) and (len(payload) < 2 or payload[1]):
            s = payload.decode()
            obj, end = _scan_once(s, 0)
            if end == len(s) or _ws_end(s, end).end() == len(s):
                return obj
    except Exception:  # noqa: BLE001 - the slow path below gives the canonical result or error
        pass
    return _loads(payload)

REASONS = ("too_large", "empty", "not_utf8", "not_json", "not_a_number", "wrong_type", "missing_field",
           "non_finite", "bad_timestamp", "too_many_readings", "bad_stream", "topic_mismatch")
_MISSING = object()
_MAX_STREAM_LEN = 256
_TOPIC_CACHE_MAX = 65_536
_TOPIC_CACHE_CHARS = 4_000_000  # and at most this much topic text: a topic may be 65,535 bytes long
# What a stream id (a level of our alert / state topics) cannot hold: + and #, and every code point
# mosquitto refuses in a topic as malformed UTF-8 (it closes the connection of the client that
# sends one): U+0000, controls, surrogates and non-characters. MQTT 5 section 1.5.4.
_NONCHARACTERS = "".join(chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF) for plane in range(17))
_MALFORMED = f"\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef{_NONCHARACTERS}"
TOPIC_MALFORMED = re.compile(f"[{_MALFORMED}]")  # in any topic or filter (config.py checks the configured ones)
TOPIC_UNSAFE = re.compile(f"[+#{_MALFORMED}]")  # in a topic name we publish to


def topic_safe(s: str) -> bool:
    """Whether ``s`` can be (part of) an MQTT topic name; ASCII text (nearly every id) without the regex."""
    if s.isascii():  # not printable: U+0000 to U+001F and U+007F
        return s.isprintable() and "+" not in s and "#" not in s
    return TOPIC_UNSAFE.search(s) is None


def stream_id_problem(s: str) -> str | None:
    """What makes ``s`` no stream id (it is a level of our alert and state topics), or None: the
    decoder's rule, and a restored snapshot's (state.py)."""
    if s and len(s) <= _MAX_STREAM_LEN and topic_safe(s):
        return None
    if not s:
        return "is empty"
    if len(s) > _MAX_STREAM_LEN:
        return f"is longer than {_MAX_STREAM_LEN} characters"
    return f"holds {TOPIC_UNSAFE.search(s).group()!r}, which MQTT topic names cannot hold"


@dataclass(frozen=True)
class Reject:
    reason: str  # one of REASONS
    detail: str = ""


def _path(dotted: str) -> tuple[str, ...]:
    return tuple(p for p in dotted.split(".") if p)


def _get(obj, parts: tuple[str, ...]):
    for part in parts:
        if isinstance(obj, dict):
            obj = obj.get(part, _MISSING)
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return _MISSING
        if obj is _MISSING:
            return _MISSING
    return obj


class _BadReading(Exception):
    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail


def _number(v, what: str) -> float:
    if v is _MISSING or v is None:
        raise _BadReading("missing_field", f"{what} missing")
    if type(v) is float:
        f = v
    elif type(v) is int:
        try:
            f = float(v)
        except OverflowError:
            raise _BadReading("non_finite", f"{what} is too large") from None
    else:
        raise _BadReading("wrong_type", f"{what} is {type(v).__name__}, expected a number")
    if not math.isfinite(f):
        raise _BadReading("non_finite", f"{what} is {f}")
    return f


def _future(t: float, now: float, limit: float) -> str:
    """Why timestamp ``t`` is refused as ahead of the wall clock ``now`` (limits.max_future_s ``limit``):
    a device with no RTC (a Raspberry Pi) reads 1970 or its last shutdown until NTP sets its clock."""
    ahead = duration_text(t - now) if t - now < 1e12 else f"{t - now:.3g} s"
    return (f"timestamp {t:.12g} is {ahead} ahead of this device's clock ("
            f"{utc_text(now)}; limits.max_future_s {limit:g}): "
            "is the clock set? (timedatectl status)")


class Decoder:
    """Decodes the messages of one pipeline for a model with ``features``."""

    def __init__(self, pipeline, features: tuple[str, ...], limits, *, clock=time.time):
        self.pipeline = pipeline
        self.features = tuple(features)
        self.F = len(self.features)
        self.clock = clock
        p = pipeline.payload
        self.number = p.format == "number"
        if self.number and self.F != 1:
            raise ValueError(f"pipeline {pipeline.name}: a plain number payload needs a one-feature model, "
                             f"this model has {self.F} ({', '.join(self.features)})")
        if p.values:
            names = [f for f, _ in p.values]
            if sorted(names) != sorted(self.features):
                raise ValueError(f"payload.values names {', '.join(names)} but the model's features are "
                                 f"{', '.join(self.features)}")
            mapping = dict(p.values)
            self.value_paths = tuple(_path(mapping[f]) for f in self.features)
        elif self.F == 1:
            self.value_paths = (_path(p.value or "value"),)
        else:
            if p.value:
                raise ValueError(f"payload.value is for one-feature models; this model has {self.F} features: "
                                 f"use payload.values ({', '.join(self.features)})")
            self.value_paths = tuple(_path(f) for f in self.features)
        self.value_names = tuple(".".join(vp) for vp in self.value_paths)
        self.ts_path = _path(p.timestamp) if p.timestamp else None
        self.ts_unit = p.timestamp_unit
        self.readings_path = _path(p.readings) if p.readings else None
        self.max_bytes = limits.max_payload_bytes
        self.max_readings = limits.max_readings_per_message
        self.max_future = limits.max_future_s
        self._compile_topic(pipeline.subscribe, pipeline.stream)
        self._cache: dict[str | bytes, str | Reject] = {}  # topic (str, or paho's raw bytes) -> stream id
        self._cache_chars = 0  # the length of the topics in _cache, together
        # decode_into's fast path: a JSON object with one top-level value field and a top-level (or
        # no) timestamp field, stream ids from the topic alone
        self._flat = (not self.number and self.F == 1 and len(self.value_paths[0]) == 1 and not self.per_reading
                      and self.readings_path is None and (self.ts_path is None or len(self.ts_path) == 1))
        self._flat_value = self.value_paths[0][0] if self._flat else None
        self._flat_ts = self.ts_path[0] if self._flat and self.ts_path is not None else None

    # -- stream ids ------------------------------------------------------------------------
    def _compile_topic(self, filt: str, template: str) -> None:
        self.filter_levels = filt.split("/")
        self.wild = [i for i, lv in enumerate(self.filter_levels) if lv in ("+", "#")]
        self.multi = bool(self.filter_levels) and self.filter_levels[-1] == "#"
        parts: list[tuple[str, object]] = []  # (kind, arg): lit / cap / topic / pipeline / field
        pos = 0
        for m in re.finditer(r"\{([^{}]*)\}", template):
            if m.start() > pos:
                parts.append(("lit", template[pos:m.start()]))
            tok = m.group(1)
            if tok.isdigit():
                parts.append(("cap", int(tok) - 1))
            elif tok in ("topic", "pipeline"):
                parts.append((tok, None))
            else:
                parts.append(("field", _path(tok)))
            pos = m.end()
        if pos < len(template):
            parts.append(("lit", template[pos:]))
        self.template_parts = parts
        self.per_reading = any(k == "field" for k, _ in parts)

    def _captures(self, topic: str) -> list[str] | None:
        levels = topic.split("/")
        fl = self.filter_levels
        if self.multi:
            if len(levels) < len(fl) - 1:
                return None
        elif len(levels) != len(fl):
            return None
        caps = []
        for i, lv in enumerate(fl):
            if lv == "#":
                caps.append("/".join(levels[i:]))
                break
            if lv == "+":
                caps.append(levels[i])
            elif levels[i] != lv:
                return None
        return caps

    def _stream(self, topic: str, caps: list[str], item) -> str:
        out = []
        for kind, arg in self.template_parts:
            if kind == "lit":
                out.append(arg)
            elif kind == "cap":
                out.append(caps[arg])
            elif kind == "topic":
                out.append(topic)
            elif kind == "pipeline":
                out.append(self.pipeline.name)
            else:
                v = _get(item, arg) if item is not None else _MISSING
                if v is _MISSING or v is None:
                    raise _BadReading("missing_field", f"stream field {'.'.join(arg)} missing")
                if not isinstance(v, (str, int)) or isinstance(v, bool):
                    raise _BadReading("wrong_type", f"stream field {'.'.join(arg)} is {type(v).__name__}")
                out.append(str(v))
        s = "".join(out)
        problem = stream_id_problem(s)
        if problem:
            raise _BadReading("bad_stream", f"stream id {s[:40]!r} {problem}")
        return s

    def _topic_stream(self, topic):
        """Stream id for topics whose template needs no payload field (cached), or a Reject.

        ``topic`` may be the raw UTF-8 bytes (paho's ``msg._topic``): cached under those bytes, so
        that a known topic is not decoded again.
        """
        s = self._cache.get(topic)
        if s is None:
            key = topic
            if topic.__class__ is not str:
                topic = bytes(topic).decode("utf-8")
            caps = self._captures(topic)
            if caps is None:
                s = Reject("topic_mismatch", f"{topic[:80]!r} does not match {self.pipeline.subscribe!r}")
            else:
                try:
                    s = self._stream(topic, caps, None)
                except _BadReading as exc:
                    s = Reject(exc.reason, exc.detail)
            if len(self._cache) >= _TOPIC_CACHE_MAX or self._cache_chars >= _TOPIC_CACHE_CHARS:
                self._cache.clear()
                self._cache_chars = 0
            self._cache[key] = s
            self._cache_chars += len(key)
        return s

    # -- timestamps ------------------------------------------------------------------------
    def _ts(self, item, now: float) -> float:
        if self.ts_path is None:
            return now
        v = _get(item, self.ts_path)
        if v is _MISSING or v is None:
            raise _BadReading("missing_field", f"timestamp {'.'.join(self.ts_path)} missing")
        unit = self.ts_unit
        if isinstance(v, str):
            try:
                t = parse_iso(v)
            except ValueError:
                raise _BadReading("bad_timestamp", f"timestamp {v[:40]!r} is not ISO 8601") from None
        elif type(v) is float or type(v) is int:
            try:
                t = float(v)
            except OverflowError:
                raise _BadReading("bad_timestamp", "timestamp is too large") from None
            if not math.isfinite(t):
                raise _BadReading("bad_timestamp", f"timestamp is {t}")
            if unit == "iso":
                raise _BadReading("bad_timestamp", "timestamp is a number, expected ISO 8601 text")
            t = _to_seconds(t, unit)
        else:
            raise _BadReading("wrong_type", f"timestamp is {type(v).__name__}")
        if self.max_future and t > now + self.max_future:  # %.0f of 1e308 would be 309 digits
            raise _BadReading("bad_timestamp", _future(t, now, self.max_future))
        return t

    # -- decoding ------------------------------------------------------------------------------
    def _reading(self, topic: str, stream, caps, item, now: float, out: list) -> None:
        if isinstance(item, dict):
            if self.F == 1:
                values = (_number(_get(item, self.value_paths[0]), self.value_names[0]),)
            else:
                values = tuple(_number(_get(item, vp), name) for vp, name in zip(self.value_paths, self.value_names))
            ts = self._ts(item, now)
        elif (type(item) is float or type(item) is int) and self.F == 1 and self.ts_path is None:
            values, ts = (_number(item, "value"),), now
        else:
            raise _BadReading("wrong_type", f"reading is {type(item).__name__}, expected an object")
        if stream is None:
            stream = self._stream(topic, caps, item)
        out.append((stream, ts, values))

    def decode_into(self, topic: str | bytes, payload: bytes, now: float | None, out: list) -> str | None:
        """Append ``(stream, ts, values)`` tuples to ``out``; return None or a reject reason.

        A message is all or nothing: when one reading of a batched payload is bad, none is kept.
        ``topic`` may also be the topic's raw UTF-8 bytes (as paho receives it).

        Fast path (``_flat`` pipelines: ``{"ts": .., "value": ..}`` with stream ids from the topic):
        a JSON object whose value is a finite number and whose timestamp is a finite number in range
        is appended here directly; anything else, including every reject, takes the general path,
        which gives the same readings and the same reasons (tests compare the two).
        """
        if self._flat and now is not None:
            try:
                reading = self._flat_reading(topic, payload, now)
            except Exception:  # noqa: BLE001 - the general path below gives the canonical result
                reading = None
            if reading is not None:
                out.append(reading)
                return None
        reason, self.reject_detail = self._decode(topic, payload, now, out)  # detail: for the daemon's log
        return reason

    def _flat_reading(self, topic, payload, now: float):
        """The fast path's ``(stream, ts, values)``, or None: let the general path decide."""
        if not 0 < len(payload) <= self.max_bytes:
            return None
        stream = self._cache.get(topic)
        if stream.__class__ is not str:
            return None
        obj = _loads_fast(payload)
        if obj.__class__ is not dict:
            return None
        v = obj.get(self._flat_value)
        if not (v.__class__ is float or v.__class__ is int):
            return None
        v = float(v)
        if v - v != 0.0:  # not finite
            return None
        if self._flat_ts is None:
            return stream, now, (v,)
        t = obj.get(self._flat_ts)
        if not (t.__class__ is float or t.__class__ is int) or self.ts_unit == "iso":
            return None
        t = float(t)
        if t - t != 0.0:  # not finite
            return None
        t = _to_seconds(t, self.ts_unit)
        if self.max_future and t > now + self.max_future:
            return None
        return stream, t, (v,)

    def _decode(self, topic, payload, now, out) -> tuple[str | None, str]:
        try:
            if now is None:
                now = self.clock()
            n = len(payload)
            if n > self.max_bytes:
                return "too_large", f"{n} bytes > limits.max_payload_bytes {self.max_bytes}"
            if n == 0:
                return "empty", "empty payload"
            if self.per_reading:
                if topic.__class__ is not str:
                    topic = bytes(topic).decode("utf-8")
                stream, caps = None, self._captures(topic)
                if caps is None:
                    return "topic_mismatch", f"{topic[:80]!r} does not match {self.pipeline.subscribe!r}"
            else:
                stream, caps = self._topic_stream(topic), None
                if stream.__class__ is Reject:
                    return stream.reason, stream.detail
            if self.number:
                try:
                    v = float(payload)
                except (ValueError, TypeError):
                    return "not_a_number", f"payload {bytes(payload[:24])!r} is not a number"
                if not math.isfinite(v):
                    return "non_finite", f"value is {v}"
                out.append((stream, now, (v,)))
                return None, ""
            try:
                obj = _loads_fast(payload)
            except UnicodeDecodeError:
                return "not_utf8", "payload is not UTF-8 text"
            except _JSON_ERRORS as exc:
                if "integer string conversion" in str(exc):  # more digits than int() converts: as huge as 1e999
                    return "non_finite", f"a number has more than {sys.get_int_max_str_digits()} digits"
                return "not_json", f"not JSON ({str(exc)[:60]})"
            if isinstance(obj, dict) and self.readings_path is not None:
                obj = _get(obj, self.readings_path)
                if obj is _MISSING:
                    return "missing_field", f"readings array {'.'.join(self.readings_path)} missing"
                if not isinstance(obj, list):
                    return "wrong_type", "readings is not an array"
            if isinstance(obj, list):
                if len(obj) > self.max_readings:
                    return "too_many_readings", f"{len(obj)} readings > limits.max_readings_per_message"
                if not obj:
                    return "empty", "empty array"
                start = len(out)
                try:
                    for item in obj:
                        self._reading(topic, stream, caps, item, now, out)
                except _BadReading:
                    del out[start:]
                    raise
            else:
                self._reading(topic, stream, caps, obj, now, out)
            return None, ""
        except _BadReading as exc:
            return exc.reason, exc.detail
        except Exception as exc:  # never raise into the network thread  # noqa: BLE001
            return "wrong_type", f"undecodable ({type(exc).__name__}: {str(exc)[:60]})"

    def decode(self, topic: str, payload: bytes | str, now: float | None = None) -> list[Reading] | Reject:
        """Readable form: a list of Readings, or a Reject with a reason and a detail."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        out: list = []
        reason, detail = self._decode(topic, payload, now, out)
        if reason is not None:
            return Reject(reason, detail)
        return [Reading(s, t, v) for s, t, v in out]
