"""A real Envoy as the honest client, while one client never reads and another resets streams as fast as it can."""

from __future__ import annotations

import asyncio
import time

import pytest
from envoy.service.discovery.v3 import discovery_pb2
from h2.errors import ErrorCodes

from switchman.lab.local import EnvoyProcess, bootstrap
from switchman.xds import SnapshotCache, XdsServer
from switchman.xds import resources as rt
from tests.adversarial.conftest import GROUP, Connect, Serve, buffered, connections, eventually, node, snapshot
from tests.adversarial.raw import ADS

pytestmark = pytest.mark.envoy

ENVOY_PUSH_BOUND = 2.0  # Envoy applies 200 clusters and ACKs; a few tens of ms when nothing else runs


def _acked(xds: XdsServer, version: str) -> bool:
    return any(n.node_id == "envoy-honest" and any(t.type == "cds" and t.acked_version == version for t in n.types)
               for n in xds.statuses())


async def _rapid_reset(xds: XdsServer, connect: Connect, stop: asyncio.Event) -> int:
    """Open and reset ADS streams on one connection after another until ``stop``; the connections dropped."""
    dropped = 0
    while not stop.is_set():
        raw = await connect(xds.port)
        while not stop.is_set() and raw.seen.goaway is None and not raw.seen.closed:
            for _ in range(100):
                stream_id = raw.open(ADS)
                raw.message(stream_id, discovery_pb2.DiscoveryRequest(node=node("reset"), type_url=rt.CLUSTER))
                raw.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
            raw.send()
            while raw.h2.outbound_flow_control_window < 65535 // 2 and not raw.seen.closed:
                await raw.poll(0.05)
            await asyncio.sleep(0.005)
        if raw.seen.goaway is not None and raw.seen.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM:
            dropped += 1
        raw.close()
    return dropped


async def test_envoy_gets_its_pushes_while_one_client_never_reads_and_another_rapid_resets(
    cache: SnapshotCache, serve: Serve, connect: Connect
) -> None:
    # Envoy answers the keepalive pings; the greedy client, which reads nothing, cannot.
    xds = await serve(max_write_stall_seconds=3.0, keepalive_seconds=0.5, keepalive_timeout_seconds=0.5)
    cache.set_snapshot(GROUP, snapshot(clusters=200))
    envoy = EnvoyProcess(bootstrap("envoy-honest", xds.port, cluster=GROUP))
    await envoy.start()
    try:
        await eventually(lambda: _acked(xds, cache.snapshot(GROUP).version(rt.CLUSTER)), 10.0, "Envoy's first ACK")
        greedy = await connect(xds.port, window=2**31 - 1, rcvbuf=4096)
        for i in range(60):
            stream_id = greedy.open(ADS)
            greedy.message(stream_id, discovery_pb2.DiscoveryRequest(node=node(f"greedy-{i}"), type_url=rt.CLUSTER))
            greedy.message(stream_id, discovery_pb2.DiscoveryRequest(type_url=rt.ENDPOINT))
        greedy.send()
        stop = asyncio.Event()
        resets = asyncio.create_task(_rapid_reset(xds, connect, stop))
        await asyncio.sleep(0.3)
        took = []
        peak = 0
        for _ in range(5):  # a push every 0.3 s for 1.5 s
            await asyncio.sleep(0.3)
            new = snapshot(clusters=200)
            version = new.version(rt.CLUSTER)
            start = time.monotonic()
            cache.set_snapshot(GROUP, new)
            while not _acked(xds, version):
                assert time.monotonic() - start < ENVOY_PUSH_BOUND, "Envoy did not get the push in time"
                peak = max(peak, buffered(xds))
                await asyncio.sleep(0.01)
            took.append(time.monotonic() - start)
        stop.set()
        dropped = await resets
        assert dropped >= 1  # the rapid reset was cut short, over and over
        assert peak < 2 * 1024 * 1024  # the greedy client's share: its 1 MiB, a stream's responses, 256 KiB
        assert xds.metrics.refusals["too_many_resets"] >= 1
        await eventually(lambda: connections(xds) == 1, 5.0, "Envoy's connection alone is left")
        assert max(took) < ENVOY_PUSH_BOUND
        stats = await envoy.stats("control_plane.connected_state")
        assert stats.get("control_plane.connected_state") == 1  # Envoy's one stream never broke
    finally:
        await envoy.stop()
