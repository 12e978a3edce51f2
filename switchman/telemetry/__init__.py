"""What the data plane itself reports of its traffic: Envoy's access logs (ALS) and load reports (LRS).

Both services run on the xDS port (either transport) and feed one
:class:`TrafficRecorder`; :meth:`TrafficRecorder.window` says how a cluster
did in a window of time, as a :class:`TrafficStats`, for a canary's verdict
without Prometheus. With replicas on one store, :class:`TelemetryShare`
publishes each replica's part (per-second :class:`TrafficSummary`, latencies
as a :class:`LatencyHistogram`) and follows the others', so that the one
judging a canary sees every Envoy's reports.
"""

from __future__ import annotations

from switchman.telemetry.als import AccessLogService, AccessLogStream, access_log_method
from switchman.telemetry.histogram import LatencyHistogram
from switchman.telemetry.lrs import LoadReportingService, LoadStatsStream, load_stats_method
from switchman.telemetry.metrics import TelemetryMetrics
from switchman.telemetry.record import TelemetryRecord, TrafficSummary, encode_record, summarize
from switchman.telemetry.recorder import Drop, TrafficRecorder
from switchman.telemetry.services import TelemetrySettings, add_telemetry_services, telemetry_methods
from switchman.telemetry.share import PeerTraffic, ShareSettings, TelemetryShare
from switchman.telemetry.stats import LoadReport, TrafficStats

__all__ = [
    "AccessLogService",
    "AccessLogStream",
    "Drop",
    "LatencyHistogram",
    "LoadReport",
    "LoadReportingService",
    "LoadStatsStream",
    "PeerTraffic",
    "ShareSettings",
    "TelemetryMetrics",
    "TelemetryRecord",
    "TelemetrySettings",
    "TelemetryShare",
    "TrafficRecorder",
    "TrafficStats",
    "TrafficSummary",
    "access_log_method",
    "add_telemetry_services",
    "encode_record",
    "load_stats_method",
    "summarize",
    "telemetry_methods",
]
