"""A tiny MQTT 3.1.1 broker in pure Python (threads), so that ``edgernn demo`` runs anywhere.

Enough for a demo on localhost: CONNECT (with last will), PUBLISH QoS 0/1, SUBSCRIBE with + and #
wildcards, retained messages, PINGREQ, DISCONNECT. No persistence, no sessions, no QoS 2, no auth,
no redelivery. Use mosquitto for anything real.
"""

from __future__ import annotations

import socket
import struct
import threading


def topic_matches(filt: str, topic: str) -> bool:
    f, t = filt.split("/"), topic.split("/")
    for i, part in enumerate(f):
        if part == "#":
            return not (i == 0 and topic.startswith("$"))
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
        if part == "+" and i == 0 and topic.startswith("$"):
            return False
    return len(f) == len(t)


def _utf8(buf: bytes, pos: int) -> tuple[str, int]:
    n = struct.unpack_from("!H", buf, pos)[0]
    return buf[pos + 2:pos + 2 + n].decode("utf-8"), pos + 2 + n


def _blob(buf: bytes, pos: int) -> tuple[bytes, int]:
    n = struct.unpack_from("!H", buf, pos)[0]
    return buf[pos + 2:pos + 2 + n], pos + 2 + n


def _packet(first: int, body: bytes) -> bytes:
    n, out = len(body), bytearray([first])
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            break
    return bytes(out) + body


def _str(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("!H", len(b)) + b


class _Client:
    def __init__(self, broker: "MiniBroker", sock: socket.socket):
        self.broker, self.sock = broker, sock
        self.lock = threading.Lock()
        self.subs: dict[str, int] = {}
        self.will: tuple[str, bytes, int, bool] | None = None
        self.mid = 0

    def send(self, data: bytes) -> None:
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError:
                pass

    def deliver(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        first = 0x30 | (qos << 1) | (1 if retain else 0)
        body = _str(topic)
        if qos:
            with self.lock:
                self.mid = self.mid % 65535 + 1
                mid = self.mid
            body += struct.pack("!H", mid)
        self.send(_packet(first, body + payload))

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError
            buf += chunk
        return buf

    def serve(self) -> None:
        clean = False
        try:
            while True:
                first = self._read(1)[0]
                mult, length = 1, 0
                while True:
                    b = self._read(1)[0]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    if not b & 0x80:
                        break
                body = self._read(length) if length else b""
                kind = first >> 4
                if kind == 1:  # CONNECT
                    _name, pos = _utf8(body, 0)
                    flags = body[pos + 1]
                    pos += 4
                    _cid, pos = _utf8(body, pos)
                    if flags & 0x04:
                        wt, pos = _utf8(body, pos)
                        wm, pos = _blob(body, pos)
                        self.will = (wt, wm, (flags >> 3) & 3, bool(flags & 0x20))
                    self.send(b"\x20\x02\x00\x00")
                elif kind == 3:  # PUBLISH
                    qos = (first >> 1) & 3
                    topic, pos = _utf8(body, 0)
                    if qos:
                        self.send(b"\x40\x02" + body[pos:pos + 2])
                        pos += 2
                    self.broker.publish(topic, body[pos:], qos, bool(first & 1))
                elif kind == 8:  # SUBSCRIBE
                    mid, pos, granted = body[:2], 2, bytearray()
                    new = []
                    while pos < len(body):
                        filt, pos = _utf8(body, pos)
                        q = min(body[pos], 1)
                        pos += 1
                        self.subs[filt] = q
                        granted.append(q)
                        new.append((filt, q))
                    self.send(_packet(0x90, mid + bytes(granted)))
                    for filt, q in new:
                        self.broker.send_retained(self, filt, q)
                elif kind == 10:  # UNSUBSCRIBE
                    pos = 2
                    while pos < len(body):
                        filt, pos = _utf8(body, pos)
                        self.subs.pop(filt, None)
                    self.send(_packet(0xB0, body[:2]))
                elif kind == 12:  # PINGREQ
                    self.send(b"\xd0\x00")
                elif kind == 14:  # DISCONNECT
                    clean = True
                    return
        except (OSError, ConnectionError, IndexError, struct.error, UnicodeDecodeError):
            pass
        finally:
            self.broker.drop(self)
            try:
                self.sock.close()
            except OSError:
                pass
            if not clean and self.will:
                self.broker.publish(*self.will)


class MiniBroker:
    def __init__(self, host: str = "127.0.0.1", port: int = 1883):
        self.host, self.port = host, port
        self.clients: list[_Client] = []
        self.retained: dict[str, tuple[bytes, int]] = {}
        self.lock = threading.Lock()
        self._server: socket.socket | None = None

    def start(self) -> "MiniBroker":
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((self.host, self.port))
        srv.listen(64)
        self._server = srv
        threading.Thread(target=self._accept, name="minibroker", daemon=True).start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = _Client(self, sock)
            with self.lock:
                self.clients.append(c)
            threading.Thread(target=c.serve, name="minibroker-client", daemon=True).start()

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        with self.lock:
            if retain:
                if payload:
                    self.retained[topic] = (payload, qos)
                else:
                    self.retained.pop(topic, None)
            targets = [(c, max(q for f, q in c.subs.items() if topic_matches(f, topic)))
                       for c in self.clients if any(topic_matches(f, topic) for f in c.subs)]
        for c, q in targets:
            c.deliver(topic, payload, min(qos, q), False)

    def send_retained(self, client: _Client, filt: str, q: int) -> None:
        with self.lock:
            items = [(t, p, pq) for t, (p, pq) in self.retained.items() if topic_matches(filt, t)]
        for t, p, pq in items:
            client.deliver(t, p, min(pq, q), True)

    def drop(self, client: _Client) -> None:
        with self.lock:
            if client in self.clients:
                self.clients.remove(client)

    def stop(self) -> None:
        if self._server:
            self._server.close()
        with self.lock:
            clients = list(self.clients)
        for c in clients:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
