"""kind: Listener: an address and port; HTTP routes or a TCP proxy, in one chain or several."""

from __future__ import annotations

from typing import Any

import pytest

from switchman.model.kinds.listener import AccessLogService, ChainMatch, ListenerSpec, Tls
from switchman.model.kinds.routes import Target
from tests.unit.model.docs import Raw, listener, parse, rejected


def _spec(doc: Raw) -> ListenerSpec:
    spec = parse(doc).spec
    assert isinstance(spec, ListenerSpec)
    return spec


def test_short_form_defaults() -> None:
    spec = _spec(listener() | {"spec": {"port": 8080, "routes": "r"}})
    assert (spec.address, spec.port) == ("127.0.0.1", 8080)
    [chain] = spec.chains
    assert (chain.routes, chain.tcp, chain.match, chain.path) == ("r", None, ChainMatch(), "spec")


def test_port_is_required() -> None:
    err = rejected(listener() | {"spec": {"routes": "r"}})
    assert (err.path, err.reason) == ("listener/l: spec.port", "is required")


@pytest.mark.parametrize("spec", [{"routes": "r", "tcp": {"cluster": "c"}}, {}], ids=["both", "neither"])
def test_routes_or_tcp_exactly_one(spec: Raw) -> None:
    err = rejected(listener() | {"spec": {"port": 1, **spec}})
    assert (err.path, err.reason) == ("listener/l: spec", "needs exactly one of routes (HTTP) and tcp (a TCP proxy)")


def test_routes_or_tcp_exactly_one_in_a_filter_chain() -> None:
    err = rejected(listener(filterChains=[{"routes": "r"}, {"match": {"serverNames": ["a"]}}]))
    assert err.path == "listener/l: spec.filterChains[1]"
    assert err.reason == "needs exactly one of routes (HTTP) and tcp (a TCP proxy)"


def test_tcp_proxy_to_a_cluster_or_a_service_version() -> None:
    assert _spec(listener(tcp={"cluster": "c"})).chains[0].tcp == Target(cluster="c")
    assert _spec(listener(tcp={"service": "s", "version": "v1"})).chains[0].tcp == Target(service="s", version="v1")
    err = rejected(listener(tcp={"cluster": "c", "version": "v1"}))
    assert (err.path, err.reason) == ("listener/l: spec.tcp", "version goes with service, not cluster")


def test_http_settings_on_a_tcp_proxy_are_refused() -> None:
    err = rejected(listener(tcp={"cluster": "c"}, http={"idleTimeout": "1s"}))
    assert (err.path, err.reason) == ("listener/l: spec.http", "http settings apply to routes, not to a TCP proxy")


@pytest.mark.parametrize("key", ["routes", "tcp", "http", "tls"])
def test_chain_fields_at_the_top_with_filter_chains_are_refused(key: str) -> None:
    value: Any = {"routes": "r", "tcp": {"cluster": "c"}, "http": {}, "tls": {"secret": "s"}}[key]
    err = rejected(listener(filterChains=[{"routes": "r"}], **{key: value}))
    assert err.path == f"listener/l: spec.{key}"
    assert err.reason == "goes inside a filter chain when filterChains is given"


def test_filter_chains_not_empty() -> None:
    err = rejected(listener(filterChains=[]))
    assert (err.path, err.reason) == ("listener/l: spec.filterChains", "needs at least 1 item")


def test_two_chains_with_the_same_match_are_refused() -> None:
    chains = [{"routes": "r", "match": {"serverNames": ["a.example"]}}, {"routes": "r"},
              {"tcp": {"cluster": "c"}, "match": {"serverNames": ["a.example"]}}]
    err = rejected(listener(filterChains=chains))
    assert err.path == "listener/l: spec.filterChains[2]"
    assert err.reason == "matches some of the same connections as spec.filterChains[0]"


@pytest.mark.parametrize(
    "matches",
    [[{"serverNames": ["a.example", "b.example"]}, {"serverNames": ["b.example"]}],
     [{"alpn": ["h2", "http/1.1"]}, {"alpn": ["http/1.1", "h2"]}],
     [{"serverNames": ["a.example", "a.example"]}]],
    ids=["sni-overlap", "alpn-order", "sni-twice"],
)
def test_chains_that_overlap_are_refused(matches: list[Raw]) -> None:
    err = rejected(listener(filterChains=[{"routes": "r", "match": m} for m in matches]))
    assert err.path.startswith("listener/l: spec.filterChains[")


def test_chains_that_differ_in_alpn_or_port_are_distinct() -> None:
    chains = [{"routes": "r", "match": {"alpn": ["h2"]}}, {"routes": "r", "match": {"alpn": ["http/1.1"]}},
              {"routes": "r", "match": {"destinationPort": 443}}, {"routes": "r"}]
    assert len(_spec(listener(filterChains=chains)).chains) == 4


def test_server_names_not_empty() -> None:
    err = rejected(listener(filterChains=[{"routes": "r", "match": {"serverNames": []}}]))
    assert (err.path, err.reason) == ("listener/l: spec.filterChains[0].match.serverNames", "needs at least 1 item")


def test_tls_from_files_or_from_a_secret() -> None:
    assert _spec(listener(tls={"secret": "cert"})).chains[0].tls == Tls(secret="cert")
    files = _spec(listener(tls={"certFile": "/etc/c.pem", "keyFile": "/etc/k.pem"})).chains[0].tls
    assert files == Tls(cert_file="/etc/c.pem", key_file="/etc/k.pem")


def test_tls_secret_and_files_together_are_refused() -> None:
    err = rejected(listener(tls={"secret": "cert", "certFile": "/etc/c.pem"}))
    assert (err.path, err.reason) == ("listener/l: spec.tls", "use either secret or certFile and keyFile")


def test_tls_files_are_absolute_and_both_given() -> None:
    err = rejected(listener(tls={"certFile": "c.pem", "keyFile": "/k.pem"}))
    assert (err.path, err.reason) == ("listener/l: spec.tls.certFile", "'c.pem' is not an absolute path")
    err = rejected(listener(tls={"certFile": "/c.pem"}))
    assert (err.path, err.reason) == ("listener/l: spec.tls.keyFile", "is required")


@pytest.mark.parametrize("address", ["0.0.0.0", "10.1.2.3", "::", "::1", "fe80::1"])
def test_ip_addresses_are_accepted(address: str) -> None:
    assert _spec(listener(address=address)).address == address


@pytest.mark.parametrize("address", ["ingress.local", "10.0.0.1:80", "*"])
def test_an_address_that_is_not_an_ip_is_refused(address: str) -> None:
    err = rejected(listener(address=address))
    assert (err.path, err.reason) == ("listener/l: spec.address", f"{address!r} is not an IP address")


@pytest.mark.parametrize("address", ["999.1.1.1", "1.2", "localhost", "..."])
def test_an_address_that_only_looks_like_an_ip_is_refused(address: str) -> None:
    err = rejected(listener(address=address))
    assert err.path == "listener/l: spec.address"


def test_http_settings() -> None:
    http = _spec(listener(http={"codec": "HTTP2", "idleTimeout": "30s", "useRemoteAddress": True})).chains[0].http
    assert (http.codec, http.idle_timeout, http.use_remote_address) == ("HTTP2", 30.0, True)
    err = rejected(listener(http={"codec": "HTTP3"}))
    assert (err.path, err.reason) == ("listener/l: spec.http.codec", "'HTTP3' is not one of AUTO, HTTP1, HTTP2")


def test_access_log_service_defaults_and_settings() -> None:
    assert _spec(listener()).access_log_service is None
    assert _spec(listener(accessLogService={"cluster": "xds"})).access_log_service == AccessLogService("xds", 0.5)
    spec = _spec(listener(accessLogService={"cluster": "telemetry", "bufferFlushInterval": "250ms"}))
    assert spec.access_log_service == AccessLogService("telemetry", 0.25)
    chains = [{"routes": "r", "match": {"serverNames": ["a.example"]}}, {"tcp": {"cluster": "c"}}]
    assert _spec(listener(filterChains=chains, accessLogService={"cluster": "xds"})).access_log_service is not None


@pytest.mark.parametrize(("logs", "path", "reason"), [
    ({}, "spec.accessLogService.cluster", "is required"),
    ({"cluster": ""}, "spec.accessLogService.cluster", "must be a non-empty string, not an empty string"),
    ({"cluster": "xds", "bufferFlushInterval": "0s"}, "spec.accessLogService.bufferFlushInterval",
     "must be at least 0.001s"),
    ({"cluster": "xds", "bufferFlushInterval": "2h"}, "spec.accessLogService.bufferFlushInterval",
     "must be at most 3600s"),
    ({"cluster": "xds", "logName": "x"}, "spec.accessLogService.logName",
     "unknown field (allowed here: bufferFlushInterval, cluster)"),
    ("xds", "spec.accessLogService", "must be a mapping, not the string 'xds'"),
])
def test_access_log_service_errors_name_the_field(logs: Any, path: str, reason: str) -> None:
    err = rejected(listener(accessLogService=logs))
    assert (err.path, err.reason) == (f"listener/l: {path}", reason)


def test_access_log_service_on_a_tcp_proxy_alone_is_refused() -> None:
    err = rejected(listener(tcp={"cluster": "c"}, accessLogService={"cluster": "xds"}))
    assert (err.path, err.reason) == (
        "listener/l: spec.accessLogService", "logs HTTP requests: this listener has no routes, only a TCP proxy"
    )
