"""The telemetry services on the xDS port: as methods of the HTTP/2 transport, or as grpc.aio servicers.

Both serve the same streams (:class:`AccessLogStream`, :class:`LoadStatsStream`)
into one recorder; the composition root adds one form or the other, and says
which clients may report as which node group (:mod:`switchman.telemetry.reporter`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from envoy.service.accesslog.v3 import als_pb2_grpc
from envoy.service.load_stats.v3 import lrs_pb2_grpc
from grpc import aio

from switchman.telemetry.als import AccessLogService, AccessLogStream, access_log_method
from switchman.telemetry.lrs import LoadReportingService, LoadStatsStream, load_stats_method
from switchman.telemetry.metrics import TelemetryMetrics
from switchman.telemetry.recorder import TrafficRecorder
from switchman.telemetry.reporter import ReportRefusal
from switchman.xds.cache import NodeGrouper
from switchman.xds.server.methods import StreamMethod
from switchman.xds.server.peer import Peer

__all__ = ["TelemetrySettings", "add_telemetry_services", "telemetry_methods"]


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """How often Envoys report load, and how many access-log entries a stream may have recorded a second."""

    load_reporting_interval: float = 1.0
    max_entries_per_second: float = 5000.0


def _openers(
    recorder: TrafficRecorder, group_of: NodeGrouper, metrics: TelemetryMetrics, settings: TelemetrySettings,
    refusal: ReportRefusal | None,
) -> tuple[Callable[[Peer], AccessLogStream], Callable[[Peer], LoadStatsStream]]:
    def access_logs(peer: Peer) -> AccessLogStream:
        return AccessLogStream(recorder, group_of, metrics, settings.max_entries_per_second, peer=peer,
                               refusal=refusal)

    def load_stats(peer: Peer) -> LoadStatsStream:
        return LoadStatsStream(recorder, group_of, metrics, settings.load_reporting_interval, peer=peer,
                               refusal=refusal)

    return access_logs, load_stats


def telemetry_methods(
    recorder: TrafficRecorder, group_of: NodeGrouper, metrics: TelemetryMetrics,
    settings: TelemetrySettings | None = None, refusal: ReportRefusal | None = None,
) -> list[StreamMethod]:
    """ALS and LRS as methods of the HTTP/2 transport (``XdsServer.add_methods``); ``refusal`` says which
    clients may not report as a node group (None: any may)."""
    access_logs, load_stats = _openers(recorder, group_of, metrics, settings or TelemetrySettings(), refusal)
    return [access_log_method(access_logs), load_stats_method(load_stats)]


def add_telemetry_services(
    server: aio.Server, recorder: TrafficRecorder, group_of: NodeGrouper, metrics: TelemetryMetrics,
    settings: TelemetrySettings | None = None, refusal: ReportRefusal | None = None,
) -> None:
    """Serve ALS and LRS on a grpc.aio ``server`` before it starts (``XdsServer.add_service``)."""
    access_logs, load_stats = _openers(recorder, group_of, metrics, settings or TelemetrySettings(), refusal)
    als_pb2_grpc.add_AccessLogServiceServicer_to_server(AccessLogService(access_logs), server)
    lrs_pb2_grpc.add_LoadReportingServiceServicer_to_server(LoadReportingService(load_stats), server)
