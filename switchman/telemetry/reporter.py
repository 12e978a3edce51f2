"""Which node group a reporting Envoy speaks for, and whether its client may speak for it.

Rollouts are judged by what Envoys report (access logs, load reports) per
node group, so a report counts only for a group its client may claim: the
same rule, and the same refusal, as an xDS stream's
(:meth:`switchman.xds.server.stream.StreamContext.refusal`, given by the
composition root). Without node identities any client may report as any group.
"""

from __future__ import annotations

from collections.abc import Callable

from envoy.config.core.v3 import base_pb2

from switchman.errors import PermissionDenied
from switchman.telemetry.metrics import TelemetryMetrics
from switchman.xds.cache import NodeGrouper
from switchman.xds.server.peer import Peer

__all__ = ["ReportRefusal", "reporting_group"]

#: Why ``peer`` may not report as node group ``group``; None when it may.
ReportRefusal = Callable[[Peer, str], str | None]


def reporting_group(node: base_pb2.Node, group_of: NodeGrouper, peer: Peer, refusal: ReportRefusal | None,
                    metrics: TelemetryMetrics, service: str) -> str:
    """The node group ``node`` reports as to ``service`` (``als``, ``lrs``); PermissionDenied (counted) when
    ``peer`` may not claim it."""
    group = group_of(node)
    why = refusal(peer, group) if refusal is not None else None
    if why is not None:
        metrics.refused.labels(service).inc()
        raise PermissionDenied(f"{why} (node {node.id[:200]!r} reporting)")
    return group
