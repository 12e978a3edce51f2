"""etcd's quota (``--quota-backend-bytes``) against a real etcd of the test's own, through the REST API.

With ``--history-keep`` the pruned revisions are compacted away, so a long loop of commits, six times the
quota in all, keeps etcd's database under it and every write succeeds. With the history kept forever the
quota is reached: the apply that does not fit is refused at once with 503 naming etcd's "database space
exceeded", the served configuration and everything acknowledged before stay, and after the operator's steps
(a replica started with a smaller ``--history-keep`` prunes, then compact, defragment, disarm the alarm)
writes work again.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aetcd  # type: ignore[import-untyped]
import pytest

from switchman.store import EtcdStore
from tests.etcd_process import free_port, needs_etcd_binary, private_etcd, until_healthy
from tests.functional.api.conftest import Api, Start
from tests.functional.api.docs import checkout

pytestmark = needs_etcd_binary

QUOTA = 4 * 1024 * 1024
PAD = 32 * 1024  # random bytes in each revision (64 KiB of hex)
KEEP = 5


@dataclass
class QuotaEtcd:
    port: int
    prefix: str

    def store(self) -> EtcdStore:
        # Compacted after every prune: etcd needs room for the kept revisions and for what is committed between
        # two compactions (60 s apart by default, which a loop this quick would fill).
        return EtcdStore("127.0.0.1", self.port, prefix=self.prefix, compact_interval=0)

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[Any]:
        client = aetcd.Client(host="127.0.0.1", port=self.port, timeout=10)
        try:
            yield client
        finally:
            await client.close()

    async def db_size(self) -> int:
        async with self.client() as client:
            return int((await client.status()).db_size)


@pytest.fixture
def quota_etcd(tmp_path: Path) -> Iterator[QuotaEtcd]:
    port = free_port()
    with private_etcd(tmp_path / "etcd", port, free_port(), quota_bytes=QUOTA):
        yield QuotaEtcd(port, f"/switchman-quota/{uuid.uuid4().hex[:8]}")


def padded(n: int) -> list[dict[str, Any]]:
    """The checkout example, its Service carrying ``PAD`` random bytes: each revision is about 70 KiB."""
    docs = checkout()
    # Labels hold at most 63 characters a value: the padding is many of them, 62 random hex digits each.
    pad = {f"pad{i}": os.urandom(31).hex() for i in range(2 * PAD // 70)}
    docs[0]["metadata"]["labels"] = {"n": str(n), **pad}
    return docs


async def test_with_history_keep_a_long_loop_stays_under_the_quota(quota_etcd: QuotaEtcd, start: Start) -> None:
    await until_healthy(quota_etcd.port)
    api = await start(store=quota_etcd.store(), history_keep=KEEP)
    largest = 0
    for n in range(360):  # about 24 MiB committed in all, six times the quota
        reply = await api.apply(padded(n))
        assert reply.status == 200, (n, reply.body)
        if n % 40 == 39:
            largest = max(largest, await quota_etcd.db_size())
    assert largest < QUOTA * 0.6, largest
    assert [e["number"] for e in await api.history()] == list(range(360, 360 - KEEP, -1))
    async with quota_etcd.client() as client:
        assert [alarm async for alarm in client.list_alarms()] == []


async def _fill(api: Api) -> tuple[int, dict[str, Any]]:
    """Apply until etcd refuses: the last acknowledged revision, and the refusal's body."""
    for n in range(200):
        reply = await api.apply(padded(n))
        if reply.status != 200:
            return n, reply.body  # n revisions were acknowledged, 1..n
    raise AssertionError("etcd took 200 revisions of 70 KiB under a 4 MiB quota")


async def test_past_the_quota_an_apply_is_refused_and_nothing_is_lost(quota_etcd: QuotaEtcd, start: Start) -> None:
    await until_healthy(quota_etcd.port)
    api = await start(store=quota_etcd.store(), history_keep=0)  # every revision kept: the quota fills
    acknowledged, refusal = await _fill(api)
    assert acknowledged > 10, acknowledged
    served = api.switchman.controller.served_revision
    assert served == acknowledged
    documents = await api.documents()

    began = time.monotonic()
    again = await api.apply(padded(1000))
    took = time.monotonic() - began
    for body in (refusal, again.body):
        error = body["error"]
        assert error["code"] == "store_unavailable", body
        assert "database space exceeded" in error["message"], error
        assert "--quota-backend-bytes" in error["message"] and "alarm disarm" in error["message"], error
    assert again.status == 503 and took < 2, (again.status, took)
    # Nothing acknowledged is lost, and what is served is the last acknowledged revision.
    history = (await api.get("/v1/history?limit=1000")).body["revisions"]
    assert [e["number"] for e in history] == list(range(acknowledged, 0, -1))
    assert api.switchman.controller.served_revision == acknowledged
    assert await api.documents() == documents
    assert (await api.get(f"/v1/revisions/{acknowledged}")).status == 200

    # The operator: a replica started with a smaller --history-keep prunes (etcd takes deletes and compactions
    # while its alarm is on), then defragment and disarm the alarm.
    pruning = await start(store=quota_etcd.store(), history_keep=KEEP)
    assert [e["number"] for e in await pruning.history()] == list(range(acknowledged, acknowledged - KEEP, -1))
    async with quota_etcd.client() as client:
        await client.defragment()
        alarms = [alarm async for alarm in client.list_alarms()]
        assert len(alarms) == 1  # NOSPACE, on the one member
        await client.disarm_alarm(alarms[0].member_id)  # as etcdctl alarm disarm does, member by member
    assert await quota_etcd.db_size() < QUOTA / 2

    for replica in (api, pruning):
        reply = await replica.apply(padded(2000 + acknowledged))
        assert reply.status == 200, reply.body
    assert pruning.switchman.controller.served_revision == acknowledged + 2
