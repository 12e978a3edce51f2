"""Upstream protocols and TLS, and listener tracing and request ids, as Envoy resources."""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.trace.v3 import opentelemetry_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as http_opts

from switchman.xds import resources as rt
from tests.unit.model.docs import cluster as cluster_doc
from tests.unit.model.docs import envoy_resource, routes
from tests.unit.model.docs import listener as listener_doc
from tests.unit.translate.envoy import build, cluster, hcm, listener, names

OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def _cluster(**spec: Any) -> cluster_pb2.Cluster:
    return cluster(build([cluster_doc("c", **spec), routes(), listener_doc()]), "c")


def _options(c: cluster_pb2.Cluster) -> http_opts.HttpProtocolOptions:
    out = http_opts.HttpProtocolOptions()
    assert c.typed_extension_protocol_options[OPTIONS].Unpack(out)
    return out


def _tls(c: cluster_pb2.Cluster) -> tls_pb2.UpstreamTlsContext:
    assert c.transport_socket.name == "envoy.transport_sockets.tls"
    out = tls_pb2.UpstreamTlsContext()
    assert c.transport_socket.typed_config.Unpack(out)
    return out


def test_http1_is_envoys_default_and_needs_no_options() -> None:
    assert not _cluster().typed_extension_protocol_options
    assert not _cluster().HasField("transport_socket")
    options = _options(_cluster(idleTimeout="30s"))
    assert options.explicit_http_config.HasField("http_protocol_options")
    assert options.common_http_protocol_options.idle_timeout.seconds == 30


def test_http2_and_grpc_are_explicit_http2() -> None:
    for protocol in ("HTTP2", "GRPC"):
        options = _options(_cluster(protocol=protocol, maxConcurrentStreams=64))
        assert options.explicit_http_config.http2_protocol_options.max_concurrent_streams.value == 64


def test_auto_chooses_by_alpn_over_tls() -> None:
    c = _cluster(protocol="AUTO", tls={"sni": "a.internal"})
    options = _options(c)
    assert options.auto_config.HasField("http_protocol_options")
    assert options.auto_config.HasField("http2_protocol_options")
    context = _tls(c)
    assert list(context.common_tls_context.alpn_protocols) == ["h2", "http/1.1"]
    assert context.sni == "a.internal"
    assert not context.common_tls_context.HasField("validation_context")  # no CA: not verified


def test_tls_from_files_checks_the_ca_and_the_names() -> None:
    tls = {"sni": "checkout.internal", "caFile": "/ca.pem", "certFile": "/c.pem", "keyFile": "/c.key",
           "subjectAltNames": [{"dns": "checkout.internal"}, {"uri": "spiffe://lab/checkout"}]}
    common = _tls(_cluster(protocol="GRPC", tls=tls)).common_tls_context
    assert list(common.alpn_protocols) == ["h2"]
    [certificate] = common.tls_certificates
    assert (certificate.certificate_chain.filename, certificate.private_key.filename) == ("/c.pem", "/c.key")
    validation = common.validation_context
    assert validation.trusted_ca.filename == "/ca.pem"
    assert [(m.san_type, m.matcher.exact) for m in validation.match_typed_subject_alt_names] == [
        (common_pb2.SubjectAltNameMatcher.DNS, "checkout.internal"),
        (common_pb2.SubjectAltNameMatcher.URI, "spiffe://lab/checkout"),
    ]


def test_tls_from_sds_combines_the_ca_secret_with_the_names() -> None:
    secret = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
    docs = [
        envoy_resource("client", {"@type": secret, "name": "client", "tls_certificate": {}}),
        envoy_resource("ca", {"@type": secret, "name": "ca", "validation_context": {}}),
        cluster_doc("c", tls={"secret": "client", "caSecret": "ca", "subjectAltNames": [{"ip": "127.0.0.1"}]}),
        routes(), listener_doc(),
    ]
    snapshot = build(docs)
    assert names(snapshot, rt.SECRET) == {"client", "ca"}
    common = _tls(cluster(snapshot, "c")).common_tls_context
    [sds] = common.tls_certificate_sds_secret_configs
    assert sds.name == "client" and sds.sds_config.HasField("ads")
    combined = common.combined_validation_context
    assert combined.validation_context_sds_secret_config.name == "ca"
    assert combined.validation_context_sds_secret_config.sds_config.HasField("ads")
    [matcher] = combined.default_validation_context.match_typed_subject_alt_names
    assert (matcher.san_type, matcher.matcher.exact) == (common_pb2.SubjectAltNameMatcher.IP_ADDRESS, "127.0.0.1")


def test_tracing_by_cluster() -> None:
    tracing = {"collector": {"cluster": "otel", "timeout": "250ms"}, "sampling": {"random": 5, "overall": 50},
               "tags": {"env": "prod", "user": {"header": "x-user", "default": "-"}}, "maxPathTagLength": 64}
    docs = [cluster_doc("c"), cluster_doc("otel", protocol="GRPC"), routes(), listener_doc("l", tracing=tracing)]
    snapshot = build(docs)
    manager = hcm(listener(snapshot, "l").filter_chains[0])
    config = manager.tracing
    assert (config.random_sampling.value, config.client_sampling.value, config.overall_sampling.value) == (5, 100, 50)
    assert config.max_path_tag_length.value == 64
    assert [(t.tag, t.literal.value, t.request_header.name, t.request_header.default_value)
            for t in config.custom_tags] == [("env", "prod", "", ""), ("user", "", "x-user", "-")]
    assert config.provider.name == "envoy.tracers.opentelemetry"
    provider = opentelemetry_pb2.OpenTelemetryConfig()
    assert config.provider.typed_config.Unpack(provider)
    assert provider.grpc_service.envoy_grpc.cluster_name == "otel"
    assert provider.grpc_service.timeout.ToMilliseconds() == 250
    assert provider.service_name == "l"
    assert names(snapshot, rt.CLUSTER) == {"c", "otel"}
    assert not manager.HasField("generate_request_id")  # Envoy's default: it makes one


def test_tracing_by_address_brings_its_own_cluster() -> None:
    tracing = {"collector": {"address": "127.0.0.1", "port": 4317}, "serviceName": "front"}
    http = {"requestId": {"generate": False, "preserveExternal": True, "inResponse": True}}
    snapshot = build([cluster_doc("c"), routes(), listener_doc("l", tracing=tracing, http=http)])
    collector = cluster(snapshot, "l-tracing")
    assert collector.type == cluster_pb2.Cluster.STATIC
    address = collector.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
    assert (address.address, address.port_value) == ("127.0.0.1", 4317)
    assert _options(collector).explicit_http_config.HasField("http2_protocol_options")
    manager = hcm(listener(snapshot, "l").filter_chains[0])
    provider = opentelemetry_pb2.OpenTelemetryConfig()
    assert manager.tracing.provider.typed_config.Unpack(provider)
    assert (provider.grpc_service.envoy_grpc.cluster_name, provider.service_name) == ("l-tracing", "front")
    assert manager.generate_request_id.value is False
    assert manager.preserve_external_request_id and manager.always_set_request_id_in_response
