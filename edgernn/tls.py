"""TLS files for the MQTT connection, loaded once with Python's ``ssl`` (no paho here).

:func:`tls_context` builds the client's ``SSLContext`` from ``mqtt.tls`` (ca, cert, key,
insecure) and turns every problem with the files into :class:`TlsFileError`: one line naming the
config key and the file, with OpenSSL's reason (without its source location). A file that is not
PEM, a key that does not belong to its certificate, or a passphrase-protected key is a permanent
configuration error: ``serve`` exits 2 and says so. Config checking can call the same function.

With TLS 1.3 the broker checks the client certificate after the handshake has completed on our
side: when it refuses it (expired, signed by a CA it does not trust, none sent) its alert arrives
on paho's first read, where paho closes and retries without a word (no connect failure, no
disconnect from a session). The context's sockets (:class:`_BrokerSocket`) log such an alert:
the first of each reason at once, then at most once a minute, as failed connects are; and
:func:`broker_refusal` gives it for the daemon's STATUS line.
"""

from __future__ import annotations

import logging
import re
import ssl

from .logs import Throttle

log = logging.getLogger("edgernn.mqtt")
# the broker's TLS alert since the last handshake (see _BrokerSocket); each reason logged once a minute
_refusal: dict = {"text": None, "log": Throttle(60.0)}


class TlsFileError(ValueError):
    """A TLS file cannot be used; ``key`` is the config key at fault (mqtt.tls.ca / cert / key)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


class _Encrypted(Exception):
    pass


def _no_passphrase():
    raise _Encrypted  # never prompt on a terminal for a key's passphrase


def ssl_reason(exc: BaseException) -> str:
    """An ssl / OS error as one readable line, without OpenSSL's source location."""
    text = None if isinstance(exc, ssl.SSLError) else getattr(exc, "strerror", None)
    text = text or str(exc) or type(exc).__name__
    return re.sub(r"\s*\(_ssl\.c:\d+\)", "", text)


def tls_context(tls) -> ssl.SSLContext:
    """A client SSLContext (chain and host name verified) for ``tls``; raises TlsFileError.
    The one place TLS files are loaded: config checking and the MQTT client both call it."""
    for key in ("ca", "cert", "key"):
        path = getattr(tls, key)
        try:
            if path:
                open(path, "rb").close()
        except OSError as exc:
            raise TlsFileError(f"mqtt.tls.{key}", f"cannot read {path}: {exc.strerror}") from None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for key in ("ca", "cert"):  # a client certificate file must hold a certificate too
        path = getattr(tls, key)
        try:
            if path:
                (ctx if key == "ca" else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)).load_verify_locations(cafile=str(path))
        except (ssl.SSLError, ValueError) as exc:
            raise TlsFileError(f"mqtt.tls.{key}", f"{path}: not a PEM certificate ({ssl_reason(exc)}; expected "
                               "-----BEGIN CERTIFICATE-----)") from None
    if not tls.ca:
        ctx.load_default_certs()
    if tls.cert:
        _load_client_cert(ctx, str(tls.cert), str(tls.key) if tls.key else None)
    if tls.insecure:
        ctx.check_hostname = False  # the chain is still verified
    ctx.sslsocket_class = _BrokerSocket
    return ctx


def broker_refusal() -> str | None:
    """The broker's last TLS alert after a handshake, as logged (None: none since the last handshake)."""
    return _refusal["text"]


class _BrokerSocket(ssl.SSLSocket):
    """paho's TLS socket: notes a TLS alert from the broker (see the module doc)."""

    def do_handshake(self, *args):
        _refusal["text"] = None
        return super().do_handshake(*args)

    def recv(self, buflen=1024, flags=0):
        try:
            return super().recv(buflen, flags)
        except ssl.SSLError as exc:
            if "ALERT" in str(getattr(exc, "reason", "") or ""):  # not SSLWantRead / an unclean EOF
                _note_refusal(self.server_hostname, exc)
            raise


def _note_refusal(host: str | None, exc: ssl.SSLError) -> None:
    reason = ssl_reason(exc)
    text = (f"MQTT broker {host} refused the TLS connection after the handshake: {reason} - check the client "
            "certificate, mqtt.tls.cert and key (expired? signed by a CA the broker trusts? none given?); retrying "
            "with backoff")
    if _refusal["log"].due(text):  # a new reason at once, else once a minute
        log.warning("%s", text)
    else:
        log.debug("%s", text)
    _refusal["text"] = text


def _load_client_cert(ctx: ssl.SSLContext, cert: str, key: str | None) -> None:
    try:
        ctx.load_cert_chain(cert, key, password=_no_passphrase)
    except _Encrypted:
        raise TlsFileError("mqtt.tls.key", f"{key}: the private key is encrypted (passphrase-protected); give an "
                           "unencrypted key readable only by the service user") from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = ssl_reason(exc)
        if "KEY_VALUES_MISMATCH" in reason.upper():
            raise TlsFileError("mqtt.tls.key", f"{key} does not match the client certificate {cert}") from None
        raise TlsFileError("mqtt.tls.key", f"{key}: not a PEM private key ({reason})") from None
