"""What one stream knows about one resource type: subscription, what was sent, what was ACKed."""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from switchman.xds.cache.resource import Resource

__all__ = ["Nack", "Pending", "Subscription", "TypeState"]

WILDCARD = "*"

# One frozenset per distinct set of names: streams that subscribe to the same
# names share it, so a snapshot's selection memo finds it by identity instead
# of comparing every name, and plans can tell "same names" by identity.
_interned: weakref.WeakValueDictionary[frozenset[str], frozenset[str]] = weakref.WeakValueDictionary()


@dataclass(slots=True)
class Subscription:
    """The names a client asked for (xDS protocol, "How the client specifies what resources to return").

    ``wildcard`` is set by the legacy form (a first request that names
    nothing) or by the explicit name ``*``; in the legacy form it ends as
    soon as the client names resources without ``*``.

    :meth:`selection` returns the same object for as long as the names stay
    the same: an ACK that repeats them (state of the world) or names nothing
    (delta) keeps it.
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
        requested.discard(WILDCARD)
        if requested != self.names:
            self.names = requested
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
        if added or removed:
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
            names = frozenset(self.names)
            self._selection = _interned.setdefault(names, names)
        return self._selection


@dataclass(slots=True, frozen=True)
class Nack:
    """A response the client rejected, with the client's own words."""

    version: str
    nonce: str
    message: str
    at: float
    # The resources of the rejected response that the client did not already run: the suspects.
    resources: tuple[str, ...] = ()


@dataclass(slots=True)
class Pending:
    """A response sent and not yet ACKed or NACKed."""

    nonce: str
    version: str
    upserts: Mapping[str, Resource]  # read-only; in state of the world, the plan's (shared) mapping
    removed: tuple[str, ...]
    sent_at: float
    size: int


@dataclass(slots=True)
class TypeState:
    """One type on one stream.

    ``acked`` is what the client runs (as far as we know), read-only: change
    it only through :meth:`replace_acked` (state of the world) or
    :meth:`add_acked` and :meth:`drop_acked` (delta), which count changes to
    its names in ``acked_names``. ``sent`` (read-only, shared) is what the
    last response made the client hold; ``sent_key`` identifies its
    contents, so that the same contents are never sent twice in a row, in
    particular not after a NACK.
    """

    type_url: str
    subscription: Subscription = field(default_factory=Subscription)
    acked: Mapping[str, Resource] = field(default_factory=dict)
    acked_version: str = ""
    sent: Mapping[str, Resource] = field(default_factory=dict)
    sent_key: object = None
    pending: Pending | None = None
    nack: Nack | None = None
    client_versions: dict[str, str] = field(default_factory=dict)
    last_update: float = 0.0
    held_back: str = ""
    oversized: str = ""
    # Bumped whenever the set of names in ``acked`` changes, not when an ACK
    # only changes versions: with the snapshot's names_serial it keys
    # missing_cache, (names_serial, acked_names, ACKed names not in the snapshot).
    acked_names: int = 0
    missing_cache: tuple[int, int, frozenset[str]] | None = None
    # (type snapshot serial, selection) of the last plan that the client's
    # state (``client_versions`` in delta, ``sent`` in state of the world)
    # reflects exactly; None when unknown. See plan.Plan.changed.
    planned: tuple[int, frozenset[str] | None] | None = None
    # Clusters on ADS only (see warming): the assignments of EDS clusters that CDS responses added or
    # changed, which the next EDS response carries even if the client has them.
    resend: frozenset[str] = frozenset()

    def replace_acked(self, resources: Mapping[str, Resource]) -> None:
        """The client holds exactly ``resources`` (a state-of-the-world ACK).

        Kept, not copied: a plan's mapping is read-only and often shared by
        every stream (10,000 resources x every stream x every ACK otherwise).
        """
        if resources.keys() != self.acked.keys():
            self.acked_names += 1
        # A dict in ``acked`` is one this state owns and may edit (see _own_acked).
        self.acked = MappingProxyType(resources) if isinstance(resources, dict) else resources

    def add_acked(self, resources: Iterable[Resource]) -> None:
        """The client holds ``resources`` too, or now in these versions."""
        acked = self._own_acked()
        before = len(acked)
        acked.update((r.name, r) for r in resources)
        if len(acked) != before:  # it only grows: a new name
            self.acked_names += 1

    def drop_acked(self, names: Iterable[str]) -> None:
        """The client no longer holds ``names``."""
        acked = self._own_acked()
        before = len(acked)
        for name in names:
            acked.pop(name, None)
        if len(acked) != before:  # it only shrinks: a name left
            self.acked_names += 1

    def _own_acked(self) -> dict[str, Resource]:
        if not isinstance(self.acked, dict):  # shared by replace_acked: copy before editing
            self.acked = dict(self.acked)
        return self.acked
