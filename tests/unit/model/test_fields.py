"""Rules every field follows: unknown keys name the allowed ones, types are checked, durations are read,
and YAML's boolean keys (``on``, ``yes``) are caught."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from switchman.model.kinds.routes import Route, RoutesSpec
from tests.unit.model.docs import Raw, cluster, listener, parse, rejected, route, routes, service

R0 = "routes/r: spec.virtualHosts[0].routes[0]"

# (document, path of the unknown field, the allowed keys the error lists)
UNKNOWN: dict[str, tuple[Raw, str, str]] = {
    "cluster-spec": (
        cluster(zone="a"), "cluster/c: spec.zone",
        "circuitBreakers, connectTimeout, discovery, endpoints, healthCheck, http2, idleTimeout, lbPolicy, "
        "maxConcurrentStreams, outlierDetection, protocol, tls",
    ),
    "endpoint": (
        cluster(endpoints=[{"address": "127.0.0.1", "port": 1, "zone": "a"}]),
        "cluster/c: spec.endpoints[0].zone", "address, port, weight",
    ),
    "health-check": (
        cluster(healthCheck={"path": "/", "method": "GET"}), "cluster/c: spec.healthCheck.method",
        "healthyThreshold, interval, path, timeout, unhealthyThreshold",
    ),
    "outlier-detection": (
        cluster(outlierDetection={"consecutive5xxx": 1}), "cluster/c: spec.outlierDetection.consecutive5xxx",
        "baseEjectionTime, consecutive5xx, interval, maxEjectionPercent",
    ),
    "circuit-breakers": (
        cluster(circuitBreakers={"maxConnection": 1}), "cluster/c: spec.circuitBreakers.maxConnection",
        "maxConnections, maxPendingRequests, maxRequests, maxRetries, retryBudget",
    ),
    "retry-budget": (
        cluster(circuitBreakers={"retryBudget": {"ratio": 1}}), "cluster/c: spec.circuitBreakers.retryBudget.ratio",
        "minRetryConcurrency, percent",
    ),
    "service-version": (
        service(versions={"v1": 1}) | {"spec": {"versions": {"v1": {"endpoints": [], "weight": 1}}}},
        "service/s: spec.versions.v1.weight", "endpoints, kubernetes",
    ),
    "service-spec": (
        service(split={"v1": 1}), "service/s: spec.split",
        "circuitBreakers, cohort, connectTimeout, healthCheck, http2, idleTimeout, lbPolicy, maxConcurrentStreams, "
        "mirror, outlierDetection, protocol, tls, versions, weights",
    ),
    "routes-spec": (routes() | {"spec": {**routes()["spec"], "hosts": []}}, "routes/r: spec.hosts", "virtualHosts"),
    "virtual-host": (
        routes(hosts=[{"name": "h", "domains": ["*"], "routes": [route()], "cors": {}}]),
        "routes/r: spec.virtualHosts[0].cors", "domains, name, rateLimit, routes",
    ),
    "route": (
        routes("r", route(hedge=True)), f"{R0}.hedge",
        "cluster, directResponse, fault, match, mirror, name, rateLimit, redirect, requestHeaders, responseHeaders, "
        "retries, rewrite, service, split, timeout",
    ),
    "match": (routes("r", route(match={"prefix": "/", "method": "GET"})), f"{R0}.match.method",
              "headers, path, prefix, queryParams, regex"),
    "header-match": (
        routes("r", route(match={"prefix": "/", "headers": [{"name": "x", "exact": "1", "suffix": "2"}]})),
        f"{R0}.match.headers[0].suffix", "exact, invert, name, prefix, present, regex",
    ),
    "split-entry": (
        routes("r", route(split=[{"cluster": "c", "weight": 1, "priority": 1}])), f"{R0}.split[0].priority",
        "cluster, service, version, weight",
    ),
    "service-target": (routes("r", route(service={"name": "s", "subset": "x"})), f"{R0}.service.subset",
                       "name, version"),
    "retries": (routes("r", route(retries={"attempts": 2, "retryOn5xx": True})), f"{R0}.retries.retryOn5xx",
                "attempts, avoidPreviousHosts, backoff, perTryTimeout, retryOn, statusCodes"),
    "backoff": (routes("r", route(retries={"backoff": {"base": "1s", "jitter": 1}})),
                f"{R0}.retries.backoff.jitter", "base, max"),
    "fault": (routes("r", route(fault={"abort": {"status": 503, "percent": 1}, "drop": 1})), f"{R0}.fault.drop",
              "abort, delay"),
    "fault-delay": (routes("r", route(fault={"delay": {"fixed": "1s", "percent": 1, "jitter": 1}})),
                    f"{R0}.fault.delay.jitter", "fixed, percent"),
    "fault-abort": (routes("r", route(fault={"abort": {"status": 503, "percent": 1, "grpc": 14}})),
                    f"{R0}.fault.abort.grpc", "percent, status"),
    "redirect": (routes("r", route(redirect={"code": 301, "port": 1})), f"{R0}.redirect.port",
                 "code, host, https, path"),
    "direct-response": (routes("r", route(directResponse={"status": 200, "headers": {}})),
                        f"{R0}.directResponse.headers", "body, status"),
    "mirror": (routes("r", route(mirror={"cluster": "c", "ratio": 1})), f"{R0}.mirror.ratio",
               "cluster, percent, service, version"),
    "rewrite": (routes("r", route(rewrite={"prefix": "/", "host": "x"})), f"{R0}.rewrite.host", "prefix"),
    "header-rewrite": (routes("r", route(requestHeaders={"set": {}})), f"{R0}.requestHeaders.set", "add, remove"),
    "listener-spec": (listener(protocol="http"), "listener/l: spec.protocol",
                      "accessLogService, address, filterChains, http, port, routes, tcp, tls, tracing"),
    "filter-chain": (listener(filterChains=[{"routes": "r", "name": "x"}]), "listener/l: spec.filterChains[0].name",
                     "http, match, routes, tcp, tls"),
    "chain-match": (listener(filterChains=[{"routes": "r", "match": {"sni": "x"}}]),
                    "listener/l: spec.filterChains[0].match.sni", "alpn, destinationPort, serverNames"),
    "tls": (listener(tls={"certFile": "/c", "keyFile": "/k", "ca": "/a"}), "listener/l: spec.tls.ca",
            "certFile, keyFile, secret"),
    "http": (listener(http={"http3": True}), "listener/l: spec.http.http3",
             "codec, idleTimeout, requestId, requestTimeout, serverName, useRemoteAddress, xffNumTrustedHops"),
    "tcp": (listener(tcp={"cluster": "c", "idleTimeout": "1s"}), "listener/l: spec.tcp.idleTimeout",
            "cluster, service, version"),
}


@pytest.mark.parametrize("case", list(UNKNOWN), ids=list(UNKNOWN))
def test_unknown_field_is_refused_with_the_allowed_list(case: str) -> None:
    doc, path, allowed = UNKNOWN[case]
    err = rejected(doc)
    assert err.path == path
    assert err.reason == f"unknown field (allowed here: {allowed})"


# (document, path, reason): a value of the wrong type where a field expects another.
WRONG_TYPES: dict[str, tuple[Raw, str, str]] = {
    "port-string": (cluster(endpoints=[{"address": "127.0.0.1", "port": "80"}]), "cluster/c: spec.endpoints[0].port",
                    "must be a whole number, not the string '80'"),
    "port-boolean": (listener(port=True), "listener/l: spec.port", "must be a whole number, not a boolean"),
    "port-float": (listener(port=80.5), "listener/l: spec.port", "must be a whole number, not the number 80.5"),
    "weight-float": (routes("r", route(split=[{"cluster": "c", "weight": 50.5}])),
                     "routes/r: spec.virtualHosts[0].routes[0].split[0].weight",
                     "must be a whole number, not the number 50.5"),
    "flag-string": (cluster(http2="yes"), "cluster/c: spec.http2", "must be true or false, not the string 'yes'"),
    "list-string": (routes(hosts=[{"name": "h", "domains": "*", "routes": [route()]}]),
                    "routes/r: spec.virtualHosts[0].domains", "must be a list, not the string '*'"),
    "list-mapping": (cluster(endpoints={"address": "127.0.0.1"}), "cluster/c: spec.endpoints",
                     "must be a list, not a mapping"),
    "mapping-list": (cluster(healthCheck=["/"]), "cluster/c: spec.healthCheck", "must be a mapping, not a list"),
    "string-number": (listener(routes=5), "listener/l: spec.routes", "must be a non-empty string, not the number 5"),
    "string-empty": (routes("r", route(cluster="")), "routes/r: spec.virtualHosts[0].routes[0].cluster",
                     "must be a non-empty string, not an empty string"),
    "number-string": (routes("r", route(mirror={"cluster": "c", "percent": "10%"})),
                      "routes/r: spec.virtualHosts[0].routes[0].mirror.percent",
                      "must be a number, not the string '10%'"),
    "number-boolean": (routes("r", route(mirror={"cluster": "c", "percent": True})),
                       "routes/r: spec.virtualHosts[0].routes[0].mirror.percent",
                       "must be a number, not a boolean"),
    "duration-boolean": (routes("r", route(timeout=True)), "routes/r: spec.virtualHosts[0].routes[0].timeout",
                         "True is not a duration such as 250ms, 1.5s, 2m"),
    "choice-number": (cluster(lbPolicy=1), "cluster/c: spec.lbPolicy", "must be a non-empty string, not the number 1"),
    "required-null": (routes() | {"spec": {"virtualHosts": None}}, "routes/r: spec.virtualHosts", "is required"),
}


@pytest.mark.parametrize("case", list(WRONG_TYPES), ids=list(WRONG_TYPES))
def test_wrong_type_is_refused_naming_what_was_found(case: str) -> None:
    doc, path, reason = WRONG_TYPES[case]
    err = rejected(doc)
    assert (err.path, err.reason) == (path, reason)


def _route_of(doc: Raw) -> Route:
    spec = parse(doc).spec
    assert isinstance(spec, RoutesSpec)
    return spec.virtual_hosts[0].routes[0]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("250ms", 0.25), ("1.5s", 1.5), ("2m", 120.0), ("1h", 3600.0), ("0s", 0.0), (3, 3.0), (0.5, 0.5)],
)
def test_durations_are_read_in_their_units(value: Any, seconds: float) -> None:
    assert _route_of(routes("r", route(timeout=value))).timeout == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["1.5x", "ms", "1 s", "1.5", "-1s", "1s500ms", ".5s", "5S", "PT5S"])
def test_durations_in_other_spellings_are_refused(value: str) -> None:
    err = rejected(routes("r", route(timeout=value)))
    assert err.path == "routes/r: spec.virtualHosts[0].routes[0].timeout"
    assert err.reason == f"{value!r} is not a duration such as 250ms, 1.5s, 2m"


def test_negative_duration_is_refused() -> None:
    err = rejected(routes("r", route(timeout=-1)))
    assert (err.path, err.reason) == ("routes/r: spec.virtualHosts[0].routes[0].timeout", "must be at least 0s")


YAML_BOOLEAN_KEYS: dict[str, tuple[str, str]] = {
    # The user meant retryOn, wrote `on`; YAML 1.1 reads it as true.
    "on-in-retries": (
        """
        kind: Routes
        metadata: {name: r}
        spec:
          virtualHosts:
            - name: h
              domains: ["*"]
              routes:
                - match: {prefix: /}
                  cluster: c
                  retries: {on: [5xx], attempts: 2}
        """,
        "routes/r: spec.virtualHosts[0].routes[0].retries",
    ),
    "yes-in-match": (
        """
        kind: Routes
        metadata: {name: r}
        spec:
          virtualHosts:
            - name: h
              domains: ["*"]
              routes:
                - match: {prefix: /, yes: 1}
                  cluster: c
        """,
        "routes/r: spec.virtualHosts[0].routes[0].match",
    ),
    "off-in-spec": (
        """
        kind: Cluster
        metadata: {name: c}
        spec: {endpoints: [{address: 127.0.0.1, port: 1}], off: true}
        """,
        "cluster/c: spec",
    ),
    "no-at-top": (
        """
        kind: Cluster
        metadata: {name: c}
        spec: {endpoints: []}
        no: 1
        """,
        "request[0]",
    ),
}


@pytest.mark.parametrize("case", list(YAML_BOOLEAN_KEYS), ids=list(YAML_BOOLEAN_KEYS))
def test_yaml_boolean_keys_are_named_as_such(case: str) -> None:
    text, path = YAML_BOOLEAN_KEYS[case]
    err = rejected(yaml.safe_load(text))
    assert err.path == path
    assert err.reason.startswith("has the key ")
    assert err.reason.endswith("which is not a string (YAML reads on, off, yes, no as booleans: quote it)")


BOOLEAN_KEYED_MAPPINGS: dict[str, tuple[Callable[[Any], Raw], str]] = {
    "header-add": (lambda key: routes("r", route(requestHeaders={"add": {key: "1"}})),
                   "routes/r: spec.virtualHosts[0].routes[0].requestHeaders.add"),
    "labels": (lambda key: cluster() | {"metadata": {"name": "c", "labels": {key: "x"}}},
               "cluster/c: metadata.labels"),
}


@pytest.mark.parametrize("case", list(BOOLEAN_KEYED_MAPPINGS), ids=list(BOOLEAN_KEYED_MAPPINGS))
def test_yaml_boolean_keys_in_free_form_mappings_are_named_as_such(case: str) -> None:
    make, path = BOOLEAN_KEYED_MAPPINGS[case]
    err = rejected(make(True))  # what YAML makes of `on:` / `yes:`
    assert err.path == path
    assert "YAML reads on, off, yes, no as booleans" in err.reason


NON_SCALARS: dict[str, tuple[Raw, str]] = {
    "header-exact-list": (
        routes("r", route(match={"prefix": "/", "headers": [{"name": "x-canary", "exact": ["1", "2"]}]})),
        "routes/r: spec.virtualHosts[0].routes[0].match.headers[0].exact",
    ),
    "header-exact-boolean": (  # `exact: yes` in YAML: the user wanted the string "yes", gets "True"
        routes("r", route(match={"prefix": "/", "headers": [{"name": "x-canary", "exact": True}]})),
        "routes/r: spec.virtualHosts[0].routes[0].match.headers[0].exact",
    ),
    "direct-response-body-mapping": (
        routes("r", route(directResponse={"status": 200, "body": {"ok": True}})),
        "routes/r: spec.virtualHosts[0].routes[0].directResponse.body",
    ),
    "header-add-value-list": (
        routes("r", route(requestHeaders={"add": {"x-a": ["1"]}})),
        "routes/r: spec.virtualHosts[0].routes[0].requestHeaders.add.x-a",
    ),
}


@pytest.mark.parametrize("case", list(NON_SCALARS), ids=list(NON_SCALARS))
def test_string_fields_refuse_lists_mappings_and_booleans(case: str) -> None:
    doc, path = NON_SCALARS[case]
    err = rejected(doc)
    assert err.path == path
    assert "must be" in err.reason


NOT_FINITE: dict[str, tuple[Raw, str]] = {
    "timeout-nan": (routes("r", route(timeout=float("nan"))), "routes/r: spec.virtualHosts[0].routes[0].timeout"),
    "timeout-infinite": (routes("r", route(timeout=float("inf"))), "routes/r: spec.virtualHosts[0].routes[0].timeout"),
    "connect-timeout-nan": (cluster(connectTimeout=float("nan")), "cluster/c: spec.connectTimeout"),
    "percent-nan": (routes("r", route(fault={"abort": {"status": 503, "percent": float("nan")}})),
                    "routes/r: spec.virtualHosts[0].routes[0].fault.abort.percent"),
    # Protobuf durations end at 315576000000 s; Envoy NACKs more ("Duration out-of-range").
    "timeout-beyond-protobuf": (routes("r", route(timeout=10**12)), "routes/r: spec.virtualHosts[0].routes[0].timeout"),
    "timeout-digits": (routes("r", route(timeout="9" * 400 + "h")), "routes/r: spec.virtualHosts[0].routes[0].timeout"),
}


@pytest.mark.parametrize("case", list(NOT_FINITE), ids=list(NOT_FINITE))
def test_numbers_must_be_finite_and_durations_within_protobuf_range(case: str) -> None:
    doc, path = NOT_FINITE[case]
    err = rejected(doc)
    assert err.path == path
