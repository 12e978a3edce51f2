"""kind: Routes: virtual hosts, matches, actions and the policies of forwarding routes."""

from __future__ import annotations

from typing import Any

import pytest

from switchman.model.kinds.routes import Forward, Redirect, Route, RoutesSpec, Split, Target
from tests.unit.model.docs import Raw, listener, parse, rejected, route, routes

R0 = "routes/r: spec.virtualHosts[0].routes[0]"


def _route(doc: Raw) -> Route:
    spec = parse(doc).spec
    assert isinstance(spec, RoutesSpec)
    return spec.virtual_hosts[0].routes[0]


def _host(name: str, *domains: str) -> Raw:
    return {"name": name, "domains": list(domains), "routes": [route()]}


# -- virtual hosts ---------------------------------------------------------------


def test_virtual_hosts_are_required_and_not_empty() -> None:
    err = rejected(routes() | {"spec": {}})
    assert (err.path, err.reason) == ("routes/r: spec.virtualHosts", "is required")
    err = rejected(routes() | {"spec": {"virtualHosts": []}})
    assert (err.path, err.reason) == ("routes/r: spec.virtualHosts", "needs at least 1 item")


def test_a_virtual_host_needs_domains_and_routes() -> None:
    err = rejected(routes(hosts=[{"name": "h", "domains": [], "routes": [route()]}]))
    assert (err.path, err.reason) == ("routes/r: spec.virtualHosts[0].domains", "needs at least 1 item")
    err = rejected(routes(hosts=[{"name": "h", "domains": ["*"], "routes": []}]))
    assert (err.path, err.reason) == ("routes/r: spec.virtualHosts[0].routes", "needs at least 1 item")


def test_duplicate_virtual_host_names_are_refused() -> None:
    err = rejected(routes(hosts=[_host("shop", "a.example"), _host("shop", "b.example")]))
    assert (err.path, err.reason) == ("routes/r: spec.virtualHosts[1].name", "virtual host 'shop' appears twice")


def test_a_domain_served_by_two_virtual_hosts_is_refused() -> None:
    err = rejected(routes(hosts=[_host("a", "*", "a.example"), _host("b", "b.example", "a.example")]))
    assert err.path == "routes/r: spec.virtualHosts[1].domains[1]"
    assert err.reason == "domain 'a.example' is already served by virtual host 'a'"


def test_domains_differing_only_in_case_are_the_same_domain() -> None:
    err = rejected(routes(hosts=[_host("a", "A.example"), _host("b", "a.example")]))
    assert err.path == "routes/r: spec.virtualHosts[1].domains[0]"


def test_a_domain_twice_in_one_virtual_host_is_refused() -> None:
    err = rejected(routes(hosts=[_host("a", "a.example", "a.example")]))
    assert err.path == "routes/r: spec.virtualHosts[0].domains[1]"
    assert err.reason == "domain 'a.example' is already served by virtual host 'a'"


# -- matches -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("match", "found"),
    [({}, "none"), ({"prefix": "/", "path": "/a"}, "prefix, path"), ({"path": "/a", "regex": "/.*"}, "path, regex")],
    ids=["none", "prefix-and-path", "path-and-regex"],
)
def test_a_match_needs_exactly_one_of_prefix_path_regex(match: Raw, found: str) -> None:
    err = rejected(routes("r", route(match=match)))
    assert (err.path, err.reason) == (f"{R0}.match", f"needs exactly one of prefix, path, regex (found {found})")


def test_a_route_needs_a_match() -> None:
    err = rejected(routes("r", {"cluster": "c"}))
    assert (err.path, err.reason) == (f"{R0}.match", "is required")


@pytest.mark.parametrize("kind", ["prefix", "path"])
def test_prefix_and_path_start_with_a_slash(kind: str) -> None:
    err = rejected(routes("r", route(match={kind: "api"})))
    assert (err.path, err.reason) == (f"{R0}.match.{kind}", "'api' must start with /")


def test_regex_needs_no_slash() -> None:
    assert _route(routes("r", route(match={"regex": ".*\\.png"}))).match.kind == "regex"


@pytest.mark.parametrize(
    ("match", "path"),
    [({"regex": "(unclosed"}, "match.regex"),
     ({"prefix": "/", "headers": [{"name": "x", "regex": "(unclosed"}]}, "match.headers[0].regex"),
     ({"prefix": "/", "queryParams": [{"name": "q", "regex": "[a-"}]}, "match.queryParams[0].regex")],
    ids=["path", "header", "query"],
)
def test_a_regex_that_does_not_compile_is_refused(match: Raw, path: str) -> None:
    err = rejected(routes("r", route(match=match)))
    assert err.path == f"{R0}.{path}"


@pytest.mark.parametrize(
    ("header", "found"),
    [({"name": "x"}, "none"), ({"name": "x", "exact": "1", "prefix": "a"}, "exact, prefix")],
    ids=["none", "two"],
)
def test_a_header_match_needs_exactly_one_kind(header: Raw, found: str) -> None:
    err = rejected(routes("r", route(match={"prefix": "/", "headers": [header]})))
    assert err.path == f"{R0}.match.headers[0]"
    assert err.reason == f"needs exactly one of exact, prefix, regex, present (found {found})"


def test_present_false_is_refused_in_favour_of_invert() -> None:
    err = rejected(routes("r", route(match={"prefix": "/", "headers": [{"name": "x", "present": False}]})))
    assert err.path == f"{R0}.match.headers[0].present"
    assert err.reason == "present: false matches nothing; use invert: true to match absence"


def test_header_names_are_checked() -> None:
    err = rejected(routes("r", route(match={"prefix": "/", "headers": [{"name": "x canary", "exact": "1"}]})))
    assert (err.path, err.reason) == (f"{R0}.match.headers[0].name", "'x canary' is not a header name")


def test_header_names_are_case_insensitive() -> None:
    match = _route(routes("r", route(match={"prefix": "/", "headers": [{"name": "X-Canary", "exact": "1"}]}))).match
    assert match.headers[0].name == "x-canary"


def test_query_parameters_take_any_name() -> None:
    match = _route(routes("r", route(match={"prefix": "/", "queryParams": [{"name": "Debug", "present": True}]}))).match
    assert (match.query_params[0].name, match.query_params[0].kind) == ("Debug", "present")


# -- actions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "found"),
    [({"directResponse": {"status": 200}, "redirect": {}}, "redirect, directResponse"),
     ({"cluster": "c", "service": "s"}, "cluster, service"),
     ({"split": [{"cluster": "c", "weight": 1}], "cluster": "c"}, "cluster, split")],
    ids=["redirect-and-direct", "cluster-and-service", "cluster-and-split"],
)
def test_a_route_needs_exactly_one_action(fields: Raw, found: str) -> None:
    err = rejected(routes("r", {"match": {"prefix": "/"}, **fields}))
    assert err.path == R0
    assert err.reason == f"needs exactly one of cluster, service, split, redirect, directResponse (found {found})"


def test_a_route_without_action_is_refused() -> None:
    err = rejected(routes("r", {"match": {"prefix": "/"}}))
    assert err.path == R0
    assert err.reason == "needs exactly one of cluster, service, split, redirect, directResponse (found none)"


def test_service_targets_by_name_or_with_a_version() -> None:
    assert _route(routes("r", route(service="s"))).action == Forward((Split(Target(service="s"), 100),))
    action = _route(routes("r", route(service={"name": "s", "version": "v2"}))).action
    assert action == Forward((Split(Target(service="s", version="v2"), 100),))
    err = rejected(routes("r", route(service={"version": "v2"})))
    assert (err.path, err.reason) == (f"{R0}.service.name", "is required")


def test_split_weights_summing_to_zero_are_refused() -> None:
    zero = [{"cluster": "a", "weight": 0}, {"cluster": "b", "weight": 0}]
    err = rejected(routes("checkout", route(), route(), route(split=zero)))
    assert err.path == "routes/checkout: spec.virtualHosts[0].routes[2].split"
    assert err.reason == "weights sum to 0"


def test_an_empty_split_is_refused() -> None:
    err = rejected(routes("r", route(split=[])))
    assert (err.path, err.reason) == (f"{R0}.split", "needs at least 1 item")


def test_a_split_entry_needs_a_weight() -> None:
    err = rejected(routes("r", route(split=[{"cluster": "a"}])))
    assert (err.path, err.reason) == (f"{R0}.split[0].weight", "is required")


def test_the_same_target_twice_in_a_split_is_refused() -> None:
    split = [{"service": "s", "version": "v1", "weight": 50}, {"cluster": "c", "weight": 10},
             {"service": "s", "version": "v1", "weight": 40}]
    err = rejected(routes("r", route(split=split)))
    assert (err.path, err.reason) == (f"{R0}.split[2]", "the same target appears twice in the split")


def test_a_whole_service_and_one_of_its_versions_are_different_targets() -> None:
    split = [{"service": "s", "weight": 50}, {"service": "s", "version": "v1", "weight": 50}]
    action = _route(routes("r", route(split=split))).action
    assert isinstance(action, Forward) and len(action.splits) == 2


@pytest.mark.parametrize(
    ("entry", "reason"),
    [({"weight": 1}, "needs exactly one of cluster, service"),
     ({"cluster": "c", "service": "s", "weight": 1}, "needs exactly one of cluster, service"),
     ({"cluster": "c", "version": "v1", "weight": 1}, "version goes with service, not cluster")],
    ids=["none", "both", "version-with-cluster"],
)
def test_a_split_target_is_a_cluster_or_a_service(entry: Raw, reason: str) -> None:
    err = rejected(routes("r", route(split=[entry])))
    assert (err.path, err.reason) == (f"{R0}.split[0]", reason)


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirect_codes_are_accepted(code: int) -> None:
    action = _route(routes("r", route(redirect={"code": code, "https": True}))).action
    assert action == Redirect(host=None, path=None, https=True, code=code)


@pytest.mark.parametrize("code", [200, 300, 304, 305, 404])
def test_other_redirect_codes_are_refused(code: int) -> None:
    err = rejected(routes("r", route(redirect={"code": code})))
    assert err.path == f"{R0}.redirect.code"
    assert err.reason == f"{code} is not a redirect code (301, 302, 303, 307, 308)"


def test_redirect_defaults_to_301_and_its_path_starts_with_a_slash() -> None:
    action = _route(routes("r", route(redirect={"host": "new.example"}))).action
    assert isinstance(action, Redirect) and action.code == 301
    err = rejected(routes("r", route(redirect={"path": "new"})))
    assert (err.path, err.reason) == (f"{R0}.redirect.path", "'new' is not a path starting with /")


def test_a_direct_response_body_beyond_envoys_limit_is_refused() -> None:
    err = rejected(routes("r", route(directResponse={"status": 200, "body": "x" * 5000})))
    assert err.path == f"{R0}.directResponse.body"


def test_direct_response_needs_a_status() -> None:
    err = rejected(routes("r", route(directResponse={"body": "hi"})))
    assert (err.path, err.reason) == (f"{R0}.directResponse.status", "is required")


# -- policies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "value"),
    [("retries", {"attempts": 2}), ("mirror", {"cluster": "c"}), ("rewrite", {"prefix": "/v2"}), ("timeout", "1s")],
)
@pytest.mark.parametrize("action", [{"redirect": {"https": True}}, {"directResponse": {"status": 404}}],
                         ids=["redirect", "direct-response"])
def test_forwarding_policies_on_routes_that_do_not_forward_are_refused(policy: str, value: Any, action: Raw) -> None:
    err = rejected(routes("r", route(**action, **{policy: value})))
    assert err.path == f"{R0}.{policy}"
    assert err.reason == f"{policy} applies only to routes that forward (cluster, service, split)"


def test_faults_and_header_rewrites_are_allowed_on_direct_responses() -> None:
    fields = {"fault": {"delay": {"fixed": "1s", "percent": 1}}, "responseHeaders": {"add": {"x-a": "1"}}}
    assert _route(routes("r", route(directResponse={"status": 200}, **fields))).fault is not None


def test_status_codes_need_retriable_status_codes() -> None:
    err = rejected(routes("r", route(retries={"retryOn": ["5xx"], "statusCodes": [503]})))
    assert err.path == f"{R0}.retries.statusCodes"
    assert err.reason == "statusCodes only apply with retryOn: [retriable-status-codes]"
    retries = _route(routes("r", route(retries={"retryOn": ["retriable-status-codes"], "statusCodes": [503]}))).retries
    assert retries is not None and retries.status_codes == (503,)


def test_unknown_retry_conditions_are_refused() -> None:
    err = rejected(routes("r", route(retries={"retryOn": ["5xx", "timeouts"]})))
    assert err.path == f"{R0}.retries.retryOn[1]"
    assert err.reason.startswith("'timeouts' is not one of 5xx, gateway-error, reset, connect-failure")


def test_retry_defaults() -> None:
    retries = _route(routes("r", route(retries={}))).retries
    assert retries is not None
    assert (retries.on, retries.attempts, retries.backoff_base) == (("5xx", "reset", "connect-failure"), 1, None)


def test_backoff_max_below_base_is_refused() -> None:
    err = rejected(routes("r", route(retries={"backoff": {"base": "100ms", "max": "10ms"}})))
    assert (err.path, err.reason) == (f"{R0}.retries.backoff", "max (0.01s) is below base (0.1s)")


def test_backoff_max_defaults_to_ten_times_base() -> None:
    retries = _route(routes("r", route(retries={"backoff": {"base": "50ms"}}))).retries
    assert retries is not None
    assert retries.backoff_base == pytest.approx(0.05)
    assert retries.backoff_max == pytest.approx(0.5)


def test_a_fault_needs_a_delay_or_an_abort() -> None:
    err = rejected(routes("r", route(fault={})))
    assert (err.path, err.reason) == (f"{R0}.fault", "needs delay, abort or both")


def test_a_delay_needs_its_duration_and_percent() -> None:
    err = rejected(routes("r", route(fault={"delay": {"percent": 5}})))
    assert (err.path, err.reason) == (f"{R0}.fault.delay.fixed", "is required")


def test_a_delay_of_zero_is_refused() -> None:
    err = rejected(routes("r", route(fault={"delay": {"fixed": "0s", "percent": 5}})))
    assert err.path == f"{R0}.fault.delay.fixed"


def test_a_mirror_names_one_target() -> None:
    err = rejected(routes("r", route(mirror={"percent": 5})))
    assert (err.path, err.reason) == (f"{R0}.mirror", "needs exactly one of cluster, service")


def test_rewrite_prefix_starts_with_a_slash() -> None:
    err = rejected(routes("r", route(rewrite={"prefix": "v2"})))
    assert (err.path, err.reason) == (f"{R0}.rewrite.prefix", "'v2' is not a path starting with /")


def test_header_rewrites_are_lowercased() -> None:
    rewrite = _route(routes("r", route(requestHeaders={"add": {"X-A": "1"}, "remove": ["X-B"]}))).request_headers
    assert (dict(rewrite.add), rewrite.remove) == ({"x-a": "1"}, ("x-b",))


@pytest.mark.parametrize(
    "rewrite", [{"add": {":authority": "x"}}, {"add": {"host": "x"}}, {"remove": ["host"]}, {"remove": [":path"]}],
    ids=["add-pseudo", "add-host", "remove-host", "remove-pseudo"],
)
def test_header_rewrites_of_pseudo_headers_or_host_are_refused(rewrite: Raw) -> None:
    err = rejected(routes("r", route(requestHeaders=rewrite)))
    assert err.path.startswith(f"{R0}.requestHeaders.")


@pytest.mark.parametrize(
    ("doc", "path"),
    [(routes("r", route(requestHeaders={"add": {"x-a": "a\nb"}})), f"{R0}.requestHeaders.add.x-a"),
     (listener(http={"serverName": "shop\r\n"}), "listener/l: spec.http.serverName")],
    ids=["header-value", "server-name"],
)
def test_line_breaks_in_header_values_are_refused(doc: Raw, path: str) -> None:
    err = rejected(doc)
    assert err.path == path
