"""Immutable, consistency-checked snapshots of xDS resources.

A snapshot is what one group of nodes should run: resources by type, a
version per type. It is checked when it is built: no route or listener may
name a cluster or route configuration that is not in it, no load assignment
may exist for a cluster that is not in it, and no name may appear twice.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from google.protobuf.message import Message

from switchman.errors import SnapshotError
from switchman.xds import resources as rt
from switchman.xds.cache.resource import Resource

__all__ = ["Selection", "Snapshot", "TypeSnapshot"]

_MEMO_LIMIT: Final = 1024
# How many ancestors a type snapshot remembers its differences from. A stream
# that fell further behind diffs everything, which is still correct.
_HISTORY: Final = 8
_serials = itertools.count(1)
# References that must resolve inside the snapshot. A cluster's reference to
# its load assignment is not one of them: an EDS cluster may wait for
# endpoints (Envoy's initial_fetch_timeout decides how long).
_HARD_REFERENCES: Final = frozenset({rt.CLUSTER, rt.ROUTE})


@dataclass(frozen=True, slots=True)
class Selection:
    """Some resources of one type, encoded once for every stream that asks for the same names.

    ``key`` is a digest of the names and versions: two selections with the
    same key carry the same contents. ``mapping`` holds the same resources by
    name, read-only: every stream that selects these names shares it (a plan,
    what was sent, what is pending), so none copies it.
    """

    resources: tuple[Resource, ...]
    body: bytes
    key: str
    mapping: Mapping[str, Resource]


@dataclass(frozen=True, slots=True)
class TypeSnapshot:
    """The resources of one type in a snapshot, with the version of the set.

    ``serial`` identifies this object and is never reused (unlike ``id()``).
    ``names_serial`` is shared with the type snapshot it derives from when
    both hold the same names, so caches of name sets survive endpoint changes.
    ``history`` is what :meth:`Snapshot.with_changes` knows of the ancestors:
    ``(ancestor serial, names that differ from it)``, nearest first.
    """

    type_url: str
    version: str
    resources: MappingProxyType[str, Resource]
    serial: int = field(default_factory=lambda: next(_serials), compare=False)
    names_serial: int = field(default=0, compare=False)  # 0: a new set of names (this serial)
    history: tuple[tuple[int, frozenset[str]], ...] = field(default=(), compare=False, repr=False)
    _selections: dict[frozenset[str] | None, Selection] = field(
        default_factory=dict, compare=False, repr=False
    )
    _referenced: dict[str, frozenset[str]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.names_serial:
            object.__setattr__(self, "names_serial", self.serial)

    def changes_since(self, serial: int) -> frozenset[str] | None:
        """The names whose resource may differ from type snapshot ``serial``; None when unknown.

        A superset: a name changed and changed back is in it.
        """
        if serial == self.serial:
            return frozenset()
        for ancestor, changed in self.history:
            if ancestor == serial:
                return changed
        return None

    def child(self, version: str, resources: dict[str, Resource], changed: frozenset[str]) -> TypeSnapshot:
        """The next type snapshot: ``resources``, which differ from these in ``changed`` only."""
        history = ((self.serial, changed), *((s, c | changed) for s, c in self.history[: _HISTORY - 1]))
        return TypeSnapshot(
            self.type_url,
            version,
            MappingProxyType(resources),
            names_serial=self.names_serial if resources.keys() == self.resources.keys() else 0,
            history=history,
        )

    def referenced(self, type_url: str) -> frozenset[str]:
        """The names of ``type_url`` that these resources name, memoized."""
        found = self._referenced.get(type_url)
        if found is None:
            found = self._referenced[type_url] = frozenset(
                name for r in self.resources.values() for ref_type, name in r.references if ref_type == type_url
            )
        return found

    def select(self, names: frozenset[str] | None) -> Selection:
        """The resources among ``names`` (None: all), memoized per set of names."""
        found = self._selections.get(names)
        if found is None:
            mapping: Mapping[str, Resource]
            if names is None:
                chosen = tuple(self.resources[n] for n in sorted(self.resources))
                key, mapping = self.version, self.resources
            else:
                chosen = tuple(self.resources[n] for n in sorted(names) if n in self.resources)
                mapping = MappingProxyType({r.name: r for r in chosen})
                key = _type_version(mapping)
            found = Selection(chosen, b"".join(r.sotw_field for r in chosen), key, mapping)
            if len(self._selections) >= _MEMO_LIMIT:
                self._selections.clear()
            self._selections[names] = found
        return found


def _type_version(items: Mapping[str, Resource]) -> str:
    # name NUL version, name NUL version, ... hashed in one update (10,000 updates cost milliseconds).
    text = "".join([f"{name}\0{items[name].version}" for name in sorted(items)])
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _as_resource(item: Message | Resource) -> Resource:
    return item if isinstance(item, Resource) else Resource(item)


def _empty(type_url: str) -> TypeSnapshot:
    return TypeSnapshot(type_url, "", MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one node group should run. Build with :meth:`build`; change with :meth:`with_changes`."""

    types: Mapping[str, TypeSnapshot]

    @classmethod
    def build(cls, items: Iterable[Message | Resource], version: str | None = None) -> Snapshot:
        """A checked snapshot of ``items``; ``version`` (else a content digest) for every type.

        Raises :class:`SnapshotError` naming the first dangling reference or duplicate name.
        """
        by_type: dict[str, dict[str, Resource]] = {url: {} for url in rt.TYPE_URLS}
        for item in items:
            resource = _as_resource(item)
            bucket = by_type[resource.type_url]
            if resource.name in bucket:
                raise SnapshotError(
                    f"{rt.short_name(resource.type_url)}/{resource.name}", "the name appears twice"
                )
            bucket[resource.name] = resource
        snapshot = cls(
            MappingProxyType(
                {
                    url: TypeSnapshot(url, version or _type_version(res), MappingProxyType(res))
                    for url, res in by_type.items()
                }
            )
        )
        snapshot.check()
        return snapshot

    def get(self, type_url: str) -> TypeSnapshot:
        """The resources of ``type_url`` (empty when there are none)."""
        return self.types.get(type_url) or _empty(type_url)

    def version(self, type_url: str) -> str:
        return self.get(type_url).version

    def with_changes(
        self,
        upsert: Iterable[Message | Resource] = (),
        remove: Iterable[tuple[str, str]] = (),
        version: str | None = None,
    ) -> Snapshot:
        """A new snapshot with ``upsert`` added or replaced and ``remove`` ``(type_url, name)`` gone.

        Only the changed types are rebuilt; the rest are shared with this
        snapshot. When only endpoints change, only they are checked. Each
        rebuilt type remembers which names changed (:meth:`TypeSnapshot.changes_since`),
        so that streams diff only those.
        """
        changed: dict[str, dict[str, Resource]] = {}
        touched: dict[str, set[str]] = {}  # names whose resource differs, by type

        def bucket(type_url: str) -> dict[str, Resource]:
            found = changed.get(type_url)
            if found is None:
                found = changed[type_url] = self.get(type_url).resources.copy()
                touched[type_url] = set()
            return found

        for item in upsert:
            resource = _as_resource(item)
            resources = bucket(resource.type_url)
            old = resources.get(resource.name)
            if old is None or old.version != resource.version:
                touched[resource.type_url].add(resource.name)
            resources[resource.name] = resource
        for type_url, name in remove:
            if bucket(type_url).pop(name, None) is not None:
                touched[type_url].add(name)
        types = dict(self.types)
        for url, res in changed.items():
            types[url] = self.get(url).child(version or _type_version(res), res, frozenset(touched[url]))
        snapshot = Snapshot(MappingProxyType(types))
        if set(changed) <= {rt.ENDPOINT}:
            endpoints = changed.get(rt.ENDPOINT, {})
            snapshot._check_endpoints(endpoints[n] for n in touched.get(rt.ENDPOINT, ()) if n in endpoints)
        else:
            snapshot.check()
        return snapshot

    def check(self) -> None:
        """Raise :class:`SnapshotError` for the first reference that does not resolve."""
        for type_url in (rt.LISTENER, rt.ROUTE):
            for resource in self.get(type_url).resources.values():
                for ref_type, ref_name in resource.references:
                    if ref_type in _HARD_REFERENCES and ref_name not in self.get(ref_type).resources:
                        raise SnapshotError(
                            f"{rt.short_name(type_url)}/{resource.name}",
                            f"names {rt.short_name(ref_type)}/{ref_name}, which is not in the snapshot",
                        )
        self._check_endpoints(self.get(rt.ENDPOINT).resources.values())

    def _check_endpoints(self, assignments: Iterable[Resource]) -> None:
        wanted = self.eds_names()
        for assignment in assignments:
            if assignment.name not in wanted:
                raise SnapshotError(
                    f"eds/{assignment.name}",
                    "endpoints for a cluster that is not in the snapshot (or is not of type EDS)",
                )

    def eds_names(self) -> frozenset[str]:
        """The load-assignment names that the snapshot's EDS clusters ask for."""
        return self.get(rt.CLUSTER).referenced(rt.ENDPOINT)
