"""What the data plane itself reports of its traffic: Envoy's access logs (ALS) and load reports (LRS).

Both services run on the xDS port (either transport) and feed one
:class:`TrafficRecorder`; :meth:`TrafficRecorder.window` says how a cluster
did in a window of time, as a :class:`TrafficStats`, for a canary's verdict
without Prometheus.
"""

from __future__ import annotations

from switchman.telemetry.als import AccessLogService, AccessLogStream, access_log_method
from switchman.telemetry.lrs import LoadReportingService, LoadStatsStream, load_stats_method
from switchman.telemetry.metrics import TelemetryMetrics
from switchman.telemetry.recorder import Drop, TrafficRecorder
from switchman.telemetry.services import TelemetrySettings, add_telemetry_services, telemetry_methods
from switchman.telemetry.stats import LoadReport, TrafficStats

__all__ = [
    "AccessLogService",
    "AccessLogStream",
    "Drop",
    "LoadReport",
    "LoadReportingService",
    "LoadStatsStream",
    "TelemetryMetrics",
    "TelemetrySettings",
    "TrafficRecorder",
    "TrafficStats",
    "access_log_method",
    "add_telemetry_services",
    "load_stats_method",
    "telemetry_methods",
]
