"""Judging one interval of a version's traffic against a Rollout's metric checks.

A check passes, fails, or cannot tell: an interval with fewer requests than
``minRequests`` is *inconclusive* — never a pass (a canary nobody reached has
proved nothing) and never a failure (quiet is not broken).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from switchman.model.kinds.rollout import Analysis

__all__ = ["Measurement", "MetricsSource", "Outcome", "Verdict", "judge"]


@dataclass(frozen=True, slots=True)
class Measurement:
    """What one version served in one interval, as the data plane reports it."""

    requests: int
    errors: int  # 5xx answers and resets (requests that failed upstream)
    p50_ms: float | None
    p99_ms: float | None
    source: str  # where the numbers come from: "als", "lrs", "prometheus"

    @property
    def success_rate(self) -> float | None:
        """Percent of requests that did not fail; None without requests."""
        return 100.0 * (self.requests - self.errors) / self.requests if self.requests else None

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "successRate": _round(self.success_rate),
            "p50Ms": _round(self.p50_ms),
            "p99Ms": _round(self.p99_ms),
            "source": self.source,
        }


class MetricsSource(Protocol):
    """Where measurements come from (Envoy's own reports, or a Prometheus)."""

    async def measure(self, cluster: str, start: float, end: float, reporter: str | None) -> Measurement:
        """What the Envoy cluster ``cluster`` served between ``start`` and ``end`` (wall-clock seconds),
        as reported by the Envoys of node group ``reporter`` (None: every Envoy)."""


class Outcome(StrEnum):
    PASSED = "Passed"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    reason: str
    measurement: Measurement | None
    values: Mapping[str, float | None]  # each metric check's value, by its name

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "reason": self.reason,
            "measurement": self.measurement.to_json() if self.measurement else None,
            "values": {k: _round(v) for k, v in self.values.items()},
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _value(name: str, measurement: Measurement) -> float | None:
    if name == "request-success-rate":
        return measurement.success_rate
    if name == "request-duration":
        return measurement.p99_ms
    return measurement.p50_ms


_UNITS = {"request-success-rate": "%", "request-duration": " ms p99", "request-duration-p50": " ms p50"}


def judge(analysis: Analysis, measurement: Measurement) -> Verdict:
    """The verdict on one interval: every check must hold; too few requests decide nothing."""
    values = {check.name: _value(check.name, measurement) for check in analysis.metrics}
    if measurement.requests < max(1, analysis.min_requests):
        reason = f"{measurement.requests} requests, fewer than the {analysis.min_requests} needed to judge"
        return Verdict(Outcome.INCONCLUSIVE, reason, measurement, values)
    failures = []
    for check in analysis.metrics:
        value = values[check.name]
        unit = _UNITS[check.name]
        if value is None:
            return Verdict(Outcome.INCONCLUSIVE, f"no {check.name} measured", measurement, values)
        if check.min is not None and value < check.min:
            failures.append(f"{check.name} {value:.2f}{unit} < {check.min:g}{unit}")
        if check.max is not None and value > check.max:
            failures.append(f"{check.name} {value:.2f}{unit} > {check.max:g}{unit}")
    if failures:
        return Verdict(Outcome.FAILED, "; ".join(failures), measurement, values)
    shown = ", ".join(f"{k} {v:.2f}{_UNITS[k]}" for k, v in values.items() if v is not None)
    return Verdict(Outcome.PASSED, f"{measurement.requests} requests: {shown}", measurement, values)
