"""A listener's tracing and request ids: read field by field, and checked against the other documents."""

from __future__ import annotations

from typing import Any

import pytest

from switchman.model.kinds.listener import ListenerSpec, RequestId
from switchman.model.kinds.tracing import Collector, Tag, Tracing
from tests.unit.model.docs import cluster, config, listener, parse, rejected, rejected_config, routes, service

T = "listener/l: spec.tracing"


def _spec(doc: dict[str, Any]) -> ListenerSpec:
    spec = parse(doc).spec
    assert isinstance(spec, ListenerSpec)
    return spec


def test_defaults_sample_every_request_under_the_listener_name() -> None:
    assert _spec(listener(tracing={"collector": {"cluster": "otel"}})).tracing == Tracing(Collector(cluster="otel"))


def test_every_field() -> None:
    tracing = {
        "collector": {"address": "127.0.0.1", "port": 4317, "timeout": "250ms"}, "serviceName": "front",
        "sampling": {"random": 1, "client": 50, "overall": 10}, "maxPathTagLength": 64, "spawnUpstreamSpan": True,
        "tags": {"env": "prod", "zone": {"literal": 7}, "user": {"header": "X-User", "default": "anonymous"}},
    }
    assert _spec(listener(tracing=tracing)).tracing == Tracing(
        Collector(address="127.0.0.1", port=4317, timeout=0.25), "front", 1.0, 50.0, 10.0,
        (Tag("env", literal="prod"), Tag("zone", literal="7"), Tag("user", header="x-user", default="anonymous")),
        64, True,
    )


def test_request_ids() -> None:
    http = {"requestId": {"generate": False, "preserveExternal": True, "inResponse": True}}
    assert _spec(listener(http=http)).chains[0].http.request_id == RequestId(False, True, True)
    assert _spec(listener()).chains[0].http.request_id == RequestId(True, False, False)


CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    "no-collector": ({}, f"{T}.collector", "is required"),
    "both": ({"collector": {"cluster": "otel", "address": "127.0.0.1"}}, f"{T}.collector",
             "needs exactly one of cluster (an Envoy cluster) and address (with port)"),
    "no-port": ({"collector": {"address": "127.0.0.1"}}, f"{T}.collector.port", "is required"),
    "port-with-cluster": ({"collector": {"cluster": "otel", "port": 1}}, f"{T}.collector.port",
                          "goes with address, not cluster"),
    "host-name": ({"collector": {"address": "otel.local", "port": 1}}, f"{T}.collector.address",
                  "'otel.local' is not an IP address"),
    "sampling": ({"collector": {"cluster": "o"}, "sampling": {"random": 150}}, f"{T}.sampling.random",
                 "150 is above 100"),
    "tag-both": ({"collector": {"cluster": "o"}, "tags": {"a": {"literal": "x", "header": "y"}}}, f"{T}.tags.a",
                 "needs exactly one of literal, header (found literal, header)"),
    "tag-default": ({"collector": {"cluster": "o"}, "tags": {"a": {"literal": "x", "default": "y"}}},
                    f"{T}.tags.a.default", "goes with header, not literal"),
    "tag-name": ({"collector": {"cluster": "o"}, "tags": {"a b": "x"}}, f"{T}.tags.a b",
                 "'a b' is not a tag name (letters, digits, '_', '.', ':', '/', '-')"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_mistakes_name_the_field(case: str) -> None:
    tracing, path, reason = CASES[case]
    err = rejected(listener(tracing=tracing))
    assert (err.path, err.reason) == (path, reason)


def test_a_tcp_proxy_has_nothing_to_trace() -> None:
    err = rejected(listener(tcp={"cluster": "c"}, tracing={"collector": {"cluster": "o"}}))
    assert (err.path, err.reason) == (T, "traces HTTP requests: this listener has no routes, only a TCP proxy")


def test_a_collector_cluster_of_ours_must_speak_grpc() -> None:
    docs = [cluster(), routes(), cluster("otel"), listener(tracing={"collector": {"cluster": "otel"}})]
    err = rejected_config(docs)
    assert (err.path, err.reason) == (
        f"{T}.collector.cluster", "cluster 'otel' speaks HTTP1: an OTLP collector needs protocol GRPC (HTTP/2)"
    )
    docs[2] = cluster("otel", protocol="GRPC")
    config(docs)
    # A Service's version is a cluster too; a bootstrap cluster is not checked.
    docs[2:] = [service("otel", http2=True), listener(tracing={"collector": {"cluster": "otel-v1"}})]
    config(docs)
    docs[-1] = listener(tracing={"collector": {"cluster": "xds"}})
    config(docs)


def test_a_collector_address_makes_a_cluster_that_no_other_document_may_make() -> None:
    docs = [cluster(), routes(), service("l", versions={"tracing": 9000}),
            listener(tracing={"collector": {"address": "127.0.0.1", "port": 4317}})]
    err = rejected_config(docs)
    assert (err.path, err.reason) == (
        "listener/l", "the Envoy resource cds/l-tracing would also come from service/l"
    )
