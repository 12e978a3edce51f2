"""What every :class:`~switchman.store.base.Store` must do, written once for all backends.

Each check takes open, empty stores; the SQLite unit tests and the etcd
functional tests call the same checks, so the two backends cannot drift
apart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from switchman.store import (
    ConflictError,
    Document,
    EtcdStore,
    Revision,
    RevisionNotFound,
    SqliteStore,
    Store,
    StoreError,
)

WAIT = 10.0


def doc(kind: str, name: str, **spec: Any) -> dict[str, Any]:
    """A minimal document: the store only needs ``kind`` and ``metadata.name``."""
    return {"kind": kind, "metadata": {"name": name}, "spec": spec}


def config(weight: int) -> list[Document]:
    return [doc("Cluster", "checkout-v1"), doc("Cluster", "checkout-v2"), doc("Route", "checkout", weight=weight)]


async def next_within(revisions: AsyncIterator[Revision], timeout: float = WAIT) -> Revision:
    async with asyncio.timeout(timeout):
        return await anext(revisions)


async def stop(revisions: AsyncIterator[Revision]) -> None:
    """End a watch now rather than when it is garbage-collected (watch() returns a generator)."""
    aclose = getattr(revisions, "aclose", None)
    if aclose is not None:
        await aclose()


async def empty_store(store: Store) -> None:
    assert await store.head() is None
    assert await store.history() == []
    with pytest.raises(RevisionNotFound):
        await store.get(1)


async def commit_head_get_history(store: Store) -> None:
    before = time.time()
    first = await store.commit(config(10), author="alice", message="canary 10%", expected_head=None)
    second = await store.commit(config(50), author="bob", message="canary 50%", expected_head=first.number)
    third = await store.commit(config(100), author="alice", message="canary 100%", expected_head=second.number)
    assert [first.number, second.number, third.number] == [1, 2, 3]

    assert await store.head() == third
    assert await store.get(2) == second
    assert (await store.get(1)).documents == tuple(config(10))
    assert third.summary.author == "alice"
    assert third.summary.message == "canary 100%"
    assert before - 1 <= third.summary.created_at <= time.time() + 1
    assert third.summary.rollback_of is None

    history = await store.history()
    assert [s.number for s in history] == [3, 2, 1]
    assert history[0] == third.summary
    assert [s.number for s in await store.history(limit=2)] == [3, 2]
    assert await store.history(limit=0) == []
    with pytest.raises(RevisionNotFound):
        await store.get(4)


async def summary_lists_what_changed(store: Store) -> None:
    first = await store.commit(
        [doc("Cluster", "a"), doc("Cluster", "b", port=1), doc("Route", "r", weight=10)],
        author="t",
        message="first",
        expected_head=None,
    )
    assert first.summary.added == ("cluster/a", "cluster/b", "route/r")
    assert first.summary.changed == first.summary.removed == ()

    # b changes, a goes, c comes; r is the same document with its keys in another order.
    second = await store.commit(
        [
            {"spec": {"weight": 10}, "metadata": {"name": "r"}, "kind": "Route"},
            doc("Cluster", "b", port=2),
            doc("Cluster", "c"),
        ],
        author="t",
        message="second",
        expected_head=first.number,
    )
    assert second.summary.added == ("cluster/c",)
    assert second.summary.changed == ("cluster/b",)
    assert second.summary.removed == ("cluster/a",)
    assert (await store.history(limit=1))[0] == second.summary


async def stale_head_is_a_conflict(store: Store) -> None:
    with pytest.raises(ConflictError):
        await store.commit(config(1), author="t", message="m", expected_head=7)
    assert await store.head() is None

    first = await store.commit(config(1), author="t", message="m", expected_head=None)
    second = await store.commit(config(2), author="t", message="m", expected_head=1)
    for stale in (None, 1, 3):
        with pytest.raises(ConflictError):
            await store.commit(config(3), author="t", message="lost", expected_head=stale)
    assert await store.head() == second
    assert [s.number for s in await store.history()] == [2, 1]
    assert await store.get(1) == first
    with pytest.raises(RevisionNotFound):
        await store.get(3)


async def rollback_is_recorded_and_checked(store: Store) -> None:
    first = await store.commit(config(10), author="t", message="m", expected_head=None)
    await store.commit(config(90), author="t", message="m", expected_head=1)
    back = await store.commit(first.documents, author="t", message="back", expected_head=2, rollback_of=1)
    assert back.summary.rollback_of == 1
    assert back.summary.changed == ("route/checkout",)
    with pytest.raises(RevisionNotFound):
        await store.commit(config(5), author="t", message="m", expected_head=3, rollback_of=99)
    assert (await store.head()) == back


async def bad_documents_are_refused(store: Store) -> None:
    for documents in (
        [{"metadata": {"name": "no-kind"}}],
        [{"kind": "Cluster", "metadata": {}}],
        [doc("Cluster", "twice"), doc("Cluster", "twice")],
        [doc("Cluster", "nan", weight=float("nan"))],
        [doc("Cluster", "object", weight=object())],
    ):
        with pytest.raises(StoreError) as caught:
            await store.commit(documents, author="t", message="m", expected_head=None)
        assert not isinstance(caught.value, ConflictError)
    assert await store.head() is None


async def racing_commits_one_wins(a: Store, b: Store) -> None:
    """Two writers (the same store twice, or two replicas) with the same expected head."""
    results = await asyncio.gather(
        *(s.commit(config(i), author=f"w{i}", message="race", expected_head=None) for i, s in enumerate((a, b, a, b))),
        return_exceptions=True,
    )
    wins = [r for r in results if isinstance(r, Revision)]
    assert len(wins) == 1, results
    assert all(isinstance(r, ConflictError) for r in results if r is not wins[0])
    assert await a.head() == wins[0] == await b.head()


async def watch_yields_new_heads_in_order(store: Store) -> None:
    await store.commit(config(0), author="t", message="before the watch", expected_head=None)
    revisions = store.watch()
    # Committed after watch() but before the first step: still "from now on".
    await store.commit(config(1), author="t", message="m", expected_head=1)
    for n in range(3, 6):
        await store.commit(config(n), author="t", message="m", expected_head=n - 1)
    seen = [(await next_within(revisions)).number for _ in range(4)]
    assert seen == [2, 3, 4, 5]
    await store.commit(config(6), author="t", message="m", expected_head=5)
    latest = await next_within(revisions)
    assert latest == await store.head()
    await stop(revisions)


async def watch_after_a_known_number(store: SqliteStore | EtcdStore) -> None:
    for n in range(1, 4):
        await store.commit(config(n), author="t", message="m", expected_head=n - 1 or None)
    revisions = store.watch(after=1)
    assert [(await next_within(revisions)).number for _ in range(2)] == [2, 3]
    await stop(revisions)


async def replicas_see_each_other(a: SqliteStore | EtcdStore, b: SqliteStore | EtcdStore) -> None:
    """A commit on one store object is delivered by the other's watch, both ways.

    The watches start from an explicit ``after=0`` (the store is empty): with
    the default, a watch on another object places itself when it first runs,
    and a commit racing that first step would be "before now".
    """
    at_b = b.watch(after=0)
    at_a = a.watch(after=0)
    one = await a.commit(config(1), author="replica-a", message="m", expected_head=None)
    assert await next_within(at_b) == one
    assert await next_within(at_a) == one
    two = await b.commit(config(2), author="replica-b", message="m", expected_head=1)
    assert await next_within(at_a) == two
    assert await next_within(at_b) == two
    assert await b.head() == two == await a.head()
    for revisions in (at_a, at_b):
        await stop(revisions)


async def on_behalf_of_is_kept(store: Store) -> None:
    first = await store.commit(config(1), author="ci", message="m", expected_head=None, on_behalf_of="alice")
    second = await store.commit(config(2), author="ci", message="m", expected_head=1)
    assert (first.summary.author, first.summary.on_behalf_of) == ("ci", "alice")
    assert second.summary.on_behalf_of is None
    assert (await store.get(1)).summary == first.summary
    assert [s.on_behalf_of for s in await store.history()] == [None, "alice"]


async def prune_keeps_the_newest(store: Store) -> None:
    assert await store.prune(3) == 0  # an empty store
    for n in range(1, 9):
        await store.commit(config(n), author="t", message=f"m{n}", expected_head=n - 1 or None)
    assert await store.prune(3) == 5
    assert [s.number for s in await store.history()] == [8, 7, 6]
    assert await store.prune(3) == 0
    with pytest.raises(RevisionNotFound, match="revision 2 was pruned"):
        await store.get(2)
    with pytest.raises(RevisionNotFound, match="revision 9 does not exist"):
        await store.get(9)
    with pytest.raises(RevisionNotFound, match="revision 2 was pruned"):
        await store.commit(config(1), author="t", message="m", expected_head=8, rollback_of=2)
    ninth = await store.commit(config(9), author="t", message="m9", expected_head=8, rollback_of=6)
    assert ninth.number == 9 and ninth.summary.changed == ("route/checkout",)  # numbers go on, diffs too
    assert await store.head_number() == 9
    assert await store.prune(1) == 3
    assert await store.history() == [ninth.summary]
    assert await store.head() == ninth
    for keep in (0, -1):
        with pytest.raises(ValueError):
            await store.prune(keep)


async def a_watch_behind_a_prune_goes_on_with_the_head(store: Store) -> None:
    for n in range(1, 6):
        await store.commit(config(n), author="t", message="m", expected_head=n - 1 or None)
    await store.prune(1)
    revisions = store.watch(after=1)
    assert (await next_within(revisions)).number == 5
    await store.commit(config(6), author="t", message="m", expected_head=5)
    assert (await next_within(revisions)).number == 6
    await stop(revisions)


async def close_ends_watches(store: Store) -> None:
    revisions = store.watch()
    step = asyncio.ensure_future(anext(revisions))
    await asyncio.sleep(0.2)
    await store.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(step, WAIT)
    with pytest.raises(StoreError):
        await store.head()
