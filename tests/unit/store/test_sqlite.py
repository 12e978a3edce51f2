"""The SQLite backend: the shared contract, and what is particular to one file."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switchman.store import SqliteStore, StoreError
from tests.unit.store import contract

# Fast enough for tests that wait for the poll; tests of in-process delivery use a long one.
POLL = 0.05


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "store.db"


@pytest.fixture
async def store(path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(path, poll_interval=POLL)
    yield store
    await store.close()


async def test_empty_store(store: SqliteStore) -> None:
    await contract.empty_store(store)


async def test_commit_head_get_history(store: SqliteStore) -> None:
    await contract.commit_head_get_history(store)


async def test_summary_lists_what_changed(store: SqliteStore) -> None:
    await contract.summary_lists_what_changed(store)


async def test_stale_head_is_a_conflict_and_changes_nothing(store: SqliteStore) -> None:
    await contract.stale_head_is_a_conflict(store)


async def test_rollback_is_recorded_and_checked(store: SqliteStore) -> None:
    await contract.rollback_is_recorded_and_checked(store)


async def test_bad_documents_are_refused(store: SqliteStore) -> None:
    await contract.bad_documents_are_refused(store)


async def test_racing_commits_one_wins(store: SqliteStore, path: Path) -> None:
    other = SqliteStore(path)
    try:
        await contract.racing_commits_one_wins(store, other)
    finally:
        await other.close()


async def test_on_behalf_of_is_kept(store: SqliteStore) -> None:
    await contract.on_behalf_of_is_kept(store)


async def test_prune_keeps_the_newest(store: SqliteStore) -> None:
    await contract.prune_keeps_the_newest(store)


async def test_a_watch_behind_a_prune_goes_on_with_the_head(store: SqliteStore) -> None:
    await contract.a_watch_behind_a_prune_goes_on_with_the_head(store)


async def test_watch_yields_new_heads_in_order(store: SqliteStore) -> None:
    await contract.watch_yields_new_heads_in_order(store)


async def test_watch_after_a_known_number(store: SqliteStore) -> None:
    await contract.watch_after_a_known_number(store)


async def test_own_commits_reach_watchers_without_the_poll(path: Path) -> None:
    store = SqliteStore(path, poll_interval=3600)
    try:
        revisions = store.watch()
        step = asyncio.ensure_future(anext(revisions))
        await asyncio.sleep(0.1)
        committed = await store.commit(contract.config(1), author="t", message="m", expected_head=None)
        assert await asyncio.wait_for(step, 2) == committed
        await contract.stop(revisions)
    finally:
        await store.close()


async def test_two_stores_on_one_file_see_each_others_commits(store: SqliteStore, path: Path) -> None:
    other = SqliteStore(path, poll_interval=POLL)
    try:
        await contract.replicas_see_each_other(store, other)
    finally:
        await other.close()


async def test_reopening_the_file_keeps_everything(path: Path) -> None:
    first = SqliteStore(path)
    for n in range(1, 6):
        await first.commit(contract.config(n), author="t", message=f"m{n}", expected_head=n - 1 or None)
    head, history = await first.head(), await first.history()
    await first.close()

    again = SqliteStore(path)
    try:
        assert await again.head() == head
        assert await again.history() == history
        assert (await again.get(3)).documents == tuple(contract.config(3))
        assert head is not None
        await again.commit(contract.config(6), author="t", message="m", expected_head=head.number)
        assert [s.number for s in await again.history(limit=2)] == [6, 5]
    finally:
        await again.close()


async def test_the_file_is_wal_and_synchronous_full(store: SqliteStore, path: Path) -> None:
    await store.commit(contract.config(1), author="t", message="m", expected_head=None)
    # synchronous is a per-connection setting: ask the store's own connection, on its own thread.
    synchronous, thread = await store._call(
        lambda c: (c.execute("PRAGMA synchronous").fetchone()[0], threading.get_ident())
    )
    assert synchronous == 2  # FULL
    assert thread != threading.get_ident()  # the event loop's thread never runs sqlite3
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("SELECT count(*) FROM revisions").fetchone()[0] == 1
    raw.close()


async def test_close_ends_watches_and_later_calls_fail(store: SqliteStore) -> None:
    await contract.close_ends_watches(store)
    await store.close()  # twice is fine


async def test_a_file_that_is_not_a_store_is_an_error_naming_it(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database, it is a grocery list" * 100)
    store = SqliteStore(junk)
    try:
        with pytest.raises(StoreError, match=str(junk)):
            await store.head()
    finally:
        await store.close()


async def test_a_file_from_a_newer_switchman_is_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA user_version = 99")
    raw.close()
    store = SqliteStore(path)
    try:
        with pytest.raises(StoreError, match="newer Switchman"):
            await store.head()
    finally:
        await store.close()


async def test_another_processs_commits_arrive_within_the_default_poll(path: Path) -> None:
    watched, writer = SqliteStore(path), SqliteStore(path)  # default poll interval: 0.5 s
    try:
        revisions = watched.watch(after=0)
        step = asyncio.ensure_future(anext(revisions))
        await asyncio.sleep(0.1)
        committed = await writer.commit(contract.config(1), author="t", message="m", expected_head=None)
        assert await asyncio.wait_for(step, 2.0) == committed
        await contract.stop(revisions)
    finally:
        await watched.close()
        await writer.close()


_VERSION_2_REVISIONS = """
CREATE TABLE revisions (
    number INTEGER PRIMARY KEY, author TEXT NOT NULL, created_at REAL NOT NULL, message TEXT NOT NULL,
    added TEXT NOT NULL, changed TEXT NOT NULL, removed TEXT NOT NULL, rollback_of INTEGER, documents TEXT NOT NULL
)
"""


async def test_a_version_2_file_gains_on_behalf_of_once_even_when_two_stores_open_it_at_once(path: Path) -> None:
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as raw:
        raw.execute(_VERSION_2_REVISIONS)
        raw.execute(
            "INSERT INTO revisions VALUES (1, 'alice', 1.0, 'm', '[\"cluster/a\"]', '[]', '[]', NULL, ?)",
            ('[{"kind":"Cluster","metadata":{"name":"a"}}]',),
        )
        raw.execute("PRAGMA user_version = 2")
    raw.close()
    # ALTER TABLE ADD COLUMN cannot run twice: the second opener must see the first one's upgrade.
    first, second = SqliteStore(path), SqliteStore(path)
    try:
        heads = await asyncio.gather(first.head(), second.head())
        assert [h.summary.on_behalf_of for h in heads if h is not None] == [None, None]
        await first.commit(contract.config(1), author="ci", message="m", expected_head=1, on_behalf_of="bob")
        assert (await second.history(limit=1))[0].on_behalf_of == "bob"
    finally:
        await first.close()
        await second.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (3,)
        assert "on_behalf_of" in [row[1] for row in raw.execute("PRAGMA table_info(revisions)")]
    raw.close()
