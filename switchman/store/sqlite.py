"""The SQLite backend: one file, one row per revision.

Durability. The file is in WAL mode with ``synchronous=FULL``: SQLite fsyncs
the write-ahead log at every COMMIT, so a :meth:`SqliteStore.commit` that
returns is on disk, and a process killed at any moment leaves a file that
opens with every returned commit in it (the log is replayed on open). The
directory is fsynced too after the file and its log are created, or a power
cut could lose the directory entry of a file whose contents were synced.

Threads. sqlite3 calls block, and a connection belongs to the thread that
opened it, so one worker thread owns the only connection and every call is
handed to it. That also serialises this store's reads and writes, which a
configuration store can afford. A call whose caller is cancelled still runs
to its end on the worker: a cancelled :meth:`~SqliteStore.commit` may have
committed (its watchers are told either way).

Concurrency. A commit is one ``BEGIN IMMEDIATE`` transaction: the write lock
is taken before the head is read, so the ``expected_head`` check, the diff
against the head and the insert see the same head, even when another
process writes the same file.

Schema. ``PRAGMA user_version`` holds the schema version: 1 is the
revisions table, 2 adds runtime state and leases
(:mod:`switchman.store.sqlite_state`), 3 adds ``revisions.on_behalf_of``. A
file of an older version is brought up to date when it is opened, in one
transaction whose write lock is taken before the version is read again, so
two processes opening an old file at once upgrade it once; a file of a newer
version is refused, since this code cannot know what the newer tables promise.

Retention. :meth:`SqliteStore.prune` deletes the oldest rows; SQLite reuses
their pages, so the file stops growing once the history is at its size (it
does not shrink without a VACUUM, which would rewrite the whole file).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

from switchman.store.base import (
    ConflictError,
    Document,
    Revision,
    RevisionSummary,
    StoreError,
    check_keep,
    revision_missing,
)
from switchman.store.diff import decode, diff, encode
from switchman.store.sqlite_batch import WriteBatch
from switchman.store.sqlite_state import STATE_SCHEMA, SqliteState
from switchman.tasks import cancel

__all__ = ["POLL_INTERVAL", "SqliteStore"]

log = logging.getLogger(__name__)

#: How often a watched store looks for commits made by other processes.
POLL_INTERVAL: Final = 0.5
#: How long a writer waits for another process's write lock before failing.
BUSY_TIMEOUT: Final = 10.0
#: Revisions read per worker call while a watch catches up.
_WATCH_BATCH: Final = 64

_REVISIONS_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS revisions (
    number      INTEGER PRIMARY KEY,
    author      TEXT    NOT NULL,
    created_at  REAL    NOT NULL,
    message     TEXT    NOT NULL,
    added       TEXT    NOT NULL,
    changed     TEXT    NOT NULL,
    removed     TEXT    NOT NULL,
    rollback_of INTEGER,
    documents   TEXT    NOT NULL
)
"""
#: Version 3: whom a change was made for (X-Switchman-Author), apart from the token that made it.
_ON_BEHALF_OF: Final = ("ALTER TABLE revisions ADD COLUMN on_behalf_of TEXT",)
#: The statements that take a file from version N to N + 1, at index N. They
#: run under the write lock, after the version is read again (see _prepare),
#: so each runs once per file even when two processes open an old file at once.
_MIGRATIONS: Final = ((_REVISIONS_SCHEMA,), STATE_SCHEMA, _ON_BEHALF_OF)
SCHEMA_VERSION: Final = len(_MIGRATIONS)
_SUMMARY_COLUMNS: Final = "number, author, created_at, message, added, changed, removed, rollback_of, on_behalf_of"
_ALL_COLUMNS: Final = f"{_SUMMARY_COLUMNS}, documents"

T = TypeVar("T")


class _Watcher:
    """One watch's position: the last revision number it has yielded.

    ``after`` is None until the watch knows where "now" is; see
    :meth:`SqliteStore.watch`.
    """

    __slots__ = ("__weakref__", "after")

    def __init__(self, after: int | None) -> None:
        self.after = after


class SqliteStore(SqliteState):
    """A :class:`~switchman.store.base.Store` in one SQLite file (state and leases: :class:`SqliteState`).

    Creating the object touches nothing: the file (and its parent folder) is
    opened or created by the first call, on the worker thread.
    """

    def __init__(self, path: str | os.PathLike[str], *, poll_interval: float = POLL_INTERVAL) -> None:
        self._path = Path(path)
        self._poll_interval = poll_interval
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="switchman-sqlite")
        self._closed = False
        # Worker-thread state: only functions run by _call touch these.
        self._conn: sqlite3.Connection | None = None
        self._dir_synced = False
        # Event-loop state.
        self._writes = WriteBatch(self._call, self._sync_directory_once)
        self._watchers: weakref.WeakSet[_Watcher] = weakref.WeakSet()
        self._changed = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None

    @property
    def path(self) -> Path:
        return self._path

    def __repr__(self) -> str:
        return f"SqliteStore({str(self._path)!r})"

    # -- the Store protocol ------------------------------------------------------------

    async def head(self) -> Revision | None:
        """The newest revision, or None for an empty store."""
        row = await self._call(
            lambda c: c.execute(f"SELECT {_ALL_COLUMNS} FROM revisions ORDER BY number DESC LIMIT 1").fetchone()
        )
        return None if row is None else _revision(row)

    async def head_number(self) -> int | None:
        """The newest revision's number (None: an empty store), without reading its documents."""
        number = await self._call(_max_number)
        return number or None

    async def get(self, number: int) -> Revision:
        """Revision ``number``; raises :class:`RevisionNotFound` (saying so when it was pruned)."""

        def read(c: sqlite3.Connection) -> tuple[Any, int]:
            row = c.execute(f"SELECT {_ALL_COLUMNS} FROM revisions WHERE number = ?", (number,)).fetchone()
            return row, 0 if row is not None else _max_number(c)  # the head, to tell pruned from never made

        row, head = await self._call(read)
        if row is None:
            raise revision_missing(number, head or None)
        return _revision(row)

    async def commit(
        self,
        documents: Sequence[Document],
        *,
        author: str,
        message: str,
        expected_head: int | None,
        rollback_of: int | None = None,
        on_behalf_of: str | None = None,
    ) -> Revision:
        """Store ``documents`` as the next revision if the head is still ``expected_head``.

        Raises :class:`ConflictError` (and changes nothing) when it is not,
        and :class:`RevisionNotFound` when ``rollback_of`` names no revision.
        """
        loop = asyncio.get_running_loop()
        docs = tuple(documents)

        def work(conn: sqlite3.Connection) -> Revision:
            revision = self._commit_on_worker(conn, docs, author, message, expected_head, rollback_of, on_behalf_of)
            # Told from the worker, not after the await: a cancelled caller never
            # resumes, and the commit is done all the same.
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is watching
                loop.call_soon_threadsafe(self._committed, revision.number)
            return revision

        return await self._call(work)

    async def history(self, limit: int = 50) -> list[RevisionSummary]:
        """The newest ``limit`` revisions, newest first."""
        rows = await self._call(
            lambda c: c.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM revisions ORDER BY number DESC LIMIT ?", (max(limit, 0),)
            ).fetchall()
        )
        return [_summary(row) for row in rows]

    async def prune(self, keep: int) -> int:
        """Delete every revision but the newest ``keep``; returns how many went. One transaction."""
        check_keep(keep)

        def work(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                deleted = conn.execute(
                    "DELETE FROM revisions WHERE number <= (SELECT max(number) FROM revisions) - ?", (keep,)
                ).rowcount
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return int(deleted)

        return await self._call(work)

    def watch(self, *, after: int | None = None) -> AsyncGenerator[Revision, None]:
        """Every new head, in order, each revision exactly once.

        Commits made through this object wake watchers at once. Commits made
        by another process (or another store object) on the same file are
        found by a light poll of ``max(number)`` every ``poll_interval``
        (0.5 s by default), which runs only while someone is watching.
        Numbers have no gaps, so a watch that wakes late still yields every
        revision in between, oldest first.

        "New" means newer than ``after`` when it is given (the number the
        caller already holds, which makes ``head()`` then ``watch(after=...)``
        race-free); otherwise newer than the head when iteration starts, and
        never misses a commit made through this object after this call. The
        iteration ends when the store is closed.
        """
        watcher = _Watcher(after)
        self._watchers.add(watcher)
        return self._watch(watcher)

    async def close(self) -> None:
        """Close the file; running watches end, later calls raise :class:`StoreError`."""
        if self._closed:
            return
        self._closed = True
        await cancel(self._poller)
        self._notify()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close_on_worker)
        self._executor.shutdown(wait=False)

    # -- watching ----------------------------------------------------------------------

    async def _watch(self, watcher: _Watcher) -> AsyncGenerator[Revision, None]:
        try:
            if watcher.after is None:
                start = await self._call(_max_number)
                if watcher.after is None:  # no commit from this object arrived meanwhile
                    watcher.after = start
            while not self._closed:
                changed = self._changed  # taken before reading: a commit after the read still wakes us
                # watcher.after is read here, on the loop, not later by the worker.
                rows = await self._call(functools.partial(_rows_after, watcher.after))
                for row in rows:
                    revision = _revision(row)
                    watcher.after = revision.number
                    yield revision
                if not rows:
                    self._start_poller()
                    await changed.wait()
        except StoreError:
            if self._closed:
                return
            raise
        finally:
            self._watchers.discard(watcher)

    def _committed(self, number: int) -> None:
        """On the loop, after a commit of this object: place undecided watchers, wake all."""
        for watcher in self._watchers:
            if watcher.after is None:
                watcher.after = number - 1
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _start_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll(), name=f"poll {self._path}")

    async def _poll(self) -> None:
        """Wake watchers when another connection has committed; stops when nobody watches."""
        seen: int | None = None
        while self._watchers and not self._closed:
            await asyncio.sleep(self._poll_interval)
            try:
                head = await self._call(_max_number)
            except StoreError as e:
                log.warning("polling %s for new revisions failed: %s", self._path, e)
                continue
            if head != seen:
                seen = head
                self._notify()

    # -- the worker thread -------------------------------------------------------------

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError(f"{self._path}: the store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run_on_worker, fn)

    def _run_on_worker(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            if self._conn is None:
                self._conn = self._open_on_worker()
            return fn(self._conn)
        except sqlite3.Error as e:
            raise StoreError(f"{self._path}: {e}") from e

    def _open_on_worker(self) -> sqlite3.Connection:
        """Open the file, switch it to WAL and create the schema if it is new.

        Two connections opening a new file at once can get "database is
        locked" without SQLite's busy handler ever waiting (switching the
        journal mode takes an exclusive lock), so the whole opening is retried
        until :data:`BUSY_TIMEOUT`.
        """
        self._path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            conn = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT, isolation_level=None)
            try:
                self._prepare(conn)
                return conn
            except sqlite3.OperationalError as e:
                conn.close()
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
            except BaseException:
                conn.close()
                raise

    def _prepare(self, conn: sqlite3.Connection) -> None:
        (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        if str(mode).lower() != "wal":
            raise StoreError(f"{self._path}: SQLite refused WAL mode (journal_mode is {mode})")
        conn.execute("PRAGMA synchronous=FULL")
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self._path}: schema version {version} was written by a newer Switchman")
        if version < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Read again under the write lock: another process may have upgraded the file meanwhile.
                (version,) = conn.execute("PRAGMA user_version").fetchone()
                for migration in _MIGRATIONS[version:]:
                    for statement in migration:
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _commit_on_worker(
        self,
        conn: sqlite3.Connection,
        documents: tuple[Document, ...],
        author: str,
        message: str,
        expected_head: int | None,
        rollback_of: int | None,
        on_behalf_of: str | None,
    ) -> Revision:
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT number, documents FROM revisions ORDER BY number DESC LIMIT 1").fetchone()
            head: int | None = None if row is None else row[0]
            if head != expected_head:
                raise ConflictError(
                    f"{self._path}: expected head {_describe(expected_head)}, but the head is {_describe(head)}"
                )
            if rollback_of is not None and (
                conn.execute("SELECT 1 FROM revisions WHERE number = ?", (rollback_of,)).fetchone() is None
            ):
                raise revision_missing(rollback_of, head, "cannot roll back")
            changes = diff(() if row is None else decode(row[1]), documents)
            summary = RevisionSummary(
                number=(head or 0) + 1,
                author=author,
                created_at=time.time(),
                message=message,
                added=changes.added,
                changed=changes.changed,
                removed=changes.removed,
                rollback_of=rollback_of,
                on_behalf_of=on_behalf_of,
            )
            text = encode(documents)
            conn.execute(
                f"INSERT INTO revisions ({_ALL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    summary.number,
                    summary.author,
                    summary.created_at,
                    summary.message,
                    encode(summary.added),
                    encode(summary.changed),
                    encode(summary.removed),
                    summary.rollback_of,
                    summary.on_behalf_of,
                    text,
                ),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._sync_directory_once()
        # The documents as get() will return them: decoded from what was stored.
        return Revision(summary, tuple(decode(text)))

    def _sync_directory_once(self) -> None:
        """fsync the folder once the file and its ``-wal`` log exist (after the first commit)."""
        if self._dir_synced:
            return
        self._dir_synced = True
        with contextlib.suppress(OSError):  # not every platform or file system can
            fd = os.open(self._path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _close_on_worker(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _max_number(conn: sqlite3.Connection) -> int:
    (number,) = conn.execute("SELECT coalesce(max(number), 0) FROM revisions").fetchone()
    return int(number)


def _rows_after(after: int | None, conn: sqlite3.Connection) -> list[Any]:
    return conn.execute(
        f"SELECT {_ALL_COLUMNS} FROM revisions WHERE number > ? ORDER BY number LIMIT ?", (after, _WATCH_BATCH)
    ).fetchall()


def _describe(head: int | None) -> str:
    return "none (an empty store)" if head is None else str(head)


def _summary(row: Sequence[Any]) -> RevisionSummary:
    number, author, created_at, message, added, changed, removed, rollback_of, on_behalf_of = row[:9]
    return RevisionSummary(
        number=number,
        author=author,
        created_at=created_at,
        message=message,
        added=tuple(decode(added)),
        changed=tuple(decode(changed)),
        removed=tuple(decode(removed)),
        rollback_of=rollback_of,
        on_behalf_of=on_behalf_of,
    )


def _revision(row: Sequence[Any]) -> Revision:
    text = row[9]
    return Revision.later(_summary(row), lambda: tuple(decode(text)))
