"""/readyz: ready while the replica follows the store and serves its head; /healthz is liveness only."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from switchman.app import ServeSettings, Switchman
from switchman.store import EtcdStore, StoreError
from tests.etcd_process import free_port, private_etcd, until_up
from tests.functional.api.conftest import Api
from tests.functional.api.docs import checkout


async def test_readyz_is_open_and_ready_with_served_and_head(api: Api) -> None:
    reply = await api.get("/readyz")
    assert (reply.status, reply.body["ready"], reply.body["reason"]) == (200, True, None)
    await api.apply(checkout())
    body = (await api.get("/readyz")).body
    assert (body["served_revision"], body["store_head"], body["last_error"]) == (1, 1, None)
    assert body["last_contact"] > time.time() - 10
    assert (await api.get("/healthz")).body == {"ok": True}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(session: aiohttp.ClientSession, app: Switchman, path: str) -> tuple[int, Any]:
    async with session.get(f"http://127.0.0.1:{app.api_port}{path}") as resp:
        return resp.status, await resp.json()


async def until_status(
    session: aiohttp.ClientSession, app: Switchman, status: int, timeout: float, served: int | None = None
) -> dict[str, Any]:
    """Poll /readyz until it answers ``status`` (and serves ``served``, if given); its body."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        code, body = await get(session, app, "/readyz")
        if code == status and (served is None or body["served_revision"] == served):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"/readyz never answered {status} (served {served}) within {timeout} s: {body}")


async def commit_when_up(app: Switchman, docs: list[dict[str, Any]], timeout: float = 30.0) -> int:
    async with asyncio.timeout(timeout):
        while True:
            try:
                result = await app.controller.apply(docs, author="replica-b")
            except StoreError:
                await asyncio.sleep(0.2)
                continue
            assert result.revision is not None
            return result.revision


@pytest.mark.skipif(shutil.which("etcd") is None, reason="no etcd binary to start and kill a private etcd")
async def test_readyz_names_the_store_while_etcd_is_down_and_recovers_with_what_was_committed_meanwhile(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    client_port, peer_port = free_port(), free_port()
    prefix = f"/switchman-test/{uuid.uuid4().hex}"
    settings = ServeSettings(xds_address="127.0.0.1:0", api_address="127.0.0.1:0")
    a = Switchman(settings, store=EtcdStore("127.0.0.1", client_port, prefix=prefix, timeout=5))
    b = Switchman(settings, store=EtcdStore("127.0.0.1", client_port, prefix=prefix, timeout=5))
    data = tmp_path / "etcd"
    try:
        with private_etcd(data, client_port, peer_port):
            await until_up(a.store)  # type: ignore[arg-type]
            await a.start()
            await b.start()
            assert (await a.controller.apply(checkout(), author="replica-a")).revision == 1
            await until_status(session, a, 200, 10, served=1)
            await until_status(session, b, 200, 10, served=1)
        # etcd was killed (SIGKILL, by its PID) as the block ended
        body = await until_status(session, a, 503, 10)  # the probe asks every second: about 1 s
        assert body["ready"] is False
        assert f"127.0.0.1:{client_port}" in body["reason"] and "unreachable" in body["reason"], body
        assert body["served_revision"] == 1 and body["last_error"]
        assert await get(session, a, "/healthz") == (200, {"ok": True})  # alive all the same
        status = (await get(session, a, "/v1/status"))[1]
        assert (status["revision"], status["store"]["ready"]) == (1, False)

        with private_etcd(data, client_port, peer_port):
            docs = checkout()
            docs[0]["spec"]["weights"] = {"v1": 50, "v2": 50}
            revision = await commit_when_up(b, docs)  # by the other replica, while a was cut off
            assert revision == 2
            body = await until_status(session, a, 200, 40, served=2)
            assert (body["store_head"], body["reason"]) == (2, None)
            assert a.controller.served_revision == 2
            service = (await get(session, a, "/v1/documents/service/checkout"))[1]
            assert service["spec"]["weights"] == {"v1": 50, "v2": 50}
            await a.stop(0)
            await b.stop(0)
    finally:
        await a.stop(0)
        await b.stop(0)
