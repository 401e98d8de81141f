"""TLS files for the MQTT connection, loaded once with Python's ``ssl`` (no paho here).

:func:`tls_context` builds the client's ``SSLContext`` from ``mqtt.tls`` (ca, cert, key,
insecure) and turns every problem with the files into :class:`TlsFileError`: one line naming the
config key and the file, with OpenSSL's reason (without its source location). A file that is not
PEM, a key that does not belong to its certificate, or a passphrase-protected key is a permanent
configuration error: ``serve`` exits 2 and says so. Config checking can call the same function.
"""

from __future__ import annotations

import re
import ssl


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
    return ctx


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
