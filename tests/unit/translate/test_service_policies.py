"""A Service's cohort and mirror in the RouteConfiguration: on every route that sends all its traffic to the
whole service, and on no other."""

from __future__ import annotations

import re
from typing import Any

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.v3 import percent_pb2

from tests.unit.model.docs import cluster as cluster_doc
from tests.unit.model.docs import listener as listener_doc
from tests.unit.model.docs import route, routes, service
from tests.unit.translate.envoy import build, routes_of, weights

Raw = dict[str, Any]
HEADER = {"headers": [{"name": "x-canary", "exact": "1"}]}
COOKIE = {"cookie": {"name": "canary", "value": "always"}}
COHORT: Raw = {"version": "v2", "match": [HEADER, COOKIE]}


def routes_for(*route_list: Raw, **service_spec: Any) -> list[rc.Route]:
    """The routes Envoy gets for ``route_list``, with service ``s`` (v1 90, v2 10) as ``service_spec`` adds."""
    service_spec.setdefault("weights", {"v1": 90, "v2": 10})
    docs = [
        cluster_doc("c"), cluster_doc("d"), service("s", **service_spec),
        service("t"), routes("r", *route_list), listener_doc(),
    ]
    return routes_of(build(docs), "r")


def shares(found: rc.Route) -> dict[str, float]:
    """The clusters a route sends to, each with its percentage of the traffic."""
    found_weights = weights(found)
    total = sum(found_weights.values())
    return {name: 100 * weight / total for name, weight in found_weights.items()}


def headers(found: rc.Route) -> list[tuple[str, str, str]]:
    """A route's header matchers as (name, kind, value)."""
    out = []
    for matcher in found.match.headers:
        if matcher.present_match:
            out.append((matcher.name, "present", ""))
            continue
        kind = matcher.string_match.WhichOneof("match_pattern")
        value = matcher.string_match.safe_regex.regex if kind == "safe_regex" else getattr(matcher.string_match, kind)
        out.append((matcher.name, kind, value))
    return out


def mirrors(found: rc.Route) -> list[tuple[str, int | None]]:
    """A route's mirror policies as (cluster, share in millionths, None when every request is copied)."""
    out: list[tuple[str, int | None]] = []
    for policy in found.route.request_mirror_policies:
        fraction = policy.runtime_fraction.default_value if policy.HasField("runtime_fraction") else None
        if fraction is not None:
            assert fraction.denominator == percent_pb2.FractionalPercent.MILLION
        out.append((policy.cluster, fraction.numerator if fraction is not None else None))
    return out


# -- cohort ------------------------------------------------------------------------------------------------------


def test_one_route_per_cohort_entry_comes_first_and_goes_to_the_cohort_version() -> None:
    cohort0, cohort1, whole = routes_for(route(service="s"), cohort=COHORT)
    for found in (cohort0, cohort1):
        assert weights(found) == {"s-v2": 1}
        assert found.match.prefix == "/"
    assert headers(cohort0) == [("x-canary", "exact", "1")]
    [(name, kind, pattern)] = headers(cohort1)
    assert (name, kind) == ("cookie", "safe_regex")
    assert re.fullmatch(pattern, "a=b; canary=always; c=d")
    assert not re.fullmatch(pattern, "a=b; canary=never")
    assert shares(whole) == {"s-v1": 90, "s-v2": 10}
    assert not whole.match.headers


def test_a_cohort_entry_with_headers_and_a_cookie_needs_them_all() -> None:
    entry = {"headers": [{"name": "x-user", "prefix": "beta-"}, {"name": "x-debug", "present": True}], **COOKIE}
    cohort, _ = routes_for(route(service="s"), cohort={"version": "v2", "match": [entry]})
    assert [h[:2] for h in headers(cohort)] == [("x-user", "prefix"), ("x-debug", "present"), ("cookie", "safe_regex")]


def test_cohort_routes_keep_the_routes_match_and_add_their_headers() -> None:
    match = {"prefix": "/api", "headers": [{"name": "x-tenant", "exact": "acme"}], "queryParams": [
        {"name": "debug", "present": True}]}
    cohort0, cohort1, whole = routes_for(route(service="s", match=match), cohort=COHORT)
    for found in (cohort0, cohort1, whole):
        assert found.match.prefix == "/api"
        assert [q.name for q in found.match.query_parameters] == ["debug"]
    assert headers(cohort0) == [("x-tenant", "exact", "acme"), ("x-canary", "exact", "1")]
    assert [h[:2] for h in headers(cohort1)] == [("x-tenant", "exact"), ("cookie", "safe_regex")]
    assert headers(whole) == [("x-tenant", "exact", "acme")]


def test_cohort_routes_keep_the_routes_policies() -> None:
    policies: Raw = {
        "timeout": "2s",
        "retries": {"retryOn": ["5xx"], "attempts": 3, "perTryTimeout": "500ms"},
        "rewrite": {"prefix": "/v2/"},
        "fault": {"abort": {"status": 503, "percent": 1}},
        "requestHeaders": {"add": {"x-routed-by": "switchman"}},
        "responseHeaders": {"remove": ["server"]},
    }
    found = routes_for(route(service="s", **policies), cohort=COHORT)
    assert len(found) == 3
    for each in found:
        assert each.route.timeout.ToMilliseconds() == 2000
        assert each.route.retry_policy.retry_on == "5xx"
        assert each.route.retry_policy.num_retries.value == 3
        assert each.route.retry_policy.per_try_timeout.ToMilliseconds() == 500
        assert each.route.prefix_rewrite == "/v2/"
        assert "envoy.filters.http.fault" in each.typed_per_filter_config
        assert [(h.header.key, h.header.value) for h in each.request_headers_to_add] == [("x-routed-by", "switchman")]
        assert list(each.response_headers_to_remove) == ["server"]


def test_a_named_routes_cohort_copies_are_named_after_it() -> None:
    found = routes_for(route(service="s", name="main"), cohort=COHORT)
    assert [r.name for r in found] == ["main.cohort-0", "main.cohort-1", "main"]
    assert [r.name for r in routes_for(route(service="s"), cohort=COHORT)] == ["", "", ""]


def test_a_cohort_applies_to_each_whole_service_route_in_place() -> None:
    found = routes_for(
        route(match={"path": "/healthz"}, directResponse={"status": 200}, name="health"),
        route(match={"prefix": "/api"}, service={"name": "s"}, name="api"),
        route(match={"prefix": "/old"}, cluster="c", name="old"),
        route(match={"prefix": "/"}, split=[{"service": "s", "weight": 100}], name="rest"),
        cohort=COHORT,
    )
    assert [r.name for r in found] == [
        "health", "api.cohort-0", "api.cohort-1", "api", "old", "rest.cohort-0", "rest.cohort-1", "rest",
    ]
    assert [r.match.prefix for r in found[5:]] == ["/", "/", "/"]
    assert weights(found[5]) == {"s-v2": 1}


def test_a_cohort_version_at_weight_zero_still_gets_its_cohort() -> None:
    cohort, _, whole = routes_for(route(service="s"), weights={"v1": 100, "v2": 0}, cohort=COHORT)
    assert (weights(cohort), weights(whole)) == ({"s-v2": 1}, {"s-v1": 1})


# -- mirror ---------------------------------------------------------------------------------------------------------


def test_the_mirror_is_on_the_whole_service_route_with_its_share() -> None:
    [found] = routes_for(route(service="s"), mirror={"version": "v2", "percent": 12.5})
    assert mirrors(found) == [("s-v2", 125_000)]
    assert shares(found) == {"s-v1": 90, "s-v2": 10}
    [found] = routes_for(route(service="s"), mirror={"version": "v2"})
    assert mirrors(found) == [("s-v2", None)]


def test_the_service_mirror_comes_after_the_routes_own() -> None:
    [found] = routes_for(route(service="s", mirror={"cluster": "d", "percent": 5}), mirror={"version": "v1"})
    assert mirrors(found) == [("d", 50_000), ("s-v1", None)]


def test_cohort_routes_keep_only_the_routes_own_mirror() -> None:
    own = route(service="s", mirror={"cluster": "d"})
    found = routes_for(own, cohort=COHORT, mirror={"version": "v2", "percent": 1})
    assert [mirrors(r) for r in found] == [[("d", None)], [("d", None)], [("d", None), ("s-v2", 10_000)]]


# -- routes that do not send everything to the whole service --------------------------------------------------------


def test_routes_that_name_a_version_or_split_are_untouched() -> None:
    untouched = [
        route(service={"name": "s", "version": "v1"}, name="version"),
        route(split=[{"service": "s", "version": "v1", "weight": 100}], name="one-version"),
        route(split=[{"service": "s", "weight": 50}, {"cluster": "c", "weight": 50}], name="with-cluster"),
        route(split=[{"service": "s", "weight": 50}, {"service": "t", "weight": 50}], name="two-services"),
        route(split=[{"service": "s", "weight": 50}, {"service": "s", "version": "v2", "weight": 50}], name="mixed"),
        route(cluster="c", name="cluster"),
        route(service="t", name="other-service"),
    ]
    found = routes_for(*untouched, cohort=COHORT, mirror={"version": "v2"})
    assert [r.name for r in found] == [r["name"] for r in untouched]
    assert all(not r.match.headers and not r.route.request_mirror_policies for r in found)
    assert found == routes_for(*untouched)


def test_a_service_without_cohort_or_mirror_changes_nothing() -> None:
    [found] = routes_for(route(service="s", name="main"))
    assert (found.name, shares(found), mirrors(found)) == ("main", {"s-v1": 90, "s-v2": 10}, [])
