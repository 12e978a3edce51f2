"""kind: Service: named versions, each a set of endpoints, the default split between them, its cohort and mirror."""

from __future__ import annotations

import re
from typing import Any

import pytest

from switchman.model.kinds.routes import HeaderMatch
from switchman.model.kinds.service import ServiceMirror, ServiceSpec, cookie_match
from tests.unit.model.docs import parse, rejected, service


def _spec(doc: dict[str, Any]) -> ServiceSpec:
    spec = parse(doc).spec
    assert isinstance(spec, ServiceSpec)
    return spec


def test_versions_are_required() -> None:
    err = rejected(service() | {"spec": {"weights": {"v1": 1}}})
    assert (err.path, err.reason) == ("service/s: spec.versions", "is required")


def test_a_service_needs_a_version() -> None:
    err = rejected(service() | {"spec": {"versions": {}}})
    assert (err.path, err.reason) == ("service/s: spec.versions", "needs at least one version")


def test_version_names_are_plain() -> None:
    err = rejected(service(versions={"V1": 9001}))
    assert err.path == "service/s: spec.versions.V1"
    assert err.reason == "'V1' is not a version name (lowercase, digits, - and _)"


def test_a_version_needs_endpoints() -> None:
    err = rejected(service() | {"spec": {"versions": {"v1": {}}}})
    assert (err.path, err.reason) == (
        "service/s: spec.versions.v1", "needs exactly one of endpoints, kubernetes (found none)"
    )


def test_an_endpoint_listed_twice_in_a_version_is_refused() -> None:
    endpoint = {"address": "10.0.0.1", "port": 80}
    err = rejected(service() | {"spec": {"versions": {"v1": {"endpoints": [endpoint, endpoint]}}}})
    assert (err.path, err.reason) == ("service/s: spec.versions.v1.endpoints[1]", "10.0.0.1:80 is listed twice")


def test_the_same_endpoint_in_two_versions_is_allowed() -> None:
    endpoints = {"endpoints": [{"address": "10.0.0.1", "port": 80}]}
    assert set(_spec(service() | {"spec": {"versions": {"v1": endpoints, "v2": endpoints}}}).versions) == {"v1", "v2"}


def test_weights_name_only_versions_that_exist() -> None:
    err = rejected(service(weights={"v1": 90, "v3": 10}))
    assert (err.path, err.reason) == ("service/s: spec.weights.v3", "there is no version 'v3' (versions: v1, v2)")


def test_weights_summing_to_zero_are_refused() -> None:
    err = rejected(service(weights={"v1": 0, "v2": 0}))
    assert (err.path, err.reason) == ("service/s: spec.weights", "weights sum to 0")


def test_without_weights_everything_goes_to_the_first_version() -> None:
    assert dict(_spec(service(versions={"blue": 1, "green": 2})).weights) == {"blue": 100}


def test_weights_left_out_are_zero() -> None:
    assert dict(_spec(service(weights={"v2": 10})).weights) == {"v2": 10}


def test_upstream_rules_apply_to_services_too() -> None:
    err = rejected(service(circuitBreakers={"maxRetries": 1, "retryBudget": {}}))
    assert err.path == "service/s: spec.circuitBreakers"
    assert err.reason.startswith("set either maxRetries or retryBudget")
    assert _spec(service(lbPolicy="LEAST_REQUEST", http2=True)).upstream.http2 is True


# -- cohort: requests that match go to one version, whatever the weights -----------------------------------

COHORT: dict[str, Any] = {
    "version": "v2",
    "match": [
        {"headers": [{"name": "X-Canary", "exact": "1"}]},
        {"cookie": {"name": "canary", "value": "always"}},
        {"headers": [{"name": "x-user", "prefix": "beta-"}], "cookie": {"name": "sid", "value": "a.b"}},
    ],
}


def test_a_cohort_entry_is_all_of_its_headers_and_its_cookie() -> None:
    cohort = _spec(service(cohort=COHORT)).cohort
    assert cohort is not None
    assert cohort.version == "v2"
    assert cohort.matches == (
        (HeaderMatch("x-canary", "exact", "1"),),
        (cookie_match("canary", "always"),),
        (HeaderMatch("x-user", "prefix", "beta-"), cookie_match("sid", "a.b")),
    )
    assert (_spec(service()).cohort, _spec(service()).mirror) == (None, None)


def test_a_cookie_is_a_regex_on_the_cookie_header() -> None:
    found = cookie_match("canary", "always")
    assert (found.name, found.kind, found.invert) == ("cookie", "regex", False)
    pattern = re.compile(found.value)
    for header in ("canary=always", "a=b; canary=always", "a=b;canary=always; c=d", "canary=always;c=d"):
        assert pattern.fullmatch(header), header
    for header in ("canary=never", "xcanary=always", "canary=alwaysx", "a=canary=always", "a=b; canary=always2",
                   "canary=", "a=b"):
        assert not pattern.fullmatch(header), header


def test_a_cookie_pattern_quotes_what_regexes_read() -> None:
    pattern = re.compile(cookie_match("v", "1.0+").value)
    assert pattern.fullmatch("v=1.0+")
    assert not pattern.fullmatch("v=1x00")


def test_a_cohort_names_a_version_of_the_service() -> None:
    err = rejected(service(cohort=COHORT | {"version": "v3"}))
    assert (err.path, err.reason) == ("service/s: spec.cohort.version", "there is no version 'v3' (versions: v1, v2)")
    err = rejected(service(cohort={"match": COHORT["match"]}))
    assert (err.path, err.reason) == ("service/s: spec.cohort.version", "is required")


def test_a_cohort_needs_a_match() -> None:
    err = rejected(service(cohort={"version": "v2", "match": []}))
    assert (err.path, err.reason) == ("service/s: spec.cohort.match", "needs at least 1 item")
    err = rejected(service(cohort={"version": "v2"}))
    assert (err.path, err.reason) == ("service/s: spec.cohort.match", "is required")


def test_a_cohort_match_entry_needs_headers_or_a_cookie() -> None:
    err = rejected(service(cohort={"version": "v2", "match": [COHORT["match"][0], {}]}))
    assert (err.path, err.reason) == ("service/s: spec.cohort.match[1]", "needs headers, cookie or both")


def test_a_cohort_match_entry_with_an_empty_header_list_is_refused() -> None:
    err = rejected(service(cohort={"version": "v2", "match": [{"headers": []}]}))
    assert (err.path, err.reason) == (
        "service/s: spec.cohort.match[0]",
        "needs at least one header or a cookie (an empty match would take every request)",
    )


def test_cohort_headers_follow_the_rules_of_route_headers() -> None:
    err = rejected(service(cohort={"version": "v2", "match": [{"headers": [{"name": "x-a", "present": False}]}]}))
    assert err.path == "service/s: spec.cohort.match[0].headers[0].present"
    assert err.reason == "present: false matches nothing; use invert: true to match absence"
    err = rejected(service(cohort={"version": "v2", "match": [{"headers": [{"name": "x a", "exact": "1"}]}]}))
    assert (err.path, err.reason) == ("service/s: spec.cohort.match[0].headers[0].name", "'x a' is not a header name")


@pytest.mark.parametrize("name", ["a b", "a;b", "a=b", "\"a\"", "a,b"])
def test_a_cohort_cookie_name_is_a_token(name: str) -> None:
    err = rejected(service(cohort={"version": "v2", "match": [{"cookie": {"name": name, "value": "x"}}]}))
    assert (err.path, err.reason) == ("service/s: spec.cohort.match[0].cookie.name", f"{name!r} is not a cookie name")


@pytest.mark.parametrize("value", ["a b", "a;b", "a,b", "\"a\"", "a\\b"])
def test_a_cohort_cookie_value_has_no_spaces_quotes_semicolons_or_commas(value: str) -> None:
    err = rejected(service(cohort={"version": "v2", "match": [{"cookie": {"name": "c", "value": value}}]}))
    assert err.path == "service/s: spec.cohort.match[0].cookie.value"
    assert err.reason == f"{value!r} is not a cookie value (no spaces, quotes, ; or ,)"


def test_a_cohort_cookie_needs_a_name_and_a_value_and_nothing_else() -> None:
    err = rejected(service(cohort={"version": "v2", "match": [{"cookie": {"name": "c"}}]}))
    assert (err.path, err.reason) == ("service/s: spec.cohort.match[0].cookie.value", "is required")
    err = rejected(service(cohort={"version": "v2", "match": [{"cookie": {"name": "c", "value": "1", "path": "/"}}]}))
    assert err.path == "service/s: spec.cohort.match[0].cookie.path"
    assert err.reason == "unknown field (allowed here: name, value)"


def test_a_cohort_and_its_match_entries_take_nothing_else() -> None:
    err = rejected(service(cohort=COHORT | {"weight": 10}))
    assert (err.path, err.reason) == ("service/s: spec.cohort.weight", "unknown field (allowed here: match, version)")
    err = rejected(service(cohort={"version": "v2", "match": [{"cookie": {"name": "c", "value": "1"}, "query": {}}]}))
    assert (err.path, err.reason) == (
        "service/s: spec.cohort.match[0].query", "unknown field (allowed here: cookie, headers)"
    )


# -- mirror: a copy of a share of requests to one version, answers thrown away --------------------------------


def test_a_mirror_copies_every_request_unless_given_a_percent() -> None:
    assert _spec(service(mirror={"version": "v2"})).mirror == ServiceMirror("v2", 100.0)
    assert _spec(service(mirror={"version": "v2", "percent": 12.5})).mirror == ServiceMirror("v2", 12.5)
    err = rejected(service(mirror={"version": "v2", "percent": 0}))
    assert (err.path, err.reason) == ("service/s: spec.mirror.percent", "0 mirrors nothing: remove the mirror instead")


def test_a_mirror_names_a_version_of_the_service() -> None:
    err = rejected(service(mirror={"version": "v3"}))
    assert (err.path, err.reason) == ("service/s: spec.mirror.version", "there is no version 'v3' (versions: v1, v2)")
    err = rejected(service(mirror={"percent": 10}))
    assert (err.path, err.reason) == ("service/s: spec.mirror.version", "is required")


@pytest.mark.parametrize(
    ("percent", "reason"),
    [(-1, "-1 is below 0"), (100.5, "100.5 is above 100"), ("10%", "must be a number, not the string '10%'")],
)
def test_a_mirror_percent_is_0_to_100(percent: Any, reason: str) -> None:
    err = rejected(service(mirror={"version": "v2", "percent": percent}))
    assert (err.path, err.reason) == ("service/s: spec.mirror.percent", reason)


def test_a_mirror_takes_nothing_else() -> None:
    err = rejected(service(mirror={"version": "v2", "cluster": "c"}))
    assert (err.path, err.reason) == (
        "service/s: spec.mirror.cluster", "unknown field (allowed here: percent, version)"
    )
