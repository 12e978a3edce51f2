"""The rollout engine: runs inside ``switchman serve``, drives every Rollout document in the served config.

One task per Rollout. It drives the rollout while it holds the rollout's
lease in the store — with replicas on one etcd exactly one drives a rollout,
and when it dies another takes over after the lease's TTL; one task renews
every lease this replica holds, together, so that no turn waits on a
renewal. Each turn: read the run's state from the store (or the copy of what
this task stored last), ask the machine (:mod:`switchman.rollout.machine`) what
to do, do it, and store the new state with the version it was read at. A
command (pause, promote, abort...) written by any replica meanwhile makes
that store fail with a conflict: the turn is thrown away and the next one
starts from the state with the command in it. Every traffic change is an
edit of the Service through the controller (checked like any apply, a
revision authored ``rollout/NAME``); an edit that was committed but whose
state was not stored (a crash in between) is done again, which changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from switchman.control import Controller, NotFound
from switchman.errors import ConfigError
from switchman.model.config import parse_document
from switchman.model.kinds.rollout import RolloutSpec
from switchman.model.kinds.service import version_cluster
from switchman.rollout.analysis import Measurement, MetricsSource, Outcome, Verdict, judge
from switchman.rollout.machine import (
    Action,
    AnalysisResult,
    Analyze,
    CommandRefused,
    HookResult,
    Hooks,
    Idle,
    SetTraffic,
    TrafficResult,
    Wait,
    command,
    decide,
    settle,
    start,
)
from switchman.rollout.metrics import RolloutMetrics
from switchman.rollout.plan import Stage, plan
from switchman.rollout.prometheus import MetricsUnavailable, PrometheusSource
from switchman.rollout.state import ENDED, Event, RolloutState, generation_of, state_key
from switchman.rollout.traffic import write_traffic
from switchman.rollout.webhooks import WebhookCaller, payload
from switchman.store import ConflictError, StateStore, StoreError

__all__ = ["EngineSettings", "RolloutEngine", "RolloutNotFound", "analysis_window"]

log = logging.getLogger(__name__)

_STORE_RETRY: Final = 1.0  # seconds between tries while the store cannot be reached
_ACTIONS_PER_TURN: Final = 8  # then the state is stored and the lease renewed before going on


class RolloutNotFound(NotFound):
    """Raised when a rollout asked for is not in the served configuration."""


@dataclass(frozen=True, slots=True)
class EngineSettings:
    lease_ttl: float = 6.0  # a replica that stops renewing loses its rollouts after this long
    #: How far back of "now" an analysis window ends: Envoy sends access logs in batches (the
    #: listener's bufferFlushInterval, 0.5 s by default), so the newest requests arrive late.
    analysis_lag: float = 1.0
    replica: str = ""  # this replica's name in leases; empty: a random one
    #: The same for rollouts judged by a Prometheus: the window must end before its last scrape (and, for
    #: latency, Envoy's stats flush, 5 s by default, lags further).
    prometheus_lag: float = 2.0


@dataclass(frozen=True, slots=True)
class _Known:
    """A Rollout as the served configuration has it, with what every turn needs of it worked out once."""

    spec: RolloutSpec
    raw_spec: Mapping[str, Any]
    generation: str
    stages: list[Stage]


@dataclass(slots=True)
class _Driver:
    """One rollout's task here, and what it keeps between turns: the run as it last stored it (read again
    only when a store of it conflicts, or a command here changed it) and until when its lease is held."""

    poke: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    stored: tuple[RolloutState, int] | None = None  # the state and the version it was stored at
    held_until: float = 0.0  # monotonic: the lease is this replica's until then (0: not held)


class RolloutEngine:
    """Drives rollouts; ``status`` and ``command`` serve the API on any replica."""

    def __init__(
        self,
        controller: Controller,
        store: StateStore,
        source: MetricsSource,
        settings: EngineSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.controller = controller
        self.store = store
        self.source = source
        self.settings = settings or EngineSettings()
        self.replica = self.settings.replica or f"switchman-{uuid.uuid4().hex[:8]}"
        self.clock = clock
        self.metrics = RolloutMetrics()
        self._hooks = WebhookCaller()
        self._told: set[asyncio.Task[Any]] = set()  # event webhooks on their way
        self._drivers: dict[str, _Driver] = {}
        self._specs: dict[str, _Known] = {}
        self._prometheus: dict[str, PrometheusSource] = {}  # by address, for rollouts that ask a Prometheus
        self._wake = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None

    # -- life ---------------------------------------------------------------------

    async def start(self) -> None:
        self.controller.add_listener(self._revision_served)
        self._follower = asyncio.create_task(self._follow(), name="rollouts")
        self._keeper = asyncio.create_task(self._keep_leases(), name="rollout leases")

    async def stop(self) -> None:
        self.controller.remove_listener(self._revision_served)
        tasks = [d.task for d in self._drivers.values() if d.task is not None]
        tasks += [t for t in (self._follower, self._keeper) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *self._told, return_exceptions=True)
        for name in list(self._drivers):
            with contextlib.suppress(StoreError):
                await self.store.release_lease(_lease(name), self.replica)
        self._drivers.clear()
        await self._hooks.close()
        for source in self._prometheus.values():
            await source.close()
        self._prometheus.clear()

    def _revision_served(self, revision: int) -> None:
        self._wake.set()

    async def _follow(self) -> None:
        """Start a driver for each Rollout in the served configuration; stop those that left it."""
        while True:
            self._wake.clear()
            try:
                rollouts = await self.controller.parsed("Rollout")
            except StoreError as exc:
                log.warning("rollouts: cannot read the configuration: %s", exc)
                await asyncio.sleep(_STORE_RETRY)
                continue
            specs = {}
            changed = set()
            for doc in rollouts:
                assert isinstance(doc.spec, RolloutSpec)
                known = self._specs.get(doc.name)
                raw_spec = doc.raw["spec"]
                if known is None or known.raw_spec != raw_spec:
                    known = _Known(doc.spec, raw_spec, generation_of(raw_spec), plan(doc.spec))
                    changed.add(doc.name)
                specs[doc.name] = known
            self._specs = specs
            for name in specs:
                driver = self._drivers.get(name)
                if driver is None or driver.task is None or driver.task.done():
                    driver = self._drivers[name] = _Driver()
                    driver.task = asyncio.create_task(self._drive(name, driver), name=name)
                elif name in changed:
                    driver.poke.set()  # a new spec: a new run
            for name in set(self._drivers) - set(specs):
                driver = self._drivers.pop(name)
                if driver.task is not None:
                    driver.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, StoreError):
                    if driver.task is not None:
                        await driver.task
                    await self.store.release_lease(_lease(name), self.replica)
                self.metrics.forget(name)
            await self._wake.wait()

    # -- one rollout --------------------------------------------------------------

    async def _drive(self, name: str, driver: _Driver) -> None:
        ttl = self.settings.lease_ttl
        poke = driver.poke
        while name in self._specs:
            try:
                if driver.held_until <= time.monotonic() and not await self._take(name, driver):
                    await _sleep(poke, ttl / 3)
                    continue
                wake_at = await self._turn(name, driver)
            except (StoreError, ConflictError) as exc:
                driver.stored = None
                if isinstance(exc, ConflictError):
                    continue  # a command landed: start again from the stored state
                log.warning("rollout %s: the store failed, trying again: %s", name, exc)
                wake_at = self.clock() + _STORE_RETRY
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not stop every later turn
                log.exception("rollout %s: turn failed", name)
                wake_at = self.clock() + _STORE_RETRY
            # Until the moment the turn named, from now (the state's store took time since), and awake
            # again by the time the lease would lapse, if the keeper has not renewed it by then.
            pause = wake_at - self.clock()
            await _sleep(poke, min(pause, max(0.0, driver.held_until - time.monotonic())))

    async def _take(self, name: str, driver: _Driver) -> bool:
        """Take the rollout's lease; False (and what was stored forgotten) when another replica has it."""
        began = time.monotonic()
        if not await self.store.acquire_lease(_lease(name), self.replica, self.settings.lease_ttl):
            driver.stored = None  # another replica drives it: what we stored may be old
            return False
        driver.held_until = began + self._held_for()
        return True

    def _held_for(self) -> float:
        """How long after a take or renewal began the lease counts as this replica's: a little less than its
        TTL, so that this replica stops before another one can take it."""
        return self.settings.lease_ttl * 5 / 6

    async def _keep_leases(self) -> None:
        """Renew every lease this replica holds, every third of the TTL, all at once (on SQLite, one
        transaction): a driver never waits on its renewal, so none makes an analysis or a step late.
        A lease found taken is dropped (its driver stops at once); one that cannot be renewed (the
        store is down) lapses when its time is up, and its driver stops then."""
        ttl = self.settings.lease_ttl
        while True:
            await asyncio.sleep(ttl / 3)
            held = [(n, d) for n, d in self._drivers.items() if d.held_until > time.monotonic()]
            if not held:
                continue
            began = time.monotonic()
            outcomes = await asyncio.gather(
                *(self.store.acquire_lease(_lease(n), self.replica, ttl) for n, _ in held), return_exceptions=True
            )
            for (name, driver), outcome in zip(held, outcomes, strict=True):
                if outcome is True:
                    driver.held_until = began + self._held_for()
                elif outcome is False:
                    log.warning("rollout %s: its lease was taken by another replica", name)
                    driver.held_until, driver.stored = 0.0, None
                    driver.poke.set()
                elif isinstance(outcome, StoreError):
                    log.warning("rollout %s: the lease could not be renewed: %s", name, outcome)
                elif isinstance(outcome, BaseException):  # a bug: the lease lapses, its driver takes it again
                    log.error("rollout %s: renewing the lease failed", name, exc_info=outcome)

    async def _turn(self, name: str, driver: _Driver) -> float:
        """Decisions and their actions until the run has to wait, then one store of the state; returns when
        (the wall clock) the next turn is due.

        One store a turn, not one an action: a passing analysis, the stage it ends and the next stage's
        traffic are one turn and one write. That is safe because every action may be done again: a run
        resumed from an older state repeats an analysis or re-writes the same traffic (no new revision)."""
        known = self._specs[name]
        spec, stages, generation = known.spec, known.stages, known.generation
        now = self.clock()
        version: int | None
        state: RolloutState | None
        if driver.stored is not None:
            state, version = driver.stored
        else:
            record = await self.store.get_state(state_key(name))
            state = RolloutState.from_json(record.value) if record is not None else None
            version = record.version if record is not None else None
        fresh = state is None or state.generation != generation
        if state is None or fresh:
            state = start(spec, generation, (state.run + 1) if state is not None else 1, now)
        before = state
        wake_at = now  # at once, when the turn ends for having done as much as one turn may
        ready = self._ready(spec)
        for _ in range(_ACTIONS_PER_TURN):
            action = decide(spec, stages, state, now, ready)
            if isinstance(action, Wait):
                wake_at = action.until
                break
            if isinstance(action, Idle):
                wake_at = now + self.settings.lease_ttl
                break
            if isinstance(action, Analyze):
                self.metrics.late(max(0.0, now - ready(action.start, action.end)))  # decide() asks once it can
            result = await self._carry_out(name, spec, stages, state, action)
            # A traffic change happened when its revision was served, not when this task got the turn back
            # (after the pushes to the Envoys, and the other runs of the same revision, had theirs).
            now = result.at if isinstance(result, TrafficResult) and result.at is not None else self.clock()
            state = settle(spec, stages, state, action, result, now)
            if isinstance(action, Analyze) and isinstance(result, AnalysisResult) and result.verdict is not None:
                self.metrics.analysed(name, result.verdict.outcome.value)
        self.metrics.observe(name, state)
        if state is before and not fresh:  # a new run is stored even when it starts by waiting
            return wake_at
        stored = await self.store.put_state(state_key(name), state.to_json(), expected_version=version)
        driver.stored = (state, stored.version)
        self._announce(name, spec, state, _new_events(before, state, fresh))
        return wake_at

    def _lag(self, spec: RolloutSpec) -> float:
        """How far back of the due moment the analysis window ends (its reports are still on their way)."""
        return self.settings.prometheus_lag if spec.analysis.prometheus else self.settings.analysis_lag

    def _ready(self, spec: RolloutSpec) -> Callable[[float, float], float]:
        """When an analysis over ``[start, end)`` can be made: once the last access logs of the window it
        measures are in (the window ends on a whole second before ``end``, see :func:`analysis_window`), up
        to ``end``. With the lab's half-second lag, half a second early: the analysis is done by the due
        moment, and the step it allows lands then (see :func:`switchman.rollout.machine.decide`)."""
        lag = self._lag(spec)

        def ready(start: float, end: float) -> float:
            return min(end, analysis_window(start, end, lag)[1] + lag)

        return ready

    def _announce(self, name: str, spec: RolloutSpec, state: RolloutState, new: list[Event]) -> None:
        """Log a turn's events, and tell the ``event`` webhooks (told, not asked: their answers change nothing,
        and a slow one must not hold the run up)."""
        for event in new:
            log.info("rollout %s: %s: %s", name, event.kind, event.message)
        event_hooks = [h for h in spec.analysis.webhooks if h.type == "event"]
        for event in new if event_hooks else []:
            body = {**payload(name, spec, state.phase.value, state.weight), "event": event.to_json()}
            task = asyncio.create_task(self._hooks.call_all(event_hooks, body))
            self._told.add(task)
            task.add_done_callback(self._told.discard)

    async def _carry_out(
        self, name: str, spec: RolloutSpec, stages: list[Stage], state: RolloutState, action: Action
    ) -> HookResult | TrafficResult | AnalysisResult | None:
        if isinstance(action, Hooks):
            hooks = [h for h in spec.analysis.webhooks if h.type == action.type]
            outcomes = await self._hooks.call_all(hooks, payload(name, spec, state.phase.value, state.weight))
            failed = [o.detail for o in outcomes if not o.ok]
            return HookResult(not failed, "; ".join(failed) or f"{len(outcomes)} passed")
        if isinstance(action, SetTraffic):
            return await self._set_traffic(name, spec, action)
        if isinstance(action, Analyze):
            return await self._analyze(name, spec, state, action)
        return None

    async def _set_traffic(self, name: str, spec: RolloutSpec, action: SetTraffic) -> TrafficResult:
        message = f"rollout/{name}: {action.reason}: {action.traffic.describe(spec)}"
        try:
            # Rollouts that step at the same moment share one revision: one check and snapshot build for all.
            result = await self.controller.edit_together(
                "Service", spec.service, lambda raw: write_traffic(raw, spec, action.traffic),
                author=f"rollout/{name}", message=message,
            )
        except (ConfigError, NotFound) as exc:
            return TrafficResult(False, None, str(exc))
        return TrafficResult(True, result.revision, message, result.served_at)

    async def _analyze(self, name: str, spec: RolloutSpec, state: RolloutState, action: Analyze) -> AnalysisResult:
        hooks = spec.analysis.webhooks
        body = payload(name, spec, state.phase.value, state.weight)
        rollback = [h for h in hooks if h.type == "rollback"]
        if rollback:
            asked = [o.detail for o in await self._hooks.call_all(rollback, body) if o.ok]
            if asked:
                return AnalysisResult(None, rollback_requested="; ".join(asked))
        load = [h for h in hooks if h.type == "rollout"]
        if load:
            failed = [o.detail for o in await self._hooks.call_all(load, body) if not o.ok]
            if failed:
                return AnalysisResult(None, hook_failure="; ".join(failed))
        if spec.skip_analysis:
            return AnalysisResult(Verdict(Outcome.PASSED, "analysis skipped (skipAnalysis)", None, {}))
        cluster = version_cluster(spec.service, spec.canary)
        window = analysis_window(action.start, action.end, self._lag(spec))
        source = self._source(spec)
        try:
            measurement: Measurement = await source.measure(cluster, *window, spec.analysis.reporter)
        except MetricsUnavailable as exc:  # nothing was measured: neither a pass nor a failure
            verdict = Verdict(Outcome.INCONCLUSIVE, f"no measurement: {exc}", None, {})
            return AnalysisResult(verdict, window=window)
        # The stable version's count in the same window: the split as measured, shown beside the weight set.
        stable = version_cluster(spec.service, spec.stable)
        try:
            stable_requests: int | None = (await source.measure(stable, *window, spec.analysis.reporter)).requests
        except MetricsUnavailable:
            stable_requests = None
        return AnalysisResult(judge(spec.analysis, measurement), window=window, stable_requests=stable_requests)

    def _source(self, spec: RolloutSpec) -> MetricsSource:
        """Envoy's own reports, or the Prometheus the Rollout names (one client per address)."""
        address = spec.analysis.prometheus
        if address is None:
            return self.source
        if address not in self._prometheus:
            self._prometheus[address] = PrometheusSource(address)
        return self._prometheus[address]

    # -- the API's side (any replica) ---------------------------------------------

    async def _spec(self, name: str) -> tuple[RolloutSpec, Mapping[str, Any]]:
        """The Rollout as the store's head has it (the driver may not have seen a fresh apply yet)."""
        try:
            raw = await self.controller.document("Rollout", name)
        except NotFound:
            raise RolloutNotFound(f"rollout/{name} does not exist") from None
        doc = parse_document(raw, f"rollout/{name}")
        assert isinstance(doc.spec, RolloutSpec)
        return doc.spec, raw["spec"]

    async def status(self, name: str) -> dict[str, Any]:
        """Where rollout ``name`` stands, as the API shows it."""
        spec, raw_spec = await self._spec(name)
        record = await self.store.get_state(state_key(name))
        state = RolloutState.from_json(record.value) if record is not None else None
        stages = plan(spec)
        current = state if state is not None and state.generation == generation_of(raw_spec) else None
        return {
            "name": name,
            "service": spec.service,
            "stable": spec.stable,
            "canary": spec.canary,
            "strategy": spec.strategy,
            "interval": spec.analysis.interval,
            "threshold": spec.analysis.threshold,
            "stages": [s.name for s in stages],
            "driver": await self.store.lease_holder(_lease(name)),
            "state": current.to_json() if current is not None else None,
            "previousRun": state.to_json() if state is not None and current is None else None,
        }

    async def watched_clusters(self) -> set[str]:
        """The Envoy clusters the rollouts in the served configuration judge: each one's canary version
        cluster, unless its run has ended, it skips analysis or it asks a Prometheus. Every replica publishes
        its Envoys' traffic to these for whichever replica drives the rollout (:mod:`switchman.telemetry.share`)."""
        specs = {
            name: (known.spec, known.raw_spec) for name, known in self._specs.items()
            if not known.spec.skip_analysis and known.spec.analysis.prometheus is None
        }
        if not specs:
            return set()
        # The runs driven here as their drivers last stored them; the store is read for the others only.
        states = {name: d.stored[0] for name, d in self._drivers.items() if d.stored is not None}
        if specs.keys() - states.keys():
            for record in await self.store.list_state(state_key("")):
                name = record.key.removeprefix(state_key(""))
                if name in specs and name not in states:
                    states[name] = RolloutState.from_json(record.value)
        watched = set()
        for name, (spec, raw_spec) in specs.items():
            state = states.get(name)
            if state is not None and state.generation == generation_of(raw_spec) and state.phase in ENDED:
                continue
            watched.add(version_cluster(spec.service, spec.canary))
        return watched

    async def names(self) -> list[str]:
        return sorted(raw["metadata"]["name"] for raw in await self.controller.documents("Rollout"))

    async def command(self, name: str, verb: str, by: str) -> dict[str, Any]:
        """Apply a person's command to the stored run (any replica; the driver sees it at its next turn)."""
        spec, raw_spec = await self._spec(name)
        generation = generation_of(raw_spec)
        for _ in range(20):
            record = await self.store.get_state(state_key(name))
            if record is None:
                raise CommandRefused(f"rollout/{name} has not started yet")
            state = RolloutState.from_json(record.value)
            if state.generation != generation:
                raise CommandRefused(f"rollout/{name} is starting a new run; try again")
            now = self.clock()
            changed = command(state, verb, by, now)
            if verb == "retry":
                changed = start(spec, generation, state.run + 1, now)
            try:
                await self.store.put_state(state_key(name), changed.to_json(), expected_version=record.version)
            except ConflictError:
                continue
            driver = self._drivers.get(name)
            if driver is not None:
                driver.stored = None  # read the run again, with the command in it
                driver.poke.set()
            return await self.status(name)
        raise ConflictError(f"rollout/{name} changed too often to apply {verb}; try again")


def _new_events(before: RolloutState, after: RolloutState, fresh: bool) -> list[Event]:
    """The events ``after`` has that ``before`` had not (all of them for a new run). Events are only ever
    appended (the oldest dropped past MAX_EVENTS), and a turn's state keeps the event objects it was given."""
    if fresh or not before.events:
        return list(after.events)
    last = before.events[-1]
    for i in range(len(after.events) - 1, -1, -1):
        if after.events[i] is last:
            return list(after.events[i + 1:])
    return list(after.events)


def analysis_window(start: float, end: float, lag: float) -> tuple[float, float]:
    """The window an analysis due over ``[start, end)`` measures: ``lag`` earlier (the newest access logs are still
    on their way), and on whole seconds when the interval is a second or more, as the telemetry recorder's
    buckets are, so that its counts are exact rather than scaled at the edges."""
    width = end - start
    end -= lag
    if width >= 1.0:
        end = float(math.floor(end))
        return end - round(width), end
    return end - width, end


def _lease(name: str) -> str:
    return f"rollout/{name}"


async def _sleep(poke: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if poked."""
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await poke.wait()
    poke.clear()

