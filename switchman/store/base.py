"""The store: every applied configuration as a numbered, immutable revision,
and beside the revisions, runtime state and leases.

The store knows nothing of the config model: a revision holds documents as
plain JSON-able mappings, already validated by the caller. Backends:
SQLite (one file, the default) and etcd (several Switchman replicas share
one config and see each other's commits through watches).

Runtime state (a rollout's phase, step and analysis results) is not config:
people do not change it, and the history must not fill with a revision per
analysis tick. So it lives apart, as versioned records written with
optimistic concurrency, and with leases that let exactly one replica drive
a given rollout.

Two Protocols: :class:`StateStore` (records and leases) and :class:`Store`,
which extends it with revisions. The rollout engine needs only the first,
and names it so that its dependency is no wider than it uses; ``serve``
wires one store object to both the config controller and the engine, so
the type :func:`~switchman.store.open_store` returns must promise both,
which is why :class:`Store` inherits rather than sits beside it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from switchman.errors import SwitchmanError

__all__ = [
    "MAX_STATE_BYTES",
    "ConflictError",
    "Revision",
    "RevisionNotFound",
    "RevisionSummary",
    "StateRecord",
    "StateStore",
    "Store",
    "StoreError",
]

Document = Mapping[str, Any]

#: The largest state value, as encoded JSON (UTF-8): well under etcd's default
#: 1.5 MiB request limit, so both backends accept the same values.
MAX_STATE_BYTES: Final = 1024 * 1024


class StoreError(SwitchmanError):
    """Raised when the store cannot be read or written (disk, etcd unreachable)."""


class ConflictError(StoreError):
    """Raised when a write expected something that is no longer so: a commit's head
    revision, or a state record's version (or its absence)."""


class RevisionNotFound(StoreError):
    """Raised when a revision number does not exist, or no longer does (pruned from the history)."""


def revision_missing(number: int, head: int | None, doing: str = "") -> RevisionNotFound:
    """The error for a revision that is not there: pruned when it is older than ``head``, else never made.

    Numbers have no gaps and the head is never pruned, so a number from 1 to
    the head that cannot be read was deleted by :meth:`Store.prune`.
    """
    prefix = f"{doing}: " if doing else ""
    if head is not None and 1 <= number < head:
        return RevisionNotFound(
            f"{prefix}revision {number} was pruned from the history (the store keeps the newest revisions only:"
            " switchman serve --history-keep)"
        )
    return RevisionNotFound(f"{prefix}revision {number} does not exist")


def check_keep(keep: int) -> None:
    """``keep`` of :meth:`Store.prune`: a whole number of revisions, 1 or more (the head stays)."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"prune keeps 1 or more revisions, not {keep!r}")


@dataclass(frozen=True, slots=True)
class RevisionSummary:
    """One entry of the history: who, when, why, and what changed (``kind/name`` lists).

    ``author`` is who made the change as the API knows them (the token's name);
    ``on_behalf_of`` is whom they said they acted for (``X-Switchman-Author``), if anyone.
    """

    number: int
    author: str
    created_at: float
    message: str
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    rollback_of: int | None = None
    on_behalf_of: str | None = None


class Revision:
    """The whole configuration as of one commit.

    Made with its documents, or with a function that gives them (:meth:`later`): a follower that is
    handed every revision skips those it serves already, and should not pay for decoding them."""

    __slots__ = ("_documents", "_load", "summary")

    def __init__(self, summary: RevisionSummary, documents: tuple[Document, ...]) -> None:
        self.summary = summary
        self._documents: tuple[Document, ...] | None = documents
        self._load: Callable[[], tuple[Document, ...]] | None = None

    @classmethod
    def later(cls, summary: RevisionSummary, load: Callable[[], tuple[Document, ...]]) -> Revision:
        """A revision whose documents ``load()`` gives when they are first read."""
        revision = cls(summary, ())
        revision._documents, revision._load = None, load
        return revision

    @property
    def documents(self) -> tuple[Document, ...]:
        if self._documents is None:
            assert self._load is not None
            self._documents, self._load = self._load(), None
        return self._documents

    @property
    def number(self) -> int:
        return self.summary.number

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Revision):
            return NotImplemented
        return self.summary == other.summary and self.documents == other.documents

    __hash__ = None  # type: ignore[assignment]  # documents are dicts

    def __repr__(self) -> str:
        return f"Revision({self.summary!r}, {len(self.documents)} documents)"


@dataclass(frozen=True, slots=True)
class StateRecord:
    """One runtime state record, as of one write.

    ``version`` changes on every write and is never given again under the
    same key, even after a delete and a re-create (etcd's mod_revision; a
    counter across the SQLite file): compare it for equality, nothing else.
    A stale writer can therefore never match a record it did not read.
    """

    key: str
    value: Mapping[str, Any]
    version: int
    updated_at: float


class StateStore(Protocol):
    """Runtime state records and leases, shared by every replica on the same store.

    Every write is durable when it returns. Arguments that cannot be right
    (an empty key, name or holder, a version below 1, a TTL that is not a
    positive number) raise ``ValueError``: they are the caller's bug.
    """

    async def get_state(self, key: str) -> StateRecord | None:
        """The record under ``key``, or None."""

    async def list_state(self, prefix: str) -> list[StateRecord]:
        """Every record whose key starts with ``prefix`` (``""``: all), sorted by key."""

    async def put_state(self, key: str, value: Mapping[str, Any], *, expected_version: int | None) -> StateRecord:
        """Write ``value`` under ``key`` if the record is still at ``expected_version``.

        None means the record must not exist yet. Raises
        :class:`ConflictError` (and writes nothing) otherwise, and
        :class:`StoreError` naming the key for a value that is not plain JSON
        or is over :data:`MAX_STATE_BYTES` encoded.
        """

    async def delete_state(self, key: str, *, expected_version: int | None = None) -> None:
        """Delete the record under ``key``; with ``expected_version``, only if it is at that version.

        A version that does not match (or a record that is not there) raises
        :class:`ConflictError`; a delete without one of a missing record
        does nothing.
        """

    async def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew the lease ``name`` for ``holder``, for ``ttl`` seconds from now.

        True when ``holder`` holds it now (it was free or expired, or
        ``holder`` already held it); False when another holder has it.
        A holder that stops renewing loses the lease when the TTL runs out,
        also when its process dies.
        """

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up, if ``holder`` holds it; otherwise do nothing."""

    async def lease_holder(self, name: str) -> str | None:
        """Who holds the lease ``name`` now, or None."""


class Store(StateStore, Protocol):
    """What every backend offers. A commit is atomic and durable when it returns."""

    async def head(self) -> Revision | None:
        """The newest revision, or None for an empty store."""

    async def head_number(self) -> int | None:
        """The newest revision's number (None: an empty store), without reading its documents:
        a cheap way to ask whether the store answers and where its head is."""

    async def get(self, number: int) -> Revision:
        """Revision ``number``; raises :class:`RevisionNotFound`, saying so when it was pruned."""

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

        Raises :class:`ConflictError` otherwise (optimistic concurrency). The
        summary's added/changed/removed lists are computed against the head,
        by ``kind/metadata.name``.
        """

    async def history(self, limit: int = 50) -> list[RevisionSummary]:
        """The newest ``limit`` revisions, newest first."""

    async def prune(self, keep: int) -> int:
        """Delete every revision but the newest ``keep`` (1 or more: the head always stays);
        returns how many were deleted. Numbers are never given again: the next commit is
        still the head's number plus one."""

    def watch(self, *, after: int | None = None) -> AsyncIterator[Revision]:
        """Every new head numbered above ``after`` (None: above the head at the first iteration),
        from this process or another replica."""

    async def close(self) -> None:
        """Release files and connections."""
