"""xDS streams over gRPC: state of the world, delta, ADS, per-type services and CSDS."""

from __future__ import annotations

from switchman.xds.server.clients import CLIENT_KINDS, ResponseLimits
from switchman.xds.server.metrics import XdsMetrics
from switchman.xds.server.server import XdsServer, XdsSettings
from switchman.xds.server.status import NodeStatus, NodeSync, SyncProblem, TypeStatus

__all__ = [
    "CLIENT_KINDS", "NodeStatus", "NodeSync", "ResponseLimits", "SyncProblem", "TypeStatus", "XdsMetrics", "XdsServer",
    "XdsSettings",
]
