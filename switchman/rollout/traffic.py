"""What a rollout sets on its Service: the weights, a cohort and a mirror — and how that reads in a document.

A :class:`Traffic` is written into the Service document's ``spec.weights``,
``spec.cohort`` and ``spec.mirror`` (see :mod:`switchman.model.kinds.service`),
through the controller's one checked path, so every move is a revision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from switchman.model.kinds.rollout import RolloutSpec, TrafficMatch

__all__ = ["Traffic", "canary_traffic", "stable_traffic", "write_traffic"]


@dataclass(frozen=True, slots=True)
class Traffic:
    """The canary's share of the default split, and who else reaches it (a cohort, a mirror)."""

    canary_weight: int
    cohort: tuple[TrafficMatch, ...] = ()
    mirror_percent: int = 0

    def describe(self, spec: RolloutSpec) -> str:
        parts = [f"{spec.canary} {self.canary_weight}%"]
        if self.cohort:
            parts.append(f"cohort to {spec.canary}")
        if self.mirror_percent:
            parts.append(f"{self.mirror_percent}% mirrored to {spec.canary}")
        return ", ".join(parts)


def stable_traffic() -> Traffic:
    """Everything on the stable version: where a run starts and where a rollback returns."""
    return Traffic(0)


def canary_traffic() -> Traffic:
    """Everything on the canary: a promoted run."""
    return Traffic(100)


def _cohort(matches: tuple[TrafficMatch, ...], version: str) -> dict[str, Any]:
    return {
        "version": version,
        "match": [{"headers": [{"name": n, kind: value} for n, kind, value in m.headers]} for m in matches],
    }


def write_traffic(raw: dict[str, Any], spec: RolloutSpec, traffic: Traffic) -> dict[str, Any]:
    """The Service document ``raw`` with ``traffic`` in it (its other fields untouched)."""
    body: dict[str, Any] = dict(raw["spec"])
    weights: dict[str, int] = {v: 0 for v in body.get("weights") or {}}
    weights[spec.stable] = 100 - traffic.canary_weight
    weights[spec.canary] = traffic.canary_weight
    body["weights"] = weights
    body.pop("cohort", None)
    body.pop("mirror", None)
    if traffic.cohort:
        body["cohort"] = _cohort(traffic.cohort, spec.canary)
    if traffic.mirror_percent:
        body["mirror"] = {"version": spec.canary, "percent": traffic.mirror_percent}
    return {**raw, "spec": body}


def read_weight(raw: Mapping[str, Any], spec: RolloutSpec) -> int | None:
    """The canary's share of a Service document's weights, in percent (None without weights)."""
    weights = raw.get("spec", {}).get("weights")
    if not weights:
        return None
    total = sum(int(w) for w in weights.values())
    return round(100 * int(weights.get(spec.canary, 0)) / total) if total else None
