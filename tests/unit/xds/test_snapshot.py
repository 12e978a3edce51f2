"""Snapshots: checked when built, versioned by content, changed type by type, selected by name."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from switchman.errors import ConfigError, SnapshotError
from switchman.testing.builders import (
    api_listener,
    eds_cluster,
    http_listener,
    load_assignment,
    route_config,
)
from switchman.xds import Resource, Snapshot
from switchman.xds import resources as rt
from switchman.xds.cache import snapshot as snapshot_module
from tests.unit.xds.harness import world


def _packed(message: Message) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(message)
    return out


def tcp_listener(name: str, cluster: str | list[str]) -> listener_pb2.Listener:
    if isinstance(cluster, str):
        proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=name, cluster=cluster)
    else:
        proxy = tcp_proxy_pb2.TcpProxy(
            stat_prefix=name,
            weighted_clusters=tcp_proxy_pb2.TcpProxy.WeightedCluster(
                clusters=[tcp_proxy_pb2.TcpProxy.WeightedCluster.ClusterWeight(name=c, weight=1) for c in cluster]
            ),
        )
    return listener_pb2.Listener(
        name=name,
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[listener_components_pb2.Filter(name="envoy.filters.network.tcp_proxy",
                                                        typed_config=_packed(proxy))]
            )
        ],
    )


def inline_listener(name: str, routes: route_pb2.RouteConfiguration) -> listener_pb2.Listener:
    hcm = hcm_pb2.HttpConnectionManager(stat_prefix=name, route_config=routes)
    return listener_pb2.Listener(
        name=name,
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[listener_components_pb2.Filter(name="envoy.filters.network.http_connection_manager",
                                                        typed_config=_packed(hcm))]
            )
        ],
    )


def static_cluster(name: str) -> cluster_pb2.Cluster:
    return cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.STATIC)


def eds_cluster_with_service(name: str, service: str) -> cluster_pb2.Cluster:
    cluster = eds_cluster(name)
    cluster.eds_cluster_config.service_name = service
    return cluster


def mirrored_route(name: str, cluster: str, mirror: str) -> route_pb2.RouteConfiguration:
    routes = route_config(name, cluster)
    policy = route_components_pb2.RouteAction.RequestMirrorPolicy(cluster=mirror)
    routes.virtual_hosts[0].routes[0].route.request_mirror_policies.append(policy)
    return routes


def base_items() -> list[Message]:
    return [
        http_listener("ingress", "ingress-routes"),
        route_config("ingress-routes", [("a", 90), ("b", 10)]),
        eds_cluster("a"),
        load_assignment("a", [("127.0.0.1", 9001)]),
        eds_cluster("b"),
        load_assignment("b", [("127.0.0.1", 9002)]),
    ]


def error_of(items: list[Message]) -> SnapshotError:
    with pytest.raises(SnapshotError) as raised:
        Snapshot.build(items)
    return raised.value


# -- build checks ------------------------------------------------------------


def test_a_consistent_chain_builds_and_holds_every_resource() -> None:
    snap = Snapshot.build(base_items())
    assert set(snap.get(rt.LISTENER).resources) == {"ingress"}
    assert set(snap.get(rt.ROUTE).resources) == {"ingress-routes"}
    assert set(snap.get(rt.CLUSTER).resources) == {"a", "b"}
    assert set(snap.get(rt.ENDPOINT).resources) == {"a", "b"}
    assert snap.eds_names() == {"a", "b"}


def test_route_naming_an_unknown_cluster_is_refused_naming_both() -> None:
    error = error_of([*base_items(), route_config("extra", "nope")])
    assert error.path == "rds/extra"
    assert "cds/nope" in str(error)
    assert str(error) == "rds/extra: names cds/nope, which is not in the snapshot"
    assert isinstance(error, ConfigError)


@pytest.mark.parametrize(
    "routes",
    [
        pytest.param(route_config("r", [("a", 50), ("ghost", 50)]), id="weighted"),
        pytest.param(mirrored_route("r", "a", "ghost"), id="mirror"),
    ],
)
def test_every_kind_of_cluster_reference_in_a_route_is_checked(routes: route_pb2.RouteConfiguration) -> None:
    error = error_of([*base_items(), routes])
    assert error.path == "rds/r"
    assert "cds/ghost" in error.reason


def test_listener_naming_an_unknown_route_configuration_is_refused() -> None:
    error = error_of([*base_items(), http_listener("side", "missing-routes")])
    assert error.path == "lds/side"
    assert "rds/missing-routes" in error.reason


def test_api_listener_naming_an_unknown_route_configuration_is_refused() -> None:
    error = error_of([*base_items(), api_listener("grpc-svc", "missing-routes")])
    assert error.path == "lds/grpc-svc"
    assert "rds/missing-routes" in error.reason


@pytest.mark.parametrize(
    "listener",
    [
        pytest.param(tcp_listener("tcp", "ghost"), id="tcp-proxy"),
        pytest.param(tcp_listener("tcp", ["a", "ghost"]), id="tcp-proxy-weighted"),
        pytest.param(inline_listener("tcp", route_config("inline", "ghost")), id="inline-routes"),
    ],
)
def test_listener_naming_an_unknown_cluster_is_refused(listener: listener_pb2.Listener) -> None:
    error = error_of([*base_items(), listener])
    assert error.path == "lds/tcp"
    assert "cds/ghost" in error.reason


def test_listeners_naming_clusters_that_exist_build() -> None:
    Snapshot.build([*base_items(), tcp_listener("tcp", ["a", "b"]), inline_listener("inline", route_config("x", "b"))])


def test_endpoints_for_a_cluster_that_is_not_there_are_refused() -> None:
    error = error_of([*base_items(), load_assignment("ghost", [("127.0.0.1", 1)])])
    assert error.path == "eds/ghost"
    assert "not in the snapshot" in error.reason


def test_endpoints_for_a_cluster_that_is_not_eds_are_refused() -> None:
    error = error_of([*base_items(), static_cluster("fixed"), load_assignment("fixed", [("127.0.0.1", 1)])])
    assert error.path == "eds/fixed"
    assert "EDS" in error.reason


def test_endpoints_go_by_the_eds_service_name_not_the_cluster_name() -> None:
    items: list[Message] = [eds_cluster_with_service("c", "svc-c"), load_assignment("svc-c", [("127.0.0.1", 1)])]
    assert Snapshot.build(items).eds_names() == {"svc-c"}
    error = error_of([eds_cluster_with_service("c", "svc-c"), load_assignment("c", [("127.0.0.1", 1)])])
    assert error.path == "eds/c"


def test_an_eds_cluster_may_wait_for_its_endpoints() -> None:
    snap = Snapshot.build([route_config("r", "lonely"), eds_cluster("lonely")])
    assert snap.eds_names() == {"lonely"}
    assert snap.get(rt.ENDPOINT).resources == {}


@pytest.mark.parametrize(
    ("duplicate", "path"),
    [
        (eds_cluster("a", connect_timeout=5.0), "cds/a"),
        (route_config("ingress-routes", "b"), "rds/ingress-routes"),
        (http_listener("ingress", "ingress-routes", port=1), "lds/ingress"),
        (load_assignment("b", [("127.0.0.1", 1)]), "eds/b"),
    ],
)
def test_a_name_used_twice_is_refused_naming_it(duplicate: Message, path: str) -> None:
    error = error_of([*base_items(), duplicate])
    assert error.path == path
    assert "twice" in error.reason


def test_resources_may_be_given_pre_encoded() -> None:
    items = [Resource(m) for m in base_items()]
    snap = Snapshot.build(items)
    assert snap.get(rt.CLUSTER).resources["a"] is items[2]


# -- versions ----------------------------------------------------------------


def test_same_content_gives_the_same_versions_whatever_the_order_or_objects() -> None:
    one = Snapshot.build(base_items())
    two = Snapshot.build(list(reversed(base_items())))
    for type_url in rt.TYPE_URLS:
        assert one.version(type_url) == two.version(type_url)
    assert one.version(rt.CLUSTER) != ""


def test_changed_content_changes_only_that_types_version() -> None:
    one = Snapshot.build(base_items())
    items = base_items()
    items[3] = load_assignment("a", [("127.0.0.1", 9999)])
    two = Snapshot.build(items)
    assert one.version(rt.ENDPOINT) != two.version(rt.ENDPOINT)
    for type_url in (rt.LISTENER, rt.ROUTE, rt.CLUSTER):
        assert one.version(type_url) == two.version(type_url)


def test_removing_a_resource_changes_the_version() -> None:
    one = world("a", ["a", "b"])
    two = world("a", ["a"])
    assert one.version(rt.CLUSTER) != two.version(rt.CLUSTER)
    assert one.version(rt.ENDPOINT) != two.version(rt.ENDPOINT)
    assert one.version(rt.ROUTE) == two.version(rt.ROUTE)


def test_a_resource_version_is_a_digest_of_its_content() -> None:
    assert Resource(eds_cluster("a")).version == Resource(eds_cluster("a")).version
    assert Resource(eds_cluster("a")).version != Resource(eds_cluster("a", connect_timeout=2.0)).version


def test_an_explicit_version_applies_to_every_type() -> None:
    snap = Snapshot.build(base_items(), version="v7")
    assert {snap.version(t) for t in rt.TYPE_URLS} == {"v7"}


# -- with_changes ------------------------------------------------------------


def test_with_changes_rebuilds_only_the_changed_type() -> None:
    old = Snapshot.build(base_items())
    new = old.with_changes(upsert=[load_assignment("a", [("127.0.0.2", 9001)])])
    assert new.get(rt.ENDPOINT) is not old.get(rt.ENDPOINT)
    assert new.version(rt.ENDPOINT) != old.version(rt.ENDPOINT)
    for type_url in (rt.LISTENER, rt.ROUTE, rt.CLUSTER, rt.SECRET):
        assert new.get(type_url) is old.get(type_url)
    # the unchanged load assignment is the same pre-encoded object
    assert new.get(rt.ENDPOINT).resources["b"] is old.get(rt.ENDPOINT).resources["b"]
    # and the old snapshot is untouched
    assert old.get(rt.ENDPOINT).resources["a"].message == load_assignment("a", [("127.0.0.1", 9001)])


def test_with_changes_versions_match_a_fresh_build_of_the_same_content() -> None:
    old = Snapshot.build(base_items())
    new = old.with_changes(
        upsert=[
            route_config("ingress-routes", [("a", 90), ("c", 10)]),
            eds_cluster("c"),
            load_assignment("c", [("127.0.0.1", 9003)]),
        ],
        remove=[(rt.CLUSTER, "b"), (rt.ENDPOINT, "b")],
    )
    fresh = Snapshot.build(
        [
            http_listener("ingress", "ingress-routes"),
            route_config("ingress-routes", [("a", 90), ("c", 10)]),
            eds_cluster("a"),
            load_assignment("a", [("127.0.0.1", 9001)]),
            eds_cluster("c"),
            load_assignment("c", [("127.0.0.1", 9003)]),
        ]
    )
    for type_url in rt.TYPE_URLS:
        assert new.version(type_url) == fresh.version(type_url), rt.short_name(type_url)
        assert set(new.get(type_url).resources) == set(fresh.get(type_url).resources)


def test_with_changes_upserting_identical_content_keeps_the_version() -> None:
    old = Snapshot.build(base_items())
    new = old.with_changes(upsert=[eds_cluster("a")])
    assert new.version(rt.CLUSTER) == old.version(rt.CLUSTER)


def test_with_changes_checks_a_route_naming_an_unknown_cluster() -> None:
    old = Snapshot.build(base_items())
    with pytest.raises(SnapshotError, match=r"rds/ingress-routes: names cds/nope"):
        old.with_changes(upsert=[route_config("ingress-routes", "nope")])


def test_with_changes_checks_removing_a_cluster_a_route_still_names() -> None:
    old = Snapshot.build(base_items())
    with pytest.raises(SnapshotError, match=r"rds/ingress-routes: names cds/b"):
        old.with_changes(remove=[(rt.CLUSTER, "b"), (rt.ENDPOINT, "b")])


def test_with_changes_checks_endpoints_left_without_their_cluster() -> None:
    old = Snapshot.build([*base_items(), eds_cluster("spare"), load_assignment("spare", [("127.0.0.1", 1)])])
    with pytest.raises(SnapshotError, match=r"eds/spare"):
        old.with_changes(remove=[(rt.CLUSTER, "spare")])


def test_with_changes_checks_endpoint_only_changes() -> None:
    old = Snapshot.build(base_items())
    with pytest.raises(SnapshotError, match=r"eds/ghost"):
        old.with_changes(upsert=[load_assignment("ghost", [("127.0.0.1", 1)])])


def test_with_changes_checks_a_listener_naming_unknown_routes() -> None:
    old = Snapshot.build(base_items())
    with pytest.raises(SnapshotError, match=r"lds/side: names rds/nowhere"):
        old.with_changes(upsert=[http_listener("side", "nowhere")])


def test_with_changes_can_remove_a_cluster_together_with_what_names_it() -> None:
    old = Snapshot.build(base_items())
    new = old.with_changes(
        upsert=[route_config("ingress-routes", "a")], remove=[(rt.CLUSTER, "b"), (rt.ENDPOINT, "b")]
    )
    assert set(new.get(rt.CLUSTER).resources) == {"a"}
    assert set(new.get(rt.ENDPOINT).resources) == {"a"}
    assert new.get(rt.LISTENER) is old.get(rt.LISTENER)


# -- select ------------------------------------------------------------------


def test_select_returns_exactly_the_named_resources() -> None:
    tsnap = world("a", ["a", "b", "c"]).get(rt.ENDPOINT)
    chosen = tsnap.select(frozenset({"b", "unknown"}))
    assert [r.name for r in chosen.resources] == ["b"]
    assert dict(chosen.mapping) == {"b": tsnap.resources["b"]}
    assert chosen.body == tsnap.resources["b"].sotw_field


def test_select_none_returns_everything_in_name_order() -> None:
    tsnap = world("a", ["c", "a", "b"]).get(rt.CLUSTER)
    everything = tsnap.select(None)
    assert [r.name for r in everything.resources] == ["a", "b", "c"]
    assert everything.body == b"".join(tsnap.resources[n].sotw_field for n in ("a", "b", "c"))
    assert everything.key == tsnap.version


def test_select_shares_one_encoding_for_the_same_names() -> None:
    tsnap = world("a", ["a", "b", "c"]).get(rt.ENDPOINT)
    first = tsnap.select(frozenset({"a", "c"}))
    again = tsnap.select(frozenset(["c", "a"]))  # an equal set, another object
    assert again.body is first.body
    assert again is first


def test_select_keys_are_equal_exactly_when_contents_are() -> None:
    one = world("a", ["a", "b"])
    changed_b = one.with_changes(upsert=[load_assignment("b", [("10.0.0.1", 1)])])
    names = frozenset({"a"})
    # b changed, a did not: a selection of a alone keeps its key
    assert one.get(rt.ENDPOINT).select(names).key == changed_b.get(rt.ENDPOINT).select(names).key
    assert (
        one.get(rt.ENDPOINT).select(frozenset({"a", "b"})).key
        != changed_b.get(rt.ENDPOINT).select(frozenset({"a", "b"})).key
    )


def test_a_resource_is_encoded_once_and_shared_by_snapshots() -> None:
    shared = Resource(eds_cluster("a"))
    one = Snapshot.build([shared])
    two = Snapshot.build([shared, eds_cluster("b")])
    body_one = one.get(rt.CLUSTER).select(frozenset({"a"})).body
    body_two = two.get(rt.CLUSTER).select(frozenset({"a"})).body
    assert body_one == body_two == shared.sotw_field


def test_an_empty_type_selects_nothing() -> None:
    snap = Snapshot.build([eds_cluster("a")])
    assert snap.get(rt.SECRET).select(None).resources == ()
    assert snap.get(rt.SECRET).select(None).body == b""



def _header_routed(name: str) -> route_pb2.RouteConfiguration:
    """Weighted clusters where one entry picks its cluster from a request header."""
    routes = route_config(name, [("a", 50), ("b", 50)])
    weighted = routes.virtual_hosts[0].routes[0].route.weighted_clusters.clusters[1]
    weighted.ClearField("name")
    weighted.cluster_header = "x-cluster"
    return routes


def _header_mirrored(name: str) -> route_pb2.RouteConfiguration:
    routes = route_config(name, "a")
    policy = route_components_pb2.RouteAction.RequestMirrorPolicy(cluster_header="x-mirror-to")
    routes.virtual_hosts[0].routes[0].route.request_mirror_policies.append(policy)
    return routes


@pytest.mark.parametrize("routes", [_header_routed("r"), _header_mirrored("r")], ids=["weighted", "mirror"])
def test_clusters_chosen_by_header_are_not_references(routes: route_pb2.RouteConfiguration) -> None:
    snap = Snapshot.build([*base_items(), routes])
    assert set(snap.get(rt.ROUTE).resources) == {"ingress-routes", "r"}


# -- what changed since ----------------------------------------------------------


def test_changes_since_names_what_changed_across_several_with_changes() -> None:
    s0 = world("a", ["a", "b", "c"])
    s1 = s0.with_changes(upsert=[load_assignment("a", [("10.0.0.1", 1)])])
    s2 = s1.with_changes(upsert=[load_assignment("b", [("10.0.0.2", 1)])])
    s3 = s2.with_changes(remove=[(rt.ENDPOINT, "c")])
    eds = [s.get(rt.ENDPOINT) for s in (s0, s1, s2, s3)]
    assert eds[3].changes_since(eds[3].serial) == frozenset()
    assert eds[3].changes_since(eds[2].serial) == frozenset({"c"})
    assert eds[3].changes_since(eds[1].serial) == frozenset({"b", "c"})
    assert eds[3].changes_since(eds[0].serial) == frozenset({"a", "b", "c"})
    assert eds[2].changes_since(eds[0].serial) == frozenset({"a", "b"})
    # not an ancestor: the same content built afresh, or a later snapshot
    assert eds[3].changes_since(world("a", ["a", "b", "c"]).get(rt.ENDPOINT).serial) is None
    assert eds[1].changes_since(eds[2].serial) is None
    # the other types are shared: nothing changed for them
    assert s3.get(rt.CLUSTER) is s0.get(rt.CLUSTER)
    assert s3.get(rt.CLUSTER).changes_since(s0.get(rt.CLUSTER).serial) == frozenset()


def test_changes_since_counts_a_name_changed_and_changed_back_and_ignores_identical_upserts() -> None:
    s0 = world("a", ["a", "b"])
    original = load_assignment("a", [("127.0.0.1", 9000)])  # what world() built
    s1 = s0.with_changes(upsert=[load_assignment("a", [("10.0.0.1", 1)])])
    s2 = s1.with_changes(upsert=[original, load_assignment("b", [("127.0.0.1", 9001)])])  # a back, b identical
    assert s2.get(rt.ENDPOINT).resources["a"].version == s0.get(rt.ENDPOINT).resources["a"].version
    assert s2.get(rt.ENDPOINT).changes_since(s1.get(rt.ENDPOINT).serial) == frozenset({"a"})
    assert s2.get(rt.ENDPOINT).changes_since(s0.get(rt.ENDPOINT).serial) == frozenset({"a"})  # a superset is enough


def test_changes_since_is_unknown_beyond_the_history() -> None:
    snaps = [world("a", ["a", "b"])]
    for i in range(snapshot_module._HISTORY + 1):
        snaps.append(snaps[-1].with_changes(upsert=[load_assignment("a", [("10.0.0.1", 1000 + i)])]))
    last = snaps[-1].get(rt.ENDPOINT)
    assert last.changes_since(snaps[1].get(rt.ENDPOINT).serial) == frozenset({"a"})  # the oldest remembered
    assert last.changes_since(snaps[0].get(rt.ENDPOINT).serial) is None


def test_serials_are_unique_and_names_serial_changes_only_with_the_names() -> None:
    s0 = world("a", ["a", "b"])
    endpoints_only = s0.with_changes(upsert=[load_assignment("a", [("10.0.0.1", 1)])])
    fewer = endpoints_only.with_changes(remove=[(rt.ENDPOINT, "b")])
    eds = [s.get(rt.ENDPOINT) for s in (s0, endpoints_only, fewer)]
    assert len({t.serial for t in eds}) == 3
    assert eds[1].names_serial == eds[0].names_serial
    assert eds[2].names_serial not in (eds[0].names_serial, *(t.serial for t in eds[:2]))
    assert world("a", ["a", "b"]).get(rt.ENDPOINT).names_serial != eds[0].names_serial  # unrelated: unknown


def test_with_changes_checks_only_the_changed_endpoints_but_all_of_them() -> None:
    old = Snapshot.build(base_items())
    new = old.with_changes(upsert=[load_assignment("a", [("10.0.0.1", 1)]), load_assignment("b", [("10.0.0.2", 1)])])
    assert set(new.get(rt.ENDPOINT).resources) == {"a", "b"}
    with pytest.raises(SnapshotError, match=r"eds/ghost"):
        new.with_changes(upsert=[load_assignment("a", [("10.0.0.3", 1)]), load_assignment("ghost", [("10.0.0.4", 1)])])
