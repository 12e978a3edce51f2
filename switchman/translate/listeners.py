"""Listener documents -> Envoy Listeners (HTTP connection managers over RDS, or TCP proxies).

A listener's ``accessLogService`` becomes an ``envoy.access_loggers.http_grpc``
access log on each of its HTTP connection managers.
"""

from __future__ import annotations

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2, grpc_service_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.access_loggers.grpc.v3 import als_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from switchman.model.config import Config
from switchman.model.kinds.listener import AccessLogService, FilterChain, HttpSettings, ListenerSpec, Tls
from switchman.model.kinds.routes import Split
from switchman.translate.clusters import duration
from switchman.translate.routes import FAULT_FILTER
from switchman.translate.targets import weighted_clusters

__all__ = ["listener"]

_LOG_NAME = "switchman"  # the log_name Envoy sends in its access-log stream's identifier


def _ads() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.V3
    )


def _packed(message: Message) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(message)
    return out


def _access_log(service: AccessLogService) -> accesslog_pb2.AccessLog:
    config = als_pb2.HttpGrpcAccessLogConfig(
        common_config=als_pb2.CommonGrpcAccessLogConfig(
            log_name=_LOG_NAME,
            transport_api_version=config_source_pb2.V3,
            grpc_service=grpc_service_pb2.GrpcService(
                envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=service.cluster)
            ),
            buffer_flush_interval=duration(service.buffer_flush_interval),
        )
    )
    return accesslog_pb2.AccessLog(name="envoy.access_loggers.http_grpc", typed_config=_packed(config))


def _hcm(
    stat_prefix: str, routes: str, http: HttpSettings, logs: AccessLogService | None
) -> hcm_pb2.HttpConnectionManager:
    out = hcm_pb2.HttpConnectionManager(
        stat_prefix=stat_prefix,
        codec_type=hcm_pb2.HttpConnectionManager.CodecType.Value(http.codec),
        rds=hcm_pb2.Rds(config_source=_ads(), route_config_name=routes),
        http_filters=[
            # The fault filter does nothing unless a route configures it.
            hcm_pb2.HttpFilter(name=FAULT_FILTER, typed_config=_packed(fault_pb2.HTTPFault())),
            hcm_pb2.HttpFilter(name="envoy.filters.http.router", typed_config=_packed(router_pb2.Router())),
        ],
    )
    out.use_remote_address.value = http.use_remote_address
    out.xff_num_trusted_hops = http.xff_num_trusted_hops
    if http.server_name:
        out.server_name = http.server_name
    if http.idle_timeout is not None:
        out.common_http_protocol_options.idle_timeout.CopyFrom(duration(http.idle_timeout))
    if http.request_timeout is not None:
        out.request_timeout.CopyFrom(duration(http.request_timeout))
    if logs is not None:
        out.access_log.append(_access_log(logs))
    return out


def _tls(tls: Tls) -> base_pb2.TransportSocket:
    context = tls_pb2.DownstreamTlsContext()
    common = context.common_tls_context
    if tls.secret is not None:
        common.tls_certificate_sds_secret_configs.add(name=tls.secret).sds_config.CopyFrom(_ads())
    else:
        common.tls_certificates.append(
            common_pb2.TlsCertificate(
                certificate_chain=base_pb2.DataSource(filename=tls.cert_file or ""),
                private_key=base_pb2.DataSource(filename=tls.key_file or ""),
            )
        )
    return base_pb2.TransportSocket(name="envoy.transport_sockets.tls", typed_config=_packed(context))


def _chain(
    config: Config, name: str, index: int, chain: FilterChain, logs: AccessLogService | None
) -> lc.FilterChain:
    out = lc.FilterChain(name=f"{name}-{index}")
    match = chain.match
    if match.server_names or match.alpn or match.destination_port is not None:
        out.filter_chain_match.server_names.extend(match.server_names)
        out.filter_chain_match.application_protocols.extend(match.alpn)
        if match.destination_port is not None:
            out.filter_chain_match.destination_port.value = match.destination_port
    if chain.routes is not None:
        out.filters.append(
            lc.Filter(
                name="envoy.filters.network.http_connection_manager",
                typed_config=_packed(_hcm(name, chain.routes, chain.http, logs)),
            )
        )
    else:
        assert chain.tcp is not None
        proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=name)
        clusters = weighted_clusters(config, (Split(chain.tcp, 100),))
        if len(clusters) == 1:
            proxy.cluster = clusters[0][0]
        else:
            for cluster, weight in clusters:
                proxy.weighted_clusters.clusters.add(name=cluster, weight=weight)
        out.filters.append(lc.Filter(name="envoy.filters.network.tcp_proxy", typed_config=_packed(proxy)))
    if chain.tls is not None:
        out.transport_socket.CopyFrom(_tls(chain.tls))
    return out


def listener(config: Config, name: str, spec: ListenerSpec) -> listener_pb2.Listener:
    out = listener_pb2.Listener(
        name=name,
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address=spec.address, port_value=spec.port)
        ),
        filter_chains=[_chain(config, name, i, chain, spec.access_log_service) for i, chain in enumerate(spec.chains)],
    )
    if any(c.match.server_names or c.match.alpn for c in spec.chains):
        # SNI and ALPN are read from the TLS ClientHello by this listener filter.
        out.listener_filters.add(
            name="envoy.filters.listener.tls_inspector", typed_config=_packed(tls_inspector_pb2.TlsInspector())
        )
    return out


