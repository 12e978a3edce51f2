"""TLS for Switchman's two ports and for its client: certificate files, checked when loaded.

:class:`TlsSettings` names a port's files and the flags that gave them
(:class:`TlsFlags`), so that a file that cannot be read or used is a
ConfigError naming the flag the user typed (``--tls-cert`` serves both
ports; ``--xds-tls-cert`` and ``--api-tls-cert`` one each).
:func:`server_context` loads them into an ``ssl.SSLContext`` (TLS 1.2 or
later; mutual TLS with a client CA); :func:`client_context` is the
client's, trusting a CA of the user's as well as the system's.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from switchman.errors import ConfigError

__all__ = [
    "API_FLAGS", "DEFAULT_POLL_SECONDS", "XDS_FLAGS", "TlsFlags", "TlsSettings", "client_context", "read_pem",
    "server_context",
]


@dataclass(frozen=True, slots=True)
class TlsFlags:
    """The flags (or settings) a port's certificate, key and client CA came from, as errors name them."""

    cert: str
    key: str
    client_ca: str


XDS_FLAGS: Final = TlsFlags("--xds-tls-cert", "--xds-tls-key", "--xds-client-ca")
API_FLAGS: Final = TlsFlags("--api-tls-cert", "--api-tls-key", "--api-client-ca")
#: How often, in seconds, a server looks at its certificate files for a rotation (serve --tls-poll-seconds).
DEFAULT_POLL_SECONDS: Final = 2.0


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """A port's certificate and key (PEM files) and, for mutual TLS, the CA that signs clients' certificates.

    ``require_client_cert``: a client without a certificate the CA vouches
    for fails the handshake. Without it (and with a client CA) a client may
    connect without one (h2 xDS transport only); it then has no identity.
    ``flags``: what errors name (the xDS port's flags unless told).
    ``poll_seconds``: how often a running server looks for new files
    (:mod:`switchman.certificates`; 0: only when told, as on SIGHUP).
    """

    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    require_client_cert: bool = True
    flags: TlsFlags = XDS_FLAGS
    poll_seconds: float = DEFAULT_POLL_SECONDS


def read_pem(path: str, flag: str) -> bytes:
    """The bytes of a PEM file; ConfigError naming ``flag`` when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(flag, f"cannot read {path}: {exc.strerror}") from None


def server_context(tls: TlsSettings, alpn: Sequence[str]) -> ssl.SSLContext:
    """A server's SSL context offering ``alpn``; ConfigError naming the flag of a file that does not do."""
    flags = tls.flags
    if tls.require_client_cert and not tls.client_ca_file:
        raise ConfigError(flags.client_ca, "client certificates are required but no client CA is given")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(list(alpn))
    read_pem(tls.cert_file, flags.cert)
    read_pem(tls.key_file, flags.key)
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except ssl.SSLError as exc:
        raise ConfigError(flags.cert, f"{tls.cert_file} and {tls.key_file} ({flags.key}) are not a "
                                      f"PEM certificate and its key: {exc.reason or exc}") from None
    if tls.client_ca_file:
        _trust(context, tls.client_ca_file, flags.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL
    return context


def client_context(ca_file: str | None, flag: str) -> ssl.SSLContext:
    """A client's SSL context: the system's CAs and, if given, ``ca_file``'s; ConfigError naming ``flag``."""
    context = ssl.create_default_context()
    if ca_file:
        _trust(context, ca_file, flag)
    return context


def _trust(context: ssl.SSLContext, ca_file: str, flag: str) -> None:
    read_pem(ca_file, flag)
    try:
        context.load_verify_locations(cafile=ca_file)
    except ssl.SSLError as exc:
        raise ConfigError(flag, f"{ca_file} holds no PEM certificate: {exc.reason or exc}") from None
