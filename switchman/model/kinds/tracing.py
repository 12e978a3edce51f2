"""A listener's ``tracing``: spans of its HTTP requests, sent over OpenTelemetry (OTLP/gRPC) to a collector.

The collector is an Envoy cluster: a Cluster document (it must speak
HTTP/2: ``protocol: GRPC``) or a cluster of the Envoy's bootstrap, by
``cluster``; or an ``address`` and ``port``, for which the listener gets
a cluster of its own, ``LISTENER-tracing``.

Sampling follows Envoy's three percentages: ``random`` (requests without a
trace decision), ``client`` (requests that ask with ``x-client-trace-id``)
and ``overall`` (a cap on the two). Tags are added to every span, with a
fixed value or a request header's.
"""

from __future__ import annotations

from dataclasses import dataclass

from switchman.model.fields import Node

__all__ = ["Collector", "Tag", "Tracing", "read_tracing", "tracing_cluster"]

_TAG = r"[A-Za-z0-9_.:/-]{1,128}"
_HEADER = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"


@dataclass(frozen=True, slots=True)
class Collector:
    """An OTLP/gRPC collector: a named Envoy cluster, or an address Switchman makes a cluster for."""

    cluster: str | None = None
    address: str | None = None
    port: int | None = None
    timeout: float = 1.0


@dataclass(frozen=True, slots=True)
class Tag:
    name: str
    literal: str | None = None
    header: str | None = None
    default: str | None = None  # a header tag's value when the request has no such header


@dataclass(frozen=True, slots=True)
class Tracing:
    collector: Collector
    service_name: str | None = None  # None: the listener's name
    random: float = 100.0
    client: float = 100.0
    overall: float = 100.0
    tags: tuple[Tag, ...] = ()
    max_path_tag_length: int | None = None
    spawn_upstream_span: bool = False


def tracing_cluster(listener: str) -> str:
    """The Envoy cluster a listener's collector ``address`` becomes."""
    return f"{listener}-tracing"


def _collector(node: Node) -> Collector:
    cluster, address, timeout = node.get("cluster"), node.get("address"), node.get("timeout")
    if (cluster is None) == (address is None):
        node.fail("needs exactly one of cluster (an Envoy cluster) and address (with port)")
    seconds = timeout.duration(0.001, 60.0) if timeout else 1.0
    if cluster is not None:
        if node.get("port") is not None:
            node["port"].fail("goes with address, not cluster")
        result = Collector(cluster=cluster.text(), timeout=seconds)
    else:
        assert address is not None
        result = Collector(address=address.ip(), port=node["port"].integer(1, 65535), timeout=seconds)
    node.done()
    return result


def _tags(node: Node) -> tuple[Tag, ...]:
    out = []
    for name, spec in node.items():
        Node(spec.doc, spec.path, name).text(_TAG, "a tag name (letters, digits, '_', '.', ':', '/', '-')")
        if isinstance(spec.value, str | int | float) and not isinstance(spec.value, bool):
            out.append(Tag(name, literal=spec.header_value()))
            continue
        kind, value = spec.one_of("literal", "header")
        default = spec.get("default")
        if kind == "literal":
            if default is not None:
                default.fail("goes with header, not literal")
            out.append(Tag(name, literal=value.header_value()))
        else:
            out.append(Tag(name, header=value.text(_HEADER, "a header name").lower(),
                           default=default.header_value() if default else None))
        spec.done()
    return tuple(out)


def _percent(node: Node, key: str) -> float:
    child = node.get(key)
    return child.number(0, 100) if child else 100.0


def read_tracing(node: Node) -> Tracing:
    collector = _collector(node["collector"])
    service, sampling, tags, path_length, spawn = (
        node.get("serviceName"), node.get("sampling"), node.get("tags"), node.get("maxPathTagLength"),
        node.get("spawnUpstreamSpan"),
    )
    random = client = overall = 100.0
    if sampling is not None:
        random, client, overall = (_percent(sampling, k) for k in ("random", "client", "overall"))
        sampling.done()
    result = Tracing(
        collector=collector,
        service_name=service.text() if service else None,
        random=random,
        client=client,
        overall=overall,
        tags=_tags(tags) if tags else (),
        max_path_tag_length=path_length.integer(1, 65536) if path_length else None,
        spawn_upstream_span=spawn.flag() if spawn else False,
    )
    node.done()
    return result
