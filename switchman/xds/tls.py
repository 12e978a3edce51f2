"""TLS on the xDS port, for either transport: the server's certificate, and mutual TLS when a client CA is given.

:func:`h2_context` is the ``ssl.SSLContext`` of the h2 transport (ALPN
``h2``, as gRPC clients and Envoy's ``http2_protocol_options`` offer);
:func:`grpc_credentials` the same files as grpc.aio's server credentials.
Both check the files first (:func:`switchman.tls.server_context`), so a
file that does not do is a ConfigError naming the flag that gave it.
"""

from __future__ import annotations

import ssl

import grpc

from switchman.errors import ConfigError
from switchman.tls import TlsSettings, read_pem, server_context

__all__ = ["TlsSettings", "grpc_credentials", "h2_context"]


def h2_context(tls: TlsSettings) -> ssl.SSLContext:
    """The SSL context of the h2 transport; ConfigError naming the flag of a file that does not do."""
    context = server_context(tls, ["h2"])
    # RFC 9113 9.2.2: HTTP/2 over TLS 1.2 forbids renegotiation and compression.
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return context


def grpc_credentials(tls: TlsSettings) -> grpc.ServerCredentials:
    """grpc.aio's credentials for the same files; ConfigError naming the flag of a file that does not do.

    grpc.aio either demands a verified client certificate or asks for none:
    it cannot make one optional, so a client CA without ``require_client_cert``
    is refused.
    """
    server_context(tls, ["h2"])  # the files are checked, with errors naming their flags
    if tls.client_ca_file and not tls.require_client_cert:
        raise ConfigError(tls.flags.client_ca, "the grpc transport cannot make client certificates optional: "
                                               "with a client CA every client must present one")
    flags = tls.flags
    return grpc.ssl_server_credentials(
        [(read_pem(tls.key_file, flags.key), read_pem(tls.cert_file, flags.cert))],
        root_certificates=read_pem(tls.client_ca_file, flags.client_ca) if tls.client_ca_file else None,
        require_client_auth=bool(tls.client_ca_file),
    )
