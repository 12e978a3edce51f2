from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from switchman.lab.local import EnvoyMode, EnvoyProcess, Upstream, bootstrap
from switchman.xds import SnapshotCache, XdsServer, XdsSettings
from switchman.xds.server.server import TRANSPORTS


@pytest.fixture
def cache() -> SnapshotCache:
    return SnapshotCache()


@pytest.fixture(params=TRANSPORTS)
async def xds(cache: SnapshotCache, request: pytest.FixtureRequest) -> AsyncIterator[XdsServer]:
    """An xDS server on each transport: grpc.aio, and our own HTTP/2 one."""
    transport = str(request.param)
    server = XdsServer(cache, XdsSettings(group_by="cluster", transport=transport))
    await server.start("127.0.0.1:0")
    yield server
    await server.stop(0.5)


@pytest.fixture
async def upstreams() -> AsyncIterator[Callable[[str, str], Awaitable[Upstream]]]:
    started: list[Upstream] = []

    async def make(service: str, version: str) -> Upstream:
        upstream = Upstream(service, version)
        await upstream.start()
        started.append(upstream)
        return upstream

    yield make
    for upstream in started:
        await upstream.stop()


EnvoyFactory = Callable[..., Awaitable[EnvoyProcess]]


@pytest.fixture
async def envoys(xds: XdsServer) -> AsyncIterator[EnvoyFactory]:
    started: list[EnvoyProcess] = []

    async def make(node_id: str, mode: EnvoyMode = EnvoyMode.ADS, cluster: str = "demo", **kw: object) -> EnvoyProcess:
        proc = EnvoyProcess(bootstrap(node_id, xds.port, cluster=cluster, mode=mode), **kw)  # type: ignore[arg-type]
        await proc.start()
        started.append(proc)
        return proc

    yield make
    for proc in started:
        await proc.stop()
