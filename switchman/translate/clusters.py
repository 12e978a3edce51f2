"""Cluster and Service documents -> Envoy Clusters and ClusterLoadAssignments."""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as http_opts
from envoy.type.v3 import percent_pb2
from google.protobuf import wrappers_pb2
from google.protobuf.message import Message

from switchman.model.kinds.cluster import Endpoint, Upstream
from switchman.translate.common import ads, duration, packed
from switchman.translate.upstream_tls import transport_socket

__all__ = ["cluster_resources", "load_assignment", "protocol_options"]

_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def _lb_endpoint(e: Endpoint) -> endpoint_components_pb2.LbEndpoint:
    out = endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(
            address=address_pb2.Address(socket_address=address_pb2.SocketAddress(address=e.address, port_value=e.port))
        ),
        load_balancing_weight=wrappers_pb2.UInt32Value(value=e.weight),
    )
    if e.health:
        out.health_status = health_check_pb2.HealthStatus.Value(e.health)
    return out


def load_assignment(name: str, endpoints: Iterable[Endpoint]) -> endpoint_pb2.ClusterLoadAssignment:
    """Endpoints grouped by zone, one locality each (zones sorted; "" is the locality without one)."""
    zones: dict[str, list[Endpoint]] = {}
    for e in endpoints:
        zones.setdefault(e.zone, []).append(e)
    if not zones:
        zones[""] = []
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=name,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                # gRPC clients need a locality with a weight; Envoy ignores both by default. With several
                # zones, each weighs what its endpoints do, so that a client weighting localities sends
                # each zone its share (one locality keeps weight 1).
                locality=base_pb2.Locality(zone=zone),
                load_balancing_weight=wrappers_pb2.UInt32Value(
                    value=max(1, sum(e.weight for e in members)) if len(zones) > 1 else 1
                ),
                lb_endpoints=[_lb_endpoint(e) for e in members],
            )
            for zone, members in sorted(zones.items())
        ],
    )


def protocol_options(upstream: Upstream) -> http_opts.HttpProtocolOptions | None:
    """How Envoy speaks HTTP to the endpoints; None where Envoy's defaults (HTTP/1.1) say it all."""
    if upstream.protocol == "HTTP1" and upstream.idle_timeout is None:
        return None
    out = http_opts.HttpProtocolOptions()
    if upstream.idle_timeout is not None:
        out.common_http_protocol_options.idle_timeout.CopyFrom(duration(upstream.idle_timeout))
    if upstream.protocol == "AUTO":
        http2 = out.auto_config.http2_protocol_options
        out.auto_config.http_protocol_options.SetInParent()
    elif upstream.protocol == "HTTP1":
        out.explicit_http_config.http_protocol_options.SetInParent()
        return out
    else:
        http2 = out.explicit_http_config.http2_protocol_options
    http2.SetInParent()
    if upstream.max_concurrent_streams is not None:
        http2.max_concurrent_streams.value = upstream.max_concurrent_streams
    return out


def _apply_upstream(cluster: cluster_pb2.Cluster, upstream: Upstream) -> None:
    cluster.connect_timeout.CopyFrom(duration(upstream.connect_timeout))
    cluster.lb_policy = cluster_pb2.Cluster.LbPolicy.Value(upstream.lb_policy)
    options = protocol_options(upstream)
    if options is not None:
        cluster.typed_extension_protocol_options[_HTTP_OPTIONS].CopyFrom(packed(options))
    if upstream.tls is not None:
        cluster.transport_socket.CopyFrom(transport_socket(upstream.tls, upstream.protocol))
    if upstream.health_check is not None:
        hc = upstream.health_check
        cluster.health_checks.append(
            health_check_pb2.HealthCheck(
                timeout=duration(hc.timeout),
                interval=duration(hc.interval),
                healthy_threshold=wrappers_pb2.UInt32Value(value=hc.healthy_threshold),
                unhealthy_threshold=wrappers_pb2.UInt32Value(value=hc.unhealthy_threshold),
                http_health_check=health_check_pb2.HealthCheck.HttpHealthCheck(path=hc.path),
            )
        )
    if upstream.outlier_detection is not None:
        od = upstream.outlier_detection
        cluster.outlier_detection.CopyFrom(
            outlier_detection_pb2.OutlierDetection(
                consecutive_5xx=wrappers_pb2.UInt32Value(value=od.consecutive_5xx),
                interval=duration(od.interval),
                base_ejection_time=duration(od.base_ejection_time),
                max_ejection_percent=wrappers_pb2.UInt32Value(value=od.max_ejection_percent),
            )
        )
    if upstream.circuit_breakers is not None:
        cb = upstream.circuit_breakers
        thresholds = circuit_breaker_pb2.CircuitBreakers.Thresholds()
        for field, value in (
            ("max_connections", cb.max_connections),
            ("max_pending_requests", cb.max_pending_requests),
            ("max_requests", cb.max_requests),
            ("max_retries", cb.max_retries),
        ):
            if value is not None:
                getattr(thresholds, field).value = value
        if cb.retry_budget_percent is not None:
            thresholds.retry_budget.budget_percent.CopyFrom(percent_pb2.Percent(value=cb.retry_budget_percent))
            if cb.retry_budget_min_concurrency is not None:
                thresholds.retry_budget.min_retry_concurrency.value = cb.retry_budget_min_concurrency
        cluster.circuit_breakers.thresholds.append(thresholds)


def cluster_resources(
    name: str, endpoints: tuple[Endpoint, ...], upstream: Upstream, discovery: str = "eds"
) -> list[Message]:
    """An Envoy cluster and, for EDS, its load assignment (sent apart, so endpoint changes touch only it)."""
    cluster = cluster_pb2.Cluster(name=name)
    _apply_upstream(cluster, upstream)
    assignment = load_assignment(name, endpoints)
    if discovery == "static":
        cluster.type = cluster_pb2.Cluster.STATIC
        cluster.load_assignment.CopyFrom(assignment)
        return [cluster]
    cluster.type = cluster_pb2.Cluster.EDS
    cluster.eds_cluster_config.eds_config.CopyFrom(ads())
    return [cluster, assignment]
