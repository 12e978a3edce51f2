"""Envoys and the control plane come and go; config survives both ways."""

from __future__ import annotations

import asyncio

import pytest

from switchman.lab.local import EnvoyProcess, bootstrap
from switchman.xds import SnapshotCache, XdsServer, XdsSettings
from switchman.xds.server.server import TRANSPORTS
from tests.e2e.helpers import Traffic, chain, wait_for_version

pytestmark = pytest.mark.envoy


async def test_restarted_envoy_gets_current_config(cache: SnapshotCache, xds: XdsServer, upstreams, envoys) -> None:
    blue, green = await upstreams("checkout", "v1"), await upstreams("checkout", "v2")
    ports = {"checkout-v1": blue.port, "checkout-v2": green.port}
    cache.set_snapshot("demo", chain(ports, "checkout-v1"))
    first = await envoys("envoy-restart")
    await wait_for_version(await first.wait_listener("ingress"), "v1")
    await first.stop()

    cache.set_snapshot("demo", chain(ports, "checkout-v2"))
    second = await envoys("envoy-restart")
    await wait_for_version(await second.wait_listener("ingress"), "v2")
    [node] = [n for n in xds.statuses() if n.node_id == "envoy-restart"]
    assert node.streams == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_envoy_keeps_config_while_control_plane_restarts(cache: SnapshotCache, upstreams, transport: str) -> None:
    blue, green = await upstreams("checkout", "v1"), await upstreams("checkout", "v2")
    ports = {"checkout-v1": blue.port, "checkout-v2": green.port}
    cache.set_snapshot("demo", chain(ports, "checkout-v1"))
    settings = XdsSettings(group_by="cluster", transport=transport)
    server = XdsServer(cache, settings)
    xds_port = await server.start("127.0.0.1:0")
    envoy = EnvoyProcess(bootstrap("envoy-cp-restart", xds_port, cluster="demo"))
    await envoy.start()
    try:
        port = await envoy.wait_listener("ingress")
        await wait_for_version(port, "v1")

        traffic = Traffic(port)
        runner = asyncio.create_task(traffic.run(concurrency=2, limit=5000, seconds=20))
        await server.stop(grace=0.2)
        await asyncio.sleep(1.0)  # Envoy serves on, alone
        cache.set_snapshot("demo", chain(ports, "checkout-v2"))  # changed while the server was away
        again = XdsServer(cache, settings)
        await again.start(f"127.0.0.1:{xds_port}")
        await wait_for_version(port, "v2", timeout=15)
        traffic.stop()
        await runner
        assert traffic.failures == []
        assert traffic.versions["v1"] > 0
        stats = await envoy.stats("control_plane.connected_state")
        assert stats.get("control_plane.connected_state") == 1
        await again.stop(0.2)
    finally:
        await envoy.stop()
        await server.stop(0)
