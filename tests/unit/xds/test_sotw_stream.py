"""The state-of-the-world stream state machine, driven in-process without gRPC."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeAlias

import pytest
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import Message

from switchman.errors import ProtocolError
from switchman.testing.builders import eds_cluster, grpc_source, http_listener, load_assignment, route_config
from switchman.xds import DEFAULT_GROUP, Resource, Snapshot, SnapshotCache, XdsMetrics
from switchman.xds import resources as rt
from switchman.xds.server.clients import ResponseLimits
from switchman.xds.server.status import node_statuses
from switchman.xds.server.stream import StreamContext
from tests.unit.xds.conftest import SotwFactory
from tests.unit.xds.harness import (
    GROUP,
    LISTENER_NAME,
    NODE,
    ROUTE_NAME,
    SotwClient,
    ack,
    contents,
    nack,
    names,
    request,
    world,
)

PORTS = {"a": 9000, "b": 9001}

Response: TypeAlias = discovery_pb2.DiscoveryResponse


def sample(metrics: XdsMetrics, name: str, type_url: str) -> float:
    value = metrics.registry.get_sample_value(name, {"type": rt.short_name(type_url)})
    return value or 0.0


def versions(response: Response) -> dict[str, str]:
    """``{name: resource version}`` of what a response carries."""
    return {name: Resource(message).version for name, message in contents(response).items()}


def by_type(batch: Iterable[Response]) -> dict[str, list[Response]]:
    out: dict[str, list[Response]] = {}
    for response in batch:
        out.setdefault(response.type_url, []).append(response)
    return out


def status_of(ctx: StreamContext, short: str) -> dict[str, object]:
    (node,) = node_statuses(ctx.streams)
    (found,) = [t for t in node.types if t.type == short]
    return {
        "acked": found.acked_version,
        "resources": found.resources,
        "pending": found.pending_version,
        "nack_version": found.nack_version,
        "nack": found.nack_message,
        "waiting": found.waiting,
    }


class Envoy:
    """An ADS client that ACKs what it gets, with a subscription per type, like Envoy."""

    def __init__(self, client: SotwClient, subscriptions: Mapping[str, list[str]]) -> None:
        self.client = client
        self.subs = {t: list(n) for t, n in subscriptions.items()}
        self.last: dict[str, Response] = {}

    def subscribe(self) -> None:
        for type_url, wanted in self.subs.items():
            self.client.send(request(type_url, wanted))

    def ack(self, response: Response) -> None:
        self.last[response.type_url] = response
        self.client.send(ack(response, self.subs[response.type_url]))

    async def converge(self) -> None:
        """ACK everything until the server has nothing more to send."""
        while batch := await self.client.drain():
            for response in batch:
                self.ack(response)


def full_subscription(eds: Iterable[str]) -> dict[str, list[str]]:
    return {rt.CLUSTER: [], rt.ENDPOINT: list(eds), rt.LISTENER: [], rt.ROUTE: [ROUTE_NAME]}


# -- basics --------------------------------------------------------------------


async def test_first_request_gets_the_snapshot(cache: SnapshotCache, sotw: SotwFactory) -> None:
    snap = world("a", ["a", "b"])
    cache.set_snapshot(GROUP, snap)
    client = sotw()
    client.send(request(rt.CLUSTER))
    response = await client.recv()
    assert response.type_url == rt.CLUSTER
    assert response.version_info == snap.version(rt.CLUSTER)
    assert response.nonce
    assert contents(response) == {n: r.message for n, r in snap.get(rt.CLUSTER).resources.items()}


async def test_a_request_made_before_any_snapshot_is_answered_when_one_arrives(
    cache: SnapshotCache, sotw: SotwFactory
) -> None:
    client = sotw()
    client.send(request(rt.LISTENER))
    await client.expect_nothing()
    cache.set_snapshot(GROUP, world("a", ["a"]))
    assert names(await client.recv()) == {LISTENER_NAME}


async def test_named_eds_request_gets_exactly_the_named_assignment(cache: SnapshotCache, sotw: SotwFactory) -> None:
    snap = world("a", ["a", "b", "c"])
    cache.set_snapshot(GROUP, snap)
    client = sotw()
    client.send(request(rt.ENDPOINT, ["b"]))
    response = await client.recv()
    assert contents(response) == {"b": snap.get(rt.ENDPOINT).resources["b"].message}


async def test_streams_asking_for_the_same_names_share_the_encoded_resources(
    cache: SnapshotCache, sotw: SotwFactory
) -> None:
    snap = world("a", ["a", "b", "c"])
    cache.set_snapshot(GROUP, snap)
    one, two = sotw(), sotw()
    one.send(request(rt.ENDPOINT, ["a", "c"]))
    two.send(request(rt.ENDPOINT, ["c", "a"]))
    first, second = await one.recv(), await two.recv()
    body = snap.get(rt.ENDPOINT).select(frozenset({"a", "c"})).body
    assert body in one.frames[0] and body in two.frames[0]
    assert first.resources == second.resources


async def test_each_type_has_its_version_and_responses_name_their_type(
    cache: SnapshotCache, sotw: SotwFactory
) -> None:
    snap = world("a", ["a"])
    cache.set_snapshot(GROUP, snap)
    envoy = Envoy(sotw(), full_subscription(["a"]))
    envoy.subscribe()
    await envoy.converge()
    assert set(envoy.last) == {rt.CLUSTER, rt.ENDPOINT, rt.LISTENER, rt.ROUTE}
    for type_url, response in envoy.last.items():
        assert response.version_info == snap.version(type_url)
        assert all(r.type_url == type_url for r in response.resources)
    assert len({r.nonce for r in envoy.last.values()}) == 4


async def test_an_unchanged_snapshot_sends_nothing(cache: SnapshotCache, sotw: SotwFactory) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = sotw()
    client.send(request(rt.CLUSTER))
    client.send(ack(await client.recv()))
    await client.settle()
    cache.set_snapshot(GROUP, world("a", ["a"]))  # equal content, other objects
    await client.expect_nothing()


async def test_a_change_elsewhere_sends_nothing_for_this_type(cache: SnapshotCache, sotw: SotwFactory) -> None:
    snap = world("a", ["a"])
    cache.set_snapshot(GROUP, snap)
    client = sotw()
    client.send(request(rt.CLUSTER))
    client.send(ack(await client.recv()))
    await client.settle()
    cache.set_snapshot(GROUP, snap.with_changes(upsert=[load_assignment("a", [("10.0.0.9", 1)])]))
    await client.expect_nothing()


async def test_a_changed_snapshot_is_pushed(cache: SnapshotCache, sotw: SotwFactory) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = sotw()
    client.send(request(rt.CLUSTER))
    client.send(ack(await client.recv()))
    new = world("a", ["a", "b"])
    cache.set_snapshot(GROUP, new)
    pushed = await client.recv()
    assert names(pushed) == {"a", "b"}
    assert pushed.version_info == new.version(rt.CLUSTER)


async def test_a_changed_assignment_goes_out_alone_once_the_full_set_was_acked(
    cache: SnapshotCache, sotw: SotwFactory
) -> None:
    snap = world("a", ["a", "b", "c"])
    cache.set_snapshot(GROUP, snap)
    client = sotw()
    client.send(request(rt.ENDPOINT, ["a", "b", "c"]))
    first = await client.recv()
    assert names(first) == {"a", "b", "c"}  # the first response holds everything asked for
    client.send(ack(first, ["a", "b", "c"]))
    new = snap.with_changes(upsert=[load_assignment("b", [("10.0.0.9", 1)])])
    cache.set_snapshot(GROUP, new)
    pushed = await client.recv()
    assert contents(pushed) == {"b": new.get(rt.ENDPOINT).resources["b"].message}  # only what changed
    assert pushed.version_info == new.version(rt.ENDPOINT)
    client.send(ack(pushed, ["a", "b", "c"]))
    client.send(request(rt.ENDPOINT, ["a", "b", "c", "d"], nonce=pushed.nonce, version=pushed.version_info))
    cache.set_snapshot(GROUP, world("a", ["a", "b", "c", "d"]))
    assert names(await client.recv()) == {"a", "b", "c", "d"}  # a new subscription gets all it names


async def test_clusters_and_listeners_always_go_out_whole(cache: SnapshotCache, sotw: SotwFactory) -> None:
    snap = world("a", ["a", "b", "c"])
    cache.set_snapshot(GROUP, snap)
    client = sotw()
    client.send(request(rt.CLUSTER))
    client.send(ack(await client.recv()))
    cache.set_snapshot(GROUP, snap.with_changes(upsert=[eds_cluster("b", connect_timeout=2.0)]))
    assert names(await client.recv()) == {"a", "b", "c"}


async def test_after_a_nack_the_next_assignments_go_out_whole(cache: SnapshotCache, sotw: SotwFactory) -> None:
    snap = world("a", ["a", "b"])
    cache.set_snapshot(GROUP, snap)
    client = sotw()
    client.send(request(rt.ENDPOINT, ["a", "b"]))
    first = await client.recv()
    client.send(ack(first, ["a", "b"]))
    bad = snap.with_changes(upsert=[load_assignment("a", [("10.0.0.9", 1)])])
    cache.set_snapshot(GROUP, bad)
    rejected = await client.recv()
    assert names(rejected) == {"a"}
    client.send(nack(rejected, "no", ["a", "b"], previous=first.version_info))
    await client.settle()
    cache.set_snapshot(GROUP, bad.with_changes(upsert=[load_assignment("b", [("10.0.0.8", 2)])]))
    assert names(await client.recv()) == {"a", "b"}  # the client holds its older set: send it all


# -- ACK, NACK, nonces ----------------------------------------------------------


async def test_ack_updates_the_node_status(cache: SnapshotCache, sotw: SotwFactory, ctx: StreamContext) -> None:
    snap = world("a", ["a", "b"])
    cache.set_snapshot(GROUP, snap)
    client = sotw()
    client.send(request(rt.CLUSTER))
    response = await client.recv()
    await client.settle()
    assert status_of(ctx, "cds")["pending"] == response.version_info
    assert status_of(ctx, "cds")["acked"] == ""
    client.send(ack(response))
    await client.settle()
    assert status_of(ctx, "cds") == {
        "acked": snap.version(rt.CLUSTER),
        "resources": 2,
        "pending": None,
        "nack_version": None,
        "nack": None,
        "waiting": "",
    }
    (node,) = node_statuses(ctx.streams)
    assert (node.node_id, node.cluster, node.group, node.streams) == ("envoy-1", "edge", GROUP, 1)


async def test_nack_is_recorded_and_not_answered_with_a_resend(
    cache: SnapshotCache, sotw: SotwFactory, ctx: StreamContext, metrics: XdsMetrics
) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = sotw()
    client.send(request(rt.CLUSTER))
    good = await client.recv()
    client.send(ack(good))
    bad = world("a", ["a", "b"], extra=[])
    cache.set_snapshot(GROUP, bad)
    rejected = await client.recv()
    client.send(nack(rejected, "cluster b: bad config", previous=good.version_info))
    await client.expect_nothing()
    assert status_of(ctx, "cds") == {
        "acked": good.version_info,
        "resources": 1,
        "pending": None,
        "nack_version": rejected.version_info,
        "nack": "cluster b: bad config",
        "waiting": "",
    }
    assert sample(metrics, "switchman_xds_nacks_total", rt.CLUSTER) == 1
    # the same contents again (another snapshot object, or a change elsewhere) still sends nothing
    cache.set_snapshot(GROUP, world("a", ["a", "b"]))
    cache.set_snapshot(GROUP, bad.with_changes(upsert=[load_assignment("a", [("10.1.1.1", 1)])]))
    await client.expect_nothing()


async def test_after_a_nack_a_different_snapshot_goes_out_and_its_ack_clears_the_nack(
    cache: SnapshotCache, sotw: SotwFactory, ctx: StreamContext
) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = sotw()
    client.send(request(rt.CLUSTER))
    good = await client.recv()
    client.send(ack(good))
    cache.set_snapshot(GROUP, world("a", ["a", "b"]))
    client.send(nack(await client.recv(), "no", previous=good.version_info))
    await client.expect_nothing()
    fixed = world("a", ["a", "c"])
    cache.set_snapshot(GROUP, fixed)
    later = await client.recv()
    assert names(later) == {"a", "c"}
    assert later.version_info == fixed.version(rt.CLUSTER)
    client.send(ack(later))
    await client.settle()
    assert status_of(ctx, "cds")["nack"] is None
    assert status_of(ctx, "cds")["acked"] == fixed.version(rt.CLUSTER)


async def test_stale_nonces_are_ignored(
    cache: SnapshotCache, sotw: SotwFactory, ctx: StreamContext, metrics: XdsMetrics
) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = sotw()
    client.send(request(rt.CLUSTER))
    first = await client.recv()
    client.send(ack(first))
    cache.set_snapshot(GROUP, world("a", ["a", "b"]))
    second = await client.recv()
    # A NACK and a narrowed subscription that both carry the older nonce: neither counts.
    client.send(nack(first, "late complaint about the first response"))
    client.send(request(rt.CLUSTER, ["a"], nonce=first.nonce, version=first.version_info))
    await client.expect_nothing()
    assert status_of(ctx, "cds")["nack"] is None
    assert status_of(ctx, "cds")["pending"] == second.version_info
    assert sample(metrics, "switchman_xds_nacks_total", rt.CLUSTER) == 0
    client.send(ack(second))
    await client.settle()
    assert status_of(ctx, "cds")["acked"] == second.version_info
    assert status_of(ctx, "cds")["resources"] == 2


async def test_at_most_one_response_per_type_is_in_flight(cache: SnapshotCache, sotw: SotwFactory) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = sotw()
    client.send(request(rt.CLUSTER))
    first = await client.recv()
    cache.set_snapshot(GROUP, world("a", ["a", "b"]))
    await client.expect_nothing()
    latest = world("a", ["a", "b", "c"])
    cache.set_snapshot(GROUP, latest)
    await client.expect_nothing()
    client.send(ack(first))
    following = await client.recv()
    assert names(following) == {"a", "b", "c"}  # straight to the latest
    assert following.version_info == latest.version(rt.CLUSTER)
    await client.expect_nothing()


async def test_one_type_in_flight_does_not_hold_another(cache: SnapshotCache, sotw: SotwFactory) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = sotw()
    client.send(request(rt.CLUSTER))
    await client.recv()  # never ACKed
    client.send(request(rt.ENDPOINT, ["a"]))
    assert (await client.recv()).type_url == rt.ENDPOINT


async def test_a_subscription_change_after_an_ack_is_honoured(cache: SnapshotCache, sotw: SotwFactory) -> None:
    cache.set_snapshot(GROUP, world("a", ["a", "b"]))
    client = sotw()
    client.send(request(rt.ENDPOINT, ["a"]))
    first = await client.recv()
    client.send(ack(first, ["a"]))
    await client.settle()
    # Envoy learns of cluster b and widens its EDS subscription at the same version and nonce
    # (xDS protocol, "Resource updates": the latest nonce is not stale).
    client.send(request(rt.ENDPOINT, ["a", "b"], nonce=first.nonce, version=first.version_info))
    assert names(await client.recv()) == {"a", "b"}


# -- make before break ------------------------------------------------------------


async def test_route_to_a_new_cluster_waits_for_its_cluster_and_endpoints(
    cache: SnapshotCache, sotw: SotwFactory, ctx: StreamContext
) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    # The EDS subscription already names n; the next test widens it the way Envoy does.
    envoy = Envoy(sotw(), full_subscription(["a", "n"]))
    envoy.subscribe()
    await envoy.converge()

    new = world("n", ["a", "n"])
    cache.set_snapshot(GROUP, new)
    batch = by_type(await envoy.client.drain())
    assert set(batch) == {rt.CLUSTER, rt.ENDPOINT}, "routes must wait"
    (cds,) = batch[rt.CLUSTER]
    (eds,) = batch[rt.ENDPOINT]
    assert names(cds) == {"a", "n"}
    assert "n" in names(eds)
    assert status_of(ctx, "rds")["waiting"] == "waiting for the client to ACK cds/n"

    envoy.ack(cds)
    await envoy.client.expect_nothing()
    assert status_of(ctx, "rds")["waiting"] == "waiting for the client to ACK eds/n"

    envoy.ack(eds)
    rds = await envoy.client.recv()
    assert rds.type_url == rt.ROUTE
    assert contents(rds)[ROUTE_NAME] == new.get(rt.ROUTE).resources[ROUTE_NAME].message
    assert status_of(ctx, "rds")["waiting"] == ""


async def test_removing_a_cluster_sends_routes_first_and_drops_the_cluster_after_their_ack(
    cache: SnapshotCache, sotw: SotwFactory
) -> None:
    cache.set_snapshot(GROUP, world([("a", 50), ("b", 50)], ["a", "b"], PORTS))
    envoy = Envoy(sotw(), full_subscription(["a", "b"]))
    envoy.subscribe()
    await envoy.converge()

    final = world("b", ["b"], PORTS)  # b itself unchanged
    cache.set_snapshot(GROUP, final)
    batch = by_type(await envoy.client.drain())
    (rds,) = batch[rt.ROUTE]
    assert contents(rds)[ROUTE_NAME] == final.get(rt.ROUTE).resources[ROUTE_NAME].message
    for response in batch.get(rt.CLUSTER, []):
        assert "a" in names(response), "cluster a left before the routes that use it were ACKed"

    # ACK everything but the routes: a stays.
    for response in batch.get(rt.CLUSTER, []) + batch.get(rt.ENDPOINT, []):
        envoy.ack(response)
    await envoy.client.expect_nothing()

    envoy.ack(rds)
    cds = await envoy.client.recv()
    assert cds.type_url == rt.CLUSTER
    assert names(cds) == {"b"}
    assert cds.version_info == final.version(rt.CLUSTER)


async def test_route_to_a_new_cluster_as_envoy_asks_for_its_endpoints(
    cache: SnapshotCache, sotw: SotwFactory
) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    envoy = Envoy(sotw(), full_subscription(["a"]))
    envoy.subscribe()
    await envoy.converge()

    cache.set_snapshot(GROUP, world("n", ["a", "n"]))
    (cds,) = await envoy.client.drain()
    assert cds.type_url == rt.CLUSTER
    envoy.ack(cds)
    # Having learnt of cluster n, Envoy widens its EDS subscription.
    envoy.subs[rt.ENDPOINT] = ["a", "n"]
    eds_before = envoy.last[rt.ENDPOINT]
    envoy.client.send(
        request(rt.ENDPOINT, ["a", "n"], nonce=eds_before.nonce, version=eds_before.version_info)
    )
    eds = await envoy.client.recv()
    assert eds.type_url == rt.ENDPOINT and "n" in names(eds)
    envoy.ack(eds)
    assert (await envoy.client.recv()).type_url == rt.ROUTE


async def test_per_type_route_stream_is_not_held_back(cache: SnapshotCache, sotw: SotwFactory) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = sotw("rds", rt.ROUTE)
    client.send(request("", [ROUTE_NAME]))  # per-type streams may leave type_url out
    first = await client.recv()
    assert first.type_url == rt.ROUTE
    client.send(ack(first, [ROUTE_NAME]))
    new = world("n", ["a", "n"])  # a cluster this stream knows nothing of
    cache.set_snapshot(GROUP, new)
    pushed = await client.recv()
    assert contents(pushed)[ROUTE_NAME] == new.get(rt.ROUTE).resources[ROUTE_NAME].message


async def test_ads_stream_without_a_cds_subscription_is_not_held_back(
    cache: SnapshotCache, sotw: SotwFactory
) -> None:
    """A proxyless gRPC client reads listener and routes first, then asks for clusters."""
    cache.set_snapshot(GROUP, world("n", ["n"]))
    client = sotw()
    client.send(request(rt.LISTENER, [LISTENER_NAME]))
    client.send(request(rt.ROUTE, [ROUTE_NAME]))
    got = by_type(await client.drain())
    assert set(got) == {rt.LISTENER, rt.ROUTE}


async def test_clusters_with_endpoints_from_another_stream_hold_routes_for_cds_only(
    cache: SnapshotCache, sotw: SotwFactory
) -> None:
    items: list[Message] = [
        http_listener(LISTENER_NAME, ROUTE_NAME),
        route_config(ROUTE_NAME, "n"),
        eds_cluster("n", source=grpc_source()),
        load_assignment("n", [("127.0.0.1", 1)]),
    ]
    cache.set_snapshot(GROUP, Snapshot.build(items))
    client = sotw()
    client.send(request(rt.CLUSTER))
    client.send(request(rt.ROUTE, [ROUTE_NAME]))
    (cds,) = await client.drain()
    assert cds.type_url == rt.CLUSTER
    client.send(ack(cds))
    assert (await client.recv()).type_url == rt.ROUTE


# -- groups, guards, protocol errors ------------------------------------------------


async def test_default_group_serves_nodes_whose_group_has_no_snapshot(
    cache: SnapshotCache, sotw: SotwFactory
) -> None:
    cache.set_snapshot(DEFAULT_GROUP, world("d", ["d"]))
    client = sotw()
    client.send(request(rt.CLUSTER))
    first = await client.recv()
    assert names(first) == {"d"}
    client.send(ack(first))
    cache.set_snapshot(GROUP, world("own", ["own"]))
    own = await client.recv()
    assert names(own) == {"own"}
    client.send(ack(own))
    cache.set_snapshot(DEFAULT_GROUP, world("d2", ["d2"]))  # the group has its own: not concerned
    await client.expect_nothing()
    cache.clear_snapshot(GROUP)
    assert names(await client.recv()) == {"d2"}


async def test_default_group_set_after_the_stream_opened_wakes_it(cache: SnapshotCache, sotw: SotwFactory) -> None:
    client = sotw()
    client.send(request(rt.CLUSTER))
    await client.expect_nothing()
    cache.set_snapshot(DEFAULT_GROUP, world("d", ["d"]))
    assert names(await client.recv()) == {"d"}


async def test_another_groups_snapshot_is_not_sent(cache: SnapshotCache, sotw: SotwFactory) -> None:
    cache.set_snapshot("other", world("x", ["x"]))
    client = sotw()
    client.send(request(rt.CLUSTER))
    await client.expect_nothing()


async def test_an_oversized_response_is_not_sent_and_the_stream_stays_open(
    cache: SnapshotCache, sotw: SotwFactory, ctx: StreamContext, metrics: XdsMetrics
) -> None:
    ctx.response_limits = ResponseLimits(other=600)  # the test client is no Envoy
    many = [(f"10.0.{i // 256}.{i % 256}", 8080) for i in range(200)]
    big = world("a", ["a"], extra=[])
    big = big.with_changes(upsert=[load_assignment("a", many)])
    cache.set_snapshot(GROUP, big)
    client = sotw()
    client.send(request(rt.ENDPOINT, ["a"]))
    await client.expect_nothing()
    assert sample(metrics, "switchman_xds_oversized_responses_total", rt.ENDPOINT) == 1
    assert sample(metrics, "switchman_xds_responses_total", rt.ENDPOINT) == 0
    assert not client.task.done()
    assert "exceeds the limit of 600 bytes" in str(status_of(ctx, "eds")["waiting"])
    # other types still flow, and a smaller update goes out
    client.send(request(rt.CLUSTER))
    assert (await client.recv()).type_url == rt.CLUSTER
    cache.set_snapshot(GROUP, big.with_changes(upsert=[load_assignment("a", many[:2])]))
    small = await client.recv()
    assert small.type_url == rt.ENDPOINT
    assert len(client.frames[-1]) <= 600


async def test_first_request_without_node_ends_the_stream(sotw: SotwFactory) -> None:
    client = sotw()
    client.send(request(rt.CLUSTER, node=None))
    with pytest.raises(ProtocolError, match="node"):
        await client.task


async def test_node_is_only_needed_on_the_first_request(cache: SnapshotCache, sotw: SotwFactory) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = sotw()
    client.send(request(rt.CLUSTER))
    client.send(ack(await client.recv()))
    client.send(request(rt.ENDPOINT, ["a"], node=None))
    assert (await client.recv()).type_url == rt.ENDPOINT


async def test_aggregated_request_without_type_url_ends_the_stream(sotw: SotwFactory) -> None:
    client = sotw()
    client.send(request(""))
    with pytest.raises(ProtocolError, match="type_url"):
        await client.task


async def test_per_type_stream_refuses_another_type(sotw: SotwFactory) -> None:
    client = sotw("cds", rt.CLUSTER)
    client.send(request(rt.ROUTE, [ROUTE_NAME]))
    with pytest.raises(ProtocolError, match="not"):
        await client.task


async def test_stream_registers_and_unregisters_itself(ctx: StreamContext, sotw: SotwFactory) -> None:
    client = sotw()
    client.send(request(rt.CLUSTER))
    await client.settle()
    assert client.stream in ctx.streams
    assert node_statuses(ctx.streams)[0].node_id == NODE.id
    await client.close()
    assert client.stream not in ctx.streams
    assert client.task.done() and client.task.exception() is None


async def test_withdrawn_update_clears_the_waiting_reason(
    cache: SnapshotCache, sotw: SotwFactory, ctx: StreamContext
) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    envoy = Envoy(sotw(), full_subscription(["a", "n"]))
    envoy.subscribe()
    await envoy.converge()
    cache.set_snapshot(GROUP, world("n", ["a", "n"]))
    await envoy.client.drain()  # CDS and EDS go out; routes wait for cluster n
    assert status_of(ctx, "rds")["waiting"] == "waiting for the client to ACK cds/n"
    cache.set_snapshot(GROUP, world("a", ["a"]))  # the operator withdraws the change
    await envoy.converge()
    assert status_of(ctx, "rds")["waiting"] == ""


async def test_removing_a_cluster_resends_nothing_the_client_already_has(
    cache: SnapshotCache, sotw: SotwFactory
) -> None:
    cache.set_snapshot(GROUP, world([("a", 50), ("b", 50)], ["a", "b"], PORTS))
    envoy = Envoy(sotw(), full_subscription(["a", "b"]))
    envoy.subscribe()
    await envoy.converge()
    held = {t: versions(r) for t, r in envoy.last.items()}
    cache.set_snapshot(GROUP, world("b", ["b"], PORTS))
    for response in await envoy.client.drain():
        assert versions(response) != held[response.type_url], f"{rt.short_name(response.type_url)} re-sent as is"
