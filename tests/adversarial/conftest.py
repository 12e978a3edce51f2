"""Attacks on a real XdsServer (port 0, a real snapshot), each beside an honest client that must keep its pushes.

The honest client is grpcio's: an ADS stream that subscribes to clusters
and ACKs every response, as Envoy does. ``Honest.push`` sets a new snapshot
and waits until the honest stream has it: within ``PUSH_BOUND`` seconds
while the attack runs (a loose bound on this 2-core machine; a push takes
milliseconds when nothing else runs).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from grpc import aio

from switchman.testing.builders import eds_cluster, load_assignment
from switchman.xds import Snapshot, SnapshotCache, XdsServer, XdsSettings
from switchman.xds import resources as rt
from switchman.xds.server.methods import AsyncUnaryMethod, Metadata
from switchman.xds.server.peer import Peer
from tests.adversarial.raw import Raw

GROUP = "demo"
PUSH_BOUND = 1.0
_tags = iter(range(1, 1_000_000))


SLEEP = "/switchman.test.Slow/Sleep"  # a unary method that sleeps for its request's version_info seconds


async def _sleep(request: Any, metadata: Metadata, client: Peer) -> bytes:
    await asyncio.sleep(float(request.version_info or 0))
    return b""


SLOW_METHOD = AsyncUnaryMethod(SLEEP, discovery_pb2.DiscoveryRequest.FromString, _sleep)


def snapshot(clusters: int = 20, endpoints: int = 2) -> Snapshot:
    """``clusters`` EDS clusters with their endpoints, and a cluster of its own so that every call changes CDS."""
    tag = next(_tags)
    items: list[Any] = [eds_cluster(f"marker-{tag}"), load_assignment(f"marker-{tag}", [("127.0.0.1", 9000)])]
    for i in range(clusters):
        name = f"c{i:05d}"
        items += [eds_cluster(name), load_assignment(name, [("127.0.0.1", 9000 + j) for j in range(endpoints)])]
    return Snapshot.build(items)


def node(node_id: str = "honest", **fields: Any) -> base_pb2.Node:
    return base_pb2.Node(id=node_id, cluster=GROUP, **fields)


def buffered(xds: XdsServer) -> int:
    """What the h2 transport holds for and from its clients (responses not taken, requests not whole)."""
    transport = xds.metrics.transport
    assert transport is not None
    return transport.buffered_bytes()


def connections(xds: XdsServer) -> int:
    transport = xds.metrics.transport
    assert transport is not None
    return transport.connection_count()


async def eventually(check: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)


class Honest:
    """grpcio's ADS client on a connection of its own: subscribes to clusters, ACKs every response."""

    def __init__(self, port: int, node_id: str = "honest") -> None:
        self.node = node(node_id)
        self._channel = aio.insecure_channel(f"127.0.0.1:{port}")
        self._call: Any = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self._channel).StreamAggregatedResources()
        self.versions: list[str] = []
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._call.write(discovery_pb2.DiscoveryRequest(node=self.node, type_url=rt.CLUSTER))
        self._reader = asyncio.create_task(self._read())
        await self.wait_for(lambda versions: bool(versions), 5.0)

    async def _read(self) -> None:
        while True:
            response = await self._call.read()
            if response is aio.EOF:
                return
            await self._call.write(discovery_pb2.DiscoveryRequest(
                type_url=response.type_url, version_info=response.version_info, response_nonce=response.nonce))
            self.versions.append(response.version_info)
            self._changed.set()

    async def wait_for(self, check: Callable[[list[str]], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not check(self.versions):
                self._changed.clear()
                await self._changed.wait()

    async def push(self, cache: SnapshotCache, within: float = PUSH_BOUND) -> float:
        """Set a new snapshot; how long until this stream had it (asserted under ``within``)."""
        new = snapshot()
        version = new.version(rt.CLUSTER)
        start = time.monotonic()
        cache.set_snapshot(GROUP, new)
        try:
            await self.wait_for(lambda versions: version in versions, within)
        except TimeoutError:
            raise AssertionError(f"the honest stream did not get the push within {within} s") from None
        return time.monotonic() - start

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        self._call.cancel()
        await self._channel.close()


Serve = Callable[..., Awaitable[XdsServer]]
MakeHonest = Callable[..., Awaitable[Honest]]
Connect = Callable[..., Awaitable[Raw]]


@pytest.fixture
async def serve(cache: SnapshotCache) -> AsyncIterator[Serve]:
    """``await serve(**settings)``: an XdsServer on the h2 transport (or ``transport="grpc"``) with a snapshot.

    On h2 it also serves :data:`SLEEP`.
    """
    servers: list[XdsServer] = []
    cache.set_snapshot(GROUP, snapshot())

    async def start(transport: str = "h2", **settings: Any) -> XdsServer:
        xds = XdsServer(cache, XdsSettings(transport=transport, **settings))
        if transport == "h2":
            xds.add_methods([SLOW_METHOD])
        await xds.start("127.0.0.1:0")
        servers.append(xds)
        return xds

    yield start
    for xds in servers:
        await xds.stop(0.5)


@pytest.fixture
async def honest() -> AsyncIterator[MakeHonest]:
    """``await honest(xds)``: an honest client with its first response."""
    clients: list[Honest] = []

    async def make(xds: XdsServer, node_id: str = "honest") -> Honest:
        client = Honest(xds.port, node_id)
        clients.append(client)
        await client.start()
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """``await connect(port, **options)``: a raw connection (:meth:`Raw.connect`), closed at the end."""
    opened: list[Raw] = []

    async def make(port: int, **options: Any) -> Raw:
        raw = await Raw.connect(port, **options)
        opened.append(raw)
        return raw

    yield make
    for raw in opened:
        raw.close()
    await asyncio.sleep(0.01)
