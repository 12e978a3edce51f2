"""``kind: Rollout``: how one Service moves from its stable version to a new one, and how it is judged.

The field names follow Flagger's ``Canary`` (``analysis.interval``,
``threshold``, ``stepWeight``/``maxWeight``, ``stepWeights``, ``iterations``,
``match``, ``mirrorWeight``, ``metrics[].thresholdRange``, ``webhooks[].type``)
and Argo Rollouts' canary ``steps`` (``setWeight``, ``pause``), so that a user
of either reads a Rollout without a manual. What differs: ``service`` names
a Switchman Service and ``stable``/``canary`` two of its versions (there is
no Deployment to copy), and ``minRequests`` makes a quiet interval
inconclusive rather than a pass.

The document says what should happen; the engine (:mod:`switchman.rollout`)
keeps where a run stands in the store's runtime state, not in revisions.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from switchman.model.document import GROUP_PATTERN
from switchman.model.fields import Node

__all__ = [
    "METRICS",
    "STRATEGIES",
    "WEBHOOK_TYPES",
    "Analysis",
    "MetricCheck",
    "Pause",
    "RolloutSpec",
    "SetWeight",
    "Step",
    "TrafficMatch",
    "Webhook",
    "read_rollout",
]

STRATEGIES: Final = ("canary", "blueGreen", "abTest", "mirror")
#: Flagger's built-in metric names: success rate in percent (min), p99 latency in milliseconds (max);
#: and p50 latency in milliseconds, which Flagger lacks.
METRICS: Final = {"request-success-rate": "min", "request-duration": "max", "request-duration-p50": "max"}
#: When each webhook type is called (Flagger's types and meanings; ``rollout``, the default, before every analysis).
WEBHOOK_TYPES: Final = (
    "confirm-rollout", "pre-rollout", "rollout", "confirm-traffic-increase", "confirm-promotion", "post-rollout",
    "rollback", "event",
)
_HEADER_NAME: Final = r"[a-z0-9!#$%&'*+.^_`|~-]+"


@dataclass(frozen=True, slots=True)
class SetWeight:
    """Send ``weight`` percent to the canary, then judge it for one interval."""

    weight: int


@dataclass(frozen=True, slots=True)
class Pause:
    """Hold the current weight for ``seconds`` (judged every interval); ``None``: until promoted."""

    seconds: float | None


Step = SetWeight | Pause


@dataclass(frozen=True, slots=True)
class MetricCheck:
    name: str
    min: float | None
    max: float | None


@dataclass(frozen=True, slots=True)
class Webhook:
    name: str
    type: str
    url: str
    timeout: float
    metadata: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class TrafficMatch:
    """One request matcher (Flagger's ``match`` entries): all of its header conditions hold.

    ``headers`` are ``(name, kind, value)`` with kind ``exact``, ``prefix`` or ``regex``.
    """

    headers: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True, slots=True)
class Analysis:
    interval: float
    threshold: int
    min_requests: int
    metrics: tuple[MetricCheck, ...]
    webhooks: tuple[Webhook, ...]
    iterations: int
    matches: tuple[TrafficMatch, ...]
    mirror_weight: int
    reporter: str | None  # judge only what Envoys of this node group report; None: every Envoy
    prometheus: str | None = None  # a Prometheus's base URL to ask instead of Envoy's own reports


@dataclass(frozen=True, slots=True)
class RolloutSpec:
    service: str
    stable: str
    canary: str
    strategy: str
    steps: tuple[Step, ...]
    analysis: Analysis
    skip_analysis: bool


def _webhook(node: Node) -> Webhook:
    name = node["name"].text()
    type_node = node.get("type")
    kind = type_node.choice(*WEBHOOK_TYPES) if type_node else "rollout"
    url_node = node["url"]
    url = url_node.text()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        url_node.fail(f"{url!r} is not an http:// or https:// URL")
    timeout_node = node.get("timeout")
    timeout = timeout_node.duration(0.001, 60) if timeout_node else 10.0
    metadata_node = node.get("metadata")
    metadata = tuple((k, v.scalar()) for k, v in metadata_node.items()) if metadata_node else ()
    node.done()
    return Webhook(name, kind, url, timeout, metadata)


def _metric(node: Node) -> MetricCheck:
    name = node["name"].choice(*METRICS)
    bounds = node["thresholdRange"]
    low, high = bounds.get("min"), bounds.get("max")
    if low is None and high is None:
        bounds.fail("needs min, max or both")
    result = MetricCheck(
        name,
        low.number(0, 100 if name == "request-success-rate" else None) if low else None,
        high.number(0, 100 if name == "request-success-rate" else None) if high else None,
    )
    if result.min is not None and result.max is not None and result.min > result.max:
        bounds.fail(f"min ({result.min:g}) is above max ({result.max:g})")
    bounds.done()
    node.done()
    return result


def _match(node: Node) -> TrafficMatch:
    """Flagger's (Istio's) shape: ``{headers: {NAME: {exact|prefix|regex: VALUE}}}``."""
    headers = []
    for name, condition in node["headers"].items():
        if not re.fullmatch(_HEADER_NAME, name):
            condition.fail(f"{name!r} is not a lowercase header name")
        kind, value = condition.one_of("exact", "prefix", "regex")
        text = value.regex() if kind == "regex" else value.header_value() if kind == "exact" else value.text()
        condition.done()
        headers.append((name, kind, text))
    node.done()
    if not headers:
        node.fail("needs at least one header")
    return TrafficMatch(tuple(headers))


def _argo_steps(node: Node) -> tuple[Step, ...]:
    steps: list[Step] = []
    for item in node.elements(min_items=1):
        kind, value = item.one_of("setWeight", "pause")
        if kind == "setWeight":
            steps.append(SetWeight(value.integer(0, 100)))
        else:
            duration = value.get("duration")
            steps.append(Pause(duration.duration(0.001) if duration else None))
            value.done()
        item.done()
    return tuple(steps)


def _weights(analysis: Node) -> tuple[Step, ...] | None:
    """Flagger's ``stepWeights``, or ``stepWeight`` up to ``maxWeight``; None when neither is set."""
    step_weights, step, most = analysis.get("stepWeights"), analysis.get("stepWeight"), analysis.get("maxWeight")
    if step_weights is not None:
        if step is not None or most is not None:
            step_weights.fail("goes without stepWeight and maxWeight")
        weights = [w.integer(1, 100) for w in step_weights.elements(min_items=1)]
        if any(b <= a for a, b in itertools.pairwise(weights)):
            step_weights.fail("must rise step by step")
        return tuple(SetWeight(w) for w in weights)
    if step is None and most is None:
        return None
    if step is None:
        analysis.fail("maxWeight needs stepWeight")
    size = step.integer(1, 100)
    top = most.integer(1, 100) if most is not None else 100
    if top < size:
        most.fail(f"{top} is below stepWeight ({size})")  # type: ignore[union-attr]
    weights = list(range(size, top + 1, size))
    if weights[-1] != top:
        weights.append(top)  # as Flagger does: the last step stops at maxWeight
    return tuple(SetWeight(w) for w in weights)


def _analysis(node: Node, strategy: str) -> tuple[Analysis, tuple[Step, ...] | None]:
    interval = node.get("interval")
    threshold = node.get("threshold")
    min_requests = node.get("minRequests")
    iterations = node.get("iterations")
    metrics_node = node.get("metrics")
    webhooks_node = node.get("webhooks")
    match_node = node.get("match")
    mirror_weight = node.get("mirrorWeight")
    reporter = node.get("reporter")
    provider = node.get("provider")
    prometheus = None
    if provider is not None:
        server = provider["prometheus"]
        address = server["address"]
        prometheus = address.text()
        parts = urlsplit(prometheus)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            address.fail(f"{prometheus!r} is not an http:// or https:// URL")
        server.done()
        provider.done()
        if reporter is not None:
            reporter.fail("goes with Envoy's own reports, not with a Prometheus provider")
    steps = _weights(node)
    metrics = tuple(_metric(m) for m in metrics_node.elements()) if metrics_node else (
        MetricCheck("request-success-rate", 99.0, None),
    )
    names = [m.name for m in metrics]
    if len(set(names)) != len(names):
        metrics_node.fail("names a metric twice")  # type: ignore[union-attr]
    webhooks = tuple(_webhook(w) for w in webhooks_node.elements()) if webhooks_node else ()
    if len({w.name for w in webhooks}) != len(webhooks):
        webhooks_node.fail("names a webhook twice")  # type: ignore[union-attr]
    matches = tuple(_match(m) for m in match_node.elements(min_items=1)) if match_node else ()
    if strategy == "abTest" and not matches:
        node.fail("an abTest rollout needs match: the requests that go to the canary")
    if matches and strategy not in ("abTest", "blueGreen"):
        match_node.fail("applies to abTest (the cohort) and blueGreen (the preview) rollouts")  # type: ignore[union-attr]
    if mirror_weight is not None and strategy != "mirror":
        mirror_weight.fail("applies to mirror rollouts")
    if iterations is not None and strategy == "canary":
        iterations.fail("applies to blueGreen, abTest and mirror rollouts (a canary takes steps)")
    result = Analysis(
        interval=interval.duration(0.1, 3600) if interval else 60.0,
        threshold=threshold.integer(1, 1000) if threshold else 5,
        min_requests=min_requests.integer(0) if min_requests else 1,
        metrics=metrics,
        webhooks=webhooks,
        iterations=iterations.integer(1, 10_000) if iterations else 10,
        matches=matches,
        mirror_weight=mirror_weight.integer(1, 100) if mirror_weight else 100,
        reporter=reporter.text(GROUP_PATTERN, "a node group name") if reporter else None,
        prometheus=prometheus,
    )
    node.done()
    return result, steps


def read_rollout(spec: Node) -> RolloutSpec:
    service = spec["service"].text()
    stable_node, canary_node = spec["stable"], spec["canary"]
    stable, canary = stable_node.text(), canary_node.text()
    if stable == canary:
        canary_node.fail(f"is the stable version too ({stable!r}): a rollout moves between two versions")
    strategy_node = spec.get("strategy")
    strategy = strategy_node.choice(*STRATEGIES) if strategy_node else "canary"
    analysis, flagger_steps = _analysis(spec.get("analysis") or Node(spec.doc, "spec.analysis", {}), strategy)
    steps_node = spec.get("steps")
    skip = spec.get("skipAnalysis")
    if steps_node is not None and flagger_steps is not None:
        steps_node.fail("goes without analysis.stepWeight, maxWeight and stepWeights (one way to give the steps)")
    if steps_node is not None and strategy not in ("canary", "mirror"):
        steps_node.fail("applies to canary and mirror rollouts")
    if flagger_steps is not None and strategy not in ("canary", "mirror"):
        spec.fail(f"stepWeight, maxWeight and stepWeights apply to canary and mirror rollouts, not {strategy}")
    steps = _argo_steps(steps_node) if steps_node is not None else flagger_steps
    if steps is None:
        steps = tuple(SetWeight(w) for w in (10, 20, 30, 40, 50)) if strategy == "canary" else ()
    result = RolloutSpec(
        service=service,
        stable=stable,
        canary=canary,
        strategy=strategy,
        steps=steps,
        analysis=analysis,
        skip_analysis=skip.flag() if skip else False,
    )
    spec.done()
    return result
