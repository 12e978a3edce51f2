"""The store: every applied configuration as a numbered, immutable revision.

The store knows nothing of the config model: a revision holds documents as
plain JSON-able mappings, already validated by the caller. Backends:
SQLite (one file, the default) and etcd (several Switchman replicas share
one config and see each other's commits through watches).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from switchman.errors import SwitchmanError

__all__ = ["ConflictError", "Revision", "RevisionNotFound", "RevisionSummary", "Store", "StoreError"]

Document = Mapping[str, Any]


class StoreError(SwitchmanError):
    """Raised when the store cannot be read or written (disk, etcd unreachable)."""


class ConflictError(StoreError):
    """Raised when a commit expected a head revision that is no longer the head."""


class RevisionNotFound(StoreError):
    """Raised when a revision number does not exist."""


@dataclass(frozen=True, slots=True)
class RevisionSummary:
    """One entry of the history: who, when, why, and what changed (``kind/name`` lists)."""

    number: int
    author: str
    created_at: float
    message: str
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    rollback_of: int | None = None


@dataclass(frozen=True, slots=True)
class Revision:
    """The whole configuration as of one commit."""

    summary: RevisionSummary
    documents: tuple[Document, ...]

    @property
    def number(self) -> int:
        return self.summary.number


class Store(Protocol):
    """What every backend offers. A commit is atomic and durable when it returns."""

    async def head(self) -> Revision | None:
        """The newest revision, or None for an empty store."""

    async def get(self, number: int) -> Revision:
        """Revision ``number``; raises :class:`RevisionNotFound`."""

    async def commit(
        self,
        documents: Sequence[Document],
        *,
        author: str,
        message: str,
        expected_head: int | None,
        rollback_of: int | None = None,
    ) -> Revision:
        """Store ``documents`` as the next revision if the head is still ``expected_head``.

        Raises :class:`ConflictError` otherwise (optimistic concurrency). The
        summary's added/changed/removed lists are computed against the head,
        by ``kind/metadata.name``.
        """

    async def history(self, limit: int = 50) -> list[RevisionSummary]:
        """The newest ``limit`` revisions, newest first."""

    def watch(self, *, after: int | None = None) -> AsyncIterator[Revision]:
        """Every new head numbered above ``after`` (None: above the head at the first iteration),
        from this process or another replica."""

    async def close(self) -> None:
        """Release files and connections."""
