"""xDS resource types: type URLs, their message classes, names and references.

References are what make snapshots checkable and pushes orderable: a route
names clusters, a cluster (of type EDS) names its ClusterLoadAssignment, a
listener names route configurations (RDS) and clusters (TCP proxy, inline
routes).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from google.protobuf.message import Message

__all__ = [
    "CLUSTER",
    "ENDPOINT",
    "LISTENER",
    "ORDERED_TYPES",
    "ROUTE",
    "SECRET",
    "TYPE_URLS",
    "TYPE_URL_OF",
    "MessageClass",
    "eds_name",
    "message_class",
    "references",
    "resource_name",
    "short_name",
]

_PREFIX: Final = "type.googleapis.com/"
LISTENER: Final = _PREFIX + "envoy.config.listener.v3.Listener"
ROUTE: Final = _PREFIX + "envoy.config.route.v3.RouteConfiguration"
CLUSTER: Final = _PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT: Final = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
SECRET: Final = _PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"

MessageClass = type[Message]

_CLASSES: Final[dict[str, MessageClass]] = {
    LISTENER: listener_pb2.Listener,
    ROUTE: route_pb2.RouteConfiguration,
    CLUSTER: cluster_pb2.Cluster,
    ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
    SECRET: secret_pb2.Secret,
}

TYPE_URLS: Final = frozenset(_CLASSES)
TYPE_URL_OF: Final[dict[MessageClass, str]] = {cls: url for url, cls in _CLASSES.items()}

# The order in which an ADS stream sends types, so that what a resource needs
# is already there when it arrives (xDS protocol, "Eventual consistency
# considerations"): secrets, clusters, endpoints, listeners, routes.
ORDERED_TYPES: Final = (SECRET, CLUSTER, ENDPOINT, LISTENER, ROUTE)

_SHORT: Final = {LISTENER: "lds", ROUTE: "rds", CLUSTER: "cds", ENDPOINT: "eds", SECRET: "sds"}

_HCM_URL: Final = _PREFIX + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_TCP_PROXY_URL: Final = _PREFIX + "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def message_class(type_url: str) -> MessageClass:
    """The protobuf class of a type URL; raises ``KeyError`` for types Switchman does not serve."""
    return _CLASSES[type_url]


def short_name(type_url: str) -> str:
    """``lds``, ``rds``, ``cds``, ``eds`` or ``sds``: for logs and metric labels."""
    return _SHORT.get(type_url, type_url.rsplit(".", 1)[-1])


def resource_name(message: Message) -> str:
    """The name a resource is known by in xDS (a ClusterLoadAssignment by its cluster_name)."""
    if isinstance(message, endpoint_pb2.ClusterLoadAssignment):
        return str(message.cluster_name)
    return str(getattr(message, "name"))  # noqa: B009 (every other served type has a name)


def eds_name(cluster: cluster_pb2.Cluster) -> str | None:
    """The ClusterLoadAssignment name an EDS cluster asks for, or None for other cluster types."""
    if cluster.WhichOneof("cluster_discovery_type") != "type" or cluster.type != cluster_pb2.Cluster.EDS:
        return None
    return str(cluster.eds_cluster_config.service_name or cluster.name)


def references(message: Message) -> Iterator[tuple[str, str]]:
    """Yield ``(type_url, name)`` for every resource ``message`` names.

    A listener yields its RDS route configurations and the clusters of TCP
    proxies and inline routes; a route configuration yields its clusters
    (single, weighted, mirrored); an EDS cluster yields its load assignment.
    """
    if isinstance(message, listener_pb2.Listener):
        yield from _listener_references(message)
    elif isinstance(message, route_pb2.RouteConfiguration):
        yield from _route_references(message)
    elif isinstance(message, cluster_pb2.Cluster):
        name = eds_name(message)
        if name is not None:
            yield ENDPOINT, name


def _listener_references(listener: listener_pb2.Listener) -> Iterator[tuple[str, str]]:
    chains = list(listener.filter_chains)
    if listener.HasField("default_filter_chain"):
        chains.append(listener.default_filter_chain)
    typed_configs = [f.typed_config for chain in chains for f in chain.filters]
    if listener.HasField("api_listener"):
        typed_configs.append(listener.api_listener.api_listener)
    for config in typed_configs:
        if config.type_url == _HCM_URL:
            hcm = hcm_pb2.HttpConnectionManager.FromString(config.value)
            kind = hcm.WhichOneof("route_specifier")
            if kind == "rds":
                yield ROUTE, hcm.rds.route_config_name
            elif kind == "route_config":
                yield from _route_references(hcm.route_config)
        elif config.type_url == _TCP_PROXY_URL:
            proxy = tcp_proxy_pb2.TcpProxy.FromString(config.value)
            if proxy.WhichOneof("cluster_specifier") == "cluster":
                yield CLUSTER, proxy.cluster
            else:
                for weighted in proxy.weighted_clusters.clusters:
                    yield CLUSTER, weighted.name


def _route_references(config: route_pb2.RouteConfiguration) -> Iterator[tuple[str, str]]:
    # A cluster chosen by a request header (cluster_header) is no reference:
    # its name is known only per request.
    for vhost in config.virtual_hosts:
        for policy in vhost.request_mirror_policies:
            if policy.cluster:
                yield CLUSTER, policy.cluster
        for route in vhost.routes:
            if not route.HasField("route"):
                continue
            action = route.route
            kind = action.WhichOneof("cluster_specifier")
            if kind == "cluster":
                yield CLUSTER, action.cluster
            elif kind == "weighted_clusters":
                for weighted in action.weighted_clusters.clusters:
                    if weighted.name:
                        yield CLUSTER, weighted.name
            for policy in action.request_mirror_policies:
                if policy.cluster:
                    yield CLUSTER, policy.cluster
