"""Upstream protocols and TLS on a Cluster or a Service: read field by field, secrets checked against the rest."""

from __future__ import annotations

from typing import Any

import pytest

from switchman.model.kinds.cluster import ClusterSpec
from switchman.model.kinds.upstream_tls import SubjectAltName, UpstreamTls
from tests.unit.model.docs import cluster, config, envoy_resource, parse, rejected, rejected_config, service

SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
CA = {"caFile": "/etc/ca.pem"}


def _spec(doc: dict[str, Any]) -> ClusterSpec:
    spec = parse(doc).spec
    assert isinstance(spec, ClusterSpec)
    return spec


def test_protocols() -> None:
    assert _spec(cluster()).upstream.protocol == "HTTP1"
    assert _spec(cluster(http2=True)).upstream.protocol == "HTTP2"
    assert _spec(cluster(protocol="GRPC")).upstream.http2
    upstream = _spec(cluster(protocol="AUTO", tls={}, idleTimeout="1m", maxConcurrentStreams=8)).upstream
    assert (upstream.protocol, upstream.idle_timeout, upstream.max_concurrent_streams) == ("AUTO", 60.0, 8)


def test_tls_fields() -> None:
    tls = {"sni": "checkout.internal", "caFile": "/ca.pem", "certFile": "/c.pem", "keyFile": "/c.key",
           "subjectAltNames": [{"dns": "checkout.internal"}, {"uri": "spiffe://lab/checkout"}, {"ip": "::1"},
                               {"email": "ops@example.com"}]}
    assert _spec(cluster(tls=tls)).upstream.tls == UpstreamTls(
        sni="checkout.internal", ca_file="/ca.pem", cert_file="/c.pem", key_file="/c.key",
        subject_alt_names=(SubjectAltName("dns", "checkout.internal"), SubjectAltName("uri", "spiffe://lab/checkout"),
                           SubjectAltName("ip", "::1"), SubjectAltName("email", "ops@example.com")),
    )
    assert _spec(cluster(tls={"secret": "s", "caSecret": "ca"})).upstream.tls == UpstreamTls(
        ca_secret="ca", secret="s"
    )


CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    "both-protocols": ({"http2": True, "protocol": "HTTP2"}, "cluster/c: spec.http2",
                       "use either protocol or http2 (http2: true is protocol: HTTP2)"),
    "protocol": ({"protocol": "HTTP3"}, "cluster/c: spec.protocol", "'HTTP3' is not one of HTTP1, HTTP2, GRPC, AUTO"),
    "auto-without-tls": ({"protocol": "AUTO"}, "cluster/c: spec.protocol",
                         "AUTO chooses HTTP/2 or HTTP/1.1 by ALPN, which needs tls"),
    "streams-on-http1": ({"maxConcurrentStreams": 5}, "cluster/c: spec.maxConcurrentStreams",
                         "applies to HTTP/2 (protocol HTTP2, GRPC or AUTO)"),
    "two-cas": ({"tls": {"caFile": "/a", "caSecret": "b"}}, "cluster/c: spec.tls", "use either caFile or caSecret"),
    "cert-and-secret": ({"tls": {"secret": "s", "certFile": "/c", "keyFile": "/k"}}, "cluster/c: spec.tls",
                        "use either secret or certFile and keyFile"),
    "cert-without-key": ({"tls": {"certFile": "/c"}}, "cluster/c: spec.tls", "certFile and keyFile go together"),
    "relative-path": ({"tls": {"caFile": "ca.pem"}}, "cluster/c: spec.tls.caFile", "'ca.pem' is not an absolute path"),
    "names-without-ca": ({"tls": {"subjectAltNames": [{"dns": "a"}]}}, "cluster/c: spec.tls.subjectAltNames",
                         "are checked only against a trusted CA: set caFile or caSecret"),
    "name-kinds": ({"tls": {**CA, "subjectAltNames": [{"dns": "a", "uri": "b"}]}},
                   "cluster/c: spec.tls.subjectAltNames[0]",
                   "needs exactly one of dns, uri, ip, email (found dns, uri)"),
    "name-ip": ({"tls": {**CA, "subjectAltNames": [{"ip": "localhost"}]}},
                "cluster/c: spec.tls.subjectAltNames[0].ip", "'localhost' is not an IP address"),
    "name-twice": ({"tls": {**CA, "subjectAltNames": [{"dns": "a"}, {"dns": "a"}]}},
                   "cluster/c: spec.tls.subjectAltNames", "lists the same name twice"),
    "sni": ({"tls": {"sni": "a b"}}, "cluster/c: spec.tls.sni", "'a b' is not a host name"),
    "unknown": ({"tls": {"verify": False}}, "cluster/c: spec.tls.verify",
                "unknown field (allowed here: caFile, caSecret, certFile, keyFile, secret, sni, subjectAltNames)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_mistakes_name_the_field(case: str) -> None:
    spec, path, reason = CASES[case]
    err = rejected(cluster(**spec))
    assert (err.path, err.reason) == (path, reason)


def _secret(name: str, **holds: Any) -> dict[str, Any]:
    return envoy_resource(name, {"@type": SECRET, "name": name, **holds})


def test_secrets_must_exist_and_hold_what_they_are_named_for() -> None:
    certificate = _secret("client", tls_certificate={"certificate_chain": {"filename": "/c"}})
    ca = _secret("ca", validation_context={"trusted_ca": {"filename": "/ca"}})
    config([certificate, ca, service("s", tls={"secret": "client", "caSecret": "ca"})])
    err = rejected_config([certificate, ca, service("s", tls={"secret": "nope"})])
    assert (err.path, err.reason) == (
        "service/s: spec.tls.secret", "names secret 'nope', which does not exist (add it as an EnvoyResource Secret)"
    )
    err = rejected_config([certificate, ca, cluster(tls={"caSecret": "client"})])
    assert (err.path, err.reason) == (
        "cluster/c: spec.tls.caSecret", "names secret 'client', which holds a tls_certificate, not a validation_context"
    )
