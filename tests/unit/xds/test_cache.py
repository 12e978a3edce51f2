"""The snapshot cache (who is woken, which snapshot serves a group) and node grouping."""

from __future__ import annotations

import pytest
from envoy.config.core.v3 import base_pb2
from google.protobuf import struct_pb2

from switchman.errors import ConfigError
from switchman.xds import DEFAULT_GROUP, SnapshotCache
from switchman.xds.cache import grouper
from tests.unit.xds.harness import world


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def test_a_group_is_served_its_own_snapshot_else_the_default() -> None:
    cache = SnapshotCache()
    own, default = world("a", ["a"]), world("b", ["b"])
    assert cache.snapshot("edge") is None
    cache.set_snapshot(DEFAULT_GROUP, default)
    assert cache.snapshot("edge") is default
    cache.set_snapshot("edge", own)
    assert cache.snapshot("edge") is own
    assert cache.snapshot("other") is default
    assert cache.groups() == [DEFAULT_GROUP, "edge"]
    cache.clear_snapshot("edge")
    assert cache.snapshot("edge") is default


def test_setting_a_snapshot_wakes_only_its_groups_watchers() -> None:
    cache = SnapshotCache()
    edge, other = Counter(), Counter()
    cache.watch("edge", edge)
    cache.watch("other", other)
    cache.set_snapshot("edge", world("a", ["a"]))
    assert (edge.calls, other.calls) == (1, 0)


def test_setting_the_default_wakes_groups_without_a_snapshot_of_their_own() -> None:
    cache = SnapshotCache()
    own, borrowed, default_watcher = Counter(), Counter(), Counter()
    cache.watch("own", own)
    cache.watch("borrowed", borrowed)
    cache.watch(DEFAULT_GROUP, default_watcher)
    cache.set_snapshot("own", world("a", ["a"]))
    cache.set_snapshot(DEFAULT_GROUP, world("b", ["b"]))
    assert (own.calls, borrowed.calls, default_watcher.calls) == (1, 1, 1)


def test_clearing_a_snapshot_wakes_its_group_once_and_only_if_there_was_one() -> None:
    cache = SnapshotCache()
    watcher = Counter()
    cache.watch("edge", watcher)
    cache.clear_snapshot("edge")
    assert watcher.calls == 0
    cache.set_snapshot("edge", world("a", ["a"]))
    cache.clear_snapshot("edge")
    assert watcher.calls == 2


def test_unwatch_stops_the_calls() -> None:
    cache = SnapshotCache()
    watcher = Counter()
    unwatch = cache.watch("edge", watcher)
    unwatch()
    unwatch()  # twice is harmless
    cache.set_snapshot("edge", world("a", ["a"]))
    assert watcher.calls == 0


def test_a_watcher_may_unwatch_while_being_called() -> None:
    cache = SnapshotCache()
    calls: list[str] = []
    unwatch_first = None

    def first() -> None:
        calls.append("first")
        assert unwatch_first is not None
        unwatch_first()

    unwatch_first = cache.watch("edge", first)
    cache.watch("edge", lambda: calls.append("second"))
    cache.set_snapshot("edge", world("a", ["a"]))
    cache.set_snapshot("edge", world("b", ["b"]))
    assert sorted(calls) == ["first", "second", "second"]


def _node(node_id: str = "n1", cluster: str = "", **metadata: str) -> base_pb2.Node:
    meta = struct_pb2.Struct()
    meta.update(metadata)
    return base_pb2.Node(id=node_id, cluster=cluster, metadata=meta)


def test_grouping_by_id_cluster_and_metadata() -> None:
    assert grouper("id")(_node("n1", "edge")) == "n1"
    assert grouper("cluster")(_node("n1", "edge")) == "edge"
    assert grouper("cluster")(_node("n1")) == "n1"
    by_tier = grouper("metadata:tier")
    assert by_tier(_node("n1", "edge", tier="gold")) == "gold"
    assert by_tier(_node("n1", "edge")) == "edge"
    number = _node("n1", "edge")
    number.metadata.fields["tier"].number_value = 3
    assert by_tier(number) == "edge"


@pytest.mark.parametrize("spec", ["", "zone", "metadata:", "ID"])
def test_an_unknown_grouping_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError) as raised:
        grouper(spec)
    assert raised.value.path == "group_by"
