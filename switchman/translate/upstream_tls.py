"""An upstream's ``tls`` -> the cluster's transport socket (``UpstreamTlsContext``).

Certificates come from files or from Switchman's SDS over the same ADS
stream; a CA and the subject alt names to match are one validation context,
or, with ``caSecret``, a combined one: the CA from SDS, the names from here.
ALPN follows the protocol: ``h2`` for HTTP/2 and gRPC (gRPC servers refuse
TLS without it), both for AUTO.
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2

from switchman.model.kinds.upstream_tls import UpstreamTls
from switchman.translate.common import ads, packed

__all__ = ["transport_socket"]

_SAN_TYPES = {
    "dns": common_pb2.SubjectAltNameMatcher.DNS,
    "uri": common_pb2.SubjectAltNameMatcher.URI,
    "ip": common_pb2.SubjectAltNameMatcher.IP_ADDRESS,
    "email": common_pb2.SubjectAltNameMatcher.EMAIL,
}
_ALPN = {"HTTP1": ["http/1.1"], "HTTP2": ["h2"], "GRPC": ["h2"], "AUTO": ["h2", "http/1.1"]}


def _validation(tls: UpstreamTls) -> common_pb2.CertificateValidationContext:
    out = common_pb2.CertificateValidationContext(
        match_typed_subject_alt_names=[
            common_pb2.SubjectAltNameMatcher(san_type=_SAN_TYPES[san.kind], matcher=string_pb2.StringMatcher(
                exact=san.value))
            for san in tls.subject_alt_names
        ]
    )
    if tls.ca_file is not None:
        out.trusted_ca.filename = tls.ca_file
    return out


def _common(tls: UpstreamTls, protocol: str) -> tls_pb2.CommonTlsContext:
    out = tls_pb2.CommonTlsContext(alpn_protocols=_ALPN[protocol])
    if tls.secret is not None:
        out.tls_certificate_sds_secret_configs.add(name=tls.secret).sds_config.CopyFrom(ads())
    elif tls.cert_file is not None:
        out.tls_certificates.add(
            certificate_chain=base_pb2.DataSource(filename=tls.cert_file),
            private_key=base_pb2.DataSource(filename=tls.key_file or ""),
        )
    if tls.ca_secret is not None:
        combined = out.combined_validation_context
        combined.default_validation_context.CopyFrom(_validation(tls))
        combined.validation_context_sds_secret_config.name = tls.ca_secret
        combined.validation_context_sds_secret_config.sds_config.CopyFrom(ads())
    elif tls.ca_file is not None:
        out.validation_context.CopyFrom(_validation(tls))
    return out


def transport_socket(tls: UpstreamTls, protocol: str) -> base_pb2.TransportSocket:
    context = tls_pb2.UpstreamTlsContext(common_tls_context=_common(tls, protocol), sni=tls.sni or "")
    return base_pb2.TransportSocket(name="envoy.transport_sockets.tls", typed_config=packed(context))
