"""Where a rollout's measurements come from: Envoy's own reports (the default), or a Prometheus.

:class:`EnvoyReports` reads :class:`~switchman.telemetry.TrafficRecorder`:
the access logs (ALS) of the listeners that have ``accessLogService``, with
latencies; else the load reports (LRS) of every lab Envoy, counts only.

With replicas, each Envoy reports to the one it is connected to; every
replica publishes its part (:mod:`switchman.telemetry.share`) and
:class:`EnvoyReports` adds the others' to its own.
"""

from __future__ import annotations

import math

from switchman.rollout.analysis import Measurement
from switchman.telemetry import TelemetryShare, TrafficRecorder, TrafficStats, summarize

__all__ = ["EnvoyReports", "whole_seconds"]


def whole_seconds(start: float, end: float) -> tuple[int, int]:
    """The published seconds that stand for the window ``[start, end)``: those in ``[floor(start), floor(end))``,
    the window moved back to whole seconds (never forward: the newest access logs are the ones still on
    their way); a window within one second becomes that second."""
    first = math.floor(start)
    return first, max(math.floor(end), first + 1)


class EnvoyReports:
    """A :class:`~switchman.rollout.analysis.MetricsSource` over what Envoys report to this Switchman, and
    with ``share``, to the other replicas on its store.

    Without other replicas' traffic in the window, the answer is the local recorder's for the window
    exactly. With some, the window becomes :func:`whole_seconds` for both parts, so that each request
    counts once: the local part is the recorder's for those same seconds, and the latency percentiles
    come from the merged histograms (within 4.4 %, see :mod:`switchman.telemetry.histogram`).
    ``settle`` is how late access logs may arrive (the engine's ``analysis_lag``): the others' records
    must be that much newer than the window before they are read.
    """

    def __init__(self, recorder: TrafficRecorder, share: TelemetryShare | None = None, settle: float = 1.0) -> None:
        self.recorder = recorder
        self.share = share
        self.settle = settle

    async def measure(self, cluster: str, start: float, end: float, reporter: str | None) -> Measurement:
        stats = None
        if self.share is not None:
            first, last = whole_seconds(start, end)
            others = await self.share.traffic(cluster, first, last, reporter, self.settle)
            if others is not None:
                merged = summarize(self.recorder, cluster, first, last, reporter=reporter)
                merged.add(others)
                stats = merged.stats()
        if stats is None:
            stats = self.recorder.window(cluster, start, end, reporter=reporter)
        return _measurement(stats)


def _measurement(stats: TrafficStats) -> Measurement:
    return Measurement(
        requests=stats.requests,
        errors=stats.requests - stats.successes,  # 5xx answers and requests that failed without one
        p50_ms=stats.p50_ms,
        p99_ms=stats.p99_ms,
        source=stats.source,
    )
