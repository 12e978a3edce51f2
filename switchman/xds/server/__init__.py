"""xDS streams over gRPC: state of the world, delta, ADS, per-type services and CSDS."""

from __future__ import annotations

from switchman.xds.server.metrics import XdsMetrics
from switchman.xds.server.server import XdsServer, XdsSettings
from switchman.xds.server.status import NodeStatus, TypeStatus

__all__ = ["NodeStatus", "TypeStatus", "XdsMetrics", "XdsServer", "XdsSettings"]
