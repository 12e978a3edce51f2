"""Prometheus metrics of the rollout engine: per rollout, its phase, the canary's weight, and verdicts.

A collector read when the registry is collected, so a rollout that leaves
the configuration leaves no series behind (:meth:`RolloutMetrics.forget`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from switchman.rollout.state import Phase, RolloutState

__all__ = ["RolloutMetrics"]


@dataclass(slots=True)
class _Seen:
    phase: Phase
    weight: int
    stage: int
    failed: int
    verdicts: dict[str, int] = field(default_factory=dict)


#: Upper bounds (seconds) of the lateness histogram: how long after it was due an analysis ran.
LATENESS_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class RolloutMetrics(Collector):
    def __init__(self) -> None:
        self._seen: dict[str, _Seen] = {}
        self.lateness = [0] * (len(LATENESS_BUCKETS) + 1)  # per bucket, not cumulative; the last is +Inf
        self.lateness_sum = 0.0
        self.lateness_max = 0.0

    def late(self, seconds: float) -> None:
        """Record how long after it was due an analysis started."""
        self.lateness[bisect.bisect_left(LATENESS_BUCKETS, seconds)] += 1
        self.lateness_sum += seconds
        self.lateness_max = max(self.lateness_max, seconds)

    def observe(self, name: str, state: RolloutState) -> None:
        seen = self._seen.get(name)
        if seen is None:
            self._seen[name] = _Seen(state.phase, state.weight, state.stage, state.failed)
        else:
            seen.phase, seen.weight, seen.stage, seen.failed = state.phase, state.weight, state.stage, state.failed

    def analysed(self, name: str, outcome: str) -> None:
        seen = self._seen.get(name)
        if seen is not None:
            seen.verdicts[outcome] = seen.verdicts.get(outcome, 0) + 1

    def forget(self, name: str) -> None:
        self._seen.pop(name, None)

    def collect(self) -> Iterator[Metric]:
        phase = GaugeMetricFamily(
            "switchman_rollout_phase", "1 for the phase each rollout driven here is in", labels=["rollout", "phase"]
        )
        weight = GaugeMetricFamily("switchman_rollout_canary_weight", "canary weight, percent", labels=["rollout"])
        stage = GaugeMetricFamily("switchman_rollout_stage", "the stage a rollout is in (0-based)", labels=["rollout"])
        failed = GaugeMetricFamily(
            "switchman_rollout_failed_checks", "failed checks in the current run", labels=["rollout"]
        )
        verdicts = CounterMetricFamily(
            "switchman_rollout_analyses", "analyses run here, by outcome", labels=["rollout", "outcome"]
        )
        for name, seen in sorted(self._seen.items()):
            for each in Phase:
                phase.add_metric([name, each.value], 1.0 if each is seen.phase else 0.0)
            weight.add_metric([name], seen.weight)
            stage.add_metric([name], seen.stage)
            failed.add_metric([name], seen.failed)
            for outcome, count in sorted(seen.verdicts.items()):
                verdicts.add_metric([name, outcome], count)
        cumulative, buckets = 0, []
        for bound, count in zip((*LATENESS_BUCKETS, float("inf")), self.lateness, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else f"{bound:g}", cumulative))
        late = HistogramMetricFamily(
            "switchman_rollout_analysis_lateness_seconds", "how long after it was due each analysis started",
        )
        late.add_metric([], buckets, self.lateness_sum)
        yield from (phase, weight, stage, failed, verdicts, late)
