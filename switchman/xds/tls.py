"""TLS on the xDS port, for either transport: the server's certificate, and mutual TLS when a client CA is given.

:func:`xds_certificates` loads the port's files
(:class:`~switchman.certificates.ServerCertificates`, re-read when they
change): the h2 transport serves its ``ssl.SSLContext`` (ALPN ``h2``, as
gRPC clients and Envoy's ``http2_protocol_options`` offer), and
:func:`grpc_credentials` gives the same files to grpc.aio. New connections
get the newest certificate
(the h2 transport from its context's SNI callback, grpc.aio from its
certificate-configuration fetcher, which grpc calls before each handshake).
A file that does not do is a ConfigError naming the flag that gave it.
"""

from __future__ import annotations

import ssl
import threading

import grpc

from switchman.certificates import Loaded, ServerCertificates
from switchman.errors import ConfigError
from switchman.tls import TlsSettings

__all__ = ["TlsSettings", "grpc_credentials", "xds_certificates"]

#: RFC 9113 9.2.2: HTTP/2 over TLS 1.2 forbids renegotiation and compression.
_H2_OPTIONS = ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION


def xds_certificates(tls: TlsSettings) -> ServerCertificates:
    """The xDS port's certificates, re-read when they change; ConfigError naming the flag of a file that does not
    do."""
    return ServerCertificates(tls, ["h2"], "xDS port", options=_H2_OPTIONS)


def _configuration(loaded: Loaded) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration([(loaded.key, loaded.cert)], root_certificates=loaded.client_ca)


def grpc_credentials(certificates: ServerCertificates) -> grpc.ServerCredentials:
    """grpc.aio's credentials serving ``certificates``, the newest to each new connection.

    grpc.aio either demands a verified client certificate or asks for none:
    it cannot make one optional, so a client CA without ``require_client_cert``
    is refused (ConfigError).
    """
    tls = certificates.tls
    if tls.client_ca_file and not tls.require_client_cert:
        raise ConfigError(tls.flags.client_ca, "the grpc transport cannot make client certificates optional: "
                                               "with a client CA every client must present one")
    given = certificates.current
    lock = threading.Lock()  # grpc calls the fetcher from its own threads

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        """A new configuration when the certificates were rotated since the last one grpc was given, else None."""
        nonlocal given
        with lock:
            loaded = certificates.current
            if loaded is given:
                return None
            given = loaded
        return _configuration(loaded)

    return grpc.dynamic_ssl_server_credentials(
        _configuration(given), fetch, require_client_authentication=bool(tls.client_ca_file),
    )
