"""The discovered-endpoints layer: endpoints laid over EDS only, without a revision, never emptied by silence."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from switchman.control import Controller
from switchman.control.discovered import DiscoveredEndpoint
from switchman.model.kinds.cluster import Endpoint
from switchman.model.kinds.service import KubernetesSource
from switchman.store import SqliteStore
from switchman.xds import DEFAULT_GROUP, SnapshotCache
from switchman.xds import resources as rt

SOURCE = KubernetesSource("shop", "checkout-v2", "http")


def service(groups: list[str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "checkout"}
    if groups:
        metadata["groups"] = groups
    return {"kind": "Service", "metadata": metadata, "spec": {
        "versions": {"v1": {"endpoints": [{"address": "127.0.0.1", "port": 9001}]},
                     "v2": {"kubernetes": {"namespace": "shop", "service": "checkout-v2", "port": "http"}}},
        "weights": {"v1": 90, "v2": 10}}}


def found(*addresses: str, health: str = "", zone: str = "") -> list[DiscoveredEndpoint]:
    return [DiscoveredEndpoint(Endpoint(a, 8080, 1, zone, health), f"kubernetes shop/checkout-v2/s-{a}")
            for a in addresses]


@pytest.fixture
async def controller(tmp_path: Path) -> AsyncIterator[Controller]:
    store = SqliteStore(str(tmp_path / "s.db"))
    ctl = Controller(store, SnapshotCache())
    await ctl.start()
    await ctl.apply([service()], author="setup")
    yield ctl
    await ctl.stop()
    await store.close()


def addresses(ctl: Controller, cluster: str) -> list[tuple[str, int, int]]:
    snapshot = ctl.cache.snapshot(DEFAULT_GROUP)
    assert snapshot is not None
    cla = snapshot.get(rt.ENDPOINT).resources[cluster].message
    return [(lb.endpoint.address.socket_address.address, lb.endpoint.address.socket_address.port_value,
             lb.health_status) for locality in cla.endpoints for lb in locality.lb_endpoints]


async def test_the_documents_name_their_sources_and_a_discovered_version_starts_empty(controller: Controller) -> None:
    assert controller.discovery_sources() == {SOURCE}
    assert addresses(controller, "checkout-v2") == []
    assert controller.endpoints()["checkout-v2"] == []


async def test_an_endpoint_change_resends_only_that_load_assignment_and_makes_no_revision(
    controller: Controller,
) -> None:
    before = controller.cache.snapshot(DEFAULT_GROUP)
    assert before is not None
    history = await controller.history()
    assert controller.set_discovered(SOURCE, found("10.244.128.2", "10.244.128.3"))
    after = controller.cache.snapshot(DEFAULT_GROUP)
    assert after is not None
    assert addresses(controller, "checkout-v2") == [("10.244.128.2", 8080, 0), ("10.244.128.3", 8080, 0)]
    assert after.get(rt.ENDPOINT).changes_since(before.get(rt.ENDPOINT).serial) == {"checkout-v2"}
    for type_url in (rt.CLUSTER, rt.LISTENER, rt.ROUTE):
        assert after.get(type_url) is before.get(type_url)  # shared, not rebuilt
    assert await controller.history() == history
    # The same endpoints again change nothing.
    assert not controller.set_discovered(SOURCE, found("10.244.128.3", "10.244.128.2"))
    assert controller.cache.snapshot(DEFAULT_GROUP) is after


async def test_draining_endpoints_and_zones_reach_the_load_assignment(controller: Controller) -> None:
    controller.set_discovered(SOURCE, found("10.244.128.2", zone="a") + found("10.244.128.3", zone="b",
                                                                              health="DRAINING"))
    snapshot = controller.cache.snapshot(DEFAULT_GROUP)
    assert snapshot is not None
    cla = snapshot.get(rt.ENDPOINT).resources["checkout-v2"].message
    assert [(loc.locality.zone, [lb.health_status for lb in loc.lb_endpoints]) for loc in cla.endpoints] == [
        ("a", [0]), ("b", [3])  # DRAINING
    ]
    rows = controller.endpoints()["checkout-v2"]
    assert [(r["address"], r["health"], r["zone"], r["source"]) for r in rows] == [
        ("10.244.128.2", "HEALTHY", "a", "kubernetes shop/checkout-v2/s-10.244.128.2"),
        ("10.244.128.3", "DRAINING", "b", "kubernetes shop/checkout-v2/s-10.244.128.3"),
    ]


async def test_a_new_revision_keeps_the_discovered_endpoints(controller: Controller) -> None:
    controller.set_discovered(SOURCE, found("10.244.128.2"))
    raw = service()
    raw["spec"]["weights"] = {"v1": 50, "v2": 50}
    result = await controller.apply([raw], author="someone")
    assert result.revision == 2
    assert addresses(controller, "checkout-v2") == [("10.244.128.2", 8080, 0)]


async def test_every_group_whose_snapshot_has_the_cluster_gets_the_endpoints(controller: Controller) -> None:
    await controller.apply([service(["canary"])], author="someone")
    controller.set_discovered(SOURCE, found("10.244.128.7"))
    canary = controller.cache.snapshot("canary")
    assert canary is not None
    cla = canary.get(rt.ENDPOINT).resources["checkout-v2"].message
    assert [lb.endpoint.address.socket_address.address for lb in cla.endpoints[0].lb_endpoints] == ["10.244.128.7"]


async def test_a_source_no_document_names_is_forgotten(controller: Controller) -> None:
    heard: list[frozenset[KubernetesSource]] = []
    controller.add_sources_listener(heard.append)
    controller.set_discovered(SOURCE, found("10.244.128.2"))
    await controller.delete("Service", "checkout", author="someone")
    assert heard == [frozenset()]
    assert controller.discovered.endpoints(SOURCE) is None
