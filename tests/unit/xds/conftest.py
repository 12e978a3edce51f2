from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from envoy.service.discovery.v3 import discovery_pb2

from switchman.xds import SnapshotCache, XdsMetrics
from switchman.xds.cache import grouper
from switchman.xds.server.delta import DeltaStream
from switchman.xds.server.sotw import SotwStream
from switchman.xds.server.stream import StreamContext
from tests.unit.xds.harness import Client, DeltaClient, SotwClient

SotwFactory = Callable[..., SotwClient]
DeltaFactory = Callable[..., DeltaClient]


@pytest.fixture
def metrics() -> XdsMetrics:
    return XdsMetrics()


@pytest.fixture
def ctx(cache: SnapshotCache, metrics: XdsMetrics) -> StreamContext:
    return StreamContext(cache=cache, group_of=grouper("cluster"), metrics=metrics)


@pytest.fixture
async def sotw(ctx: StreamContext) -> AsyncIterator[SotwFactory]:
    """Open state-of-the-world streams: ``sotw()`` is ADS, ``sotw("rds", rt.ROUTE)`` a per-type stream."""
    opened: list[SotwClient] = []

    def make(service: str = "ads", only_type: str | None = None) -> SotwClient:
        client: SotwClient = Client(SotwStream(ctx, service, only_type), discovery_pb2.DiscoveryResponse.FromString)
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.close()


@pytest.fixture
async def delta(ctx: StreamContext) -> AsyncIterator[DeltaFactory]:
    """Open delta streams: ``delta()`` is ADS, ``delta("cds", rt.CLUSTER)`` a per-type stream."""
    opened: list[DeltaClient] = []

    def make(service: str = "ads", only_type: str | None = None) -> DeltaClient:
        client: DeltaClient = Client(
            DeltaStream(ctx, service, only_type), discovery_pb2.DeltaDiscoveryResponse.FromString
        )
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.close()
