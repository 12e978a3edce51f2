"""Runtime state records on both backends: a real SQLite file, a real etcd (``SWITCHMAN_TEST_ETCD``)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from switchman.store import MAX_STATE_BYTES, ConflictError, SqliteStore, StateRecord, StoreError
from tests.functional.conftest import StoreFactory
from tests.unit.store import contract

KEY = "rollouts/checkout"


async def test_put_get_list_delete(stores: StoreFactory) -> None:
    store = stores()
    assert await store.get_state(KEY) is None
    assert await store.list_state("") == []

    before = time.time()
    checkout = await store.put_state(KEY, {"phase": "ramping", "step": 1}, expected_version=None)
    assert (checkout.key, checkout.value) == (KEY, {"phase": "ramping", "step": 1})
    assert checkout.version >= 1
    assert before - 1 <= checkout.updated_at <= time.time() + 1
    assert await store.get_state(KEY) == checkout

    cart = await store.put_state("rollouts/cart", {"phase": "paused"}, expected_version=None)
    other = await store.put_state("analysis/cart", {"runs": [1, 2]}, expected_version=None)
    assert await store.list_state("rollouts/") == [cart, checkout]
    assert await store.list_state("") == [other, cart, checkout]
    assert await store.list_state("rollouts/c") == [cart, checkout]
    assert await store.list_state("rollouts/checkout/") == []

    await store.delete_state("rollouts/cart")
    assert await store.get_state("rollouts/cart") is None
    await store.delete_state("rollouts/cart")  # gone already: an unconditional delete has nothing to do
    await store.delete_state(KEY, expected_version=checkout.version)
    assert await store.list_state("rollouts/") == []
    assert await store.list_state("") == [other]


async def test_every_write_gives_a_new_version(stores: StoreFactory) -> None:
    store = stores()
    one = await store.put_state(KEY, {"step": 1}, expected_version=None)
    two = await store.put_state(KEY, {"step": 1}, expected_version=one.version)  # the same value: still a write
    three = await store.put_state(KEY, {"step": 2}, expected_version=two.version)
    await store.delete_state(KEY)
    again = await store.put_state(KEY, {"step": 1}, expected_version=None)
    assert len({one.version, two.version, three.version, again.version}) == 4
    # A writer still holding a version from before the delete cannot write the new record.
    for stale in (one, two, three):
        with pytest.raises(ConflictError):
            await store.put_state(KEY, {"step": 99}, expected_version=stale.version)
    assert await store.get_state(KEY) == again


async def test_a_stale_version_is_a_conflict_and_writes_nothing(stores: StoreFactory) -> None:
    store = stores()
    one = await store.put_state(KEY, {"step": 1}, expected_version=None)
    two = await store.put_state(KEY, {"step": 2}, expected_version=one.version)
    for stale in (one.version, two.version + 1000):
        with pytest.raises(ConflictError, match=KEY):
            await store.put_state(KEY, {"step": 99}, expected_version=stale)
    with pytest.raises(ConflictError, match=KEY):
        await store.delete_state(KEY, expected_version=one.version)
    assert await store.get_state(KEY) == two

    missing = "rollouts/missing"
    with pytest.raises(ConflictError, match=missing):
        await store.put_state(missing, {"step": 1}, expected_version=two.version)
    with pytest.raises(ConflictError, match=missing):
        await store.delete_state(missing, expected_version=two.version)
    assert await store.get_state(missing) is None


async def test_expected_none_creates_and_never_overwrites(stores: StoreFactory) -> None:
    store = stores()
    created = await store.put_state(KEY, {"step": 1}, expected_version=None)
    with pytest.raises(ConflictError, match="must not exist"):
        await store.put_state(KEY, {"step": 2}, expected_version=None)
    assert await store.get_state(KEY) == created


async def test_racing_writers_one_wins(stores: StoreFactory) -> None:
    """Two store objects (two processes on one file, or two replicas), each writing twice at once."""
    a, b = stores(), stores()
    expected: int | None = None
    for _ in range(2):
        results = await asyncio.gather(
            *(s.put_state(KEY, {"writer": i}, expected_version=expected) for i, s in enumerate((a, b, a, b))),
            return_exceptions=True,
        )
        wins = [r for r in results if isinstance(r, StateRecord)]
        assert len(wins) == 1, results
        assert all(isinstance(r, ConflictError) for r in results if r is not wins[0]), results
        assert await a.get_state(KEY) == wins[0] == await b.get_state(KEY)
        expected = wins[0].version


async def test_writes_at_once_each_get_their_own_outcome(stores: StoreFactory) -> None:
    """Many rollouts ending a turn together: one stale write and one refused value fail alone, the rest land
    (on SQLite they share transactions; a failure undoes only its own write)."""
    store = stores()
    old = await store.put_state("rollouts/stale", {"step": 1}, expected_version=None)
    await store.put_state("rollouts/stale", {"step": 2}, expected_version=old.version)
    await store.acquire_lease("rollout/held", "replica-b", 30)
    writes = [store.put_state(f"rollouts/r{i:02}", {"step": i}, expected_version=None) for i in range(40)]
    writes.insert(10, store.put_state("rollouts/stale", {"step": 99}, expected_version=old.version))
    writes.insert(20, store.put_state("rollouts/nan", {"ratio": float("nan")}, expected_version=None))
    leases = [store.acquire_lease(f"rollout/r{i:02}", "replica-a", 30) for i in range(10)]
    leases.append(store.acquire_lease("rollout/held", "replica-a", 30))
    results = await asyncio.gather(*writes, *leases, return_exceptions=True)
    assert isinstance(results[10], ConflictError) and "rollouts/stale" in str(results[10])
    assert isinstance(results[20], StoreError) and "rollouts/nan" in str(results[20])
    written = [r for r in results[:42] if isinstance(r, StateRecord)]
    assert len(written) == 40 and len({r.version for r in written}) == 40
    assert results[42:] == [True] * 10 + [False]  # each lease decided on its own; another replica holds "held"
    listed = await store.list_state("rollouts/r")
    assert [(r.key, r.value) for r in listed] == [(f"rollouts/r{i:02}", {"step": i}) for i in range(40)]
    stale = await store.get_state("rollouts/stale")
    assert stale is not None and stale.value == {"step": 2}
    assert await store.get_state("rollouts/nan") is None
    assert await store.lease_holder("rollout/held") == "replica-b"


async def test_values_it_cannot_keep_are_refused_naming_the_key(stores: StoreFactory) -> None:
    store = stores()
    fits = {"pad": "x" * (MAX_STATE_BYTES - len('{"pad":""}'))}  # exactly the limit, encoded
    over = {"pad": "é" * (MAX_STATE_BYTES // 2)}  # under the limit in characters, over it in UTF-8 bytes
    refused: list[Any] = [over, {"ratio": float("nan")}, {"when": object()}, ["not", "a", "mapping"]]
    for value in refused:
        with pytest.raises(StoreError, match=KEY) as caught:
            await store.put_state(KEY, value, expected_version=None)
        assert not isinstance(caught.value, ConflictError)
    assert await store.get_state(KEY) is None

    record = await store.put_state(KEY, fits, expected_version=None)
    assert await store.get_state(KEY) == record


async def test_wrong_arguments_are_value_errors(stores: StoreFactory) -> None:
    store = stores()
    with pytest.raises(ValueError, match="key"):
        await store.put_state("", {}, expected_version=None)
    with pytest.raises(ValueError, match="version"):
        await store.put_state(KEY, {}, expected_version=0)
    with pytest.raises(ValueError, match="TTL"):
        await store.acquire_lease("rollouts/checkout", "replica-a", 0)
    with pytest.raises(ValueError, match="holder"):
        await store.acquire_lease("rollouts/checkout", "", 5)
    assert await store.list_state("") == []


# -- SQLite particulars ----------------------------------------------------------------

_VERSION_1_SCHEMA = """
CREATE TABLE revisions (
    number INTEGER PRIMARY KEY, author TEXT NOT NULL, created_at REAL NOT NULL, message TEXT NOT NULL,
    added TEXT NOT NULL, changed TEXT NOT NULL, removed TEXT NOT NULL, rollback_of INTEGER, documents TEXT NOT NULL
)
"""


async def test_a_version_1_file_gains_state_and_keeps_its_revisions(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as raw:
        raw.execute(_VERSION_1_SCHEMA)
        raw.execute(
            "INSERT INTO revisions VALUES (1, 'alice', 1.0, 'm', '[\"cluster/a\"]', '[]', '[]', NULL, ?)",
            ('[{"kind":"Cluster","metadata":{"name":"a"}}]',),
        )
        raw.execute("PRAGMA user_version = 1")
    raw.close()

    store = SqliteStore(path)
    try:
        head = await store.head()
        assert head is not None and head.summary.author == "alice"
        record = await store.put_state(KEY, {"step": 1}, expected_version=None)
        assert await store.acquire_lease(KEY, "replica-a", 5)
        await store.commit(contract.config(1), author="t", message="m", expected_head=1)
    finally:
        await store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (3,)  # state (2), then on_behalf_of (3)
        assert raw.execute("SELECT key, version FROM state").fetchall() == [(KEY, record.version)]
    raw.close()
