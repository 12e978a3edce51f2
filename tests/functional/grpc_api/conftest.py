"""A real Switchman (xDS and HTTP on port 0, SQLite in tmp_path), its gRPC management API through a real channel."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf import json_format, struct_pb2

from switchman.api import Tokens
from switchman.api.grpc import management_pb2 as pb
from switchman.api.grpc import management_pb2_grpc as pb_grpc
from switchman.app import ServeSettings, Switchman
from switchman.store import Store
from switchman.xds.server.server import TRANSPORTS
from tests.functional.ads import AdsClient, ads_clients

Metadata = tuple[tuple[str, str], ...]


def struct(doc: Mapping[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(doc)
    return out


def plain(message: Any) -> Any:
    """A Struct (or any message) as JSON; Struct numbers are doubles, and 90.0 == 90 for the comparisons here."""
    return json_format.MessageToDict(message)


def apply_request(docs: list[dict[str, Any]], message: str = "", dry_run: bool = False) -> pb.ApplyRequest:
    return pb.ApplyRequest(documents=[struct(d) for d in docs], message=message, dry_run=dry_run)


class Grpc:
    """One running Switchman: a gRPC stub on its xDS port, and its REST API for comparison."""

    def __init__(self, switchman: Switchman, channel: grpc.aio.Channel, session: aiohttp.ClientSession) -> None:
        self.switchman = switchman
        self.channel = channel
        self.stub = pb_grpc.ManagementStub(channel)
        self.session = session
        self.rest = f"http://127.0.0.1:{switchman.api_port}"

    async def rest_get(self, path: str, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.get(self.rest + path, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            return json.loads(await resp.text())

    async def rest_call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, self.rest + path, json=body) as resp:
            return resp.status, json.loads(await resp.text())


async def refused(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """The error a call fails with (it must fail)."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


def trailers(error: grpc.aio.AioRpcError) -> dict[str, str]:
    return {str(k): str(v) for k, v in (error.trailing_metadata() or ())}


Start = Callable[..., Awaitable[Grpc]]


@pytest.fixture(params=TRANSPORTS)
async def start(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Start]:
    """``await start(tokens=..., store=...)``: a running Switchman and a gRPC channel to its xDS port,
    on each xDS transport (grpc.aio, and Switchman's own HTTP/2 one)."""
    running: list[Switchman] = []
    channels: list[grpc.aio.Channel] = []
    session = aiohttp.ClientSession()

    async def make(tokens: Tokens | None = None, store: Store | None = None) -> Grpc:
        settings = ServeSettings(
            xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=str(tmp_path / f"s{len(running)}.db"),
            tokens=tokens or Tokens(), xds_transport=str(request.param),
        )
        switchman = Switchman(settings, store=store)
        await switchman.start()
        running.append(switchman)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{switchman.xds_port}")
        channels.append(channel)
        return Grpc(switchman, channel, session)

    yield make
    for channel in channels:
        await channel.close()
    await session.close()
    for switchman in running:
        await switchman.stop(0.1)


@pytest.fixture
async def api(start: Start) -> Grpc:
    return await start()


@pytest.fixture
async def ads(api: Grpc) -> AsyncIterator[Callable[[str], AdsClient]]:
    """``ads(node_id)``: an ADS stream to the same port, so that status and render have a node to show."""
    async with ads_clients(api.switchman.xds_port) as make:
        yield make
