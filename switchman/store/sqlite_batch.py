"""Small SQLite writes that arrive together share one transaction (a group commit).

Each runtime-state write or lease call is a transaction of its own, and a
transaction's cost is mostly its fsync and the trip to the store's one worker
thread. A hundred rollouts that end a turn at the same moment would queue a
hundred of them, one after the other, ahead of every read. Instead, writes
queued while the worker is busy (or within the same turn of the event loop)
go in the next transaction together, each in a savepoint of its own: one
write that raises (a version conflict, a value refused) is undone alone and
raises to its own caller, the others commit. An error of the database itself
fails every write of that transaction. Callers see no difference but the
time: a write that returns is on disk, and a cancelled caller's write may
still have been made.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["WriteBatch"]

T = TypeVar("T")


@dataclass(slots=True)
class _Queued:
    work: Callable[[sqlite3.Connection], Any]
    done: asyncio.Future[Any]


@dataclass(frozen=True, slots=True)
class _Raised:
    error: Exception


class WriteBatch:
    """Runs writes (functions of a connection, made inside a transaction someone else opens) through
    ``call`` (the store's way onto its worker thread), as many together as are waiting."""

    def __init__(
        self, call: Callable[[Callable[[sqlite3.Connection], list[Any]]], Awaitable[list[Any]]],
        after: Callable[[], None] = lambda: None,
    ) -> None:
        self._call = call
        self._after = after  # run on the worker after each committed transaction
        self._queued: list[_Queued] = []
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queued.append(_Queued(work, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="sqlite-writes")
        return await done

    async def _flush(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                outcomes = await self._call(functools.partial(self._together, works=[q.work for q in batch]))
            except Exception as exc:  # the database itself failed: every write of the transaction hears of it
                for queued in batch:
                    if not queued.done.done():
                        queued.done.set_exception(exc)
                continue
            for queued, outcome in zip(batch, outcomes, strict=True):
                if queued.done.done():  # its caller was cancelled
                    continue
                if isinstance(outcome, _Raised):
                    queued.done.set_exception(outcome.error)
                else:
                    queued.done.set_result(outcome)

    def _together(self, conn: sqlite3.Connection, works: Sequence[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        """On the worker: one ``BEGIN IMMEDIATE`` transaction, a savepoint a write."""
        outcomes: list[Any] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for work in works:
                conn.execute("SAVEPOINT write")
                try:
                    outcomes.append(work(conn))
                except sqlite3.Error:
                    raise
                except Exception as exc:  # this write's own failure: undone alone
                    conn.execute("ROLLBACK TO write")
                    outcomes.append(_Raised(exc))
                conn.execute("RELEASE write")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._after()
        return outcomes
