"""Every example in examples/ builds (parse -> build_config -> translate -> Snapshot.build) into what it promises."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.extensions.filters.http.local_ratelimit.v3.local_rate_limit_pb2 import LocalRateLimit
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2

from switchman.xds import resources as rt
from tests.unit.translate.envoy import (
    EXAMPLES,
    assignment,
    build,
    cluster,
    endpoints,
    hcm,
    listener,
    load_example,
    names,
    route_config,
    routes_of,
    weights,
)

EXPECTED = {
    "checkout.yaml": {
        rt.CLUSTER: {"checkout-v1", "checkout-v2"},
        rt.ENDPOINT: {"checkout-v1", "checkout-v2"},
        rt.ROUTE: {"ingress-routes"},
        rt.LISTENER: {"ingress"},
        rt.SECRET: set(),
    },
    "canary-with-retries.yaml": {
        rt.CLUSTER: {"api-v1", "api-v2"},
        rt.ENDPOINT: {"api-v1", "api-v2"},
        rt.ROUTE: {"api-routes"},
        rt.LISTENER: {"api-ingress"},
        rt.SECRET: set(),
    },
    "rate-limits-and-breakers.yaml": {
        rt.CLUSTER: {"catalog-v1"},
        rt.ENDPOINT: {"catalog-v1"},
        rt.ROUTE: {"catalog-routes"},
        rt.LISTENER: {"catalog-ingress"},
        rt.SECRET: set(),
    },
    "raw-resources.yaml": {
        rt.CLUSTER: {"legacy"},
        rt.ENDPOINT: set(),
        rt.ROUTE: {"legacy-routes"},
        rt.LISTENER: {"legacy-ingress"},
        rt.SECRET: set(),
    },
}


def test_every_example_is_covered() -> None:
    assert {p.name for p in EXAMPLES.glob("*.yaml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_builds_the_expected_resources(name: str) -> None:
    snapshot = build(load_example(name), source=name)
    for type_url, expected in EXPECTED[name].items():
        assert names(snapshot, type_url) == expected, rt.short_name(type_url)


def test_checkout() -> None:
    snapshot = build(load_example("checkout.yaml"))
    for version, port in (("v1", 9001), ("v2", 9002)):
        c = cluster(snapshot, f"checkout-{version}")
        assert c.type == cluster_pb2.Cluster.EDS
        assert c.eds_cluster_config.eds_config.HasField("ads")
        assert c.connect_timeout.ToMilliseconds() == 500
        assert c.outlier_detection.consecutive_5xx.value == 5
        assert c.outlier_detection.interval.seconds == 5
        assert c.outlier_detection.base_ejection_time.seconds == 30
        assert endpoints(assignment(snapshot, f"checkout-{version}")) == [("127.0.0.1", port, 1)]

    [vhost] = route_config(snapshot, "ingress-routes").virtual_hosts
    assert (vhost.name, list(vhost.domains)) == ("shop", ["*"])
    health, canary, default = routes_of(snapshot, "ingress-routes")
    assert health.match.prefix == "/healthz"
    assert (health.direct_response.status, health.direct_response.body.inline_string) == (200, "ok\n")
    [header] = canary.match.headers
    assert (header.name, header.string_match.exact, header.invert_match) == ("x-canary", "1", False)
    assert weights(canary) == {"checkout-v2": 1}
    # The service's weights are v1: 100, v2: 0: the zero weight is dropped, one cluster is left.
    assert weights(default) == {"checkout-v1": 1}
    assert default.route.timeout.seconds == 5

    ingress = listener(snapshot, "ingress")
    assert (ingress.address.socket_address.address, ingress.address.socket_address.port_value) == ("127.0.0.1", 10000)
    [chain] = ingress.filter_chains
    manager = hcm(chain)
    assert manager.rds.route_config_name == "ingress-routes"
    assert manager.rds.config_source.HasField("ads")
    assert [f.name for f in manager.http_filters] == [
        "envoy.filters.http.local_ratelimit", "envoy.filters.http.fault", "envoy.filters.http.router"
    ]
    assert not ingress.listener_filters


def test_canary_with_retries() -> None:
    snapshot = build(load_example("canary-with-retries.yaml"))
    assert endpoints(assignment(snapshot, "api-v1")) == [("127.0.0.1", 9101, 1), ("127.0.0.1", 9102, 1)]
    for name in ("api-v1", "api-v2"):
        [thresholds] = cluster(snapshot, name).circuit_breakers.thresholds
        assert thresholds.max_requests.value == 1000
        assert thresholds.retry_budget.budget_percent.value == 25
        assert thresholds.retry_budget.min_retry_concurrency.value == 3
        assert not thresholds.HasField("max_retries")

    [vhost] = route_config(snapshot, "api-routes").virtual_hosts
    assert list(vhost.domains) == ["api.example.com", "*"]
    [route] = vhost.routes
    assert route.match.prefix == "/api"
    assert weights(route) == {"api-v1": 90, "api-v2": 10}
    assert route.route.timeout.seconds == 3
    policy = route.route.retry_policy
    assert policy.retry_on == "5xx,reset,connect-failure"
    assert policy.num_retries.value == 3
    assert policy.per_try_timeout.seconds == 1
    [predicate] = policy.retry_host_predicate
    assert predicate.name == "envoy.retry_host_predicates.previous_hosts"
    assert predicate.typed_config.Is(previous_hosts_pb2.PreviousHostsPredicate.DESCRIPTOR)
    assert policy.host_selection_retry_max_attempts == 3
    assert policy.retry_back_off.base_interval.ToMilliseconds() == 25
    assert policy.retry_back_off.max_interval.ToMilliseconds() == 250
    [added] = route.request_headers_to_add
    assert (added.header.key, added.header.value) == ("x-routed-by", "switchman")
    assert added.append_action == base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    assert listener(snapshot, "api-ingress").address.socket_address.port_value == 10001


def test_rate_limits_and_breakers() -> None:
    snapshot = build(load_example("rate-limits-and-breakers.yaml"))
    [thresholds] = cluster(snapshot, "catalog-v1").circuit_breakers.thresholds
    assert (thresholds.max_connections.value, thresholds.max_pending_requests.value) == (100, 50)
    assert (thresholds.max_requests.value, thresholds.max_retries.value) == (200, 3)

    [vhost] = route_config(snapshot, "catalog-routes").virtual_hosts
    shared = LocalRateLimit()
    assert vhost.typed_per_filter_config["envoy.filters.http.local_ratelimit"].Unpack(shared)
    assert shared.stat_prefix == "rate_limit.catalog"
    assert (shared.token_bucket.max_tokens, shared.token_bucket.tokens_per_fill.value) == (100, 50)
    assert shared.token_bucket.fill_interval.seconds == 1
    assert shared.enable_x_ratelimit_headers == ratelimit_pb2.OFF
    search, rest = vhost.routes
    own = LocalRateLimit()
    assert search.typed_per_filter_config["envoy.filters.http.local_ratelimit"].Unpack(own)
    assert own.stat_prefix == "rate_limit.catalog.search"
    assert (own.token_bucket.max_tokens, own.token_bucket.tokens_per_fill.value) == (5, 5)
    assert own.token_bucket.fill_interval.seconds == 60
    assert own.status.code == 429
    assert own.enable_x_ratelimit_headers == ratelimit_pb2.DRAFT_VERSION_03
    [added] = own.response_headers_to_add
    assert (added.header.key, added.header.value) == ("x-limited-by", "switchman")
    for share in (own.filter_enabled, own.filter_enforced):
        assert (share.default_value.numerator, share.default_value.denominator) == (1_000_000, 2)  # 100 %
    assert not rest.typed_per_filter_config  # the virtual host's bucket applies

    [chain] = listener(snapshot, "catalog-ingress").filter_chains
    assert hcm(chain).http_filters[0].name == "envoy.filters.http.local_ratelimit"


def test_raw_resources_pass_through_unchanged() -> None:
    snapshot = build(load_example("raw-resources.yaml"))
    legacy = cluster(snapshot, "legacy")
    assert legacy.type == cluster_pb2.Cluster.STATIC
    assert legacy.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value == 9201
    assert weights(routes_of(snapshot, "legacy-routes")[0]) == {"legacy": 1}
    assert hcm(listener(snapshot, "legacy-ingress").filter_chains[0]).rds.route_config_name == "legacy-routes"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_builds_the_same_snapshot_twice(name: str) -> None:
    first, second = build(load_example(name)), build(load_example(name))
    for type_url in rt.TYPE_URLS:
        assert first.version(type_url) == second.version(type_url)
