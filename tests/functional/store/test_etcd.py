"""The etcd backend against a real etcd (``SWITCHMAN_TEST_ETCD=host:port``; CI starts one).

Every test works under its own key prefix (conftest.py's ``prefix``),
removed afterwards, so tests never see each other's revisions. Two store
objects on one etcd stand for two Switchman replicas.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aetcd  # type: ignore[import-untyped]
import pytest

from switchman.store import EtcdStore, StoreError, open_store
from tests.etcd_process import free_port, private_etcd, until_up
from tests.functional.store.etcd_env import ENDPOINT, host_port, needs_etcd
from tests.unit.store import contract

StoreFactory = Callable[[], EtcdStore]


@pytest.fixture
async def replicas(prefix: str) -> AsyncIterator[StoreFactory]:
    """Make store objects on the test's prefix, each with its own connection; all closed at the end."""
    made: list[EtcdStore] = []
    host, port = host_port(ENDPOINT)

    def make() -> EtcdStore:
        made.append(EtcdStore(host, port, prefix=prefix))
        return made[-1]

    yield make
    for store in made:
        await store.close()


@pytest.fixture
def store(replicas: StoreFactory) -> EtcdStore:
    return replicas()


@needs_etcd
async def test_empty_store(store: EtcdStore) -> None:
    await contract.empty_store(store)


@needs_etcd
async def test_commit_head_get_history(store: EtcdStore) -> None:
    await contract.commit_head_get_history(store)


@needs_etcd
async def test_summary_lists_what_changed(store: EtcdStore) -> None:
    await contract.summary_lists_what_changed(store)


@needs_etcd
async def test_stale_head_is_a_conflict_and_changes_nothing(store: EtcdStore) -> None:
    await contract.stale_head_is_a_conflict(store)


@needs_etcd
async def test_rollback_is_recorded_and_checked(store: EtcdStore) -> None:
    await contract.rollback_is_recorded_and_checked(store)


@needs_etcd
async def test_bad_documents_are_refused(store: EtcdStore) -> None:
    await contract.bad_documents_are_refused(store)


@needs_etcd
async def test_racing_replicas_one_wins(replicas: StoreFactory) -> None:
    await contract.racing_commits_one_wins(replicas(), replicas())


@needs_etcd
async def test_on_behalf_of_is_kept(store: EtcdStore) -> None:
    await contract.on_behalf_of_is_kept(store)


@needs_etcd
async def test_prune_keeps_the_newest(store: EtcdStore) -> None:
    await contract.prune_keeps_the_newest(store)


@needs_etcd
async def test_a_watch_behind_a_prune_goes_on_with_the_head(store: EtcdStore) -> None:
    await contract.a_watch_behind_a_prune_goes_on_with_the_head(store)


@needs_etcd
async def test_a_revision_written_before_on_behalf_of_reads_as_none(store: EtcdStore, prefix: str) -> None:
    host, port = host_port(ENDPOINT)
    client = aetcd.Client(host=host, port=port, timeout=10)
    old = {"number": 1, "author": "a", "created_at": 1.0, "message": "m", "added": [], "changed": [], "removed": [],
           "rollback_of": None, "documents": contract.config(1)}
    try:
        await client.put(f"{prefix}/revisions/{1:012d}".encode(), json.dumps(old).encode())
        await client.put(f"{prefix}/head".encode(), b"1")
    finally:
        await client.close()
    head = await store.head()
    assert head is not None and (head.summary.author, head.summary.on_behalf_of) == ("a", None)


@needs_etcd
async def test_watch_yields_new_heads_in_order(store: EtcdStore) -> None:
    await contract.watch_yields_new_heads_in_order(store)


@needs_etcd
async def test_watch_after_a_known_number(store: EtcdStore) -> None:
    await contract.watch_after_a_known_number(store)


@needs_etcd
async def test_a_commit_on_one_replica_reaches_the_others_watch(replicas: StoreFactory) -> None:
    await contract.replicas_see_each_other(replicas(), replicas())


@needs_etcd
async def test_close_ends_watches_and_later_calls_fail(store: EtcdStore) -> None:
    await contract.close_ends_watches(store)


@needs_etcd
async def test_the_key_layout(store: EtcdStore, prefix: str) -> None:
    await store.commit(contract.config(1), author="t", message="m", expected_head=None)
    await store.commit(contract.config(2), author="t", message="m", expected_head=1)
    host, port = host_port(ENDPOINT)
    client = aetcd.Client(host=host, port=port, timeout=10)
    try:
        keys = sorted(kv.key for kv in await client.get_prefix(f"{prefix}/".encode()))
        head = await client.get(f"{prefix}/head".encode())
    finally:
        await client.close()
    assert keys == [f"{prefix}/head".encode()] + [f"{prefix}/revisions/{n:012d}".encode() for n in (1, 2)]
    assert head.value == b"2"


@needs_etcd
async def test_history_longer_than_one_range_read(store: EtcdStore) -> None:
    for n in range(1, 21):
        await store.commit(contract.config(n), author="t", message=f"m{n}", expected_head=n - 1 or None)
    assert [s.number for s in await store.history(limit=18)] == list(range(20, 2, -1))
    assert [s.number for s in await store.history()] == list(range(20, 0, -1))
    assert (await store.history(limit=1))[0].message == "m20"


@needs_etcd
async def test_a_revision_over_etcds_request_limit_is_a_store_error(store: EtcdStore) -> None:
    await store.commit(contract.config(1), author="t", message="m", expected_head=None)
    huge = [contract.doc("Cluster", "huge", pad="x" * (2 * 1024 * 1024))]
    with pytest.raises(StoreError, match=store.endpoint):
        await store.commit(huge, author="t", message="m", expected_head=1)
    head = await store.head()
    assert head is not None and head.number == 1


@needs_etcd
async def test_open_store_reaches_etcd(prefix: str) -> None:
    store = open_store(f"etcd://{ENDPOINT}{prefix}")
    try:
        revision = await store.commit(contract.config(1), author="t", message="m", expected_head=None)
        assert await store.head() == revision
    finally:
        await store.close()


async def test_an_unreachable_etcd_is_a_store_error_naming_it() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = EtcdStore("127.0.0.1", port, timeout=5)
    try:
        with pytest.raises(StoreError, match=f"etcd at 127.0.0.1:{port} is unreachable"):
            await store.head()
        with pytest.raises(StoreError, match=f"127.0.0.1:{port}"):
            await store.commit(contract.config(1), author="t", message="m", expected_head=None)
    finally:
        await store.close()


# -- a watch that outlives an etcd restart: needs an etcd of its own to stop ----------------


@needs_etcd
@pytest.mark.skipif(shutil.which("etcd") is None, reason="no etcd binary to start and stop a private etcd")
async def test_a_watch_survives_an_etcd_restart(tmp_path: Path) -> None:
    client_port, peer_port = free_port(), free_port()
    writer, reader = EtcdStore("127.0.0.1", client_port), EtcdStore("127.0.0.1", client_port)
    try:
        with private_etcd(tmp_path / "etcd", client_port, peer_port):
            await until_up(writer)
            one = await writer.commit(contract.config(1), author="t", message="m", expected_head=None)
            revisions = reader.watch(after=0)
            assert await contract.next_within(revisions) == one
            step = asyncio.ensure_future(anext(revisions))  # waiting on the stream when etcd dies
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)
        assert not step.done()
        with private_etcd(tmp_path / "etcd", client_port, peer_port):
            await until_up(writer)
            two = await writer.commit(contract.config(2), author="t", message="m", expected_head=1)
            three = await writer.commit(contract.config(3), author="t", message="m", expected_head=2)
            assert await asyncio.wait_for(step, 30) == two
            assert await contract.next_within(revisions, 30) == three
            await contract.stop(revisions)
    finally:
        await writer.close()
        await reader.close()
