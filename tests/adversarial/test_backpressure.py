"""Clients that do not take what they asked for: write backpressure and the write-stall limit.

Before these limits, one client that never read, with 60 streams, left
53.7 MB buffered in the server. Now a connection holds at most
``max_send_buffer_bytes``, one stream's responses and the socket's 256 KiB
high-water mark; a connection whose socket takes nothing for
``max_write_stall_seconds`` is dropped.
"""

from __future__ import annotations

import asyncio
import tracemalloc

from envoy.service.discovery.v3 import discovery_pb2

from switchman.xds import Snapshot, SnapshotCache
from switchman.xds import resources as rt
from tests.adversarial.conftest import (
    GROUP,
    Connect,
    MakeHonest,
    Serve,
    buffered,
    connections,
    eventually,
    node,
    snapshot,
)
from tests.adversarial.raw import Raw

MIB = 1024 * 1024
HIGH_WATER = 256 * 1024


def _batch(snap: Snapshot) -> int:
    """The bytes of one stream's first responses (clusters and endpoints), framing aside."""
    return sum(len(r.sotw_field) for t in (rt.CLUSTER, rt.ENDPOINT) for r in snap.get(t).resources.values())


def _subscribe(raw: Raw, streams: int) -> None:
    for i in range(streams):
        stream_id = raw.open()
        raw.message(stream_id, discovery_pb2.DiscoveryRequest(node=node(f"greedy-{i}"), type_url=rt.CLUSTER))
        raw.message(stream_id, discovery_pb2.DiscoveryRequest(type_url=rt.ENDPOINT))
    raw.send()


def _switchman_bytes() -> int:
    """Memory traced to allocations made under switchman's frames (the server's, not the test's clients')."""
    snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, "*/switchman/*", all_frames=True)])
    return sum(stat.size for stat in snap.statistics("filename"))


async def test_a_client_that_never_reads_holds_a_bounded_buffer_and_is_dropped(
    cache: SnapshotCache, serve: Serve, honest: MakeHonest, connect: Connect
) -> None:
    xds = await serve(max_write_stall_seconds=2.0)
    big = snapshot(clusters=3000)  # ~660 KB of clusters and endpoints a stream: 60 streams would hold 40 MB
    cache.set_snapshot(GROUP, big)
    bound = xds.settings.max_send_buffer_bytes + _batch(big) + HIGH_WATER + 64 * 1024
    good = await honest(xds)
    tracemalloc.start(25)
    try:
        before = _switchman_bytes()
        greedy = await connect(xds.port, window=2**31 - 1, rcvbuf=4096)  # wide windows, a socket it never reads
        _subscribe(greedy, 60)
        peak = 0
        for _ in range(20):  # a second of it, while the server answers all it can
            await asyncio.sleep(0.05)
            peak = max(peak, buffered(xds))
        grown = _switchman_bytes() - before
    finally:
        tracemalloc.stop()
    assert 0 < peak <= bound, f"{peak} bytes buffered, bound {bound}"
    # Everything the server allocated meanwhile (streams, states, the buffers): the same order, not 40 MB.
    assert grown <= bound + 2 * MIB, f"{grown} bytes allocated under switchman"
    await good.push(cache)
    await eventually(lambda: connections(xds) == 1, 5.0, "the greedy connection is dropped")
    assert xds.metrics.refusals["write_stall"] == 1
    assert buffered(xds) < 64 * 1024
    await good.push(cache)


async def test_a_client_that_reads_but_never_opens_its_windows_holds_a_bounded_outbox(
    cache: SnapshotCache, serve: Serve, honest: MakeHonest, connect: Connect
) -> None:
    xds = await serve()
    big = snapshot(clusters=3000)
    cache.set_snapshot(GROUP, big)
    bound = xds.settings.max_send_buffer_bytes + _batch(big) + HIGH_WATER + 64 * 1024
    good = await honest(xds)
    stingy = await connect(xds.port)  # 64 KiB windows it never widens: it reads, and sends no WINDOW_UPDATE
    stingy.h2.acknowledge_received_data = lambda *args, **kwargs: None  # type: ignore[method-assign]
    _subscribe(stingy, 60)
    reading = asyncio.create_task(stingy.closed(30.0))
    peak = 0
    for _ in range(20):
        await asyncio.sleep(0.05)
        peak = max(peak, buffered(xds))
    assert 0 < peak <= bound, f"{peak} bytes buffered, bound {bound}"
    # The other streams of the connection wait; the other connections do not.
    await good.push(cache)
    assert buffered(xds) <= bound
    reading.cancel()
