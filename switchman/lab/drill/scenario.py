"""A drill file: what the lab runs, what load it gets, what happens to it, and what must hold.

::

    kind: Drill
    metadata: {name: canary-turns-bad}
    spec:
      pods: 2                      # the lab: checkout v1 and v2 pods behind the front Envoy
      load: {rate: 200, seconds: 60, clients: [http1-new-connection, http1-keepalive, http2]}
      cohort: {share: 0.3, headers: {x-canary: "1"}}     # part of the load carries these headers
      rollout:                     # a Rollout's spec; service checkout, stable v1, canary v2 unless given
        analysis: {interval: 2s, threshold: 2, stepWeights: [10, 30, 50, 80], reporter: front}
      actions:
        - when: {weight: 30}       # or {after: 5s}, {stage: 2}, {phase: Paused}
          faults: {version: v2, errorRate: 0.2}
        - when: {phase: Paused}
          command: promote         # what a person would do: pause, resume, promote, abort
      expect:
        phase: Failed              # how the run must end
        rolledBackWithin: 2        # analysis intervals from the fault to traffic back on stable
        failedRequests: 0          # outside the fault's blast radius (default 0)
        leakage: 0                 # cohort requests answered by the stable version and others by the canary
        mirror: true               # the canary got the mirrored share (3σ) and no client saw its answers

Read field by field (:class:`switchman.model.fields.Node`): every error
names the file and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from switchman.lab.local.load import ClientKind, Cohort
from switchman.lab.local.topology import SERVICE, VERSIONS
from switchman.model.config import parse_document
from switchman.model.fields import Node
from switchman.model.kinds.rollout import RolloutSpec

__all__ = ["Action", "Condition", "Expectations", "FaultSpec", "HotRestartScenario", "Scenario", "read_scenario"]

_PHASES: Final = ("Progressing", "Paused", "Succeeded", "Failed", "Aborted")
_COMMANDS: Final = ("pause", "resume", "promote", "abort")


@dataclass(frozen=True, slots=True)
class Condition:
    """When an action runs: the first moment every given part holds."""

    after: float | None = None  # seconds since the rollout was applied
    weight: int | None = None  # the canary's weight reached at least this
    stage: int | None = None  # the run entered this stage (1-based, as status shows it)
    phase: str | None = None

    def describe(self) -> str:
        parts = []
        if self.after is not None:
            parts.append(f"{self.after:g}s after the rollout started")
        if self.weight is not None:
            parts.append(f"weight {self.weight}%")
        if self.stage is not None:
            parts.append(f"stage {self.stage}")
        if self.phase is not None:
            parts.append(f"phase {self.phase}")
        return " and ".join(parts)


@dataclass(frozen=True, slots=True)
class FaultSpec:
    version: str
    error_rate: float = 0.0
    latency_ms: float = 0.0
    reset_rate: float = 0.0


@dataclass(frozen=True, slots=True)
class Action:
    when: Condition
    faults: FaultSpec | None = None
    command: str | None = None

    def describe(self) -> str:
        if self.faults is not None:
            f = self.faults
            what = ", ".join(
                text for text, on in (
                    (f"{f.error_rate:.0%} errors", f.error_rate), (f"+{f.latency_ms:g} ms", f.latency_ms),
                    (f"{f.reset_rate:.0%} resets", f.reset_rate),
                ) if on
            ) or "no faults"
            return f"{f.version}: {what}"
        return f"{self.command}"


@dataclass(frozen=True, slots=True)
class Expectations:
    phase: str | None = None
    rolled_back_within: float | None = None  # analysis intervals
    failed_requests: int = 0
    leakage: int | None = None
    mirror: bool = False


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    pods: int
    rate: float
    seconds: float
    clients: tuple[ClientKind, ...]
    cohort: Cohort | None
    rollout: Mapping[str, Any]  # a whole Rollout document, checked
    spec: RolloutSpec
    actions: tuple[Action, ...] = ()
    expect: Expectations = field(default_factory=Expectations)
    timeout: float = 120.0


@dataclass(frozen=True, slots=True)
class HotRestartScenario:
    """``spec.hotRestart``: an Envoy hot-restarted under load (:mod:`switchman.lab.local.hot_restart_drill`)."""

    name: str
    rate: float
    seconds: float
    restarts: int
    clients: tuple[ClientKind, ...]
    negative_drills: bool


def _hot_restart(name: str, spec: Node, node: Node, rate: float | None, seconds: float | None,
                 clients: tuple[ClientKind, ...]) -> HotRestartScenario:
    restarts, negative = node.get("restarts"), node.get("negativeDrills")
    result = HotRestartScenario(
        name=name, rate=rate or 200.0, seconds=seconds or 6.0, restarts=restarts.integer(1, 20) if restarts else 1,
        clients=clients, negative_drills=negative.flag() if negative else True,
    )
    node.done()
    for other in ("rollout", "actions", "cohort", "expect", "pods"):
        if spec.get(other) is not None:
            spec.fail(f"a hotRestart drill takes load and hotRestart only, not {other}")
    spec.done()
    return result


def _condition(node: Node) -> Condition:
    after, weight, stage, phase = node.get("after"), node.get("weight"), node.get("stage"), node.get("phase")
    condition = Condition(
        after=after.duration(0) if after else None,
        weight=weight.integer(0, 100) if weight else None,
        stage=stage.integer(1, 1000) if stage else None,
        phase=phase.choice(*_PHASES) if phase else None,
    )
    node.done()
    if condition == Condition():
        node.fail("needs after, weight, stage or phase")
    return condition


def _faults(node: Node) -> FaultSpec:
    version = node["version"].choice(*VERSIONS)
    error, latency, reset = node.get("errorRate"), node.get("latencyMs"), node.get("resetRate")
    result = FaultSpec(
        version,
        error_rate=error.number(0, 1) if error else 0.0,
        latency_ms=latency.number(0, 60_000) if latency else 0.0,
        reset_rate=reset.number(0, 1) if reset else 0.0,
    )
    node.done()
    return result


def _action(node: Node) -> Action:
    when = _condition(node["when"])
    faults, command = node.get("faults"), node.get("command")
    if (faults is None) == (command is None):
        node.fail("needs exactly one of faults, command")
    action = Action(when, _faults(faults) if faults else None, command.choice(*_COMMANDS) if command else None)
    node.done()
    return action


def _cohort(node: Node) -> Cohort:
    share = node["share"].number(0, 1)
    headers = tuple((k.lower(), v.header_value()) for k, v in node["headers"].items())
    if not headers:
        node["headers"].fail("needs at least one header")
    node.done()
    return Cohort(share, headers)


def _rollout(node: Node, name: str) -> tuple[Mapping[str, Any], RolloutSpec]:
    spec = dict(node.mapping())
    spec.setdefault("service", SERVICE)
    spec.setdefault("stable", VERSIONS[0])
    spec.setdefault("canary", VERSIONS[1])
    doc = {"kind": "Rollout", "metadata": {"name": name}, "spec": spec}
    parsed = parse_document(doc, node.doc)
    assert isinstance(parsed.spec, RolloutSpec)
    if parsed.spec.service != SERVICE or {parsed.spec.stable, parsed.spec.canary} != set(VERSIONS):
        node.fail(f"the lab runs service {SERVICE!r} with versions {', '.join(VERSIONS)}")
    return doc, parsed.spec


def _expect(node: Node | None) -> Expectations:
    if node is None:
        return Expectations()
    phase, within = node.get("phase"), node.get("rolledBackWithin")
    failed, leakage, mirror = node.get("failedRequests"), node.get("leakage"), node.get("mirror")
    result = Expectations(
        phase=phase.choice(*_PHASES) if phase else None,
        rolled_back_within=within.number(0.1, 100) if within else None,
        failed_requests=failed.integer(0) if failed else 0,
        leakage=leakage.integer(0) if leakage else None,
        mirror=mirror.flag() if mirror else False,
    )
    node.done()
    return result


def read_scenario(raw: Any, where: str) -> Scenario | HotRestartScenario:
    """Check a drill document; raises ConfigError naming ``where`` and the field."""
    top = Node(where, "", raw)
    top.mapping()
    top["kind"].choice("Drill")
    metadata = top["metadata"]
    name = metadata["name"].text(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", "a name of lowercase letters and -")
    metadata.done()
    spec = top["spec"]
    top.done()
    pods, load, cohort = spec.get("pods"), spec.get("load"), spec.get("cohort")
    actions, expect, timeout = spec.get("actions"), spec.get("expect"), spec.get("timeout")
    rate = seconds = None
    clients: tuple[ClientKind, ...] = tuple(ClientKind)
    if load is not None:
        rate_node, seconds_node, clients_node = load.get("rate"), load.get("seconds"), load.get("clients")
        rate = rate_node.number(1, 2000) if rate_node else None
        seconds = seconds_node.duration(1, 3600) if seconds_node else None
        if clients_node is not None:
            clients = tuple(ClientKind(c.choice(*(k.value for k in ClientKind))) for c in clients_node.elements(1))
        load.done()
    hot = spec.get("hotRestart")
    if hot is not None:
        return _hot_restart(name, spec, hot, rate, seconds, clients)
    rollout_doc, rollout_spec = _rollout(spec["rollout"], name)
    scenario = Scenario(
        name=name,
        pods=pods.integer(2, 16) if pods else 2,
        rate=rate or 200.0,
        seconds=seconds or 120.0,
        clients=clients,
        cohort=_cohort(cohort) if cohort else None,
        rollout=rollout_doc,
        spec=rollout_spec,
        actions=tuple(_action(a) for a in actions.elements()) if actions else (),
        expect=_expect(expect),
        timeout=timeout.duration(1, 3600) if timeout else 120.0,
    )
    spec.done()
    return scenario
