"""serve --history-keep: only the newest revisions stay; older ones are 404, saying they were pruned.
On etcd the keyspace is compacted too, so that the deleted revisions stop taking space."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aetcd  # type: ignore[import-untyped]
import pytest

from switchman.store import EtcdStore, SqliteStore, Store
from tests.functional.api.conftest import Api, Start
from tests.functional.api.docs import checkout
from tests.functional.store.etcd_env import ENDPOINT, host_port, needs_etcd

KEEP = 5


async def twenty_commits(api: Api) -> None:
    assert (await api.apply(checkout())).status == 200
    for n in range(19):
        reply = await api.call("PATCH", "/v1/services/checkout/weights", json_body={"v1": 99 - n, "v2": n + 1})
        assert reply.body["revision"] == n + 2, reply.body
        assert reply.status == 200, reply.body


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=needs_etcd)])
async def store(request: pytest.FixtureRequest, tmp_path: object) -> AsyncIterator[Store]:
    """The backend under test; on etcd, one that compacts after every prune (60 s apart by default)."""
    if request.param == "sqlite":
        yield SqliteStore(f"{tmp_path}/retention.db")
        return
    host, port = host_port(ENDPOINT)
    prefix = f"/switchman-test/{uuid.uuid4().hex}"
    yield EtcdStore(host, port, prefix=prefix, compact_interval=0)
    client = aetcd.Client(host=host, port=port, timeout=10)
    try:
        await client.delete_prefix(f"{prefix}/".encode())
    finally:
        await client.close()


async def test_only_the_newest_revisions_stay(start: Start, store: Store) -> None:
    api = await start(store=store, history_keep=KEEP)
    await twenty_commits(api)
    assert [e["number"] for e in (await api.get("/v1/history?limit=100")).body["revisions"]] == [20, 19, 18, 17, 16]

    old = await api.get("/v1/revisions/3")
    assert (old.status, old.error["code"]) == (404, "not_found")
    assert "revision 3 was pruned" in old.error["message"] and "--history-keep" in old.error["message"]
    back = await api.call("POST", "/v1/rollback", json_body={"revision": 3})
    assert (back.status, back.error["code"]) == (404, "not_found")
    assert "revision 3 was pruned" in back.error["message"]
    never = await api.get("/v1/revisions/99")
    assert (never.status, never.error["message"]) == (404, "revision 99 does not exist")

    back = await api.call("POST", "/v1/rollback", json_body={"revision": 16})
    assert (back.status, back.body["revision"]) == (200, 21), back.body
    assert [e["number"] for e in await api.history()] == [21, 20, 19, 18, 17]
    assert (await api.get("/readyz")).body["ready"] is True


async def test_zero_keeps_every_revision(start: Start) -> None:
    api = await start(history_keep=0)
    await twenty_commits(api)
    assert len((await api.get("/v1/history?limit=100")).body["revisions"]) == 20


@needs_etcd
async def test_on_etcd_the_pruned_revisions_are_compacted_away(start: Start) -> None:
    host, port = host_port(ENDPOINT)
    prefix = f"/switchman-test/{uuid.uuid4().hex}"
    api = await start(store=EtcdStore(host, port, prefix=prefix, compact_interval=0), history_keep=KEEP)
    client = aetcd.Client(host=host, port=port, timeout=10)
    try:
        first = await client.get_range(f"{prefix}/head".encode(), f"{prefix}/head\0".encode())
        before = int(first.header.revision)  # etcd's revision before any commit of this test
        await twenty_commits(api)
        keys = [kv.key.decode() for kv in await client.get_prefix(f"{prefix}/revisions/".encode())]
        assert keys == [f"{prefix}/revisions/{n:012d}" for n in range(16, 21)]
        # Reading etcd's history from before the commits is refused: it was compacted, up to the last prune.
        with pytest.raises(aetcd.RevisionCompactedError) as compacted:
            watch = await client.watch(f"{prefix}/head".encode(), start_revision=before)
            await anext(aiter(watch))
        now = await client.get_range(f"{prefix}/head".encode(), f"{prefix}/head\0".encode())
        assert before < compacted.value.compacted_revision <= int(now.header.revision)
    finally:
        await client.delete_prefix(f"{prefix}/".encode())
        await client.close()
