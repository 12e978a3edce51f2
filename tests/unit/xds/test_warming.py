"""An EDS cluster a CDS response changes gets its assignment again, right behind it, on ADS streams."""

from __future__ import annotations

from collections.abc import Sequence

from switchman.testing.builders import eds_cluster, load_assignment, route_config
from switchman.xds import Resource, Snapshot, SnapshotCache
from switchman.xds import resources as rt
from tests.unit.xds.conftest import DeltaFactory, SotwFactory
from tests.unit.xds.harness import (
    GROUP,
    ROUTE_NAME,
    ack,
    contents,
    delta_ack,
    delta_contents,
    delta_request,
    nack,
    names,
    request,
    world,
)
from tests.unit.xds.test_delta_stream import converge, subscribe_like_envoy
from tests.unit.xds.test_sotw_stream import Envoy, full_subscription


def slower(snap: Snapshot, *clusters: str) -> Snapshot:
    """``snap`` with ``clusters`` changed (their connect timeout), their endpoints as they were."""
    return snap.with_changes(upsert=[eds_cluster(name, connect_timeout=2.5) for name in clusters])


async def synced_sotw(
    cache: SnapshotCache, sotw: SotwFactory, clusters: Sequence[str] = ("a", "b"), eds: Sequence[str] | None = None
) -> tuple[Snapshot, Envoy]:
    """``clusters`` (routes to the first) on an ADS stream that ACKed everything, its EDS subscription ``eds``
    (all of them by default)."""
    snap = world(clusters[0], clusters)
    cache.set_snapshot(GROUP, snap)
    envoy = Envoy(sotw(), full_subscription(clusters if eds is None else eds))
    envoy.subscribe()
    await envoy.converge()
    return snap, envoy


# -- state of the world -------------------------------------------------------------------


async def test_a_changed_eds_cluster_is_followed_by_its_unchanged_assignment_before_any_ack(
    cache: SnapshotCache, sotw: SotwFactory
) -> None:
    snap, envoy = await synced_sotw(cache, sotw)
    cache.set_snapshot(GROUP, slower(snap, "a"))
    # Envoy ACKs the clusters only once the changed one has warmed: nothing is ACKed here.
    cds, eds = await envoy.client.drain()
    assert cds.type_url == rt.CLUSTER and eds.type_url == rt.ENDPOINT
    assert contents(eds) == {"a": snap.get(rt.ENDPOINT).resources["a"].message}  # only the changed cluster's
    envoy.ack(eds)
    envoy.ack(cds)
    await envoy.client.expect_nothing()  # once: no loop


async def test_a_rejected_cluster_change_sends_nothing_more(cache: SnapshotCache, sotw: SotwFactory) -> None:
    snap, envoy = await synced_sotw(cache, sotw)
    cache.set_snapshot(GROUP, slower(snap, "a"))
    cds, eds = await envoy.client.drain()
    envoy.client.send(nack(cds, "cluster a: bad", previous=envoy.last[rt.CLUSTER].version_info))
    envoy.ack(eds)
    await envoy.client.expect_nothing()


async def test_unchanged_removed_and_route_only_changes_send_no_assignment(
    cache: SnapshotCache, sotw: SotwFactory
) -> None:
    snap, envoy = await synced_sotw(cache, sotw)
    rerouted = snap.with_changes(upsert=[route_config(ROUTE_NAME, "b")])
    cache.set_snapshot(GROUP, rerouted)
    (routes,) = await envoy.client.drain()
    assert routes.type_url == rt.ROUTE
    envoy.ack(routes)
    await envoy.client.expect_nothing()
    cache.set_snapshot(GROUP, rerouted.with_changes(remove=[(rt.CLUSTER, "a"), (rt.ENDPOINT, "a")]))
    (cds,) = await envoy.client.drain()  # b unchanged, a gone: nothing to warm, no endpoints behind it
    assert names(cds) == {"b"}


async def test_an_assignment_in_flight_is_followed_by_the_owed_one_once_answered(
    cache: SnapshotCache, sotw: SotwFactory
) -> None:
    snap, envoy = await synced_sotw(cache, sotw)
    moved = snap.with_changes(upsert=[load_assignment("a", [("127.0.0.1", 9100)])])
    cache.set_snapshot(GROUP, moved)
    (in_flight,) = await envoy.client.drain()
    assert names(in_flight) == {"a"}
    cache.set_snapshot(GROUP, slower(moved, "a"))
    (cds,) = await envoy.client.drain()  # the endpoints wait for their answer: one response per type
    assert cds.type_url == rt.CLUSTER
    envoy.ack(in_flight)  # it left before the cluster change: the new cluster never saw it
    (again,) = await envoy.client.drain()
    assert contents(again) == {"a": moved.get(rt.ENDPOINT).resources["a"].message}


async def test_a_cluster_changed_with_its_endpoints_gets_them_once(cache: SnapshotCache, sotw: SotwFactory) -> None:
    snap, envoy = await synced_sotw(cache, sotw)
    both = slower(snap, "a").with_changes(upsert=[load_assignment("a", [("127.0.0.1", 9100)])])
    cache.set_snapshot(GROUP, both)
    cds, eds = await envoy.client.drain()
    assert names(eds) == {"a"}
    envoy.ack(cds)
    envoy.ack(eds)
    await envoy.client.expect_nothing()


async def test_only_assignments_the_stream_subscribes_to_are_sent_again(
    cache: SnapshotCache, sotw: SotwFactory
) -> None:
    snap, envoy = await synced_sotw(cache, sotw, eds=["b"])
    cache.set_snapshot(GROUP, slower(snap, "a", "b"))
    cds, eds = await envoy.client.drain()
    assert names(cds) == {"a", "b"}
    assert names(eds) == {"b"}


async def test_a_resent_assignment_goes_alone_among_many(cache: SnapshotCache, sotw: SotwFactory) -> None:
    snap, envoy = await synced_sotw(cache, sotw, [f"c{i}" for i in range(50)])
    cache.set_snapshot(GROUP, slower(snap, "c7"))
    _, eds = await envoy.client.drain()
    assert names(eds) == {"c7"}


async def test_a_cluster_sent_before_the_client_asks_for_endpoints_gets_them_in_the_first_response(
    cache: SnapshotCache, sotw: SotwFactory
) -> None:
    snap = world("a", ["a", "b"])
    cache.set_snapshot(GROUP, snap)
    client = sotw()
    client.send(request(rt.CLUSTER))
    cds = await client.recv()
    client.send(request(rt.ENDPOINT, ["a", "b"]))
    eds = await client.recv()
    assert names(eds) == {"a", "b"}
    client.send(ack(eds, ["a", "b"]))
    await client.expect_nothing()
    assert cds.type_url == rt.CLUSTER


async def test_per_type_streams_are_left_to_the_eds_stream_a_new_cluster_opens(
    cache: SnapshotCache, sotw: SotwFactory
) -> None:
    snap = world("a", ["a"])
    cache.set_snapshot(GROUP, snap)
    clusters, endpoints = sotw("cds", rt.CLUSTER), sotw("eds", rt.ENDPOINT)
    clusters.send(request(rt.CLUSTER))
    endpoints.send(request(rt.ENDPOINT, ["a"]))
    clusters.send(ack(await clusters.recv()))
    endpoints.send(ack(await endpoints.recv(), ["a"]))
    await clusters.settle()
    cache.set_snapshot(GROUP, slower(snap, "a"))
    assert (await clusters.recv()).type_url == rt.CLUSTER
    await endpoints.expect_nothing()


# -- delta ------------------------------------------------------------------------------------


async def test_delta_a_changed_eds_cluster_is_followed_by_its_assignment_at_the_same_version(
    cache: SnapshotCache, delta: DeltaFactory
) -> None:
    snap = world("a", ["a", "b"])
    cache.set_snapshot(GROUP, snap)
    client = delta()
    subscribe_like_envoy(client, ["a", "b"])
    await converge(client)
    cache.set_snapshot(GROUP, slower(snap, "a"))
    cds, eds = await client.drain()
    assert cds.type_url == rt.CLUSTER and eds.type_url == rt.ENDPOINT
    assert [(r.name, r.version) for r in eds.resources] == [("a", snap.get(rt.ENDPOINT).resources["a"].version)]
    client.send(delta_ack(cds))
    client.send(delta_ack(eds))
    await client.expect_nothing()


async def test_delta_reconnect_after_a_cluster_changed_resends_its_assignment_the_client_reported(
    cache: SnapshotCache, delta: DeltaFactory
) -> None:
    old = world("a", ["a", "b"])
    new = slower(old, "a")
    cache.set_snapshot(GROUP, new)

    def versions(snap: Snapshot, type_url: str) -> dict[str, str]:
        return {n: r.version for n, r in snap.get(type_url).resources.items()}

    client = delta()  # the client kept what the old snapshot gave it
    client.send(delta_request(rt.CLUSTER, initial=versions(old, rt.CLUSTER)))
    cds = await client.recv()
    assert list(delta_contents(cds)) == ["a"]
    client.send(delta_request(rt.ENDPOINT, ["a", "b"], initial=versions(old, rt.ENDPOINT)))
    eds = await client.recv()
    assert list(delta_contents(eds)) == ["a"]  # its cluster is new to the client; b's is not
    assert Resource(delta_contents(eds)["a"]).version == versions(old, rt.ENDPOINT)["a"]
