"""The snapshot cache: the current snapshot of each node group, and who watches it.

It knows nothing of gRPC. Streams register a callback for their group and
read the snapshot when called; setting a snapshot calls every watcher of the
groups it affects. A snapshot set for :data:`DEFAULT_GROUP` serves every
group that has none of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from switchman.xds.cache.snapshot import Snapshot

__all__ = ["DEFAULT_GROUP", "SnapshotCache", "Unwatch", "Watcher"]

DEFAULT_GROUP: Final = "*"

Watcher = Callable[[], None]
Unwatch = Callable[[], None]

log = logging.getLogger(__name__)


class SnapshotCache:
    """Snapshots by node group, with change callbacks."""

    def __init__(self) -> None:
        self._snapshots: dict[str, Snapshot] = {}
        self._watchers: dict[str, set[Watcher]] = {}

    def set_snapshot(self, group: str, snapshot: Snapshot) -> None:
        """Make ``snapshot`` current for ``group`` and wake the streams it concerns."""
        self._snapshots[group] = snapshot
        if group == DEFAULT_GROUP:
            affected = [g for g in self._watchers if g not in self._snapshots or g == group]
        else:
            affected = [group]
        for name in affected:
            for watcher in tuple(self._watchers.get(name, ())):
                watcher()

    def clear_snapshot(self, group: str) -> None:
        """Forget ``group``'s snapshot; its nodes fall back to the default group's."""
        if self._snapshots.pop(group, None) is not None:
            for watcher in tuple(self._watchers.get(group, ())):
                watcher()

    def snapshot(self, group: str) -> Snapshot | None:
        """The snapshot that serves ``group`` now, or None."""
        return self._snapshots.get(group) or self._snapshots.get(DEFAULT_GROUP)

    def groups(self) -> list[str]:
        """The groups that have a snapshot of their own."""
        return sorted(self._snapshots)

    def watch(self, group: str, watcher: Watcher) -> Unwatch:
        """Call ``watcher`` whenever ``group``'s snapshot changes; returns the undo."""
        self._watchers.setdefault(group, set()).add(watcher)

        def unwatch() -> None:
            watchers = self._watchers.get(group)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._watchers[group]

        return unwatch
