"""Build documents all the way to a snapshot, and read the Envoy resources back by name."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf.message import Message

from switchman.model.config import build_config, parse_document
from switchman.translate import translate
from switchman.xds import Snapshot
from switchman.xds import resources as rt

EXAMPLES = Path(__file__).parents[3] / "examples"
M = TypeVar("M", bound=Message)


def load_example(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d is not None]


def build(docs: Iterable[Any], source: str = "request") -> Snapshot:
    """parse -> build_config -> translate -> Snapshot.build, as the controller does."""
    parsed = [parse_document(d, f"{source}[{i}]") for i, d in enumerate(docs)]
    return Snapshot.build(translate(build_config(parsed)))


def names(snapshot: Snapshot, type_url: str) -> set[str]:
    return set(snapshot.get(type_url).resources)


def _get(snapshot: Snapshot, type_url: str, name: str, cls: type[M]) -> M:
    message = snapshot.get(type_url).resources[name].message
    assert isinstance(message, cls)
    return message


def cluster(snapshot: Snapshot, name: str) -> cluster_pb2.Cluster:
    return _get(snapshot, rt.CLUSTER, name, cluster_pb2.Cluster)


def assignment(snapshot: Snapshot, name: str) -> endpoint_pb2.ClusterLoadAssignment:
    return _get(snapshot, rt.ENDPOINT, name, endpoint_pb2.ClusterLoadAssignment)


def listener(snapshot: Snapshot, name: str) -> listener_pb2.Listener:
    return _get(snapshot, rt.LISTENER, name, listener_pb2.Listener)


def route_config(snapshot: Snapshot, name: str) -> route_pb2.RouteConfiguration:
    return _get(snapshot, rt.ROUTE, name, route_pb2.RouteConfiguration)


def routes_of(snapshot: Snapshot, name: str, vhost: int = 0) -> list[route_components_pb2.Route]:
    return list(route_config(snapshot, name).virtual_hosts[vhost].routes)


def endpoints(message: endpoint_pb2.ClusterLoadAssignment) -> list[tuple[str, int, int]]:
    return [
        (e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value,
         e.load_balancing_weight.value)
        for locality in message.endpoints
        for e in locality.lb_endpoints
    ]


def weights(route: route_components_pb2.Route) -> dict[str, int]:
    """The clusters a route forwards to and their weights (a single cluster has weight 1)."""
    action = route.route
    if action.WhichOneof("cluster_specifier") == "cluster":
        return {action.cluster: 1}
    return {c.name: c.weight.value for c in action.weighted_clusters.clusters}


def hcm(chain: listener_components_pb2.FilterChain) -> hcm_pb2.HttpConnectionManager:
    [network] = chain.filters
    assert network.name == "envoy.filters.network.http_connection_manager"
    out = hcm_pb2.HttpConnectionManager()
    assert network.typed_config.Unpack(out)
    return out


def tcp_proxy(chain: listener_components_pb2.FilterChain) -> tcp_proxy_pb2.TcpProxy:
    [network] = chain.filters
    assert network.name == "envoy.filters.network.tcp_proxy"
    out = tcp_proxy_pb2.TcpProxy()
    assert network.typed_config.Unpack(out)
    return out
