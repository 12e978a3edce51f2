"""The incremental (delta) stream state machine, driven in-process without gRPC."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

import pytest
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import Message

from switchman.errors import ProtocolError
from switchman.testing.builders import eds_cluster, load_assignment, route_config
from switchman.xds import DEFAULT_GROUP, Resource, Snapshot, SnapshotCache, XdsMetrics
from switchman.xds import resources as rt
from switchman.xds.cache import snapshot as snapshot_module
from switchman.xds.server.clients import ResponseLimits
from switchman.xds.server.delta import DeltaStream
from switchman.xds.server.plan import Plan
from switchman.xds.server.state import TypeState
from switchman.xds.server.status import node_statuses
from switchman.xds.server.stream import Outgoing, StreamContext
from tests.unit.xds.conftest import DeltaFactory
from tests.unit.xds.harness import (
    GROUP,
    ROUTE_NAME,
    DeltaClient,
    delta_ack,
    delta_contents,
    delta_nack,
    delta_names,
    delta_request,
    world,
)

PORTS = {"a": 9000, "b": 9001}

Response: TypeAlias = discovery_pb2.DeltaDiscoveryResponse


def sample(metrics: XdsMetrics, name: str, type_url: str) -> float:
    value = metrics.registry.get_sample_value(name, {"type": rt.short_name(type_url)})
    return value or 0.0


def by_type(batch: Iterable[Response]) -> dict[str, list[Response]]:
    out: dict[str, list[Response]] = {}
    for response in batch:
        out.setdefault(response.type_url, []).append(response)
    return out


def acked(ctx: StreamContext, type_url: str) -> dict[str, str]:
    (stream,) = ctx.streams
    return {n: r.version for n, r in stream.states[type_url].acked.items()}


async def converge(client: DeltaClient) -> dict[str, list[Response]]:
    """ACK everything until the server has nothing more to send."""
    seen: dict[str, list[Response]] = {}
    while batch := await client.drain():
        for response in batch:
            seen.setdefault(response.type_url, []).append(response)
            client.send(delta_ack(response))
    return seen


def subscribe_like_envoy(client: DeltaClient, eds: Iterable[str]) -> None:
    client.send(delta_request(rt.CLUSTER))
    client.send(delta_request(rt.ENDPOINT, list(eds)))
    client.send(delta_request(rt.LISTENER))
    client.send(delta_request(rt.ROUTE, [ROUTE_NAME]))


# -- basics ----------------------------------------------------------------------


async def test_first_request_gets_every_resource_with_its_version(cache: SnapshotCache, delta: DeltaFactory) -> None:
    snap = world("a", ["a", "b"])
    cache.set_snapshot(GROUP, snap)
    client = delta()
    client.send(delta_request(rt.CLUSTER))
    response = await client.recv()
    assert response.type_url == rt.CLUSTER
    assert response.system_version_info == snap.version(rt.CLUSTER)
    assert response.nonce
    assert list(response.removed_resources) == []
    expected = snap.get(rt.CLUSTER).resources
    assert delta_contents(response) == {n: r.message for n, r in expected.items()}
    assert {r.name: r.version for r in response.resources} == {n: r.version for n, r in expected.items()}


async def test_named_subscription_gets_exactly_the_named_assignment(cache: SnapshotCache, delta: DeltaFactory) -> None:
    snap = world("a", ["a", "b", "c"])
    cache.set_snapshot(GROUP, snap)
    client = delta()
    client.send(delta_request(rt.ENDPOINT, ["b"]))
    response = await client.recv()
    assert delta_contents(response) == {"b": snap.get(rt.ENDPOINT).resources["b"].message}


async def test_only_changed_resources_are_sent(cache: SnapshotCache, delta: DeltaFactory) -> None:
    snap = world("a", ["a", "b", "c"])
    cache.set_snapshot(GROUP, snap)
    client = delta()
    client.send(delta_request(rt.ENDPOINT, ["a", "b", "c"]))
    client.send(delta_ack(await client.recv()))
    changed = snap.with_changes(upsert=[load_assignment("b", [("10.0.0.2", 80)])])
    cache.set_snapshot(GROUP, changed)
    response = await client.recv()
    assert delta_contents(response) == {"b": changed.get(rt.ENDPOINT).resources["b"].message}
    assert list(response.removed_resources) == []


async def test_an_unchanged_snapshot_sends_nothing(cache: SnapshotCache, delta: DeltaFactory) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = delta()
    client.send(delta_request(rt.CLUSTER))
    client.send(delta_ack(await client.recv()))
    await client.settle()
    cache.set_snapshot(GROUP, world("a", ["a"]))
    await client.expect_nothing()


async def test_removed_resources_name_what_left_the_snapshot(cache: SnapshotCache, delta: DeltaFactory) -> None:
    cache.set_snapshot(GROUP, world("a", ["a", "b"]))
    client = delta()
    client.send(delta_request(rt.CLUSTER))
    client.send(delta_ack(await client.recv()))
    cache.set_snapshot(GROUP, world("a", ["a"]))
    response = await client.recv()
    assert list(response.removed_resources) == ["b"]
    assert list(response.resources) == []


async def test_removing_a_subscribed_resource_is_announced(cache: SnapshotCache, delta: DeltaFactory) -> None:
    cache.set_snapshot(GROUP, world("a", ["a", "b"]))
    client = delta()
    client.send(delta_request(rt.ENDPOINT, ["a", "b"]))
    client.send(delta_ack(await client.recv()))
    cache.set_snapshot(GROUP, world("a", ["a", "b"]).with_changes(remove=[(rt.ENDPOINT, "b")]))
    response = await client.recv()
    assert list(response.removed_resources) == ["b"]


# -- reconnects: initial_resource_versions -----------------------------------------


async def test_initial_versions_that_match_are_not_resent(
    cache: SnapshotCache, delta: DeltaFactory, ctx: StreamContext
) -> None:
    snap = world("a", ["a", "b", "c"])
    cache.set_snapshot(GROUP, snap)
    have = {n: r.version for n, r in snap.get(rt.CLUSTER).resources.items()}
    have["b"] = "an-older-version"
    have["gone"] = "whatever"
    client = delta()
    client.send(delta_request(rt.CLUSTER, initial=have))
    response = await client.recv()
    assert delta_names(response) == {"b"}
    assert list(response.removed_resources) == ["gone"]
    client.send(delta_ack(response))
    await client.settle()
    assert acked(ctx, rt.CLUSTER) == {n: r.version for n, r in snap.get(rt.CLUSTER).resources.items()}


async def test_a_client_that_has_everything_gets_an_empty_first_response(
    cache: SnapshotCache, delta: DeltaFactory
) -> None:
    snap = world("a", ["a", "b"])
    cache.set_snapshot(GROUP, snap)
    have = {n: r.version for n, r in snap.get(rt.ENDPOINT).resources.items()}
    client = delta()
    client.send(delta_request(rt.ENDPOINT, ["a", "b"], initial=have))
    response = await client.recv()
    assert list(response.resources) == []
    assert list(response.removed_resources) == []
    client.send(delta_ack(response))
    await client.expect_nothing()


# -- subscribe / unsubscribe ---------------------------------------------------------


async def test_subscribing_later_sends_only_the_new_name(cache: SnapshotCache, delta: DeltaFactory) -> None:
    cache.set_snapshot(GROUP, world("a", ["a", "b", "c"]))
    client = delta()
    client.send(delta_request(rt.ENDPOINT, ["a"]))
    client.send(delta_ack(await client.recv()))
    client.send(delta_request(rt.ENDPOINT, ["c"]))
    assert delta_names(await client.recv()) == {"c"}


async def test_unsubscribed_resources_are_no_longer_sent(cache: SnapshotCache, delta: DeltaFactory) -> None:
    snap = world("a", ["a", "b"])
    cache.set_snapshot(GROUP, snap)
    client = delta()
    client.send(delta_request(rt.ENDPOINT, ["a", "b"]))
    client.send(delta_ack(await client.recv()))
    client.send(delta_request(rt.ENDPOINT, unsubscribe=["b"]))
    await client.expect_nothing()  # no removal echoed for what the client dropped itself
    cache.set_snapshot(GROUP, snap.with_changes(upsert=[load_assignment("b", [("10.0.0.2", 1)])]))
    await client.expect_nothing()
    cache.set_snapshot(GROUP, snap.with_changes(upsert=[load_assignment("a", [("10.0.0.1", 1)])]))
    response = await client.recv()
    assert delta_names(response) == {"a"}
    assert list(response.removed_resources) == []


async def test_resubscribing_sends_the_resource_again(cache: SnapshotCache, delta: DeltaFactory) -> None:
    cache.set_snapshot(GROUP, world("a", ["a", "b"]))
    client = delta()
    client.send(delta_request(rt.ENDPOINT, ["a", "b"]))
    client.send(delta_ack(await client.recv()))
    client.send(delta_request(rt.ENDPOINT, unsubscribe=["b"]))
    await client.settle()
    client.send(delta_request(rt.ENDPOINT, ["b"]))
    assert delta_names(await client.recv()) == {"b"}


async def test_subscription_changes_apply_even_with_a_stale_nonce(cache: SnapshotCache, delta: DeltaFactory) -> None:
    cache.set_snapshot(GROUP, world("a", ["a", "b"]))
    client = delta()
    client.send(delta_request(rt.ENDPOINT, ["a"]))
    first = await client.recv()
    client.send(delta_ack(first))
    client.send(delta_request(rt.ENDPOINT, ["b"], nonce="not-a-nonce-we-sent"))
    assert delta_names(await client.recv()) == {"b"}


async def test_a_resource_unsubscribed_while_in_flight_is_not_reported_held(
    cache: SnapshotCache, delta: DeltaFactory, ctx: StreamContext
) -> None:
    cache.set_snapshot(GROUP, world("a", ["a", "b"]))
    client = delta()
    client.send(delta_request(rt.ENDPOINT, ["a", "b"]))
    response = await client.recv()
    # The client drops b before it reads the response, then ACKs the response.
    client.send(delta_request(rt.ENDPOINT, unsubscribe=["b"]))
    client.send(delta_ack(response))
    await client.settle()
    assert set(acked(ctx, rt.ENDPOINT)) == {"a"}
    (node,) = node_statuses(ctx.streams)
    (eds,) = [t for t in node.types if t.type == "eds"]
    assert eds.resources == 1


async def test_leaving_legacy_wildcard_stops_other_resources(cache: SnapshotCache, delta: DeltaFactory) -> None:
    snap = world("a", ["a", "b"])
    cache.set_snapshot(GROUP, snap)
    client = delta()
    client.send(delta_request(rt.CLUSTER))
    client.send(delta_ack(await client.recv()))
    client.send(delta_request(rt.CLUSTER, ["a"]))
    await client.settle()
    cache.set_snapshot(GROUP, snap.with_changes(upsert=[eds_cluster("b", connect_timeout=9.0)]))
    await client.expect_nothing()


# -- ACK / NACK -------------------------------------------------------------------------


async def test_ack_records_what_the_client_holds(
    cache: SnapshotCache, delta: DeltaFactory, ctx: StreamContext, metrics: XdsMetrics
) -> None:
    snap = world("a", ["a", "b"])
    cache.set_snapshot(GROUP, snap)
    client = delta()
    client.send(delta_request(rt.CLUSTER))
    response = await client.recv()
    client.send(delta_ack(response))
    await client.settle()
    assert acked(ctx, rt.CLUSTER) == {n: r.version for n, r in snap.get(rt.CLUSTER).resources.items()}
    (node,) = node_statuses(ctx.streams)
    (cds,) = node.types
    assert (cds.acked_version, cds.resources, cds.pending_version, cds.nack_message) == (
        snap.version(rt.CLUSTER), 2, None, None
    )
    assert sample(metrics, "switchman_xds_acks_total", rt.CLUSTER) == 1


async def test_nack_is_recorded_and_not_answered_with_a_resend(
    cache: SnapshotCache, delta: DeltaFactory, ctx: StreamContext, metrics: XdsMetrics
) -> None:
    snap = world("a", ["a"])
    cache.set_snapshot(GROUP, snap)
    client = delta()
    client.send(delta_request(rt.CLUSTER))
    good = await client.recv()
    client.send(delta_ack(good))
    bad = snap.with_changes(upsert=[eds_cluster("a", connect_timeout=7.0)])
    cache.set_snapshot(GROUP, bad)
    rejected = await client.recv()
    client.send(delta_nack(rejected, "cluster a: no"))
    await client.expect_nothing()
    (node,) = node_statuses(ctx.streams)
    (cds,) = node.types
    assert cds.nack_message == "cluster a: no"
    assert cds.nack_version == bad.version(rt.CLUSTER)
    assert cds.acked_version == snap.version(rt.CLUSTER)
    assert acked(ctx, rt.CLUSTER) == {"a": snap.get(rt.CLUSTER).resources["a"].version}
    assert sample(metrics, "switchman_xds_nacks_total", rt.CLUSTER) == 1
    # a change elsewhere, or the same contents again, still sends nothing
    cache.set_snapshot(GROUP, bad.with_changes(upsert=[load_assignment("a", [("10.9.9.9", 1)])]))
    await client.expect_nothing()
    # a different version goes out normally
    fixed = bad.with_changes(upsert=[eds_cluster("a", connect_timeout=2.0)])
    cache.set_snapshot(GROUP, fixed)
    later = await client.recv()
    assert {r.name: r.version for r in later.resources} == {"a": fixed.get(rt.CLUSTER).resources["a"].version}
    client.send(delta_ack(later))
    await client.settle()
    (node,) = node_statuses(ctx.streams)
    assert node.types[0].nack_message is None


async def test_stale_nonce_does_not_ack_or_nack(
    cache: SnapshotCache, delta: DeltaFactory, ctx: StreamContext
) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = delta()
    client.send(delta_request(rt.CLUSTER))
    first = await client.recv()
    client.send(delta_ack(first))
    cache.set_snapshot(GROUP, world("a", ["a", "b"]))
    second = await client.recv()
    client.send(delta_nack(first, "late"))
    await client.expect_nothing()
    (node,) = node_statuses(ctx.streams)
    (cds,) = node.types
    assert cds.nack_message is None
    assert cds.pending_version == second.system_version_info


async def test_at_most_one_response_per_type_is_in_flight(cache: SnapshotCache, delta: DeltaFactory) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = delta()
    client.send(delta_request(rt.CLUSTER))
    first = await client.recv()
    cache.set_snapshot(GROUP, world("a", ["a", "b"]))
    await client.expect_nothing()
    cache.set_snapshot(GROUP, world("a", ["a", "c"]))
    await client.expect_nothing()
    client.send(delta_ack(first))
    following = await client.recv()
    assert delta_names(following) == {"c"}  # straight to the latest: b never reached the client
    assert list(following.removed_resources) == []


# -- make before break ----------------------------------------------------------------


async def test_route_to_a_new_cluster_waits_for_its_cluster_and_endpoints(
    cache: SnapshotCache, delta: DeltaFactory
) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = delta()
    subscribe_like_envoy(client, ["a"])
    await converge(client)

    new = world("n", ["a", "n"])
    cache.set_snapshot(GROUP, new)
    (cds,) = await client.drain()
    assert cds.type_url == rt.CLUSTER
    assert delta_names(cds) == {"n"}
    client.send(delta_ack(cds))
    await client.expect_nothing()  # routes wait for n's endpoints
    client.send(delta_request(rt.ENDPOINT, ["n"]))  # Envoy asks for the new cluster's endpoints
    eds = await client.recv()
    assert eds.type_url == rt.ENDPOINT
    assert delta_names(eds) == {"n"}
    await client.expect_nothing()
    client.send(delta_ack(eds))
    rds = await client.recv()
    assert rds.type_url == rt.ROUTE
    assert delta_contents(rds)[ROUTE_NAME] == new.get(rt.ROUTE).resources[ROUTE_NAME].message


async def test_removing_a_cluster_sends_routes_first_and_removes_it_after_their_ack(
    cache: SnapshotCache, delta: DeltaFactory
) -> None:
    cache.set_snapshot(GROUP, world([("a", 50), ("b", 50)], ["a", "b"], PORTS))
    client = delta()
    subscribe_like_envoy(client, ["a", "b"])
    await converge(client)

    final = world("b", ["b"], PORTS)  # b itself unchanged
    cache.set_snapshot(GROUP, final)
    batch = by_type(await client.drain())
    assert set(batch) == {rt.ROUTE}
    (rds,) = batch[rt.ROUTE]
    client.send(delta_ack(rds))
    cds = await client.recv()
    assert cds.type_url == rt.CLUSTER
    assert list(cds.removed_resources) == ["a"]
    client.send(delta_ack(cds))
    eds = await client.recv()
    assert eds.type_url == rt.ENDPOINT
    assert list(eds.removed_resources) == ["a"]


async def test_per_type_route_stream_is_not_held_back(cache: SnapshotCache, delta: DeltaFactory) -> None:
    new = world("n", ["n"])
    cache.set_snapshot(GROUP, new)
    client = delta("rds", rt.ROUTE)
    client.send(delta_request("", [ROUTE_NAME]))
    response = await client.recv()
    assert response.type_url == rt.ROUTE
    assert delta_names(response) == {ROUTE_NAME}


# -- groups, guards, errors -----------------------------------------------------------


async def test_default_group_serves_nodes_whose_group_has_none(cache: SnapshotCache, delta: DeltaFactory) -> None:
    cache.set_snapshot(DEFAULT_GROUP, world("d", ["d"]))
    client = delta()
    client.send(delta_request(rt.CLUSTER))
    first = await client.recv()
    assert delta_names(first) == {"d"}
    client.send(delta_ack(first))
    cache.set_snapshot(GROUP, world("own", ["own"]))
    own = await client.recv()
    assert delta_names(own) == {"own"}
    assert list(own.removed_resources) == ["d"]


async def test_an_oversized_response_is_not_sent_and_the_stream_stays_open(
    cache: SnapshotCache, delta: DeltaFactory, ctx: StreamContext, metrics: XdsMetrics
) -> None:
    ctx.response_limits = ResponseLimits(other=600)  # the test client is no Envoy
    many = [(f"10.0.{i // 256}.{i % 256}", 8080) for i in range(200)]
    snap = world("a", ["a"]).with_changes(upsert=[load_assignment("a", many)])
    cache.set_snapshot(GROUP, snap)
    client = delta()
    client.send(delta_request(rt.ENDPOINT, ["a"]))
    await client.expect_nothing()
    assert sample(metrics, "switchman_xds_oversized_responses_total", rt.ENDPOINT) == 1
    assert not client.task.done()
    smaller = snap.with_changes(upsert=[load_assignment("a", many[:2])])
    cache.set_snapshot(GROUP, smaller)
    response = await client.recv()
    assert {r.name: r.version for r in response.resources} == {"a": Resource(load_assignment("a", many[:2])).version}


async def test_first_request_without_node_ends_the_stream(delta: DeltaFactory) -> None:
    client = delta()
    client.send(delta_request(rt.CLUSTER, node=None))
    with pytest.raises(ProtocolError, match="node"):
        await client.task


async def reconnect_with(client: DeltaClient, have: Snapshot) -> None:
    """The first requests of an Envoy that reconnects holding ``have``."""
    versions = {t: {n: r.version for n, r in have.get(t).resources.items()} for t in rt.TYPE_URLS}
    client.send(delta_request(rt.CLUSTER, initial=versions[rt.CLUSTER]))
    client.send(delta_request(rt.ENDPOINT, list(have.eds_names()), initial=versions[rt.ENDPOINT]))
    client.send(delta_request(rt.LISTENER, initial=versions[rt.LISTENER]))
    client.send(delta_request(rt.ROUTE, [ROUTE_NAME], initial=versions[rt.ROUTE]))


async def test_reconnected_client_gets_route_changes_without_a_resend_of_what_it_has(
    cache: SnapshotCache, delta: DeltaFactory
) -> None:
    old = world("a", ["a"])
    cache.set_snapshot(GROUP, old)
    client = delta()
    await reconnect_with(client, old)
    seen = await converge(client)
    assert all(list(r.resources) == [] for responses in seen.values() for r in responses)
    new = old.with_changes(upsert=[route_config(ROUTE_NAME, "a", prefix="/v2")])
    cache.set_snapshot(GROUP, new)
    (rds,) = await client.drain()
    assert delta_contents(rds)[ROUTE_NAME] == new.get(rt.ROUTE).resources[ROUTE_NAME].message


async def test_reconnect_before_the_first_snapshot_does_not_hold_routes_for_ever(
    cache: SnapshotCache, delta: DeltaFactory, ctx: StreamContext
) -> None:
    old = world("a", ["a"])
    client = delta()
    await reconnect_with(client, old)  # e.g. the control plane restarted and has no snapshot yet
    await client.expect_nothing()
    new = old.with_changes(upsert=[route_config(ROUTE_NAME, "a", prefix="/v2")])
    cache.set_snapshot(GROUP, new)
    routes = [r for responses in (await converge(client)).values() for r in responses if r.type_url == rt.ROUTE]
    (stream,) = ctx.streams
    assert stream.states[rt.ROUTE].held_back == ""
    assert [delta_contents(r)[ROUTE_NAME] for r in routes] == [new.get(rt.ROUTE).resources[ROUTE_NAME].message]


# -- only what changed, from the snapshot's history -------------------------------------


def record_changed(monkeypatch: pytest.MonkeyPatch) -> list[frozenset[str] | None]:
    """Record ``Plan.changed`` of every plan a delta stream encodes (None: it compared everything)."""
    seen: list[frozenset[str] | None] = []
    encode = DeltaStream._encode

    def spy(self: DeltaStream, state: TypeState, decision: Plan) -> Outgoing | None:
        seen.append(decision.changed)
        return encode(self, state, decision)

    monkeypatch.setattr(DeltaStream, "_encode", spy)
    return seen


def moved(name: str, port: int) -> Message:
    return load_assignment(name, [("10.0.0.9", port)])


async def test_each_of_several_changes_sends_only_the_changed_assignment(
    cache: SnapshotCache, delta: DeltaFactory, ctx: StreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap = world("a", ["a", "b", "c"])
    cache.set_snapshot(GROUP, snap)
    seen = record_changed(monkeypatch)
    client = delta()
    client.send(delta_request(rt.ENDPOINT, ["a", "b", "c"]))
    client.send(delta_ack(await client.recv()))
    for port, name in enumerate(["b", "a", "b", "c"], start=1):
        snap = snap.with_changes(upsert=[moved(name, port)])
        cache.set_snapshot(GROUP, snap)
        response = await client.recv()
        assert delta_contents(response) == {name: snap.get(rt.ENDPOINT).resources[name].message}
        assert list(response.removed_resources) == []
        client.send(delta_ack(response))
    assert seen == [None, *({n} for n in ["b", "a", "b", "c"])]  # the first compared everything
    (stream,) = ctx.streams
    assert stream.states[rt.ENDPOINT].planned == (snap.get(rt.ENDPOINT).serial, frozenset({"a", "b", "c"}))


async def test_a_stream_that_missed_snapshots_gets_what_changed_since_its_last_response(
    cache: SnapshotCache, delta: DeltaFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap = world("a", ["a", "b", "c", "d", "e"])
    cache.set_snapshot(GROUP, snap)
    seen = record_changed(monkeypatch)
    client = delta()
    client.send(delta_request(rt.ENDPOINT, ["a", "b", "c", "d", "e"]))
    in_flight = await client.recv()
    back = snap.get(rt.ENDPOINT).resources["d"].message
    changes: list[tuple[list[Message], list[tuple[str, str]]]] = [
        ([moved("b", 1)], []),
        ([], [(rt.ENDPOINT, "c")]),
        ([moved("d", 2)], []),
        ([back], []),  # d as the client has it
        ([moved("b", 3)], []),
    ]
    for upsert, remove in changes:
        snap = snap.with_changes(upsert=upsert, remove=remove)
        cache.set_snapshot(GROUP, snap)
    await client.expect_nothing()  # one response in flight at a time
    client.send(delta_ack(in_flight))
    response = await client.recv()
    assert delta_contents(response) == {"b": snap.get(rt.ENDPOINT).resources["b"].message}
    assert list(response.removed_resources) == ["c"]
    assert seen[-1] == frozenset({"b", "c", "d"})  # from the history: d changed and changed back


async def test_a_stream_further_behind_than_the_history_compares_everything(
    cache: SnapshotCache, delta: DeltaFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap = world("a", ["a", "b", "c", "d"])
    cache.set_snapshot(GROUP, snap)
    seen = record_changed(monkeypatch)
    client = delta()
    client.send(delta_request(rt.ENDPOINT, ["a", "b", "c", "d"]))
    in_flight = await client.recv()
    back = snap.get(rt.ENDPOINT).resources["d"].message
    changes: list[tuple[list[Message], list[tuple[str, str]]]] = [
        ([], [(rt.ENDPOINT, "c")]),
        ([moved("d", 1)], []),
        ([back], []),
    ]
    changes += [([moved("b", 100 + i)], []) for i in range(snapshot_module._HISTORY)]
    for upsert, remove in changes:
        snap = snap.with_changes(upsert=upsert, remove=remove)
        cache.set_snapshot(GROUP, snap)
    client.send(delta_ack(in_flight))
    response = await client.recv()
    assert delta_contents(response) == {"b": snap.get(rt.ENDPOINT).resources["b"].message}
    assert list(response.removed_resources) == ["c"]
    assert seen[-1] is None
    client.send(delta_ack(response))
    # and on the next change, history serves again
    snap = snap.with_changes(upsert=[moved("a", 7)])
    cache.set_snapshot(GROUP, snap)
    assert delta_names(await client.recv()) == {"a"}
    assert seen[-1] == {"a"}


async def test_an_explicit_unsubscribe_under_a_wildcard_makes_the_next_plan_compare_everything(
    cache: SnapshotCache, delta: DeltaFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap = world("a", ["a", "b"])
    cache.set_snapshot(GROUP, snap)
    seen = record_changed(monkeypatch)
    client = delta()
    client.send(delta_request(rt.CLUSTER, ["*"]))
    client.send(delta_ack(await client.recv()))
    client.send(delta_request(rt.CLUSTER, unsubscribe=["a"]))  # still on the wildcard
    await client.settle()
    snap = snap.with_changes(upsert=[eds_cluster("b", connect_timeout=9.0)])
    cache.set_snapshot(GROUP, snap)
    response = await client.recv()
    # Whatever the answer, it is the one comparing everything gives, not the history's {b}.
    assert seen[-1] is None
    assert delta_names(response) == {"a", "b"}


async def test_unsubscribing_a_cluster_kept_for_acked_routes_does_not_end_the_stream(
    cache: SnapshotCache, delta: DeltaFactory, ctx: StreamContext
) -> None:
    cache.set_snapshot(GROUP, Snapshot.build([eds_cluster("c1"), eds_cluster("c2"), route_config("r", "c1")]))
    client = delta()
    client.send(delta_request(rt.CLUSTER, ["*"]))
    client.send(delta_ack(await client.recv()))
    client.send(delta_request(rt.ROUTE, ["r"]))
    client.send(delta_ack(await client.recv()))
    await client.settle()
    # c1 leaves and r names c2: the client keeps c1 until it ACKs the new r.
    cache.set_snapshot(GROUP, Snapshot.build([eds_cluster("c2"), route_config("r", "c2")]))
    rds = await client.recv()
    assert rds.type_url == rt.ROUTE
    assert set(acked(ctx, rt.CLUSTER)) == {"c1", "c2"}
    # Before ACKing r, the client drops c1 itself (still on the CDS wildcard).
    client.send(delta_request(rt.CLUSTER, unsubscribe=["c1"]))
    await client.settle()
    assert not client.task.done(), client.task
    assert set(acked(ctx, rt.CLUSTER)) == {"c2"}
    client.send(delta_ack(rds))
    await client.expect_nothing()  # c1 is gone on the client already: no removal to send
    assert not client.task.done()
    assert set(acked(ctx, rt.CLUSTER)) == {"c2"}


def huge(name: str) -> Message:
    return load_assignment(name, [(f"10.0.{i // 256}.{i % 256}", 8080) for i in range(200)])


async def test_after_an_oversized_response_the_next_one_carries_every_change_since_the_last_sent(
    cache: SnapshotCache, delta: DeltaFactory, ctx: StreamContext
) -> None:
    ctx.response_limits = ResponseLimits(other=1000)  # the test client is no Envoy
    snap = world("a", ["a", "b", "c"])
    cache.set_snapshot(GROUP, snap)
    client = delta()
    client.send(delta_request(rt.ENDPOINT, ["a", "b", "c"]))
    client.send(delta_ack(await client.recv()))
    snap = snap.with_changes(upsert=[huge("a"), moved("b", 1)], remove=[(rt.ENDPOINT, "c")])
    cache.set_snapshot(GROUP, snap)
    await client.expect_nothing()  # too large: not sent
    snap = snap.with_changes(upsert=[moved("a", 2)])
    cache.set_snapshot(GROUP, snap)
    response = await client.recv()
    assert delta_contents(response) == {n: snap.get(rt.ENDPOINT).resources[n].message for n in ("a", "b")}
    assert list(response.removed_resources) == ["c"]


async def test_leaving_and_rejoining_the_wildcard_around_an_oversized_response_resends_what_the_client_dropped(
    cache: SnapshotCache, delta: DeltaFactory, ctx: StreamContext
) -> None:
    ctx.response_limits = ResponseLimits(other=1000)  # the test client is no Envoy
    snap = world("a", ["a", "b"])
    cache.set_snapshot(GROUP, snap)
    client = delta()
    client.send(delta_request(rt.ENDPOINT))  # legacy wildcard
    client.send(delta_ack(await client.recv()))
    snap = snap.with_changes(upsert=[huge("a")])
    cache.set_snapshot(GROUP, snap)
    await client.expect_nothing()  # too large
    client.send(delta_request(rt.ENDPOINT, ["a"]))  # leaves the wildcard: the client drops b
    await client.expect_nothing()  # a is still too large
    client.send(delta_request(rt.ENDPOINT, ["*"]))  # and comes back to it
    snap = snap.with_changes(upsert=[moved("a", 1)])
    cache.set_snapshot(GROUP, snap)
    response = await client.recv()
    assert delta_names(response) == {"a", "b"}
