"""A real Switchman (xDS and HTTP on port 0, SQLite in tmp_path) and a small client for its API."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from switchman.api import Tokens
from switchman.app import ServeSettings, Switchman
from switchman.store import Store
from tests.functional.ads import AdsClient, ads_clients


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # the JSON body, else the text
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case

    @property
    def error(self) -> dict[str, Any]:
        """The ``error`` object of an error reply."""
        assert isinstance(self.body, dict) and "error" in self.body, self.body
        error: dict[str, Any] = self.body["error"]
        return error


class Api:
    """Calls one running Switchman's API; ``token`` is sent as a bearer token when given."""

    def __init__(self, switchman: Switchman, session: aiohttp.ClientSession, token: str | None = None) -> None:
        self.switchman = switchman
        self.session = session
        self.token = token
        self.base = f"http://127.0.0.1:{switchman.api_port}"

    def as_token(self, token: str | None) -> Api:
        return Api(self.switchman, self.session, token)

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: str | bytes | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if self.token is not None:
            sent["Authorization"] = f"Bearer {self.token}"
        if json_body is not None:
            data, content_type = json.dumps(json_body), "application/json"
        if content_type is not None:
            sent["Content-Type"] = content_type
        body: bytes | io.BytesIO | None = data.encode() if isinstance(data, str) else data
        if body is not None and len(body) > 1024 * 1024:  # aiohttp warns of large raw bodies: a stream, then
            body = io.BytesIO(body)
        async with self.session.request(method, self.base + path, data=body, headers=sent) as resp:
            text = await resp.text()
            body: Any = text
            if resp.content_type == "application/json":
                body = json.loads(text)
            return Reply(resp.status, body, resp.content_type, {k.lower(): v for k, v in resp.headers.items()})

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def apply(self, docs: list[Any], *, query: str = "", **kw: Any) -> Reply:
        return await self.call("POST", "/v1/apply" + query, json_body={"documents": docs}, **kw)

    async def delete(self, kind: str, name: str, query: str = "", **kw: Any) -> Reply:
        return await self.call("DELETE", f"/v1/documents/{kind}/{name}{query}", **kw)

    async def history(self) -> list[dict[str, Any]]:
        reply = await self.get("/v1/history")
        assert reply.status == 200, reply.body
        revisions: list[dict[str, Any]] = reply.body["revisions"]
        return revisions

    async def documents(self) -> list[dict[str, Any]]:
        reply = await self.get("/v1/documents")
        assert reply.status == 200, reply.body
        docs: list[dict[str, Any]] = reply.body["documents"]
        return docs


Start = Callable[..., Awaitable[Api]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """``await start(tokens=..., store=..., **settings)``: a running Switchman and an API client without a token
    (``settings``: more ServeSettings, such as history_keep or max_body_bytes)."""
    running: list[Switchman] = []
    session = aiohttp.ClientSession()

    async def make(tokens: Tokens | None = None, store: Store | None = None, **more: Any) -> Api:
        settings = ServeSettings(
            xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=str(tmp_path / f"s{len(running)}.db"),
            tokens=tokens or Tokens(), **more,
        )
        switchman = Switchman(settings, store=store)
        await switchman.start()
        running.append(switchman)
        return Api(switchman, session)

    yield make
    await session.close()
    for switchman in running:
        await switchman.stop(0.1)


@pytest.fixture
async def api(start: Start) -> Api:
    return await start()


@pytest.fixture
async def ads(api: Api) -> AsyncIterator[Callable[[str], AdsClient]]:
    async with ads_clients(api.switchman.xds_port) as make:
        yield make
