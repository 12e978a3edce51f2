"""What one stream knows about one resource type: subscription, what was sent, what was ACKed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from switchman.xds.cache.resource import Resource

__all__ = ["Nack", "Pending", "Subscription", "TypeState"]

WILDCARD = "*"


@dataclass(slots=True)
class Subscription:
    """The names a client asked for (xDS protocol, "How the client specifies what resources to return").

    ``wildcard`` is set by the legacy form (a first request that names
    nothing) or by the explicit name ``*``; in the legacy form it ends as
    soon as the client names resources without ``*``.
    """

    wildcard: bool = False
    names: set[str] = field(default_factory=set)
    legacy: bool = False
    started: bool = False
    _selection: frozenset[str] | None = None

    def set_names(self, names: Iterable[str]) -> None:
        """A state-of-the-world request: the request's names are the whole subscription."""
        requested = set(names)
        if not self.started:
            self.started = True
            self.legacy = not requested
        elif requested:
            self.legacy = False
        self.wildcard = self.legacy or WILDCARD in requested
        self.names = requested - {WILDCARD}
        self._selection = None

    def change(self, subscribe: Iterable[str], unsubscribe: Iterable[str]) -> None:
        """A delta request: names added and removed."""
        added, removed = set(subscribe), set(unsubscribe)
        if not self.started:
            self.started = True
            self.legacy = self.wildcard = not added
        elif added and self.legacy:
            # Naming resources without "*" ends the legacy wildcard.
            self.legacy = self.wildcard = False
        if WILDCARD in added:
            self.wildcard = True
        if WILDCARD in removed:
            self.wildcard = self.legacy = False
        self.names |= added - {WILDCARD}
        self.names -= removed
        self._selection = None

    def covers(self, name: str) -> bool:
        return self.wildcard or name in self.names

    def selection(self) -> frozenset[str] | None:
        """The names to select from a snapshot; None means all of them."""
        if self.wildcard:
            return None
        if self._selection is None:
            self._selection = frozenset(self.names)
        return self._selection


@dataclass(slots=True, frozen=True)
class Nack:
    """A response the client rejected, with the client's own words."""

    version: str
    nonce: str
    message: str
    at: float


@dataclass(slots=True)
class Pending:
    """A response sent and not yet ACKed or NACKed."""

    nonce: str
    version: str
    upserts: dict[str, Resource]
    removed: tuple[str, ...]
    sent_at: float
    size: int


@dataclass(slots=True)
class TypeState:
    """One type on one stream.

    ``acked`` is what the client runs (as far as we know); ``sent_key``
    identifies the contents of the last response, so that the same contents
    are never sent twice in a row, in particular not after a NACK.
    """

    type_url: str
    subscription: Subscription = field(default_factory=Subscription)
    acked: dict[str, Resource] = field(default_factory=dict)
    acked_version: str = ""
    sent: dict[str, Resource] = field(default_factory=dict)
    sent_key: object = None
    pending: Pending | None = None
    nack: Nack | None = None
    client_versions: dict[str, str] = field(default_factory=dict)
    last_update: float = 0.0
    held_back: str = ""
    acked_generation: int = 0
    oversized: str = ""
    # (snapshot mapping, acked_generation, ACKed names not in that mapping)
    missing_cache: tuple[Mapping[str, Resource], int, frozenset[str]] | None = None
