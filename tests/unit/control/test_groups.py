"""Node groups: documents with metadata.groups go to those groups only; each group is checked on its own."""

from __future__ import annotations

from typing import Any

import pytest

from switchman.control.groups import build_served
from switchman.errors import ConfigError
from switchman.model.config import parse_document
from switchman.xds import DEFAULT_GROUP
from switchman.xds import resources as rt


def doc(kind: str, name: str, spec: dict[str, Any], groups: list[str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if groups is not None:
        metadata["groups"] = groups
    return {"kind": kind, "metadata": metadata, "spec": spec}


SERVICE = doc("Service", "checkout", {
    "versions": {"v1": {"endpoints": [{"address": "127.0.0.1", "port": 9001}]},
                 "v2": {"endpoints": [{"address": "127.0.0.1", "port": 9002}]}},
})


def routes(name: str, version: str, groups: list[str] | None = None) -> dict[str, Any]:
    return doc("Routes", name, {"virtualHosts": [{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "service": {"name": "checkout", "version": version}}]}]}, groups)


def listener(name: str, routes_name: str, port: int, groups: list[str] | None = None) -> dict[str, Any]:
    return doc("Listener", name, {"port": port, "routes": routes_name}, groups)


def served(*raws: dict[str, Any]):  # type: ignore[no-untyped-def]
    return build_served(parse_document(r, f"test[{i}]") for i, r in enumerate(raws))


def names(snapshot: Any, type_url: str) -> set[str]:
    return set(snapshot.get(type_url).resources)


def test_documents_without_groups_go_to_every_node() -> None:
    result = served(SERVICE, routes("r", "v1"), listener("ingress", "r", 10000))
    assert set(result.snapshots) == {DEFAULT_GROUP}
    assert names(result.snapshots[DEFAULT_GROUP], rt.LISTENER) == {"ingress"}


def test_a_group_gets_its_documents_and_the_shared_ones() -> None:
    result = served(
        SERVICE,
        routes("stable-routes", "v1", ["stable"]), listener("ingress", "stable-routes", 10000, ["stable"]),
        routes("canary-routes", "v2", ["canary"]), listener("ingress-canary", "canary-routes", 10000, ["canary"]),
    )
    assert set(result.snapshots) == {DEFAULT_GROUP, "stable", "canary"}
    assert names(result.snapshots[DEFAULT_GROUP], rt.LISTENER) == set()
    assert names(result.snapshots[DEFAULT_GROUP], rt.CLUSTER) == {"checkout-v1", "checkout-v2"}
    assert names(result.snapshots["stable"], rt.LISTENER) == {"ingress"}
    assert names(result.snapshots["canary"], rt.LISTENER) == {"ingress-canary"}
    assert names(result.snapshots["canary"], rt.ROUTE) == {"canary-routes"}
    # Two listeners on one port are fine when no node gets both.
    assert result.origin[(rt.LISTENER, "ingress-canary")] == "listener/ingress-canary"


def test_a_reference_into_another_group_is_refused_naming_the_group() -> None:
    only_stable = doc("Cluster", "legacy", {"endpoints": [{"address": "127.0.0.1", "port": 9100}]}, ["stable"])
    to_legacy = doc("Routes", "canary-routes", {"virtualHosts": [{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "cluster": "legacy"}]}]}, ["canary"])
    with pytest.raises(ConfigError) as caught:
        served(only_stable, to_legacy)
    assert caught.value.path == "routes/canary-routes: spec.virtualHosts[0].routes[0]"
    assert "names cluster 'legacy', which does not exist (in what node group 'canary' get)" in caught.value.reason


def test_listeners_clash_within_a_group() -> None:
    with pytest.raises(ConfigError) as caught:
        served(SERVICE, routes("r", "v1"), listener("a", "r", 10000), listener("b", "r", 10000, ["canary"]))
    assert "clashes with" in caught.value.reason and "node group 'canary'" in caught.value.reason


def test_group_names_are_checked() -> None:
    with pytest.raises(ConfigError) as caught:
        served(listener("a", "r", 0, ["has space"]))
    assert caught.value.path == "test[0]: metadata.groups[0]"
    with pytest.raises(ConfigError) as caught:
        served(listener("a", "r", 0, ["x", "x"]))
    assert caught.value.reason == "lists a group twice"
