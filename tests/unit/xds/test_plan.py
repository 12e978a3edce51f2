"""Make-before-break planning, on stream state built by hand."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.message import Message

from switchman.testing.builders import eds_cluster, grpc_source, http_listener, load_assignment, route_config
from switchman.xds import Resource, Snapshot
from switchman.xds import resources as rt
from switchman.xds.server.plan import Hold, Plan, plan
from switchman.xds.server.state import TypeState
from tests.unit.xds.harness import LISTENER_NAME, ROUTE_NAME, world


def state(type_url: str, names: Iterable[str] | None = None, acked: Iterable[Resource] = ()) -> TypeState:
    """A started subscription (None: legacy wildcard) that has ACKed ``acked``."""
    out = TypeState(type_url)
    out.subscription.set_names([] if names is None else list(names))
    out.add_acked(acked)
    out.sent = dict(out.acked)
    return out


def ads_states(snap: Snapshot, eds: Iterable[str], acked_from: Snapshot | None = None) -> dict[str, TypeState]:
    """An Envoy on ADS: CDS and LDS wildcard, EDS and RDS by name, holding ``acked_from``."""
    held = acked_from or snap
    return {
        rt.CLUSTER: state(rt.CLUSTER, None, held.get(rt.CLUSTER).resources.values()),
        rt.ENDPOINT: state(rt.ENDPOINT, eds, held.get(rt.ENDPOINT).resources.values()),
        rt.LISTENER: state(rt.LISTENER, None, held.get(rt.LISTENER).resources.values()),
        rt.ROUTE: state(rt.ROUTE, [ROUTE_NAME], held.get(rt.ROUTE).resources.values()),
    }


def test_plan_of_unchanged_contents_is_none() -> None:
    snap = world("a", ["a"])
    states = ads_states(snap, ["a"])
    first = plan(states, rt.CLUSTER, snap, None)
    assert isinstance(first, Plan)
    assert plan(states, rt.CLUSTER, snap, first.key) is None


def test_plan_holds_routes_naming_a_cluster_the_client_has_not_acked() -> None:
    old = world("a", ["a"])
    new = world("n", ["a", "n"])
    states = ads_states(new, ["a", "n"], acked_from=old)
    decision = plan(states, rt.ROUTE, new, None)
    assert decision == Hold("waiting for the client to ACK cds/n")


def test_plan_holds_routes_until_the_new_clusters_endpoints_are_acked() -> None:
    old = world("a", ["a"])
    new = world("n", ["a", "n"])
    states = ads_states(new, ["a", "n"], acked_from=old)
    states[rt.CLUSTER].replace_acked(new.get(rt.CLUSTER).resources)
    assert plan(states, rt.ROUTE, new, None) == Hold("waiting for the client to ACK eds/n")
    states[rt.ENDPOINT].replace_acked(new.get(rt.ENDPOINT).resources)
    decision = plan(states, rt.ROUTE, new, None)
    assert isinstance(decision, Plan)
    assert decision.resources[ROUTE_NAME] is new.get(rt.ROUTE).resources[ROUTE_NAME]


def test_plan_holds_routes_until_a_changed_cluster_is_acked_at_its_new_version() -> None:
    old = world("a", ["a"])
    new = old.with_changes(upsert=[eds_cluster("a", connect_timeout=3.0), route_config(ROUTE_NAME, "a", prefix="/v2")])
    states = ads_states(new, ["a"], acked_from=old)
    assert plan(states, rt.ROUTE, new, None) == Hold("waiting for the client to ACK cds/a")


def test_plan_does_not_hold_clusters_endpoints_or_listeners_for_routes() -> None:
    old = world("a", ["a"])
    new = world("n", ["a", "n"])
    states = ads_states(new, ["a", "n"], acked_from=old)
    for type_url in (rt.CLUSTER, rt.ENDPOINT, rt.LISTENER):
        assert isinstance(plan(states, type_url, new, None), Plan), rt.short_name(type_url)


def test_plan_holds_listeners_that_name_an_unacked_cluster_directly() -> None:
    from tests.unit.xds.test_snapshot import tcp_listener

    new = Snapshot.build([tcp_listener("tcp", "n"), eds_cluster("n"), load_assignment("n", [("127.0.0.1", 1)])])
    states = {rt.CLUSTER: state(rt.CLUSTER), rt.LISTENER: state(rt.LISTENER)}
    assert plan(states, rt.LISTENER, new, None) == Hold("waiting for the client to ACK cds/n")


def test_plan_does_not_hold_a_stream_without_a_cds_subscription() -> None:
    new = world("n", ["n"])
    states = {rt.ROUTE: state(rt.ROUTE, [ROUTE_NAME])}
    decision = plan(states, rt.ROUTE, new, None)
    assert isinstance(decision, Plan)
    assert set(decision.resources) == {ROUTE_NAME}


def test_plan_only_waits_for_clusters_the_stream_subscribes_to() -> None:
    new = world("n", ["a", "n"])
    states = {rt.CLUSTER: state(rt.CLUSTER, ["a"], new.get(rt.CLUSTER).resources.values()),
              rt.ROUTE: state(rt.ROUTE, [ROUTE_NAME])}
    states[rt.CLUSTER].drop_acked(["n"])
    assert isinstance(plan(states, rt.ROUTE, new, None), Plan)


def test_plan_does_not_wait_for_endpoints_that_come_over_another_stream() -> None:
    items: list[Message] = [
        http_listener(LISTENER_NAME, ROUTE_NAME),
        route_config(ROUTE_NAME, "n"),
        eds_cluster("n", source=grpc_source()),
        load_assignment("n", [("127.0.0.1", 1)]),
    ]
    new = Snapshot.build(items)
    states = {
        rt.CLUSTER: state(rt.CLUSTER, None, new.get(rt.CLUSTER).resources.values()),
        rt.ROUTE: state(rt.ROUTE, [ROUTE_NAME]),
    }
    assert isinstance(plan(states, rt.ROUTE, new, None), Plan)


def test_plan_waits_for_ads_endpoints_even_before_the_eds_subscription_starts() -> None:
    new = world("n", ["n"])
    states = {
        rt.CLUSTER: state(rt.CLUSTER, None, new.get(rt.CLUSTER).resources.values()),
        rt.ROUTE: state(rt.ROUTE, [ROUTE_NAME]),
    }
    assert plan(states, rt.ROUTE, new, None) == Hold("waiting for the client to ACK eds/n")


def test_plan_keeps_a_removed_cluster_while_acked_routes_still_name_it() -> None:
    old = world([("a", 50), ("b", 50)], ["a", "b"])
    new = world("b", ["b"])
    states = ads_states(new, ["a", "b"], acked_from=old)
    decision = plan(states, rt.CLUSTER, new, None)
    assert isinstance(decision, Plan)
    assert set(decision.resources) == {"a", "b"}
    assert decision.resources["a"] is old.get(rt.CLUSTER).resources["a"]
    assert decision.version == new.version(rt.CLUSTER) + "+held"
    # the routes that stop naming a are not held: b is ACKed
    assert isinstance(plan(states, rt.ROUTE, new, None), Plan)
    # once the client ACKs those routes, a goes
    states[rt.ROUTE].replace_acked(new.get(rt.ROUTE).resources)
    states[rt.ROUTE].sent = new.get(rt.ROUTE).resources
    after = plan(states, rt.CLUSTER, new, decision.key)
    assert isinstance(after, Plan)
    assert set(after.resources) == {"b"}
    assert after.version == new.version(rt.CLUSTER)


def test_plan_keeps_endpoints_while_the_client_holds_their_cluster() -> None:
    old = world([("a", 50), ("b", 50)], ["a", "b"])
    new = world("b", ["b"])
    states = ads_states(new, ["a", "b"], acked_from=old)
    decision = plan(states, rt.ENDPOINT, new, None)
    assert isinstance(decision, Plan)
    assert set(decision.resources) == {"a", "b"}


def test_plan_of_a_named_subscription_selects_exactly_the_names() -> None:
    snap = world("a", ["a", "b", "c"])
    states = {rt.ENDPOINT: state(rt.ENDPOINT, ["b", "missing"])}
    decision = plan(states, rt.ENDPOINT, snap, None)
    assert isinstance(decision, Plan)
    assert set(decision.resources) == {"b"}
    assert decision.body == snap.get(rt.ENDPOINT).resources["b"].sotw_field


# -- the ACKed names behind "kept" ----------------------------------------------------


def test_plan_keeps_a_removed_cluster_whose_ack_arrives_after_the_snapshot_removed_it() -> None:
    old = world([("a", 50), ("b", 50)], ["a", "b"])
    new = world("a", ["a"])
    states = ads_states(new, ["a", "b"], acked_from=old)
    states[rt.CLUSTER].drop_acked(["b"])  # b still in flight when the snapshot drops it
    first = plan(states, rt.CLUSTER, new, None)
    assert isinstance(first, Plan)
    assert set(first.resources) == {"a"}
    states[rt.CLUSTER].add_acked([old.get(rt.CLUSTER).resources["b"]])  # then the client ACKs it
    decision = plan(states, rt.CLUSTER, new, first.key)
    assert isinstance(decision, Plan)
    assert set(decision.resources) == {"a", "b"}  # the ACKed routes still name b


def test_plan_forgets_a_kept_cluster_the_client_dropped() -> None:
    old = world([("a", 50), ("b", 50)], ["a", "b"])
    new = world("a", ["a"])
    states = ads_states(new, ["a", "b"], acked_from=old)
    kept = plan(states, rt.CLUSTER, new, None)
    assert isinstance(kept, Plan)
    assert set(kept.resources) == {"a", "b"}
    states[rt.CLUSTER].drop_acked(["b"])  # e.g. a delta client unsubscribed it
    decision = plan(states, rt.CLUSTER, new, kept.key)
    assert isinstance(decision, Plan)
    assert set(decision.resources) == {"a"}


def test_acked_names_count_only_changes_of_names() -> None:
    snap = world("a", ["a", "b"])
    moved = snap.with_changes(upsert=[load_assignment("a", [("10.0.0.1", 1)])])
    state = TypeState(rt.ENDPOINT)
    state.replace_acked(snap.get(rt.ENDPOINT).resources)
    assert state.acked_names == 1
    state.replace_acked(moved.get(rt.ENDPOINT).resources)  # versions only
    state.add_acked([moved.get(rt.ENDPOINT).resources["b"]])
    state.drop_acked(["nothing-like-it"])
    assert state.acked_names == 1
    state.drop_acked(["b"])  # edits a copy: the snapshot's mapping is read-only and shared
    assert state.acked_names == 2
    assert set(state.acked) == {"a"}
    assert set(moved.get(rt.ENDPOINT).resources) == {"a", "b"}
    state.add_acked([moved.get(rt.ENDPOINT).resources["b"]])
    assert state.acked_names == 3


# -- what changed since the last plan ------------------------------------------------


def test_plan_says_what_changed_since_the_last_plan_of_the_same_subscription() -> None:
    s0 = world("a", ["a", "b", "c"])
    states = {rt.ENDPOINT: state(rt.ENDPOINT, ["a", "b", "c"])}
    first = plan(states, rt.ENDPOINT, s0, None)
    assert isinstance(first, Plan)
    assert first.changed is None  # nothing to count from
    states[rt.ENDPOINT].planned = first.basis
    s1 = s0.with_changes(upsert=[load_assignment("b", [("10.0.0.2", 1)])])
    s2 = s1.with_changes(upsert=[load_assignment("c", [("10.0.0.3", 1)])])
    decision = plan(states, rt.ENDPOINT, s2, first.key)
    assert isinstance(decision, Plan)
    assert decision.changed == frozenset({"b", "c"})
    assert decision.basis == (s2.get(rt.ENDPOINT).serial, states[rt.ENDPOINT].subscription.selection())
    assert decision.resources is s2.get(rt.ENDPOINT).select(frozenset({"a", "b", "c"})).mapping  # shared, not copied


def test_plan_compares_everything_after_a_subscription_change() -> None:
    s0 = world("a", ["a", "b", "c"])
    states = {rt.ENDPOINT: state(rt.ENDPOINT, ["a", "b"])}
    first = plan(states, rt.ENDPOINT, s0, None)
    assert isinstance(first, Plan)
    states[rt.ENDPOINT].planned = first.basis
    states[rt.ENDPOINT].subscription.set_names(["a", "b", "c"])
    s1 = s0.with_changes(upsert=[load_assignment("b", [("10.0.0.2", 1)])])
    decision = plan(states, rt.ENDPOINT, s1, first.key)
    assert isinstance(decision, Plan)
    assert decision.changed is None


def test_a_plan_that_keeps_removed_resources_is_no_basis_for_the_next() -> None:
    old = world([("a", 50), ("b", 50)], ["a", "b"])
    new = world("a", ["a"])
    states = ads_states(new, ["a", "b"], acked_from=old)
    kept = plan(states, rt.CLUSTER, new, None)
    assert isinstance(kept, Plan)
    assert (kept.basis, kept.changed) == (None, None)
