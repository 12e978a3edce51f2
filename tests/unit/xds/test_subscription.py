"""Which resources a client asked for (xDS protocol, "How the client specifies what resources to return")."""

from __future__ import annotations

from switchman.testing.builders import load_assignment
from switchman.xds import SnapshotCache
from switchman.xds import resources as rt
from switchman.xds.server.state import Subscription
from switchman.xds.server.stream import StreamContext
from tests.unit.xds.conftest import DeltaFactory, SotwFactory
from tests.unit.xds.harness import GROUP, ack, delta_ack, delta_names, delta_request, names, request, world

# -- state of the world ------------------------------------------------------


def test_sotw_first_request_without_names_is_legacy_wildcard() -> None:
    sub = Subscription()
    sub.set_names([])
    assert sub.started and sub.wildcard and sub.legacy
    assert sub.selection() is None
    assert sub.covers("anything")


def test_sotw_legacy_wildcard_survives_further_empty_requests() -> None:
    sub = Subscription()
    sub.set_names([])
    sub.set_names([])  # an ACK of a wildcard response names nothing either
    assert sub.wildcard
    assert sub.selection() is None


def test_sotw_naming_resources_leaves_legacy_wildcard() -> None:
    sub = Subscription()
    sub.set_names([])
    sub.set_names(["a", "b"])
    assert not sub.wildcard
    assert sub.selection() == frozenset({"a", "b"})
    assert not sub.covers("c")


def test_sotw_after_leaving_legacy_wildcard_an_empty_list_means_nothing() -> None:
    sub = Subscription()
    sub.set_names([])
    sub.set_names(["a"])
    sub.set_names([])
    assert not sub.wildcard
    assert sub.selection() == frozenset()


def test_sotw_first_request_with_names_is_not_wildcard_and_empty_later_means_nothing() -> None:
    sub = Subscription()
    sub.set_names(["a"])
    assert not sub.wildcard
    sub.set_names([])
    assert not sub.wildcard
    assert sub.selection() == frozenset()


def test_sotw_explicit_star_is_wildcard_alongside_names_until_dropped() -> None:
    sub = Subscription()
    sub.set_names(["*"])
    assert sub.wildcard and not sub.legacy
    sub.set_names(["*", "a"])
    assert sub.wildcard
    assert sub.selection() is None
    sub.set_names(["a"])
    assert not sub.wildcard
    assert sub.selection() == frozenset({"a"})


def test_sotw_request_names_replace_the_subscription() -> None:
    sub = Subscription()
    sub.set_names(["a", "b"])
    sub.set_names(["b", "c"])
    assert sub.selection() == frozenset({"b", "c"})


# -- delta -------------------------------------------------------------------


def test_delta_first_request_without_names_is_legacy_wildcard() -> None:
    sub = Subscription()
    sub.change([], [])
    assert sub.wildcard
    assert sub.selection() is None


def test_delta_subscribe_and_unsubscribe_add_and_remove_names() -> None:
    sub = Subscription()
    sub.change(["a", "b"], [])
    assert not sub.wildcard
    sub.change(["c"], [])
    assert sub.selection() == frozenset({"a", "b", "c"})
    sub.change([], ["a"])
    assert sub.selection() == frozenset({"b", "c"})
    sub.change(["d"], ["b", "c"])
    assert sub.selection() == frozenset({"d"})


def test_delta_explicit_star_subscribes_and_unsubscribes_the_wildcard() -> None:
    sub = Subscription()
    sub.change(["*", "a"], [])
    assert sub.wildcard
    assert sub.selection() is None
    sub.change([], ["*"])
    assert not sub.wildcard
    assert sub.selection() == frozenset({"a"})


def test_delta_unsubscribing_star_ends_legacy_wildcard() -> None:
    sub = Subscription()
    sub.change([], [])
    sub.change([], ["*"])
    assert not sub.wildcard
    assert sub.selection() == frozenset()


def test_delta_legacy_wildcard_survives_requests_that_change_nothing() -> None:
    sub = Subscription()
    sub.change([], [])
    sub.change([], [])  # a plain ACK
    assert sub.wildcard


def test_delta_naming_resources_without_star_leaves_legacy_wildcard() -> None:
    sub = Subscription()
    sub.change([], [])
    sub.change(["a"], [])
    assert not sub.wildcard
    assert sub.selection() == frozenset({"a"})


def test_delta_naming_resources_with_star_keeps_the_wildcard() -> None:
    sub = Subscription()
    sub.change([], [])
    sub.change(["*", "a"], [])
    assert sub.wildcard


# -- through a stream --------------------------------------------------------


async def test_sotw_stream_legacy_wildcard_gets_every_cluster(cache: SnapshotCache, sotw: SotwFactory) -> None:
    cache.set_snapshot(GROUP, world("a", ["a", "b", "c"]))
    client = sotw()
    client.send(request(rt.CLUSTER))
    assert names(await client.recv()) == frozenset({"a", "b", "c"})


async def test_sotw_stream_explicit_star_gets_every_cluster(cache: SnapshotCache, sotw: SotwFactory) -> None:
    cache.set_snapshot(GROUP, world("a", ["a", "b", "c"]))
    client = sotw()
    client.send(request(rt.CLUSTER, ["*", "a"]))
    assert names(await client.recv()) == frozenset({"a", "b", "c"})


async def test_sotw_stream_leaving_legacy_wildcard_narrows_to_the_names(
    cache: SnapshotCache, sotw: SotwFactory
) -> None:
    cache.set_snapshot(GROUP, world("a", ["a", "b", "c"]))
    client = sotw()
    client.send(request(rt.CLUSTER))
    first = await client.recv()
    client.send(ack(first, ["b"]))
    assert names(await client.recv()) == frozenset({"b"})


async def test_delta_stream_legacy_wildcard_gets_every_cluster(cache: SnapshotCache, delta: DeltaFactory) -> None:
    cache.set_snapshot(GROUP, world("a", ["a", "b", "c"]))
    client = delta()
    client.send(delta_request(rt.CLUSTER))
    assert delta_names(await client.recv()) == frozenset({"a", "b", "c"})


async def test_delta_stream_explicit_star_gets_every_cluster(cache: SnapshotCache, delta: DeltaFactory) -> None:
    cache.set_snapshot(GROUP, world("a", ["a", "b", "c"]))
    client = delta()
    client.send(delta_request(rt.CLUSTER, ["*"]))
    assert delta_names(await client.recv()) == frozenset({"a", "b", "c"})


# -- one selection object while the names stay the same -----------------------------


def test_sotw_an_ack_repeating_the_names_keeps_the_selection_object() -> None:
    sub = Subscription()
    sub.set_names(["a", "b"])
    first = sub.selection()
    sub.set_names(["b", "a"])  # an ACK: the same names again
    assert sub.selection() is first
    sub.set_names(["a"])
    assert sub.selection() == frozenset({"a"})
    assert sub.selection() is not first


def test_delta_an_ack_keeps_the_selection_object() -> None:
    sub = Subscription()
    sub.change(["a", "b"], [])
    first = sub.selection()
    sub.change([], [])
    assert sub.selection() is first
    sub.change(["c"], [])
    assert sub.selection() == frozenset({"a", "b", "c"})


def test_subscriptions_to_the_same_names_share_one_selection_object() -> None:
    one, two, other = Subscription(), Subscription(), Subscription()
    one.set_names(["a", "b"])
    two.change(["b", "a"], [])
    other.set_names(["a", "c"])
    assert one.selection() is two.selection()
    assert other.selection() is not one.selection()


async def test_streams_keep_their_selection_across_acks(
    cache: SnapshotCache, sotw: SotwFactory, delta: DeltaFactory, ctx: StreamContext
) -> None:
    snap = world("a", ["a", "b", "c"])
    cache.set_snapshot(GROUP, snap)
    state_client, delta_client = sotw(), delta()
    state_client.send(request(rt.ENDPOINT, ["a", "b"]))
    delta_client.send(delta_request(rt.ENDPOINT, ["b", "a"]))
    state_client.send(ack(await state_client.recv(), ["a", "b"]))
    delta_client.send(delta_ack(await delta_client.recv()))
    await state_client.settle()
    selections = {s.mode: s.states[rt.ENDPOINT].subscription.selection() for s in ctx.streams}
    assert selections["sotw"] is selections["delta"]
    for i in range(3):
        snap = snap.with_changes(upsert=[load_assignment("a", [("10.0.0.1", 1 + i)])])
        cache.set_snapshot(GROUP, snap)
        state_client.send(ack(await state_client.recv(), ["a", "b"]))
        delta_client.send(delta_ack(await delta_client.recv()))
        await state_client.settle()
        await delta_client.settle()
        for stream in ctx.streams:
            assert stream.states[rt.ENDPOINT].subscription.selection() is selections["sotw"]
