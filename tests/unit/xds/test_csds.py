"""CSDS: what every connected node was sent, ACKed and NACKed, per resource."""

from __future__ import annotations

from typing import TypeAlias

from envoy.admin.v3 import config_dump_shared_pb2 as dump_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.service.status.v3 import csds_pb2
from envoy.type.matcher.v3 import node_pb2, string_pb2

from switchman.testing.builders import eds_cluster
from switchman.xds import SnapshotCache
from switchman.xds import resources as rt
from switchman.xds.server.csds import client_configs
from switchman.xds.server.stream import StreamContext
from tests.unit.xds.conftest import DeltaFactory, SotwFactory
from tests.unit.xds.harness import (
    GROUP,
    NODE,
    ROUTE_NAME,
    ack,
    delta_ack,
    delta_nack,
    delta_request,
    nack,
    request,
    world,
)

Status = dump_pb2.ClientResourceStatus
Config: TypeAlias = csds_pb2.ClientConfig.GenericXdsConfig


def configs(ctx: StreamContext, req: csds_pb2.ClientStatusRequest | None = None) -> dict[str, dict[str, Config]]:
    """``{node id: {"cds/a": config}}``."""
    response = client_configs(tuple(ctx.streams), ctx.cache, req or csds_pb2.ClientStatusRequest())
    out: dict[str, dict[str, Config]] = {}
    for config in response.config:
        per = out.setdefault(config.node.id, {})
        for generic in config.generic_xds_configs:
            per[f"{rt.short_name(generic.type_url)}/{generic.name}"] = generic
    return out


async def test_acked_resources_are_reported_acked_and_synced_with_their_contents(
    cache: SnapshotCache, sotw: SotwFactory, ctx: StreamContext
) -> None:
    snap = world("a", ["a", "b"])
    cache.set_snapshot(GROUP, snap)
    client = sotw()
    client.send(request(rt.CLUSTER))
    client.send(ack(await client.recv()))
    await client.settle()
    found = configs(ctx)[NODE.id]
    assert set(found) == {"cds/a", "cds/b"}
    for name in ("a", "b"):
        config = found[f"cds/{name}"]
        assert config.client_status == Status.ACKED
        assert config.config_status == csds_pb2.SYNCED
        assert config.version_info == snap.get(rt.CLUSTER).resources[name].version
        assert config.last_updated.seconds > 0
        unpacked = cluster_pb2.Cluster()
        assert config.xds_config.Unpack(unpacked)
        assert unpacked == snap.get(rt.CLUSTER).resources[name].message


async def test_node_is_reported_as_connected(cache: SnapshotCache, sotw: SotwFactory, ctx: StreamContext) -> None:
    client = sotw()
    client.send(request(rt.CLUSTER))
    await client.settle()
    response = client_configs(tuple(ctx.streams), cache, csds_pb2.ClientStatusRequest())
    (config,) = response.config
    assert config.node == NODE
    assert list(config.generic_xds_configs) == []


async def test_nacked_resources_are_reported_with_the_clients_message(
    cache: SnapshotCache, sotw: SotwFactory, ctx: StreamContext
) -> None:
    old = world("a", ["a"])
    cache.set_snapshot(GROUP, old)
    client = sotw()
    client.send(request(rt.CLUSTER))
    good = await client.recv()
    client.send(ack(good))
    bad = world("a", ["a", "b"]).with_changes(upsert=[eds_cluster("a", connect_timeout=9.0)])
    cache.set_snapshot(GROUP, bad)
    rejected = await client.recv()
    client.send(nack(rejected, "cds: cluster a: timeout too long", previous=good.version_info))
    await client.settle()
    found = configs(ctx)[NODE.id]
    assert set(found) == {"cds/a", "cds/b"}
    for name in ("a", "b"):
        config = found[f"cds/{name}"]
        assert config.client_status == Status.NACKED, name
        assert config.config_status == csds_pb2.ERROR
        assert config.error_state.details == "cds: cluster a: timeout too long"
        assert config.error_state.version_info == rejected.version_info
        assert config.error_state.last_update_attempt.seconds > 0
    # a still runs the version the client ACKed
    assert found["cds/a"].version_info == old.get(rt.CLUSTER).resources["a"].version


async def test_resources_the_nacked_response_did_not_change_stay_acked(
    cache: SnapshotCache, sotw: SotwFactory, ctx: StreamContext
) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = sotw()
    client.send(request(rt.CLUSTER))
    good = await client.recv()
    client.send(ack(good))
    cache.set_snapshot(GROUP, world("a", ["a", "b"]))
    client.send(nack(await client.recv(), "b is bad", previous=good.version_info))
    await client.settle()
    found = configs(ctx)[NODE.id]
    assert found["cds/a"].client_status == Status.ACKED
    assert found["cds/b"].client_status == Status.NACKED
    assert found["cds/b"].error_state.details == "b is bad"


async def test_a_later_ack_clears_the_nack(cache: SnapshotCache, sotw: SotwFactory, ctx: StreamContext) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = sotw()
    client.send(request(rt.CLUSTER))
    good = await client.recv()
    client.send(ack(good))
    cache.set_snapshot(GROUP, world("a", ["a", "b"]))
    client.send(nack(await client.recv(), "no", previous=good.version_info))
    cache.set_snapshot(GROUP, world("a", ["a", "c"]))
    client.send(ack(await client.recv()))
    await client.settle()
    found = configs(ctx)[NODE.id]
    assert set(found) == {"cds/a", "cds/c"}
    assert {c.client_status for c in found.values()} == {Status.ACKED}
    assert not any(c.HasField("error_state") for c in found.values())


async def test_in_flight_resources_are_reported_requested(
    cache: SnapshotCache, sotw: SotwFactory, ctx: StreamContext
) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = sotw()
    client.send(request(rt.CLUSTER))
    await client.recv()
    await client.settle()
    assert configs(ctx)[NODE.id]["cds/a"].client_status == Status.REQUESTED


async def test_routes_held_back_are_acked_but_stale(
    cache: SnapshotCache, sotw: SotwFactory, ctx: StreamContext
) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    client = sotw()
    client.send(request(rt.CLUSTER))
    client.send(request(rt.ENDPOINT, ["a", "n"]))
    client.send(request(rt.ROUTE, [ROUTE_NAME]))
    subs = {rt.CLUSTER: [], rt.ENDPOINT: ["a", "n"], rt.ROUTE: [ROUTE_NAME]}
    while batch := await client.drain():
        for response in batch:
            client.send(ack(response, subs[response.type_url]))
    cache.set_snapshot(GROUP, world("n", ["a", "n"]))  # routes now wait for cluster n
    await client.drain()  # CDS and EDS, never ACKed
    config = configs(ctx)[NODE.id][f"rds/{ROUTE_NAME}"]
    assert config.client_status == Status.ACKED
    assert config.config_status == csds_pb2.STALE


async def test_node_matchers_and_resource_contents(cache: SnapshotCache, sotw: SotwFactory, ctx: StreamContext) -> None:
    cache.set_snapshot(GROUP, world("a", ["a"]))
    other = base_pb2.Node(id="gateway-7", cluster="edge")
    one, two = sotw(), sotw()
    one.send(request(rt.CLUSTER))
    two.send(request(rt.CLUSTER, node=other))
    one.send(ack(await one.recv()))
    two.send(ack(await two.recv()))
    await one.settle()
    assert set(configs(ctx)) == {"envoy-1", "gateway-7"}

    by_prefix = csds_pb2.ClientStatusRequest(
        node_matchers=[node_pb2.NodeMatcher(node_id=string_pb2.StringMatcher(prefix="gate"))]
    )
    assert set(configs(ctx, by_prefix)) == {"gateway-7"}
    exact = csds_pb2.ClientStatusRequest(
        node_matchers=[node_pb2.NodeMatcher(node_id=string_pb2.StringMatcher(exact="envoy-1"))],
        exclude_resource_contents=True,
    )
    found = configs(ctx, exact)
    assert set(found) == {"envoy-1"}
    assert not found["envoy-1"]["cds/a"].HasField("xds_config")
    assert found["envoy-1"]["cds/a"].client_status == Status.ACKED


async def test_delta_nack_is_reported(cache: SnapshotCache, delta: DeltaFactory, ctx: StreamContext) -> None:
    snap = world("a", ["a", "b"])
    cache.set_snapshot(GROUP, snap)
    client = delta()
    client.send(delta_request(rt.CLUSTER))
    client.send(delta_ack(await client.recv()))
    cache.set_snapshot(GROUP, snap.with_changes(upsert=[eds_cluster("b", connect_timeout=4.0)]))
    client.send(delta_nack(await client.recv(), "b: rejected"))
    await client.settle()
    found = configs(ctx)[NODE.id]
    assert found["cds/a"].client_status == Status.ACKED
    assert found["cds/a"].config_status == csds_pb2.SYNCED
    assert found["cds/b"].client_status == Status.NACKED
    assert found["cds/b"].error_state.details == "b: rejected"
    assert found["cds/b"].version_info == snap.get(rt.CLUSTER).resources["b"].version
