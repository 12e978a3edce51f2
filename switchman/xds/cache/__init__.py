"""Snapshots and the cache of them by node group; no gRPC here."""

from __future__ import annotations

from switchman.xds.cache.cache import DEFAULT_GROUP, SnapshotCache
from switchman.xds.cache.groups import NodeGrouper, grouper
from switchman.xds.cache.resource import Resource
from switchman.xds.cache.snapshot import Selection, Snapshot, TypeSnapshot

__all__ = [
    "DEFAULT_GROUP",
    "NodeGrouper",
    "Resource",
    "Selection",
    "Snapshot",
    "SnapshotCache",
    "TypeSnapshot",
    "grouper",
]
