"""Where a rollout's measurements come from: Envoy's own reports (the default), or a Prometheus.

:class:`EnvoyReports` reads :class:`~switchman.telemetry.TrafficRecorder`:
the access logs (ALS) of the listeners that have ``accessLogService``, with
latencies; else the load reports (LRS) of every lab Envoy, counts only.
"""

from __future__ import annotations

from switchman.rollout.analysis import Measurement
from switchman.telemetry import TrafficRecorder

__all__ = ["EnvoyReports"]


class EnvoyReports:
    """A :class:`~switchman.rollout.analysis.MetricsSource` over what Envoys report to this Switchman."""

    def __init__(self, recorder: TrafficRecorder) -> None:
        self.recorder = recorder

    async def measure(self, cluster: str, start: float, end: float, reporter: str | None) -> Measurement:
        stats = self.recorder.window(cluster, start, end, reporter=reporter)
        return Measurement(
            requests=stats.requests,
            errors=stats.requests - stats.successes,  # 5xx answers and requests that failed without one
            p50_ms=stats.p50_ms,
            p99_ms=stats.p99_ms,
            source=stats.source,
        )
