"""Builders of Envoy resources for tests, benchmarks and the lab.

They make the smallest correct listener -> route -> cluster -> endpoints
chain: an HTTP listener whose routes come over RDS, EDS clusters whose
endpoints come over ADS, and an API listener for proxyless gRPC clients.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import api_listener_pb2, listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2

__all__ = [
    "ads_source",
    "api_listener",
    "eds_cluster",
    "grpc_source",
    "http_listener",
    "load_assignment",
    "route_config",
]


def ads_source() -> config_source_pb2.ConfigSource:
    """Resources come over the client's ADS stream."""
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3,
    )


def grpc_source(cluster: str = "xds", delta: bool = False) -> config_source_pb2.ConfigSource:
    """Resources come over a stream of their own type to the bootstrap cluster ``cluster``."""
    from envoy.config.core.v3 import grpc_service_pb2

    kind = config_source_pb2.ApiConfigSource.DELTA_GRPC if delta else config_source_pb2.ApiConfigSource.GRPC
    return config_source_pb2.ConfigSource(
        api_config_source=config_source_pb2.ApiConfigSource(
            api_type=kind,
            transport_api_version=config_source_pb2.V3,
            grpc_services=[
                grpc_service_pb2.GrpcService(
                    envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=cluster)
                )
            ],
        ),
        resource_api_version=config_source_pb2.V3,
    )


def _packed(message: object) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(message)
    return out


def _hcm(
    route_name: str, stat_prefix: str, source: config_source_pb2.ConfigSource | None
) -> hcm_pb2.HttpConnectionManager:
    return hcm_pb2.HttpConnectionManager(
        stat_prefix=stat_prefix,
        rds=hcm_pb2.Rds(config_source=source or ads_source(), route_config_name=route_name),
        http_filters=[
            hcm_pb2.HttpFilter(name="envoy.filters.http.router", typed_config=_packed(router_pb2.Router()))
        ],
    )


def http_listener(
    name: str,
    route_name: str,
    port: int = 0,
    host: str = "127.0.0.1",
    source: config_source_pb2.ConfigSource | None = None,
) -> listener_pb2.Listener:
    """An HTTP listener on ``host:port`` (0: the OS picks) with routes from RDS ``route_name``."""
    return listener_pb2.Listener(
        name=name,
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address=host, port_value=port)
        ),
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[
                    listener_components_pb2.Filter(
                        name="envoy.filters.network.http_connection_manager",
                        typed_config=_packed(_hcm(route_name, name, source)),
                    )
                ]
            )
        ],
    )


def api_listener(
    name: str, route_name: str, source: config_source_pb2.ConfigSource | None = None
) -> listener_pb2.Listener:
    """The listener a proxyless gRPC client asks for with ``xds:///NAME``."""
    return listener_pb2.Listener(
        name=name,
        api_listener=api_listener_pb2.ApiListener(api_listener=_packed(_hcm(route_name, name, source))),
    )


def route_config(
    name: str,
    clusters: str | Sequence[tuple[str, int]],
    domains: Iterable[str] = ("*",),
    prefix: str = "/",
) -> route_pb2.RouteConfiguration:
    """One virtual host, one route: to a cluster, or split over ``(cluster, weight)`` pairs."""
    if isinstance(clusters, str):
        action = route_components_pb2.RouteAction(cluster=clusters)
    else:
        action = route_components_pb2.RouteAction(
            weighted_clusters=route_components_pb2.WeightedCluster(
                clusters=[
                    route_components_pb2.WeightedCluster.ClusterWeight(
                        name=cluster, weight=wrappers_pb2.UInt32Value(value=weight)
                    )
                    for cluster, weight in clusters
                ]
            )
        )
    return route_pb2.RouteConfiguration(
        name=name,
        virtual_hosts=[
            route_components_pb2.VirtualHost(
                name=name,
                domains=list(domains),
                routes=[
                    route_components_pb2.Route(
                        match=route_components_pb2.RouteMatch(prefix=prefix), route=action
                    )
                ],
            )
        ],
    )


def eds_cluster(
    name: str,
    connect_timeout: float = 1.0,
    http2: bool = False,
    source: config_source_pb2.ConfigSource | None = None,
) -> cluster_pb2.Cluster:
    """A cluster whose endpoints come over EDS (on the ADS stream unless ``source`` says otherwise)."""
    cluster = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.EDS,
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(eds_config=source or ads_source()),
        connect_timeout=duration_pb2.Duration(nanos=int(connect_timeout * 1e9) % 1_000_000_000,
                                              seconds=int(connect_timeout)),
    )
    if http2:
        cluster.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].CopyFrom(
            _http2_options()
        )
    return cluster


def _http2_options() -> any_pb2.Any:
    from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as opts

    return _packed(
        opts.HttpProtocolOptions(
            explicit_http_config=opts.HttpProtocolOptions.ExplicitHttpConfig(
                http2_protocol_options={}
            )
        )
    )


def load_assignment(cluster: str, endpoints: Iterable[tuple[str, int]]) -> endpoint_pb2.ClusterLoadAssignment:
    """The endpoints (``(host, port)``) of ``cluster``, as the translator writes them."""
    from switchman.model.kinds.cluster import Endpoint
    from switchman.translate.clusters import load_assignment as translated

    return translated(cluster, [Endpoint(host, port) for host, port in endpoints])
