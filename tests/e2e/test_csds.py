"""CSDS on the xDS port, and a maximum connection age that Envoys ride through, on either transport."""

from __future__ import annotations

import asyncio

import pytest
from envoy.admin.v3 import config_dump_shared_pb2 as dump_pb2
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc
from envoy.type.matcher.v3 import node_pb2, string_pb2
from grpc import aio

from switchman.lab.local import EnvoyProcess, bootstrap
from switchman.xds import SnapshotCache, XdsServer, XdsSettings
from switchman.xds import resources as rt
from switchman.xds.server.server import TRANSPORTS
from tests.e2e.helpers import Traffic, chain, until, wait_for_version

pytestmark = pytest.mark.envoy


async def test_csds_reports_what_each_envoy_acked(cache: SnapshotCache, xds: XdsServer, upstreams, envoys) -> None:
    blue = await upstreams("checkout", "v1")
    snapshot = chain({"checkout-v1": blue.port}, "checkout-v1")
    cache.set_snapshot("demo", snapshot)
    for name in ("csds-a", "csds-b"):
        envoy = await envoys(name)
        await wait_for_version(await envoy.wait_listener("ingress"), "v1")

    async with aio.insecure_channel(f"127.0.0.1:{xds.port}") as channel:
        stub = csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel)
        everyone = await stub.FetchClientStatus(csds_pb2.ClientStatusRequest())
        only_b = await stub.FetchClientStatus(
            csds_pb2.ClientStatusRequest(
                node_matchers=[node_pb2.NodeMatcher(node_id=string_pb2.StringMatcher(exact="csds-b"))]
            )
        )
    assert sorted(c.node.id for c in everyone.config) == ["csds-a", "csds-b"]
    [config] = only_b.config
    by_type = {(c.type_url, c.name): c for c in config.generic_xds_configs}
    expected = {(t, n) for t, ts in snapshot.types.items() for n in ts.resources}
    assert set(by_type) == expected
    for (type_url, name), entry in by_type.items():
        assert entry.client_status == dump_pb2.ACKED
        assert entry.config_status == csds_pb2.SYNCED
        assert entry.version_info == snapshot.get(type_url).resources[name].version
    cluster = by_type[(rt.CLUSTER, "checkout-v1")]
    assert cluster.xds_config.type_url == rt.CLUSTER


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_envoy_rides_through_max_connection_age(cache: SnapshotCache, upstreams, transport: str) -> None:
    blue, green = await upstreams("checkout", "v1"), await upstreams("checkout", "v2")
    ports = {"checkout-v1": blue.port, "checkout-v2": green.port}
    cache.set_snapshot("demo", chain(ports, "checkout-v1"))
    settings = XdsSettings(max_connection_age_seconds=0.5, max_connection_age_grace_seconds=0.2, transport=transport)
    server = XdsServer(cache, settings)
    envoy = EnvoyProcess(bootstrap("aged", await server.start(), cluster="demo"))
    await envoy.start()
    try:
        port = await envoy.wait_listener("ingress")
        await wait_for_version(port, "v1")
        traffic = Traffic(port)
        runner = asyncio.create_task(traffic.run(concurrency=2, limit=3000, seconds=20))

        async def reconnected() -> bool:  # several connection ages: the first connection and two more
            stats = await envoy.stats("cluster.xds.upstream_cx_total")
            return stats["cluster.xds.upstream_cx_total"] >= 3

        await until(reconnected, 10.0, "Envoy's xDS connection aged out and was made again twice")
        cache.set_snapshot("demo", chain(ports, "checkout-v2"))
        await wait_for_version(port, "v2")  # a change still reaches it over the newest connection
        traffic.stop()
        await runner
        assert traffic.failures == []
    finally:
        await envoy.stop()
        await server.stop(0)
