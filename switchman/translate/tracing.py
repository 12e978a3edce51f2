"""A listener's ``tracing`` -> the connection manager's tracing config (OpenTelemetry over gRPC), and the
collector's cluster when the listener names an address.

Envoy batches spans and sends them to the collector's
``opentelemetry.proto.collector.trace.v1.TraceService/Export`` (by default
when 5 spans are waiting, or every 5 s); the trace context travels to the
upstreams in the W3C ``traceparent`` header.
"""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import grpc_service_pb2
from envoy.config.trace.v3 import http_tracer_pb2, opentelemetry_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.type.tracing.v3 import custom_tag_pb2
from envoy.type.v3 import percent_pb2

from switchman.model.kinds.cluster import Endpoint, Upstream
from switchman.model.kinds.tracing import Tag, Tracing, tracing_cluster
from switchman.translate.clusters import cluster_resources
from switchman.translate.common import duration, packed

__all__ = ["collector_cluster", "tracing"]

_TRACER = "envoy.tracers.opentelemetry"


def collector_cluster(listener: str, config: Tracing) -> cluster_pb2.Cluster | None:
    """The static HTTP/2 cluster of a collector given by address (None when it is named by cluster)."""
    collector = config.collector
    if collector.address is None or collector.port is None:
        return None
    [cluster] = cluster_resources(
        tracing_cluster(listener), (Endpoint(collector.address, collector.port),), Upstream(protocol="GRPC"), "static"
    )
    assert isinstance(cluster, cluster_pb2.Cluster)
    return cluster


def _tag(tag: Tag) -> custom_tag_pb2.CustomTag:
    out = custom_tag_pb2.CustomTag(tag=tag.name)
    if tag.literal is not None:
        out.literal.value = tag.literal
    else:
        out.request_header.name = tag.header or ""
        if tag.default is not None:
            out.request_header.default_value = tag.default
    return out


def tracing(listener: str, config: Tracing) -> hcm_pb2.HttpConnectionManager.Tracing:
    collector = config.collector
    cluster = collector.cluster or tracing_cluster(listener)
    provider = opentelemetry_pb2.OpenTelemetryConfig(
        grpc_service=grpc_service_pb2.GrpcService(
            envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=cluster),
            timeout=duration(collector.timeout),
        ),
        service_name=config.service_name or listener,
    )
    out = hcm_pb2.HttpConnectionManager.Tracing(
        random_sampling=percent_pb2.Percent(value=config.random),
        client_sampling=percent_pb2.Percent(value=config.client),
        overall_sampling=percent_pb2.Percent(value=config.overall),
        custom_tags=[_tag(tag) for tag in config.tags],
        provider=http_tracer_pb2.Tracing.Http(name=_TRACER, typed_config=packed(provider)),
    )
    if config.spawn_upstream_span:
        out.spawn_upstream_span.value = True
    if config.max_path_tag_length is not None:
        out.max_path_tag_length.value = config.max_path_tag_length
    return out
