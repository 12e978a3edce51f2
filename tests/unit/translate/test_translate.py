"""The model -> Envoy, feature by feature: matches, actions, policies, listeners, clusters, weights."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import config_source_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.access_loggers.grpc.v3 import als_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.v3 import percent_pb2

from switchman.xds import resources as rt
from tests.unit.model.docs import cluster as cluster_doc
from tests.unit.model.docs import listener as listener_doc
from tests.unit.model.docs import route, routes, service
from tests.unit.translate.envoy import (
    assignment,
    build,
    cluster,
    endpoints,
    hcm,
    listener,
    names,
    routes_of,
    tcp_proxy,
    weights,
)

Raw = dict[str, Any]


def one_route(**fields: Any) -> rc.Route:
    snapshot = build([cluster_doc("c"), cluster_doc("d"), service("s"), routes("r", route(**fields)), listener_doc()])
    return routes_of(snapshot, "r")[0]


# -- matches ------------------------------------------------------------------------------------------


def test_path_and_regex_matches() -> None:
    assert one_route(match={"path": "/exact"}).match.path == "/exact"
    assert one_route(match={"regex": "/img/.*\\.png"}).match.safe_regex.regex == "/img/.*\\.png"


def test_header_matchers() -> None:
    headers: list[Raw] = [
        {"name": "x-exact", "exact": "1"},
        {"name": "x-prefix", "prefix": "beta-"},
        {"name": "x-regex", "regex": "v[0-9]+"},
        {"name": "x-present", "present": True},
        {"name": "x-absent", "present": True, "invert": True},
        {"name": "x-number", "exact": 7},
    ]
    matchers = one_route(match={"prefix": "/", "headers": headers}).match.headers
    assert [m.name for m in matchers] == [h["name"] for h in headers]
    assert matchers[0].string_match.exact == "1"
    assert matchers[1].string_match.prefix == "beta-"
    assert matchers[2].string_match.safe_regex.regex == "v[0-9]+"
    assert matchers[3].present_match and not matchers[3].invert_match
    assert matchers[4].present_match and matchers[4].invert_match
    assert matchers[5].string_match.exact == "7"


def test_query_parameter_matchers() -> None:
    params = [{"name": "debug", "present": True}, {"name": "v", "exact": "2"}, {"name": "q", "prefix": "a"}]
    matchers = one_route(match={"prefix": "/", "queryParams": params}).match.query_parameters
    assert [(m.name, m.WhichOneof("query_parameter_match_specifier")) for m in matchers] == [
        ("debug", "present_match"), ("v", "string_match"), ("q", "string_match")
    ]
    assert (matchers[1].string_match.exact, matchers[2].string_match.prefix) == ("2", "a")


# -- actions ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "envoy"),
    [(301, rc.RedirectAction.MOVED_PERMANENTLY), (302, rc.RedirectAction.FOUND), (303, rc.RedirectAction.SEE_OTHER),
     (307, rc.RedirectAction.TEMPORARY_REDIRECT), (308, rc.RedirectAction.PERMANENT_REDIRECT)],
)
def test_redirect(code: int, envoy: int) -> None:
    redirect = one_route(redirect={"code": code, "https": True, "host": "new.example", "path": "/x"}).redirect
    assert redirect.response_code == envoy
    assert (redirect.https_redirect, redirect.host_redirect, redirect.path_redirect) == (True, "new.example", "/x")


def test_direct_response() -> None:
    found = one_route(directResponse={"status": 404, "body": "no"})
    assert (found.direct_response.status, found.direct_response.body.inline_string) == (404, "no")
    assert not one_route(directResponse={"status": 204}).direct_response.HasField("body")


def test_retry_policy_with_status_codes() -> None:
    retries = {"retryOn": ["retriable-status-codes", "gateway-error"], "statusCodes": [503, 429], "attempts": 4}
    policy = one_route(retries=retries).route.retry_policy
    assert policy.retry_on == "retriable-status-codes,gateway-error"
    assert list(policy.retriable_status_codes) == [503, 429]
    assert policy.num_retries.value == 4
    assert not policy.retry_host_predicate
    assert not policy.HasField("retry_back_off")
    assert not policy.HasField("per_try_timeout")


def test_retry_backoff_default_max() -> None:
    policy = one_route(retries={"backoff": {"base": "100ms"}}).route.retry_policy
    assert policy.retry_back_off.base_interval.ToMilliseconds() == 100
    assert policy.retry_back_off.max_interval.ToMilliseconds() == 1000


def _fault(found: rc.Route) -> fault_pb2.HTTPFault:
    out = fault_pb2.HTTPFault()
    assert found.typed_per_filter_config["envoy.filters.http.fault"].Unpack(out)
    return out


def test_fault_is_per_route_config_of_the_fault_filter() -> None:
    found = one_route(fault={"delay": {"fixed": "250ms", "percent": 12.5}, "abort": {"status": 503, "percent": 1}})
    assert list(found.typed_per_filter_config) == ["envoy.filters.http.fault"]
    fault = _fault(found)
    assert fault.delay.fixed_delay.ToMilliseconds() == 250
    assert fault.delay.percentage.numerator == 125_000
    assert fault.delay.percentage.denominator == percent_pb2.FractionalPercent.MILLION
    assert fault.abort.http_status == 503
    assert fault.abort.percentage.numerator == 10_000


def test_abort_only_fault_has_no_delay() -> None:
    fault = _fault(one_route(fault={"abort": {"status": 500, "percent": 100}}))
    assert not fault.HasField("delay")
    assert fault.abort.percentage.numerator == 1_000_000


def test_no_fault_no_per_route_config() -> None:
    assert not one_route().typed_per_filter_config


def test_mirror() -> None:
    [policy] = one_route(mirror={"cluster": "d", "percent": 5}).route.request_mirror_policies
    assert policy.cluster == "d"
    assert policy.runtime_fraction.default_value.numerator == 50_000
    [full] = one_route(mirror={"cluster": "d"}).route.request_mirror_policies
    assert not full.HasField("runtime_fraction")


def test_mirror_of_a_whole_service_goes_to_its_heaviest_version() -> None:
    snapshot = build([
        cluster_doc("c"), service("s", weights={"v1": 20, "v2": 80}),
        routes("r", route(mirror={"service": "s"})), listener_doc(),
    ])
    [policy] = routes_of(snapshot, "r")[0].route.request_mirror_policies
    assert policy.cluster == "s-v2"


def test_prefix_rewrite_timeout_and_header_rewrites() -> None:
    found = one_route(
        rewrite={"prefix": "/v2/"}, timeout="1.5s",
        requestHeaders={"add": {"X-Env": "prod"}, "remove": ["x-debug"]},
        responseHeaders={"add": {"x-served-by": "envoy"}, "remove": ["server"]},
    )
    assert found.route.prefix_rewrite == "/v2/"
    assert found.route.timeout.ToMilliseconds() == 1500
    assert [(h.header.key, h.header.value) for h in found.request_headers_to_add] == [("x-env", "prod")]
    assert list(found.request_headers_to_remove) == ["x-debug"]
    assert [(h.header.key, h.header.value) for h in found.response_headers_to_add] == [("x-served-by", "envoy")]
    assert list(found.response_headers_to_remove) == ["server"]


def test_route_name() -> None:
    assert one_route(name="default").name == "default"


# -- weights -----------------------------------------------------------------------------------------------


def test_a_split_between_clusters_keeps_the_users_weights_and_drops_zeros() -> None:
    found = one_route(split=[{"cluster": "c", "weight": 70}, {"cluster": "d", "weight": 30},
                             {"service": "s", "version": "v1", "weight": 0}])
    assert weights(found) == {"c": 70, "d": 30}


def test_a_whole_service_is_spread_by_its_weights() -> None:
    snapshot = build([
        service("s", weights={"v1": 3, "v2": 1}), cluster_doc("c"),
        routes("r", route(split=[{"service": "s", "weight": 50}, {"cluster": "c", "weight": 50}])), listener_doc(),
    ])
    # s is 3:1 inside its half: s-v1 3/8, s-v2 1/8, c 4/8 of the traffic.
    assert weights(routes_of(snapshot, "r")[0]) == {"s-v1": 150, "s-v2": 50, "c": 200}


def test_two_services_spread_with_whole_weights() -> None:
    snapshot = build([
        service("a", weights={"v1": 1, "v2": 2}), service("b", versions={"x": 1, "y": 2}, weights={"x": 1, "y": 1}),
        routes("r", route(split=[{"service": "a", "weight": 1}, {"service": "b", "weight": 1}])), listener_doc(),
    ])
    found = weights(routes_of(snapshot, "r")[0])
    total = sum(found.values())
    shares = {name: weight / total for name, weight in found.items()}
    assert shares == pytest.approx({"a-v1": 1 / 6, "a-v2": 2 / 6, "b-x": 1 / 4, "b-y": 1 / 4})


def test_a_version_and_its_whole_service_merge_into_one_cluster() -> None:
    snapshot = build([
        service("s", weights={"v1": 100}),
        routes("r", route(split=[{"service": "s", "weight": 40}, {"service": "s", "version": "v1", "weight": 60}])),
        listener_doc(),
    ])
    assert weights(routes_of(snapshot, "r")[0]) == {"s-v1": 1}


def test_a_service_route_without_weights_goes_to_the_first_version() -> None:
    snapshot = build([service("s", versions={"blue": 1, "green": 2}), routes("r", route(service="s")), listener_doc()])
    assert weights(routes_of(snapshot, "r")[0]) == {"s-blue": 1}


def test_weights_of_many_spread_services_stay_within_uint32() -> None:
    totals = [(50, 47), (50, 39), (50, 33), (50, 29), (50, 23)]
    docs: list[Raw] = [service(f"s{i}", weights={"v1": a, "v2": b}) for i, (a, b) in enumerate(totals)]
    split = [{"service": f"s{i}", "weight": 100 - i} for i in range(len(totals))]
    snapshot = build([*docs, routes("r", route(split=split)), listener_doc()])
    found = weights(routes_of(snapshot, "r")[0])
    assert sum(found.values()) < 2**32
    assert found["s0-v1"] / found["s0-v2"] == pytest.approx(50 / 47, rel=1e-3)


# -- clusters -------------------------------------------------------------------------------------------


def test_eds_cluster_sends_endpoints_apart() -> None:
    snapshot = build([cluster_doc("c", endpoints=[{"address": "10.0.0.1", "port": 80, "weight": 3},
                                                  {"address": "10.0.0.2", "port": 80}])])
    c = cluster(snapshot, "c")
    assert c.type == cluster_pb2.Cluster.EDS
    assert not c.HasField("load_assignment")
    assert endpoints(assignment(snapshot, "c")) == [("10.0.0.1", 80, 3), ("10.0.0.2", 80, 1)]


def test_static_cluster_carries_its_endpoints() -> None:
    snapshot = build([cluster_doc("c", discovery="static")])
    c = cluster(snapshot, "c")
    assert c.type == cluster_pb2.Cluster.STATIC
    assert endpoints(c.load_assignment) == [("127.0.0.1", 9001, 1)]
    assert names(snapshot, rt.ENDPOINT) == set()


def test_upstream_settings() -> None:
    snapshot = build([cluster_doc(
        "c", lbPolicy="LEAST_REQUEST", connectTimeout="250ms", http2=True,
        healthCheck={"path": "/healthz", "interval": "2s", "timeout": "500ms", "healthyThreshold": 2,
                     "unhealthyThreshold": 3},
        circuitBreakers={"maxConnections": 10, "maxPendingRequests": 20, "maxRequests": 30, "maxRetries": 4},
    )])
    c = cluster(snapshot, "c")
    assert c.lb_policy == cluster_pb2.Cluster.LEAST_REQUEST
    assert c.connect_timeout.ToMilliseconds() == 250
    options = http_protocol_options_pb2.HttpProtocolOptions()
    assert c.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].Unpack(options)
    assert options.explicit_http_config.HasField("http2_protocol_options")
    [check] = c.health_checks
    assert check.http_health_check.path == "/healthz"
    assert (check.interval.seconds, check.timeout.ToMilliseconds()) == (2, 500)
    assert (check.healthy_threshold.value, check.unhealthy_threshold.value) == (2, 3)
    [t] = c.circuit_breakers.thresholds
    assert (t.max_connections.value, t.max_pending_requests.value, t.max_requests.value, t.max_retries.value) == (
        10, 20, 30, 4
    )
    assert not t.HasField("retry_budget")


def test_service_versions_share_upstream_settings() -> None:
    snapshot = build([service("s", lbPolicy="RANDOM")])
    assert {cluster(snapshot, n).lb_policy for n in ("s-v1", "s-v2")} == {cluster_pb2.Cluster.RANDOM}
    assert names(snapshot, rt.ENDPOINT) == {"s-v1", "s-v2"}


# -- listeners -------------------------------------------------------------------------------------------


def test_http_settings() -> None:
    http = {"codec": "HTTP1", "idleTimeout": "30s", "requestTimeout": "1m", "useRemoteAddress": True,
            "xffNumTrustedHops": 2, "serverName": "shop"}
    snapshot = build([cluster_doc(), routes(), listener_doc(http=http)])
    manager = hcm(listener(snapshot, "l").filter_chains[0])
    assert manager.codec_type == manager.HTTP1
    assert manager.common_http_protocol_options.idle_timeout.seconds == 30
    assert manager.request_timeout.seconds == 60
    assert manager.use_remote_address.value is True
    assert (manager.xff_num_trusted_hops, manager.server_name, manager.stat_prefix) == (2, "shop", "l")


def test_access_log_service_logs_every_http_chain_over_grpc() -> None:
    chains = [{"match": {"serverNames": ["a.example"]}, "routes": "r"}, {"routes": "r"},
              {"match": {"destinationPort": 5432}, "tcp": {"cluster": "c"}}]
    logs = {"cluster": "xds", "bufferFlushInterval": "250ms"}
    found = listener(build([cluster_doc(), routes(), listener_doc(filterChains=chains, accessLogService=logs)]), "l")
    sni, default, tcp = found.filter_chains
    for chain in (sni, default):
        [access_log] = hcm(chain).access_log
        assert access_log.name == "envoy.access_loggers.http_grpc"
        config = als_pb2.HttpGrpcAccessLogConfig()
        assert access_log.typed_config.Unpack(config)
        common = config.common_config
        assert (common.log_name, common.transport_api_version) == ("switchman", config_source_pb2.V3)
        assert common.grpc_service.envoy_grpc.cluster_name == "xds"
        assert (common.buffer_flush_interval.seconds, common.buffer_flush_interval.nanos) == (0, 250_000_000)
    assert tcp_proxy(tcp).cluster == "c"  # a TCP proxy logs nothing
    short = listener(build([cluster_doc(), routes(), listener_doc(accessLogService={"cluster": "xds"})]), "l")
    [access_log] = hcm(short.filter_chains[0]).access_log
    config = als_pb2.HttpGrpcAccessLogConfig()
    assert access_log.typed_config.Unpack(config)
    assert config.common_config.buffer_flush_interval.nanos == 500_000_000
    plain = listener(build([cluster_doc(), routes(), listener_doc()]), "l")
    assert not hcm(plain.filter_chains[0]).access_log


def test_tls_and_sni_chains_get_the_tls_inspector() -> None:
    secret = {
        "kind": "EnvoyResource", "metadata": {"name": "b-cert"},
        "spec": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", "name": "b-cert"},
    }
    chains = [
        {"match": {"serverNames": ["a.example"]}, "routes": "r",
         "tls": {"certFile": "/etc/a.pem", "keyFile": "/etc/a.key"}},
        {"match": {"serverNames": ["b.example"], "alpn": ["h2"]}, "routes": "r", "tls": {"secret": "b-cert"}},
        {"match": {"destinationPort": 8443}, "tcp": {"cluster": "c"}},
        {"routes": "r"},
    ]
    snapshot = build([cluster_doc(), routes(), secret, listener_doc(filterChains=chains)])
    found = listener(snapshot, "l")
    assert [f.name for f in found.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    a, b, port, default = found.filter_chains
    assert [c.name for c in found.filter_chains] == ["l-0", "l-1", "l-2", "l-3"]
    assert list(a.filter_chain_match.server_names) == ["a.example"]
    assert list(b.filter_chain_match.application_protocols) == ["h2"]
    assert port.filter_chain_match.destination_port.value == 8443
    assert not default.HasField("filter_chain_match")
    assert not default.HasField("transport_socket") and not port.HasField("transport_socket")

    context = tls_pb2.DownstreamTlsContext()
    assert a.transport_socket.name == "envoy.transport_sockets.tls"
    assert a.transport_socket.typed_config.Unpack(context)
    [certificate] = context.common_tls_context.tls_certificates
    assert (certificate.certificate_chain.filename, certificate.private_key.filename) == ("/etc/a.pem", "/etc/a.key")
    assert b.transport_socket.typed_config.Unpack(context)
    [sds] = context.common_tls_context.tls_certificate_sds_secret_configs
    assert sds.name == "b-cert" and sds.sds_config.HasField("ads")
    assert tcp_proxy(port).cluster == "c"
    assert names(snapshot, rt.SECRET) == {"b-cert"}


def test_no_sni_no_tls_inspector() -> None:
    chains = [{"match": {"destinationPort": 80}, "routes": "r"}, {"routes": "r", "tls": {"secret": "x"}}]
    secret = {
        "kind": "EnvoyResource",
        "metadata": {"name": "x"},
        "spec": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", "name": "x"},
    }
    found = listener(build([cluster_doc(), routes(), secret, listener_doc(filterChains=chains)]), "l")
    assert not found.listener_filters


def test_tcp_proxy_to_a_cluster() -> None:
    found = listener(build([cluster_doc("db"), listener_doc("db-proxy", tcp={"cluster": "db"})]), "db-proxy")
    proxy = tcp_proxy(found.filter_chains[0])
    assert (proxy.cluster, proxy.stat_prefix) == ("db", "db-proxy")


def test_tcp_proxy_to_a_service_spreads_by_its_weights() -> None:
    snapshot = build([service("s", weights={"v1": 80, "v2": 20}), listener_doc(tcp={"service": "s"})])
    proxy = tcp_proxy(listener(snapshot, "l").filter_chains[0])
    found = {c.name: c.weight for c in proxy.weighted_clusters.clusters}
    assert list(found) == ["s-v1", "s-v2"]
    assert found["s-v1"] == 4 * found["s-v2"]
    version = build([service("s"), listener_doc(tcp={"service": "s", "version": "v2"})])
    assert tcp_proxy(listener(version, "l").filter_chains[0]).cluster == "s-v2"
