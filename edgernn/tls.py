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
    """A client SSLContext (chain and host name verified) for ``tls``; raises TlsFileError."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        if tls.ca:
            ctx.load_verify_locations(cafile=str(tls.ca))
        else:
            ctx.load_default_certs()
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TlsFileError("mqtt.tls.ca", f"cannot use CA file {tls.ca}: {ssl_reason(exc)} "
                           "(expected PEM certificates: -----BEGIN CERTIFICATE-----)") from None
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
            raise TlsFileError("mqtt.tls.key", f"{key} does not belong to the client certificate {cert}: "
                               f"{reason}") from None
        raise TlsFileError("mqtt.tls.cert", f"cannot use client certificate {cert} with key {key}: {reason} "
                           "(expected a PEM certificate and its unencrypted PEM private key)") from None
