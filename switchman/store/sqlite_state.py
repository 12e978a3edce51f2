"""Runtime state records and leases in the SQLite file, beside the revisions.

Three tables (schema version 2)::

    state        key, value (JSON), version, updated_at
    state_clock  one row: the last version given to any record
    leases       name, holder, expires_at (wall clock)

Versions come from ``state_clock``, one counter for the whole file, and not
from a per-key count: a record that is deleted and created again then never
gets back a version a stale writer still holds (etcd's mod_revision behaves
the same way).

Every write is made in a ``BEGIN IMMEDIATE`` transaction, like a commit: the
write lock is held before anything is read, so the version check and the
write, or the lease check and the take, see the same row even when another
process writes the same file; and with WAL and ``synchronous=FULL`` a write
that returned is on disk. Writes that arrive together share one transaction,
each in a savepoint of its own (:mod:`switchman.store.sqlite_batch`).

Leases expire by the wall clock (``time.time()``), read after the lock is
taken: processes sharing a file share a machine, and so a clock, but a clock
step shortens or lengthens the leases running at that moment.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from switchman.store.base import ConflictError, StateRecord, StoreError
from switchman.store.diff import decode
from switchman.store.sqlite_batch import WriteBatch
from switchman.store.state import check_expected, check_key, check_lease, describe_version, encode_state

__all__ = ["STATE_SCHEMA", "SqliteState"]

#: The tables schema version 2 adds; each statement may run again harmlessly.
STATE_SCHEMA: Final = (
    """
    CREATE TABLE IF NOT EXISTS state (
        key        TEXT    PRIMARY KEY,
        value      TEXT    NOT NULL,
        version    INTEGER NOT NULL,
        updated_at REAL    NOT NULL
    )
    """,
    "CREATE TABLE IF NOT EXISTS state_clock (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO state_clock (id, version) VALUES (1, 0)",
    """
    CREATE TABLE IF NOT EXISTS leases (
        name       TEXT PRIMARY KEY,
        holder     TEXT NOT NULL,
        expires_at REAL NOT NULL
    )
    """,
)
_COLUMNS: Final = "key, value, version, updated_at"

T = TypeVar("T")


class SqliteState:
    """The :class:`~switchman.store.base.StateStore` half of :class:`~switchman.store.sqlite.SqliteStore`.

    A mixin: it runs its work through the store's worker thread, so it needs
    the store's ``_call``, ``_path``, ``_sync_directory_once`` and a
    :class:`~switchman.store.sqlite_batch.WriteBatch` made with them, ``_writes``.
    """

    _path: Path
    _writes: WriteBatch

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # SqliteStore's

    def _sync_directory_once(self) -> None:
        raise NotImplementedError  # SqliteStore's

    # -- state records -----------------------------------------------------------------

    async def get_state(self, key: str) -> StateRecord | None:
        """The record under ``key``, or None."""
        check_key(key)
        row = await self._call(lambda c: c.execute(f"SELECT {_COLUMNS} FROM state WHERE key = ?", (key,)).fetchone())
        return None if row is None else _record(row)

    async def list_state(self, prefix: str) -> list[StateRecord]:
        """Every record whose key starts with ``prefix`` (``""``: all), sorted by key.

        Keys compare as SQLite's BINARY collation does, which for UTF-8 is
        code point order: the order of Python's ``sorted`` and of etcd.
        """
        rows = await self._call(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM state WHERE substr(key, 1, ?) = ? ORDER BY key", (len(prefix), prefix)
            ).fetchall()
        )
        return [_record(row) for row in rows]

    async def put_state(self, key: str, value: Mapping[str, Any], *, expected_version: int | None) -> StateRecord:
        """Write ``value`` under ``key`` if the record is still at ``expected_version`` (None: absent).

        Raises :class:`ConflictError` and writes nothing otherwise. Durable
        when it returns. A cancelled caller may still have written.
        """
        text = encode_state(key, value)
        check_expected(expected_version)
        write = functools.partial(self._put_on_worker, key, text, expected_version)
        version, updated_at = await self._writes.write(write)
        # The mapping written, not read back (decoding what was just encoded costs a state's size in time
        # for nothing): for values of JSON's own types, equal to what get_state() returns.
        return StateRecord(key, value, version, updated_at)

    async def delete_state(self, key: str, *, expected_version: int | None = None) -> None:
        """Delete the record under ``key``, if it is at ``expected_version`` (None: whatever it is at)."""
        check_key(key)
        check_expected(expected_version)
        await self._writes.write(functools.partial(self._delete_on_worker, key, expected_version))

    # -- leases ------------------------------------------------------------------------

    async def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``ttl`` seconds from now.

        True when ``holder`` holds it now; False when another holder's lease
        has not expired yet.
        """
        check_lease(name, holder, ttl)
        return await self._writes.write(functools.partial(self._acquire_on_worker, name, holder, ttl))

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up, if ``holder`` holds it (expired or not); otherwise do nothing."""
        check_lease(name, holder)
        await self._writes.write(
            lambda c: c.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder)).close()
        )

    async def lease_holder(self, name: str) -> str | None:
        """Who holds the lease ``name`` now (an expired lease has no holder), or None."""
        check_lease(name)
        row = await self._call(
            lambda c: c.execute(
                "SELECT holder FROM leases WHERE name = ? AND expires_at > ?", (name, time.time())
            ).fetchone()
        )
        return None if row is None else str(row[0])

    # -- the worker thread: each inside the transaction of its batch ---------------------

    def _put_on_worker(self, key: str, text: str, expected: int | None, conn: sqlite3.Connection) -> tuple[int, float]:
        self._check_version(conn, key, expected)
        conn.execute("UPDATE state_clock SET version = version + 1 WHERE id = 1")
        (version,) = conn.execute("SELECT version FROM state_clock WHERE id = 1").fetchone()
        updated_at = time.time()
        conn.execute(f"INSERT OR REPLACE INTO state ({_COLUMNS}) VALUES (?, ?, ?, ?)", (key, text, version, updated_at))
        return int(version), updated_at

    def _delete_on_worker(self, key: str, expected: int | None, conn: sqlite3.Connection) -> None:
        if expected is not None:
            self._check_version(conn, key, expected)
        conn.execute("DELETE FROM state WHERE key = ?", (key,))

    def _check_version(self, conn: sqlite3.Connection, key: str, expected: int | None) -> None:
        row = conn.execute("SELECT version FROM state WHERE key = ?", (key,)).fetchone()
        current: int | None = None if row is None else int(row[0])
        if current != expected:
            raise ConflictError(
                f"{self._path}: state {key!r}: expected version {describe_version(expected)},"
                f" but it is {'absent' if current is None else current}"
            )

    def _acquire_on_worker(self, name: str, holder: str, ttl: float, conn: sqlite3.Connection) -> bool:
        # The clock is read with the write lock held: a time read before
        # waiting for another process's transaction would be stale.
        now = time.time()
        row = conn.execute("SELECT holder, expires_at FROM leases WHERE name = ?", (name,)).fetchone()
        if row is not None and row[0] != holder and row[1] > now:
            return False
        conn.execute(
            "INSERT OR REPLACE INTO leases (name, holder, expires_at) VALUES (?, ?, ?)", (name, holder, now + ttl)
        )
        return True


def _record(row: Sequence[Any]) -> StateRecord:
    key, text, version, updated_at = row
    value = decode(text)
    if not isinstance(value, Mapping):
        raise StoreError(f"state {key!r}: the stored value is not a JSON object")
    return StateRecord(key, value, int(version), float(updated_at))
