"""The xDS protocol: snapshots, the cache, and the gRPC server. Knows nothing of the config model."""

from __future__ import annotations

from switchman.xds.cache import DEFAULT_GROUP, Resource, Snapshot, SnapshotCache
from switchman.xds.server import NodeStatus, TypeStatus, XdsMetrics, XdsServer, XdsSettings

__all__ = [
    "DEFAULT_GROUP",
    "NodeStatus",
    "Resource",
    "Snapshot",
    "SnapshotCache",
    "TypeStatus",
    "XdsMetrics",
    "XdsServer",
    "XdsSettings",
]
