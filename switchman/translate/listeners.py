"""Listener documents -> Envoy Listeners (HTTP connection managers over RDS, or TCP proxies).

A listener's ``accessLogService`` becomes an ``envoy.access_loggers.http_grpc``
access log on each of its HTTP connection managers, and its ``tracing`` their
tracing config. Every connection manager has the same HTTP filters, whatever
its routes use (local rate limit, fault, router): the first two do nothing
unless a route configures them, and a route change never changes a listener.
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

from switchman.model.config import Config
from switchman.model.kinds.listener import AccessLogService, FilterChain, HttpSettings, ListenerSpec, Tls
from switchman.model.kinds.routes import Split
from switchman.translate.common import ads, duration, packed
from switchman.translate.ratelimit import RATE_LIMIT_FILTER, filter_config
from switchman.translate.routes import FAULT_FILTER
from switchman.translate.targets import weighted_clusters
from switchman.translate.tracing import tracing

__all__ = ["listener"]

_LOG_NAME = "switchman"  # the log_name Envoy sends in its access-log stream's identifier


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
    return accesslog_pb2.AccessLog(name="envoy.access_loggers.http_grpc", typed_config=packed(config))


def _hcm(name: str, routes: str, http: HttpSettings, spec: ListenerSpec) -> hcm_pb2.HttpConnectionManager:
    out = hcm_pb2.HttpConnectionManager(
        stat_prefix=name,
        codec_type=hcm_pb2.HttpConnectionManager.CodecType.Value(http.codec),
        rds=hcm_pb2.Rds(config_source=ads(), route_config_name=routes),
        http_filters=[
            # Refused requests are refused first: no fault is injected into them.
            hcm_pb2.HttpFilter(name=RATE_LIMIT_FILTER, typed_config=packed(filter_config())),
            hcm_pb2.HttpFilter(name=FAULT_FILTER, typed_config=packed(fault_pb2.HTTPFault())),
            hcm_pb2.HttpFilter(name="envoy.filters.http.router", typed_config=packed(router_pb2.Router())),
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
    request_id = http.request_id
    if not request_id.generate:  # Envoy's default is to generate one
        out.generate_request_id.value = False
    out.preserve_external_request_id = request_id.preserve_external
    out.always_set_request_id_in_response = request_id.in_response
    if spec.access_log_service is not None:
        out.access_log.append(_access_log(spec.access_log_service))
    if spec.tracing is not None:
        out.tracing.CopyFrom(tracing(name, spec.tracing))
    return out


def _tls(tls: Tls) -> base_pb2.TransportSocket:
    context = tls_pb2.DownstreamTlsContext()
    common = context.common_tls_context
    if tls.secret is not None:
        common.tls_certificate_sds_secret_configs.add(name=tls.secret).sds_config.CopyFrom(ads())
    else:
        common.tls_certificates.append(
            common_pb2.TlsCertificate(
                certificate_chain=base_pb2.DataSource(filename=tls.cert_file or ""),
                private_key=base_pb2.DataSource(filename=tls.key_file or ""),
            )
        )
    return base_pb2.TransportSocket(name="envoy.transport_sockets.tls", typed_config=packed(context))


def _chain(config: Config, name: str, index: int, chain: FilterChain, spec: ListenerSpec) -> lc.FilterChain:
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
                typed_config=packed(_hcm(name, chain.routes, chain.http, spec)),
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
        out.filters.append(lc.Filter(name="envoy.filters.network.tcp_proxy", typed_config=packed(proxy)))
    if chain.tls is not None:
        out.transport_socket.CopyFrom(_tls(chain.tls))
    return out


def listener(config: Config, name: str, spec: ListenerSpec) -> listener_pb2.Listener:
    out = listener_pb2.Listener(
        name=name,
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address=spec.address, port_value=spec.port)
        ),
        filter_chains=[_chain(config, name, i, chain, spec) for i, chain in enumerate(spec.chains)],
    )
    if any(c.match.server_names or c.match.alpn for c in spec.chains):
        # SNI and ALPN are read from the TLS ClientHello by this listener filter.
        out.listener_filters.add(
            name="envoy.filters.listener.tls_inspector", typed_config=packed(tls_inspector_pb2.TlsInspector())
        )
    return out


