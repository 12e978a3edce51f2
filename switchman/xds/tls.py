"""TLS on the xDS port: the server's certificate, and mutual TLS when a client CA is given.

:class:`TlsSettings` names files; :func:`server_context` loads them into an
``ssl.SSLContext`` for the h2 transport (TLS 1.2 or later, ALPN ``h2``, as
gRPC clients and Envoy's ``http2_protocol_options`` offer). A file that
cannot be read or used is a ConfigError naming the flag that gave it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from switchman.errors import ConfigError

__all__ = ["TlsSettings", "server_context"]


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """The xDS port's certificate and key (PEM files) and, for mutual TLS, the CA that signs clients' certificates.

    ``require_client_cert``: a client without a certificate the CA vouches
    for fails the handshake. Without it (and with a client CA) a client may
    connect without one; it then has no identity (no secrets, and no node
    group when ``XdsSettings.node_identities`` is set).
    """

    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    require_client_cert: bool = True


def server_context(tls: TlsSettings) -> ssl.SSLContext:
    """The SSL context for the h2 transport; ConfigError naming the flag of a file that does not do."""
    if tls.require_client_cert and not tls.client_ca_file:
        raise ConfigError("--xds-client-ca", "client certificates are required but no client CA is given")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2"])
    # RFC 9113 9.2.2: HTTP/2 over TLS 1.2 forbids renegotiation and compression.
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    _readable(tls.cert_file, "--xds-tls-cert")
    _readable(tls.key_file, "--xds-tls-key")
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except ssl.SSLError as exc:
        raise ConfigError("--xds-tls-cert", f"{tls.cert_file} and {tls.key_file} ({'--xds-tls-key'}) are not a "
                                            f"PEM certificate and its key: {exc.reason or exc}") from None
    if tls.client_ca_file:
        _readable(tls.client_ca_file, "--xds-client-ca")
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except ssl.SSLError as exc:
            raise ConfigError("--xds-client-ca", f"{tls.client_ca_file} holds no PEM certificate: "
                                                 f"{exc.reason or exc}") from None
        context.verify_mode = ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL
    return context


def _readable(path: str, flag: str) -> None:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise ConfigError(flag, f"cannot read {path}: {exc.strerror}") from None
