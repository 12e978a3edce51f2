"""Prometheus metrics of the telemetry services: streams, what they received, what was not recorded.

Counters move once per message (by the number of entries in it), not once
per entry: ``prometheus_client`` takes a lock on every update.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["TelemetryMetrics"]


class TelemetryMetrics:
    """In ``registry`` (the xDS server's, so that ``/metrics`` shows them), or in one of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.streams = Gauge(
            "switchman_telemetry_streams", "Open telemetry streams", ["service"], registry=self.registry
        )
        self.refused = Counter(
            "switchman_telemetry_streams_refused",
            "Telemetry streams ended with PERMISSION_DENIED: their client may not claim the node group it reports "
            "for (--node-identities)", ["service"], registry=self.registry,
        )
        self.entries = Counter(
            "switchman_telemetry_access_log_entries", "Access-log entries received", registry=self.registry
        )
        self.dropped = Counter(
            "switchman_telemetry_access_log_entries_dropped",
            "Access-log entries received and not recorded: rate (over the per-stream limit), horizon (started "
            "too long ago or ahead of our clock), series (no room for another cluster), unattributed (no upstream "
            "cluster, or not HTTP)",
            ["reason"], registry=self.registry,
        )
        self.reports = Counter(
            "switchman_telemetry_load_reports", "Per-cluster load reports received", registry=self.registry
        )
        self.reports_dropped = Counter(
            "switchman_telemetry_load_reports_dropped", "Per-cluster load reports received and not recorded",
            ["reason"], registry=self.registry,
        )
        self.share_record_bytes = Gauge(
            "switchman_telemetry_share_record_bytes",
            "Size of the traffic record this replica last published for the other replicas", registry=self.registry,
        )
        self.share_peers = Gauge(
            "switchman_telemetry_share_peers", "Other replicas whose published traffic is followed (not stale)",
            registry=self.registry,
        )
        self.share_failures = Counter(
            "switchman_telemetry_share_failures", "Periods in which publishing or reading the replicas' traffic failed",
            registry=self.registry,
        )
