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

The **control plane** itself can be restarted under load: ``spec.controlPlane``
says how the lab runs ``switchman serve`` (one replica on SQLite by default),
and a ``controlPlane`` action kills a replica with SIGKILL and starts it
again on the same store and ports (the Envoys reconnect by themselves)::

    spec:
      controlPlane:                # default {replicas: 1, store: sqlite}
        replicas: 2                # a, b: every Envoy's bootstrap lists both (its xDS goes to either)
        store: etcd                # the lab starts an etcd of its own on loopback...
        etcd: 127.0.0.1:2379       # ...or uses this one (under a prefix of the run's own)
        rolloutLease: 2s           # serve's --rollout-lease-seconds: how soon a rollout is taken over
      actions:
        - when: {stage: 2}
          controlPlane: {kill: a}  # SIGKILL replica a, start it again at once (restartAfter: 3s: later)
        - when: {stage: 5}
          controlPlane: {kill: b}  # waits until a serves again: one replica down at a time
        # with one replica: controlPlane: kill

A restarted replica is a new process (``a-2`` in the leases): it takes a
rollout over only once the dead one's lease ran out. Such a drill is also
judged by what the control plane did: the rollout went on from the stage
it was at after every kill, a new driver took it over whenever its driver
was killed, and every Envoy ends on the head revision. The report gives,
per replica, the time it was down, its time to ready after the restart,
when the Envoys were all back, and who drove the rollout when.

A **resilience drill** applies documents instead of a Rollout (``spec.apply``:
Routes, Service, ... for the front, ``metadata.groups: [front]``) before the
load, and is judged by the front Envoy's own counters over the run::

    spec:
      pods: 3                      # checkout-v1-0, checkout-v2-0, checkout-v1-1
      load: {rate: 200, seconds: 10}   # the run ends when the load does
      apply:                       # each over the lab's document of that kind and name: a Service's spec
        - kind: Service            # keeps the lab's fields it does not give (versions: the sidecars' ports)
          metadata: {name: checkout, groups: [front]}
          spec: {outlierDetection: {consecutive5xx: 3, interval: 1s}}
      actions:
        - when: {after: 1s}        # after only: there is no rollout
          faults: {pod: checkout-v1-1, errorRate: 1}   # one pod; or {version: v1, ...} for all of a version's
        - when: {after: 5s}
          faults: {pod: checkout-v1-1}                 # every fault off: the faults are lifted
      expect:
        envoy:                     # the front's counters, their change over the run
          cluster.checkout-v1.outlier_detection.ejections_enforced_total: {min: 1}
          http.ingress.fault.aborts_injected: {share: 0.1}   # 10 % of the clients' requests, within binomial 3σ
          # {share: 0.1, of: http.ingress.downstream_rq_total}: 10 % of another stat's change
        failedRequests: 20         # every failed request of the run counts
        # or what they must be:
        # failedRequests: {status: 503, countedBy: cluster.checkout-v1.upstream_rq_pending_overflow, max: 2000}
        #   every one answered 503 by the front, as many as the stat rose by, at most max
        recoveredWithin: 2s        # no failed request sent later than 2 s after the last action lifted the faults

Read field by field (:class:`switchman.model.fields.Node`): every error
names the file and the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from switchman.errors import ConfigError
from switchman.lab.local.control_plane import REPLICA_NAMES, ControlPlaneSettings
from switchman.lab.local.load import ClientKind, Cohort
from switchman.lab.topology import FRONT_GROUP, SERVICE, VERSIONS, front_documents, pod_specs
from switchman.model.config import parse_document
from switchman.model.fields import Node
from switchman.model.kinds.rollout import RolloutSpec

__all__ = [
    "Action",
    "Condition",
    "ControlPlaneSettings",
    "CounterBound",
    "DemoScenario",
    "Expectations",
    "FaultSpec",
    "HotRestartScenario",
    "ResilienceScenario",
    "RestartSpec",
    "Scenario",
    "read_scenario",
    "resolve_documents",
]

_PHASES: Final = ("Progressing", "Paused", "Succeeded", "Failed", "Aborted")
_COMMANDS: Final = ("pause", "resume", "promote", "abort")
_NO_ROLLOUT: Final = "a drill with spec.apply has no rollout"
_STAT: Final = r"[A-Za-z0-9_][A-Za-z0-9_.:-]*"


@dataclass(frozen=True, slots=True)
class Condition:
    """When an action runs: the first moment every given part holds."""

    after: float | None = None  # seconds since the rollout was applied (with spec.apply: since the load started)
    weight: int | None = None  # the canary's weight reached at least this
    stage: int | None = None  # the run entered this stage (1-based, as status shows it)
    phase: str | None = None

    def describe(self, start: str = "the rollout started") -> str:
        parts = []
        if self.after is not None:
            parts.append(f"{self.after:g}s after {start}")
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
    pod: str | None = None  # one pod of ``version`` only (its name, checkout-v1-1); None: all of them

    @property
    def lifts(self) -> bool:
        """Every fault off: the action lifts the faults."""
        return not (self.error_rate or self.latency_ms or self.reset_rate)


@dataclass(frozen=True, slots=True)
class RestartSpec:
    """A ``controlPlane`` action: replica ``replica`` of serve killed with SIGKILL, started again after ``down_for``."""

    replica: str
    down_for: float = 0.0

    def describe(self) -> str:
        later = f", started again after {self.down_for:g}s" if self.down_for else ", started again"
        return f"kill -9 serve {self.replica}{later}"


@dataclass(frozen=True, slots=True)
class Action:
    when: Condition
    faults: FaultSpec | None = None
    command: str | None = None
    control_plane: RestartSpec | None = None

    def describe(self) -> str:
        if self.control_plane is not None:
            return self.control_plane.describe()
        if self.faults is not None:
            f = self.faults
            what = ", ".join(
                text for text, on in (
                    (f"{f.error_rate:.0%} errors", f.error_rate), (f"+{f.latency_ms:g} ms", f.latency_ms),
                    (f"{f.reset_rate:.0%} resets", f.reset_rate),
                ) if on
            ) or "no faults"
            return f"{f.pod or f.version}: {what}"
        return f"{self.command}"


@dataclass(frozen=True, slots=True)
class CounterBound:
    """``expect.envoy.STAT``: how much one of the front Envoy's stats may change over the run: between ``min``
    and ``max``, or by a ``share`` of another stat's change (``of``; None: of the clients' requests) within
    binomial 3σ (the judge's)."""

    stat: str
    min: int | None = None
    max: int | None = None
    share: float | None = None
    of: str | None = None

    def describe(self) -> str:
        if self.share is not None:
            return f"{self.stat} ≈ {self.share:.4g} of {self.of or 'the requests'} (binomial 3σ)"
        if self.min is not None and self.max is not None:
            return f"{self.min} ≤ {self.stat} ≤ {self.max}"
        return f"{self.stat} ≥ {self.min}" if self.min is not None else f"{self.stat} ≤ {self.max}"

    def holds(self, value: int) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


@dataclass(frozen=True, slots=True)
class Expectations:
    phase: str | None = None
    rolled_back_within: float | None = None  # analysis intervals
    failed_requests: int | None = 0  # None: no fixed number (a resilience drill's failures counted by a stat)
    leakage: int | None = None
    mirror: bool = False
    envoy: tuple[CounterBound, ...] = ()  # the front's counters, deltas over the run
    # resilience drills: what the failed requests must be, and when they must stop
    failed_status: int | None = None  # every one answered with this status by the front
    failed_counted_by: str | None = None  # as many as this stat of the front rose by over the run
    recovered_within: float | None = None  # seconds after the last action lifted the faults

    @property
    def stats(self) -> tuple[str, ...]:
        """Every stat of the front's these expectations read, each once."""
        names = [b.stat for b in self.envoy] + [b.of for b in self.envoy if b.of is not None]
        if self.failed_counted_by is not None:
            names.append(self.failed_counted_by)
        return tuple(dict.fromkeys(names))


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
    control_plane: ControlPlaneSettings | None = None  # None: the lab's one serve on SQLite


@dataclass(frozen=True, slots=True)
class ResilienceScenario:
    """``spec.apply``: documents for the front applied before the load, faults on a clock, judged by the front
    Envoy's counters and the clients' record; the run lasts as long as the load."""

    name: str
    pods: int
    rate: float
    seconds: float
    clients: tuple[ClientKind, ...]
    cohort: Cohort | None
    documents: tuple[Mapping[str, Any], ...]  # as the file gives them; :func:`resolve_documents` completes them
    actions: tuple[Action, ...] = ()
    expect: Expectations = field(default_factory=Expectations)


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
    for other in ("rollout", "apply", "actions", "cohort", "expect", "pods"):
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


def _faults(node: Node, pods: Sequence[tuple[str, str]]) -> FaultSpec:
    """``pods``: the lab's ``(name, version)``."""
    version_node, pod_node = node.get("version"), node.get("pod")
    if version_node is None and pod_node is None:
        node.fail("needs version, pod or both")
    version = version_node.choice(*VERSIONS) if version_node else None
    pod = None
    if pod_node is not None:
        versions = dict(pods)
        pod = pod_node.choice(*versions)
        if version is not None and versions[pod] != version:
            pod_node.fail(f"runs {versions[pod]}, not {version}")
        version = versions[pod]
    assert version is not None
    error, latency, reset = node.get("errorRate"), node.get("latencyMs"), node.get("resetRate")
    result = FaultSpec(
        version, pod=pod,
        error_rate=error.number(0, 1) if error else 0.0,
        latency_ms=latency.number(0, 60_000) if latency else 0.0,
        reset_rate=reset.number(0, 1) if reset else 0.0,
    )
    node.done()
    return result


def _control_plane(node: Node) -> ControlPlaneSettings:
    """``spec.controlPlane``: how many replicas of serve, on which store."""
    replicas, store, etcd, lease = node.get("replicas"), node.get("store"), node.get("etcd"), node.get("rolloutLease")
    count = replicas.integer(1, len(REPLICA_NAMES)) if replicas else 1
    kind = store.choice("sqlite", "etcd") if store else "etcd" if count > 1 or etcd else "sqlite"
    if count > 1 and kind != "etcd":
        node.fail(f"{count} replicas share one store: store etcd (a SQLite file is one replica's)")
    address = etcd.text(r"[A-Za-z0-9.-]+:[0-9]{1,5}", "host:port of an etcd") if etcd else None
    if etcd is not None and kind != "etcd":
        etcd.fail("is the store of store etcd, not sqlite")
    # etcd grants leases in whole seconds, 2 at least
    lease_s = lease.duration(2.0 if kind == "etcd" else 0.5, 600) if lease else None
    node.done()
    return ControlPlaneSettings(count, "etcd" if kind == "etcd" else "sqlite", address, lease_s)


def _restart(node: Node, replicas: int) -> RestartSpec:
    """A ``controlPlane`` action: ``kill`` (the only replica) or ``{kill: REPLICA, restartAfter: DURATION}``."""
    names = REPLICA_NAMES[:replicas]
    if not isinstance(node.value, dict):
        node.choice("kill")
        if replicas > 1:
            node.fail(f"the lab runs replicas {', '.join(names)} (spec.controlPlane): name one, {{kill: a}}")
        return RestartSpec(names[0])
    after = node.get("restartAfter")
    result = RestartSpec(node["kill"].choice(*names), after.duration(0, 60) if after else 0.0)
    node.done()
    return result


def _action(node: Node, pods: Sequence[tuple[str, str]], rollout: bool = True, replicas: int = 1) -> Action:
    when = _condition(node["when"])
    faults, command, control_plane = node.get("faults"), node.get("command"), node.get("controlPlane")
    if not rollout:
        if command is not None:
            command.fail(f"{_NO_ROLLOUT} to command: its actions are faults")
        if control_plane is not None:
            control_plane.fail(f"{_NO_ROLLOUT}: its actions are faults")
        if when != Condition(after=when.after):
            node["when"].fail(f"{_NO_ROLLOUT}: its actions run on after only")
    if sum(part is not None for part in (faults, command, control_plane)) != 1:
        node.fail("needs exactly one of faults, command, controlPlane")
    action = Action(
        when, _faults(faults, pods) if faults else None, command.choice(*_COMMANDS) if command else None,
        _restart(control_plane, replicas) if control_plane else None,
    )
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


def _stat(node: Node, name: str | None = None) -> str:
    """An Envoy stat's name: ``name`` (a key, at ``node``) or the text at ``node``."""
    stat = name if name is not None else node.text()
    if not re.fullmatch(_STAT, stat):
        node.fail("is not an Envoy stat name (cluster.checkout-v2.upstream_rq_retry)")
    return stat


def _counters(node: Node) -> tuple[CounterBound, ...]:
    bounds = []
    for stat, bound in node.items():
        _stat(bound, stat)
        low, high, share, of = bound.get("min"), bound.get("max"), bound.get("share"), bound.get("of")
        if share is not None and (low is not None or high is not None):
            bound.fail("takes min and max, or share, not both")
        if of is not None and share is None:
            of.fail("needs share (the share of this stat's change)")
        result = CounterBound(
            stat, low.integer(0, None) if low else None, high.integer(0, None) if high else None,
            share=share.number(0, 1) if share else None, of=_stat(of) if of else None,
        )
        bound.done()
        if result.min is None and result.max is None and result.share is None:
            bound.fail("needs min, max or both, or share")
        if result.min is not None and result.max is not None and result.min > result.max:
            bound.fail(f"min {result.min} is above max {result.max}")
        bounds.append(result)
    if not bounds:
        node.fail("needs at least one stat")
    return tuple(bounds)


def _failed(node: Node) -> tuple[int | None, int | None, str | None]:
    """``expect.failedRequests`` of a resilience drill as a mapping: ``(max, status, countedBy)``."""
    most, status, counted = node.get("max"), node.get("status"), node.get("countedBy")
    if most is None and status is None and counted is None:
        node.fail("needs max, status, countedBy or several (or a number: at most that many)")
    result = (most.integer(0) if most else None, status.integer(100, 599) if status else None,
              _stat(counted) if counted else None)
    node.done()
    return result


def _expect(node: Node | None, rollout: bool = True) -> Expectations:
    if node is None:
        return Expectations()
    if not rollout:
        for key in ("phase", "rolledBackWithin", "leakage", "mirror"):
            if node.get(key) is not None:
                node[key].fail(f"{_NO_ROLLOUT} to judge: expect envoy, failedRequests and recoveredWithin")
    envoy = node.get("envoy")
    phase, within = node.get("phase"), node.get("rolledBackWithin")
    failed, leakage, mirror = node.get("failedRequests"), node.get("leakage"), node.get("mirror")
    recovered = node.get("recoveredWithin")
    if rollout and recovered is not None:
        recovered.fail("a rollout drill is judged by its rollout (rolledBackWithin); this is for spec.apply")
    limit: int | None = 0
    status, counted_by = None, None
    if failed is not None and isinstance(failed.value, Mapping):
        if rollout:
            failed.fail("a rollout drill takes a number here: the failed requests allowed outside the blast radius")
        limit, status, counted_by = _failed(failed)
    elif failed is not None:
        limit = failed.integer(0)
    result = Expectations(
        phase=phase.choice(*_PHASES) if phase else None,
        rolled_back_within=within.number(0.1, 100) if within else None,
        failed_requests=limit,
        leakage=leakage.integer(0) if leakage else None,
        mirror=mirror.flag() if mirror else False,
        envoy=_counters(envoy) if envoy else (),
        failed_status=status,
        failed_counted_by=counted_by,
        recovered_within=recovered.duration(0, 3600) if recovered else None,
    )
    node.done()
    return result


def _placeholder_endpoints(pods: int) -> dict[str, list[tuple[str, int]]]:
    endpoints: dict[str, list[tuple[str, int]]] = {}
    for pod in pod_specs(pods):
        endpoints.setdefault(pod.version, []).append(("127.0.0.1", 1 + pod.index))
    return endpoints


def resolve_documents(
    documents: Iterable[Mapping[str, Any]], endpoints: Mapping[str, Iterable[tuple[str, int]]]
) -> list[dict[str, Any]]:
    """A drill's documents as they are applied: each over the lab's front document of the same kind and name
    (``endpoints``: the sidecars' ``(address, port)`` per version), the spec's fields given replacing the lab's
    (a Service keeps the lab's versions, whose ports exist only once the lab is up, unless it gives its own)."""
    lab = {(d["kind"], d["metadata"]["name"]): d for d in front_documents(endpoints)}
    resolved = []
    for doc in documents:
        metadata = doc.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        base = lab.get((doc.get("kind"), name))
        spec = doc.get("spec")
        if base is not None and isinstance(spec, Mapping):
            resolved.append({**doc, "spec": {**base["spec"], **spec}})
        else:
            resolved.append(dict(doc))
    return resolved


def _documents(node: Node, pods: int) -> tuple[Mapping[str, Any], ...]:
    placeholders = _placeholder_endpoints(pods)
    documents: list[Mapping[str, Any]] = []
    for element in node.elements(1):
        raw = element.mapping()
        metadata = raw.get("metadata")
        groups = metadata.get("groups") if isinstance(metadata, Mapping) else None
        if groups != [FRONT_GROUP]:
            element.fail(f"needs metadata.groups: [{FRONT_GROUP}] (a drill's documents configure the front Envoy)")
        [resolved] = resolve_documents([raw], placeholders)
        try:
            parse_document(resolved, element.path)
        except ConfigError as exc:  # name the file and the entry, then the document's field
            raise ConfigError(f"{node.doc}: {element.path} ({exc.path})", exc.reason) from None
        documents.append(raw)
    return tuple(documents)


def _pods(node: Node | None) -> tuple[int, list[tuple[str, str]]]:
    """``spec.pods`` (2 by default), and the lab's pods it makes: ``(name, version)`` each."""
    count = node.integer(2, 16) if node else 2
    return count, [(p.name, p.version) for p in pod_specs(count)]


def _resilience(name: str, spec: Node, apply: Node, rate: float | None, seconds: float | None,
                clients: tuple[ClientKind, ...]) -> ResilienceScenario:
    if spec.get("rollout") is not None:
        apply.fail("a drill applies either documents (spec.apply) or a Rollout (spec.rollout), not both")
    timeout = spec.get("timeout")
    if timeout is not None:
        timeout.fail(f"{_NO_ROLLOUT}: it ends when the load does (spec.load.seconds)")
    pods_node, cohort, actions, expect = spec.get("pods"), spec.get("cohort"), spec.get("actions"), spec.get("expect")
    pods, names = _pods(pods_node)
    scenario = ResilienceScenario(
        name=name,
        pods=pods,
        rate=rate or 200.0,
        seconds=seconds or 10.0,
        clients=clients,
        cohort=_cohort(cohort) if cohort else None,
        documents=_documents(apply, pods),
        actions=tuple(_action(a, names, rollout=False) for a in actions.elements()) if actions else (),
        expect=_expect(expect, rollout=False),
    )
    if expect is not None and scenario.expect.recovered_within is not None:
        timed = sorted((a for a in scenario.actions if a.faults is not None), key=lambda a: a.when.after or 0.0)
        if not timed or not timed[-1].faults or not timed[-1].faults.lifts:
            expect["recoveredWithin"].fail("needs the faults lifted: a last action with every fault off "
                                           "(faults: {version: v1})")
        if (timed[-1].when.after or 0.0) >= scenario.seconds:
            expect["recoveredWithin"].fail(f"the faults are lifted {timed[-1].when.after:g}s in, after the load's "
                                           f"{scenario.seconds:g}s")
    spec.done()
    return scenario


@dataclass(frozen=True, slots=True)
class DemoScenario:
    """``spec.demo``: the demo (:mod:`switchman.lab.demo`) as a drill file: its ramp, faults and retries,
    its live table, report and exit rule."""

    name: str
    pods: int
    rate: float
    requests_per_step: int
    steps: tuple[int, ...]


def _demo(name: str, spec: Node, node: Node, pods: Node | None, rate: float | None) -> DemoScenario:
    per_step, steps_node = node.get("requestsPerStep"), node.get("steps")
    steps = tuple(w.integer(0, 100) for w in steps_node.elements(min_items=1)) if steps_node else (0, 10, 50, 100)
    result = DemoScenario(
        name=name, pods=_pods(pods)[0], rate=rate or 200.0,
        requests_per_step=per_step.integer(100, 100_000) if per_step else 600, steps=steps,
    )
    node.done()
    for other in ("rollout", "apply", "actions", "cohort", "expect", "hotRestart", "timeout"):
        if spec.get(other) is not None:
            spec.fail(f"a demo drill takes pods, load and demo only, not {other}")
    spec.done()
    return result


def read_scenario(raw: Any, where: str) -> Scenario | HotRestartScenario | ResilienceScenario | DemoScenario:
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
    demo = spec.get("demo")
    if demo is not None:
        return _demo(name, spec, demo, pods, rate)
    hot = spec.get("hotRestart")
    if hot is not None:
        return _hot_restart(name, spec, hot, rate, seconds, clients)
    apply = spec.get("apply")
    if apply is not None:
        return _resilience(name, spec, apply, rate, seconds, clients)
    rollout_node = spec.get("rollout")
    if rollout_node is None:
        spec.fail("needs rollout (a Rollout to run) or apply (documents to apply)")
    rollout_doc, rollout_spec = _rollout(rollout_node, name)
    pod_count, names = _pods(pods)
    control_plane_node = spec.get("controlPlane")
    control_plane = _control_plane(control_plane_node) if control_plane_node else None
    replicas = control_plane.replicas if control_plane else 1
    scenario = Scenario(
        name=name,
        pods=pod_count,
        rate=rate or 200.0,
        seconds=seconds or 120.0,
        clients=clients,
        cohort=_cohort(cohort) if cohort else None,
        rollout=rollout_doc,
        spec=rollout_spec,
        actions=tuple(_action(a, names, replicas=replicas) for a in actions.elements()) if actions else (),
        expect=_expect(expect),
        timeout=timeout.duration(1, 3600) if timeout else 120.0,
        control_plane=control_plane,
    )
    spec.done()
    return scenario
