"""``kind: Cluster``: a set of endpoints and how to reach them.

Also the upstream settings a ``Service`` shares between its versions.
"""

from __future__ import annotations

from dataclasses import dataclass

from switchman.model.fields import UINT32_MAX, Node
from switchman.model.kinds.upstream_tls import UpstreamTls, read_upstream_tls

__all__ = [
    "HEALTH_STATUSES",
    "CircuitBreakers",
    "ClusterSpec",
    "Endpoint",
    "HealthCheck",
    "OutlierDetection",
    "Upstream",
    "read_cluster",
    "read_endpoints",
    "read_upstream",
]

LB_POLICIES = ("ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "RING_HASH", "MAGLEV")
# HTTP1: HTTP/1.1; HTTP2 and GRPC: HTTP/2 (GRPC says what runs on it); AUTO: chosen by ALPN, so only over TLS.
PROTOCOLS = ("HTTP1", "HTTP2", "GRPC", "AUTO")


#: An endpoint's health as EDS says it (``health_status``): "" leaves it to Envoy (as healthy), "DRAINING"
#: takes no new requests (a Kubernetes endpoint that is terminating).
HEALTH_STATUSES = ("", "HEALTHY", "DRAINING")


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: str
    port: int
    weight: int = 1
    zone: str = ""  # the locality's zone ("": none)
    health: str = ""  # one of HEALTH_STATUSES


@dataclass(frozen=True, slots=True)
class HealthCheck:
    path: str
    interval: float
    timeout: float
    healthy_threshold: int
    unhealthy_threshold: int


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    consecutive_5xx: int
    interval: float
    base_ejection_time: float
    max_ejection_percent: int


@dataclass(frozen=True, slots=True)
class CircuitBreakers:
    max_connections: int | None
    max_pending_requests: int | None
    max_requests: int | None
    max_retries: int | None
    retry_budget_percent: float | None
    retry_budget_min_concurrency: int | None


@dataclass(frozen=True, slots=True)
class Upstream:
    """How Envoy talks to a set of endpoints (shared by a Cluster and by a Service's versions)."""

    lb_policy: str = "ROUND_ROBIN"
    connect_timeout: float = 1.0
    protocol: str = "HTTP1"
    health_check: HealthCheck | None = None
    outlier_detection: OutlierDetection | None = None
    circuit_breakers: CircuitBreakers | None = None
    idle_timeout: float | None = None  # an upstream connection without requests for this long is closed
    max_concurrent_streams: int | None = None  # HTTP/2: requests at once on one connection
    tls: UpstreamTls | None = None

    @property
    def http2(self) -> bool:
        """Whether Envoy speaks HTTP/2 to the endpoints (always, not by ALPN)."""
        return self.protocol in ("HTTP2", "GRPC")


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    endpoints: tuple[Endpoint, ...]
    upstream: Upstream
    # "static": endpoints inside the cluster; "eds": endpoints sent apart, so
    # that an endpoint change does not touch the cluster.
    discovery: str = "eds"


def read_endpoints(node: Node) -> tuple[Endpoint, ...]:
    out = []
    seen: set[tuple[str, int]] = set()
    for item in node.elements():
        address = item["address"].ip()
        port = item["port"].integer(1, 65535)
        weight_node = item.get("weight")
        weight = weight_node.integer(1, 128) if weight_node is not None else 1
        item.done()
        if (address, port) in seen:
            item.fail(f"{address}:{port} is listed twice")
        seen.add((address, port))
        out.append(Endpoint(address, port, weight))
    return tuple(out)


def _optional_int(node: Node, key: str, low: int = 0, high: int | None = UINT32_MAX) -> int | None:
    child = node.get(key)
    return child.integer(low, high) if child is not None else None


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _health_check(node: Node) -> HealthCheck:
    path = node["path"].text(r"/.*", "a path starting with /")
    interval = node.get("interval")
    timeout = node.get("timeout")
    check = HealthCheck(
        path=path,
        interval=interval.duration(0.01) if interval else 5.0,
        timeout=timeout.duration(0.001) if timeout else 1.0,
        healthy_threshold=_optional_int(node, "healthyThreshold", 1) or 1,
        unhealthy_threshold=_optional_int(node, "unhealthyThreshold", 1) or 2,
    )
    node.done()
    return check


def _outlier(node: Node) -> OutlierDetection:
    interval = node.get("interval")
    ejection = node.get("baseEjectionTime")
    out = OutlierDetection(
        consecutive_5xx=_optional_int(node, "consecutive5xx", 1) or 5,
        interval=interval.duration(0.001) if interval else 10.0,
        base_ejection_time=ejection.duration(0.001) if ejection else 30.0,
        max_ejection_percent=_or(_optional_int(node, "maxEjectionPercent", 0, 100), 10),
    )
    node.done()
    return out


def _breakers(node: Node) -> CircuitBreakers:
    budget = node.get("retryBudget")
    percent: float | None = None
    min_concurrency: int | None = None
    if budget is not None:
        percent_node = budget.get("percent")
        percent = percent_node.number(0, 100) if percent_node is not None else 20.0
        min_concurrency = _optional_int(budget, "minRetryConcurrency", 0)
        budget.done()
    out = CircuitBreakers(
        max_connections=_optional_int(node, "maxConnections", 1),
        max_pending_requests=_optional_int(node, "maxPendingRequests", 1),
        max_requests=_optional_int(node, "maxRequests", 1),
        max_retries=_optional_int(node, "maxRetries", 0),
        retry_budget_percent=percent,
        retry_budget_min_concurrency=min_concurrency,
    )
    if budget is not None and out.max_retries is not None:
        node.fail("set either maxRetries or retryBudget: Envoy uses the budget and ignores maxRetries")
    node.done()
    return out


def _protocol(spec: Node) -> str:
    """``protocol``, or the older ``http2: true`` (HTTP2); not both."""
    protocol, http2 = spec.get("protocol"), spec.get("http2")
    if protocol is not None and http2 is not None:
        http2.fail("use either protocol or http2 (http2: true is protocol: HTTP2)")
    if http2 is not None:
        return "HTTP2" if http2.flag() else "HTTP1"
    return protocol.choice(*PROTOCOLS) if protocol else "HTTP1"


def read_upstream(spec: Node) -> Upstream:
    """The upstream settings of a Cluster or Service spec (keys it does not know are left for the caller)."""
    lb = spec.get("lbPolicy")
    timeout = spec.get("connectTimeout")
    health = spec.get("healthCheck")
    outlier = spec.get("outlierDetection")
    breakers = spec.get("circuitBreakers")
    idle, streams, tls = spec.get("idleTimeout"), spec.get("maxConcurrentStreams"), spec.get("tls")
    protocol = _protocol(spec)
    if protocol == "AUTO" and tls is None:
        spec["protocol"].fail("AUTO chooses HTTP/2 or HTTP/1.1 by ALPN, which needs tls")
    if streams is not None and protocol == "HTTP1":
        streams.fail("applies to HTTP/2 (protocol HTTP2, GRPC or AUTO)")
    return Upstream(
        lb_policy=lb.choice(*LB_POLICIES) if lb else "ROUND_ROBIN",
        connect_timeout=timeout.duration(0.001, 3600) if timeout else 1.0,
        protocol=protocol,
        health_check=_health_check(health) if health else None,
        outlier_detection=_outlier(outlier) if outlier else None,
        circuit_breakers=_breakers(breakers) if breakers else None,
        idle_timeout=idle.duration(0.001) if idle else None,
        max_concurrent_streams=streams.integer(1, 2**31 - 1) if streams else None,
        tls=read_upstream_tls(tls) if tls else None,
    )


def read_cluster(spec: Node) -> ClusterSpec:
    endpoints = read_endpoints(spec["endpoints"])
    discovery = spec.get("discovery")
    result = ClusterSpec(
        endpoints=endpoints,
        upstream=read_upstream(spec),
        discovery=discovery.choice("eds", "static") if discovery else "eds",
    )
    spec.done()
    return result
