"""Rules across documents (config.build_config): duplicates, references, ports, Envoy cluster names."""

from __future__ import annotations

import pytest

from switchman.errors import ConfigError
from switchman.translate import translate
from switchman.xds import Snapshot
from tests.unit.model.docs import (
    cluster,
    config,
    envoy_resource,
    listener,
    raw_cluster,
    rejected_config,
    route,
    routes,
    service,
)

R = "routes/r: spec.virtualHosts[0]"


def test_the_same_document_twice_is_refused() -> None:
    err = rejected_config([cluster("c"), cluster("d"), cluster("c", lbPolicy="RANDOM")])
    assert (err.path, err.reason) == ("cluster/c", "appears twice")


def test_the_same_name_in_two_kinds_is_two_documents() -> None:
    docs = [cluster("shop"), routes("shop", route(cluster="shop"))]
    assert set(config(docs).documents) == {"cluster/shop", "routes/shop"}


# -- references -----------------------------------------------------------------------------


def test_a_listener_naming_missing_routes_is_refused() -> None:
    err = rejected_config([listener(routes="nope")])
    assert (err.path, err.reason) == ("listener/l: spec.routes", "names Routes 'nope', which does not exist")


def test_a_filter_chain_naming_missing_routes_is_refused_with_its_path() -> None:
    chains = [{"routes": "r", "match": {"serverNames": ["a"]}}, {"routes": "nope"}]
    err = rejected_config([cluster(), routes(), listener(filterChains=chains)])
    assert (err.path, err.reason) == ("listener/l: spec.filterChains[1].routes",
                                      "names Routes 'nope', which does not exist")


def test_a_tcp_proxy_naming_a_missing_cluster_is_refused() -> None:
    err = rejected_config([listener(tcp={"cluster": "nope"})])
    assert (err.path, err.reason) == ("listener/l: spec.tcp", "names cluster 'nope', which does not exist")


def test_a_tcp_proxy_in_a_chain_naming_a_missing_service_is_refused() -> None:
    err = rejected_config([listener(filterChains=[{"tcp": {"service": "nope"}}])])
    assert (err.path, err.reason) == ("listener/l: spec.filterChains[0].tcp",
                                      "names service 'nope', which does not exist")


def test_a_route_naming_a_missing_cluster_is_refused() -> None:
    err = rejected_config([cluster(), routes("r", route(), route(cluster="nope"))])
    assert (err.path, err.reason) == (f"{R}.routes[1]", "names cluster 'nope', which does not exist")


def test_a_route_naming_a_missing_service_is_refused() -> None:
    err = rejected_config([routes("r", route(service="nope"))])
    assert (err.path, err.reason) == (f"{R}.routes[0]", "names service 'nope', which does not exist")


def test_a_route_naming_a_missing_version_is_refused() -> None:
    err = rejected_config([service(), routes("r", route(service={"name": "s", "version": "v9"}))])
    assert (err.path, err.reason) == (f"{R}.routes[0]", "service 's' has no version 'v9' (it has v1, v2)")


def test_a_split_naming_something_missing_is_refused_with_the_entry() -> None:
    split = [{"service": "s", "version": "v1", "weight": 50}, {"cluster": "nope", "weight": 50}]
    err = rejected_config([service(), routes("r", route(split=split))])
    assert (err.path, err.reason) == (f"{R}.routes[0].split[1]", "names cluster 'nope', which does not exist")


def test_a_mirror_naming_a_missing_cluster_is_refused() -> None:
    err = rejected_config([cluster(), routes("r", route(mirror={"cluster": "shadow"}))])
    assert (err.path, err.reason) == (f"{R}.routes[0].mirror", "names cluster 'shadow', which does not exist")


def test_references_to_raw_envoy_resources_resolve() -> None:
    raw_routes = envoy_resource(
        "legacy-routes", {"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
                          "name": "legacy-routes"},
    )
    docs = [raw_cluster("legacy"), routes("r", route(cluster="legacy")), listener(routes="r"),
            raw_routes, listener("l2", port=10001, routes="legacy-routes")]
    assert len(config(docs).documents) == 5


def test_a_raw_cluster_is_not_a_service() -> None:
    err = rejected_config([raw_cluster("legacy"), routes("r", route(service="legacy"))])
    assert err.reason == "names service 'legacy', which does not exist"


# -- ports -------------------------------------------------------------------------------------


def _l(name: str, address: str, port: int) -> dict[str, object]:
    return listener(name, address=address, port=port)


def test_two_listeners_on_one_address_and_port_clash() -> None:
    err = rejected_config([cluster(), routes(), _l("a", "127.0.0.1", 8080), _l("b", "127.0.0.1", 8080)])
    assert err.path == "listener/b: spec.port"
    assert err.reason == "127.0.0.1:8080 clashes with listener/a on 127.0.0.1:8080"


@pytest.mark.parametrize(
    ("a", "b"), [("0.0.0.0", "127.0.0.1"), ("127.0.0.1", "0.0.0.0"), ("::", "::1"), ("10.0.0.1", "::")],
    ids=["any-first", "any-second", "ipv6-any", "ipv6-any-and-ipv4"],
)
def test_a_wildcard_address_clashes_with_a_specific_one_on_the_same_port(a: str, b: str) -> None:
    err = rejected_config([cluster(), routes(), _l("a", a, 8080), _l("b", b, 8080)])
    assert (err.path, err.reason) == ("listener/b: spec.port", f"{b}:8080 clashes with listener/a on {a}:8080")


def test_different_addresses_or_ports_do_not_clash() -> None:
    docs = [cluster(), routes(), _l("a", "127.0.0.1", 8080), _l("b", "127.0.0.2", 8080), _l("c", "127.0.0.1", 8081)]
    assert len(config(docs).of_kind("Listener")) == 3


def test_port_zero_is_exempt() -> None:
    docs = [cluster(), routes(), _l("a", "127.0.0.1", 0), _l("b", "127.0.0.1", 0), _l("c", "0.0.0.0", 0)]
    assert len(config(docs).of_kind("Listener")) == 3


def test_a_raw_listener_clashing_with_a_listener_is_refused() -> None:
    raw = envoy_resource("raw", {
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "raw",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}},
    })
    err = rejected_config([cluster(), routes(), _l("a", "127.0.0.1", 8080), raw])
    assert "clashes" in err.reason


# -- Envoy names ----------------------------------------------------------------------------------


def test_a_cluster_named_like_a_service_version_clashes() -> None:
    err = rejected_config([cluster("checkout-v2"), service("checkout")])
    assert (err.path, err.reason) == ("service/checkout",
                                      "the Envoy resource cds/checkout-v2 would also come from cluster/checkout-v2")


def test_two_services_producing_the_same_cluster_clash() -> None:
    err = rejected_config([service("a-b", versions={"c": 1}), service("a", versions={"b-c": 2})])
    assert err.path == "service/a"
    assert err.reason == "the Envoy resource cds/a-b-c would also come from service/a-b"


def test_a_raw_cluster_named_like_a_cluster_clashes() -> None:
    err = rejected_config([cluster("legacy"), raw_cluster("legacy")])
    assert err.path == "envoyresource/legacy"
    assert err.reason == "the Envoy resource cds/legacy would also come from cluster/legacy"


def test_a_raw_route_configuration_named_like_routes_clashes() -> None:
    raw = envoy_resource("r", {"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration", "name": "r"})
    err = rejected_config([cluster(), routes("r"), raw])
    assert "routes/r" in f"{err.path}: {err.reason}" and "envoyresource/r" in f"{err.path}: {err.reason}"


def test_a_listener_naming_a_missing_secret_is_refused() -> None:
    err = rejected_config([cluster(), routes(), listener(tls={"secret": "shop-cert"})])
    assert err.path == "listener/l: spec.tls.secret"


def test_a_config_that_passes_builds_a_snapshot() -> None:
    split = [{"service": "s", "weight": 1}, {"cluster": "c", "weight": 1}]
    docs = [service(), cluster(), routes("r", route(split=split)), listener()]
    Snapshot.build(translate(config(docs)))


def test_errors_from_a_bad_document_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        config([cluster(endpoints=[])] * 2)
