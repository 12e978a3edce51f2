"""The rollout state machine, without I/O: what to do next, and what a result means.

The engine loops ``action = decide(...)``, carries the action out (webhooks,
a traffic change through the controller, a measurement), then
``state = settle(..., action, result)`` and stores the state. Commands from
people (pause, resume, promote, abort, retry) are :func:`command`. Every
function here is pure, so every transition is a unit test.

Order of work in a run: ``confirm-rollout`` webhooks (a gate: retried every
interval), ``pre-rollout`` webhooks (a failure is a failed check), stage 0's
traffic; then per stage, an analysis every interval (``rollout`` webhooks
first; a ``rollback`` webhook answering 2xx asks for a rollback); a stage ends
when it has its passing analyses, its hold time and, for a gate, a promote;
``confirm-traffic-increase`` webhooks gate each stage that raises the
canary's weight, ``confirm-promotion`` webhooks the last stage; ``post-rollout`` webhooks
run after it. ``threshold`` failed checks send traffic back to the stable
version (a rollback).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from switchman.errors import SwitchmanError
from switchman.model.kinds.rollout import RolloutSpec
from switchman.rollout.analysis import Outcome, Verdict
from switchman.rollout.plan import Stage
from switchman.rollout.state import ENDED, MAX_ANALYSES, Event, Phase, RolloutState
from switchman.rollout.traffic import Traffic, stable_traffic

__all__ = [
    "COMMANDS",
    "Action",
    "Advance",
    "AnalysisResult",
    "Analyze",
    "CommandRefused",
    "Finish",
    "HookResult",
    "Hooks",
    "Idle",
    "SetTraffic",
    "TrafficResult",
    "Wait",
    "command",
    "decide",
    "settle",
    "start",
]

COMMANDS: Final = ("pause", "resume", "promote", "promote-full", "abort", "retry")
_GATES: Final = ("confirm-rollout", "confirm-traffic-increase", "confirm-promotion")


class CommandRefused(SwitchmanError):
    """Raised when a command does not apply to the run as it stands (resume a run that is not paused)."""


# -- actions: what the engine is asked to do -------------------------------------


@dataclass(frozen=True, slots=True)
class Hooks:
    """Call every webhook of this type."""

    type: str


@dataclass(frozen=True, slots=True)
class SetTraffic:
    """Write this traffic into the Service (a revision)."""

    traffic: Traffic
    reason: str


@dataclass(frozen=True, slots=True)
class Analyze:
    """Call the ``rollout`` and ``rollback`` webhooks, then measure the canary over the last interval."""

    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Advance:
    """The stage is done: queue the next (no I/O)."""


@dataclass(frozen=True, slots=True)
class Finish:
    """The last stage is done (no I/O)."""


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to do before ``until`` (or a command)."""

    until: float


@dataclass(frozen=True, slots=True)
class Idle:
    """The run has ended: nothing to do until the Rollout changes or is retried."""


Action = Hooks | SetTraffic | Analyze | Advance | Finish | Wait | Idle


# -- results ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HookResult:
    ok: bool
    message: str  # which webhook failed and why, or a summary


@dataclass(frozen=True, slots=True)
class TrafficResult:
    ok: bool
    revision: int | None
    message: str
    at: float | None = None  # when the change took effect (its revision served); None: the engine's clock


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    verdict: Verdict | None  # None when a webhook decided first
    hook_failure: str | None = None  # a ``rollout`` webhook failed: a failed check
    rollback_requested: str | None = None  # a ``rollback`` webhook answered 2xx
    window: tuple[float, float] | None = None  # the time the measurement covers (wall clock)
    stable_requests: int | None = None  # what the stable version answered in the same window: the split measured


Result = HookResult | TrafficResult | AnalysisResult | None


# -- start --------------------------------------------------------------------------


def _has_hooks(spec: RolloutSpec, kind: str) -> bool:
    return any(h.type == kind for h in spec.analysis.webhooks)


def on_grid(now: float, interval: float) -> float:
    """The first moment from ``now`` on the grid every cadence starts on: whole seconds (an interval under
    a second: its multiples). Analyses are due on it, so rollouts with the same interval are due at the
    same moments, whenever they started, and step together: one revision, one snapshot build and one
    push for all of them (Controller.edit_together). The telemetry's windows lie on whole seconds already
    (:func:`switchman.rollout.engine.analysis_window`), so a window loses nothing by it."""
    grid = min(1.0, interval)
    return math.ceil(now / grid) * grid


def start(spec: RolloutSpec, generation: str, run: int, now: float) -> RolloutState:
    """A new run of ``spec``: webhooks first, then stage 0."""
    pending = [f"hooks:{t}" for t in ("confirm-rollout", "pre-rollout") if _has_hooks(spec, t)]
    state = RolloutState(
        generation=generation, run=run, phase=Phase.PROGRESSING, stage=-1, started_at=now,
        stage_started_at=now, last_analysis_at=on_grid(now, spec.analysis.interval), pending=(*pending, "enter:0"),
        # Stage 0's weights on the grid too: runs started within one second share that revision.
        enter_at=on_grid(now, spec.analysis.interval),
    )
    what = f"{spec.strategy} of service/{spec.service}: {spec.stable} -> {spec.canary}"
    return state.with_event(Event(now, "Started", f"run {run}: {what}", -1, 0))


# -- decide -------------------------------------------------------------------------


def _stage_done(spec: RolloutSpec, stage: Stage, state: RolloutState, now: float) -> bool:
    if state.promote is not None:
        return True
    if state.paused_by is not None or stage.gate:
        return False
    if state.passed < stage.checks:
        return False
    return stage.hold is None or now >= state.stage_started_at + stage.hold


def _when_due(start: float, end: float) -> float:
    return end


def decide(
    spec: RolloutSpec, stages: Sequence[Stage], state: RolloutState, now: float,
    ready: Callable[[float, float], float] = _when_due,
) -> Action:
    """What the engine should do next for this run.

    ``ready(start, end)`` is when the analysis due over ``[start, end)`` can be made: when what it measures
    is all in (the engine knows: its windows end on whole seconds, some time before the due moment), the
    due moment at the latest. A stage that an early analysis lets in is still entered at the due moment,
    not before: the analysis comes early, the step on time."""
    if state.phase in ENDED:
        return Idle()
    interval = spec.analysis.interval
    head = state.pending[0] if state.pending else None
    held = state.paused_by is not None and state.paused_by != "step"  # a person paused it: hold the weight
    if head == "rollback":
        return SetTraffic(stable_traffic(), "rollback")
    if head is not None and head.startswith("hooks:"):
        if now < state.retry_at:
            return Wait(state.retry_at)
        return Hooks(head.removeprefix("hooks:"))
    if head is not None and head.startswith("enter:") and not held:
        if now < state.enter_at:
            return Wait(state.enter_at)
        index = int(head.removeprefix("enter:"))
        return SetTraffic(stages[index].traffic, stages[index].name)
    if head == "finish":
        return Finish()
    if state.stage >= 0:
        due = state.last_analysis_at + interval
        if state.promote is None and now >= ready(due - interval, due):
            return Analyze(due - interval, due)
        stage = stages[state.stage]
        if head is None and _stage_done(spec, stage, state, now):
            return Advance()
        deadline = ready(due - interval, due)
        if stage.hold is not None and state.passed >= stage.checks:
            deadline = min(deadline, state.stage_started_at + stage.hold)
        return Wait(deadline)
    return Wait(state.last_analysis_at + interval)


# -- settle -------------------------------------------------------------------------


def _event(state: RolloutState, now: float, kind: str, message: str, **values: object) -> RolloutState:
    return state.with_event(Event(now, kind, message, state.stage, state.weight, dict(values)))


def _pop(state: RolloutState) -> RolloutState:
    return replace(state, pending=state.pending[1:], retry_at=0.0)


def _failed_check(
    spec: RolloutSpec, state: RolloutState, now: float, why: str, values: dict[str, object]
) -> RolloutState:
    failed = state.failed + 1
    threshold = spec.analysis.threshold
    state = replace(state, failed=failed)
    state = _event(state, now, "Halted", f"failed check {failed}/{threshold}: {why}", **values)
    if failed >= threshold:
        state = replace(state, pending=("rollback",), retry_at=0.0, promote=None)
        reached = f"{failed} failed checks reached the threshold ({threshold})"
        state = _event(state, now, "RollingBack", reached, **values)
    return state


def _settle_hooks(spec: RolloutSpec, state: RolloutState, kind: str, result: HookResult, now: float) -> RolloutState:
    if result.ok:
        return _pop(state)
    retry = now + spec.analysis.interval
    if kind in _GATES:
        state = _event(replace(state, retry_at=retry), now, "Waiting", f"{kind} webhook: {result.message}")
        return state
    if kind == "pre-rollout":
        state = replace(state, retry_at=retry)
        return _failed_check(spec, state, now, f"pre-rollout webhook: {result.message}", {})
    # post-rollout: the run is promoted already; say so and go on
    return _pop(_event(state, now, "Warning", f"{kind} webhook: {result.message}"))


def _settle_traffic(
    spec: RolloutSpec, stages: Sequence[Stage], state: RolloutState, result: TrafficResult, now: float
) -> RolloutState:
    head = state.pending[0]
    if not result.ok:
        state = replace(state, phase=Phase.FAILED, finished_at=now, pending=())
        return _event(state, now, "Failed", f"cannot set the traffic ({head}): {result.message}")
    revision = result.revision if result.revision is not None else state.revision
    if head == "rollback":
        aborted = state.aborting is not None
        state = replace(
            state, pending=(), weight=0, revision=revision, finished_at=now, promote=None, paused_by=None,
            phase=Phase.ABORTED if aborted else Phase.FAILED, last_analysis_at=now,
        )
        who = f" (aborted by {state.aborting})" if aborted else ""
        return _event(state, now, "RolledBack", f"traffic back on {spec.stable}{who}")
    index = int(head.removeprefix("enter:"))
    stage = stages[index]
    previous = state.last_verdict.get("values", {}) if state.last_verdict else {}
    # Entered right after the analysis that let it (the same turn), a stage keeps the run's cadence: its
    # first analysis is due one interval after that one was, not after this commit, so that runs due
    # together stay together (one shared revision a step, see Controller.edit_together) instead of each
    # drifting by its commit's wait. Entered after a wait (a gate, a person), it starts its own cadence,
    # on the grid (see on_grid) like every run's.
    interval = spec.analysis.interval
    cadence = state.last_analysis_at if now - state.last_analysis_at < interval / 2 else on_grid(now, interval)
    state = replace(
        _pop(state), stage=index, stage_started_at=now, last_analysis_at=cadence, passed=0,
        weight=stage.traffic.canary_weight, revision=revision, promote=None,
        paused_by="step" if stage.gate else (None if state.paused_by == "step" else state.paused_by),
    )
    state = replace(state, phase=Phase.PAUSED if state.paused_by is not None else Phase.PROGRESSING)
    kind = "Promoted" if stage.promotion else "Advanced"
    message = f"stage {index + 1}/{len(stages)}: {stage.name} ({stage.traffic.describe(spec)})"
    if stage.gate:
        message += "; waiting to be promoted"
    return _event(state, now, kind, message, **previous)


def _settle_analysis(
    spec: RolloutSpec, state: RolloutState, action: Analyze, result: AnalysisResult, now: float
) -> RolloutState:
    # The next analysis is due one interval after this one was: the windows tile, and a late turn does not
    # push every later one back. After a long stop (a restart), the missed windows are not judged one by one.
    interval = spec.analysis.interval
    state = replace(state, last_analysis_at=max(action.end, on_grid(now, interval) - interval))
    if result.rollback_requested is not None:
        state = replace(state, pending=("rollback",), retry_at=0.0, promote=None)
        return _event(state, now, "RollingBack", f"rollback webhook: {result.rollback_requested}")
    if result.hook_failure is not None:
        return _failed_check(spec, state, now, f"rollout webhook: {result.hook_failure}", {})
    verdict = result.verdict
    assert verdict is not None
    record = {"at": now, "due": action.end, "stage": state.stage, "weight": state.weight, **verdict.to_json()}
    if result.window is not None:
        record["start"], record["end"] = result.window
    if result.stable_requests is not None:
        record["stableRequests"] = result.stable_requests
    state = replace(state, last_verdict=verdict.to_json(), analyses=(*state.analyses, record)[-MAX_ANALYSES:])
    values: dict[str, object] = {k: v for k, v in verdict.values.items()}
    if verdict.measurement is not None:
        values["requests"] = verdict.measurement.requests
        values["errors"] = verdict.measurement.errors
    if verdict.outcome is Outcome.PASSED:
        return replace(state, passed=state.passed + 1)
    if verdict.outcome is Outcome.INCONCLUSIVE:
        return _event(state, now, "Inconclusive", verdict.reason, **values)
    return _failed_check(spec, state, now, verdict.reason, values)


def _settle_advance(spec: RolloutSpec, stages: Sequence[Stage], state: RolloutState, now: float) -> RolloutState:
    full = state.promote == "full"
    # Let in by an analysis made before its due moment: the next stage comes at that moment. By a person: now.
    enter_at = now if state.promote is not None else max(now, state.last_analysis_at)
    state = replace(state, promote=None, enter_at=enter_at)
    last = len(stages) - 1
    if state.stage >= last:
        pending = [*(["hooks:post-rollout"] if _has_hooks(spec, "post-rollout") else []), "finish"]
        return replace(state, pending=tuple(pending))
    target = last if full else state.stage + 1
    gate = []
    if full:
        pass  # a person promoted it: the gates are theirs to pass
    elif stages[target].promotion:
        gate = ["hooks:confirm-promotion"] if _has_hooks(spec, "confirm-promotion") else []
    elif stages[target].traffic.canary_weight > stages[state.stage].traffic.canary_weight:
        gate = ["hooks:confirm-traffic-increase"] if _has_hooks(spec, "confirm-traffic-increase") else []
    return replace(state, pending=(*gate, f"enter:{target}"))


def settle(
    spec: RolloutSpec, stages: Sequence[Stage], state: RolloutState, action: Action, result: Result, now: float
) -> RolloutState:
    """The run after ``action`` was carried out with ``result``."""
    if isinstance(action, Hooks):
        assert isinstance(result, HookResult)
        return _settle_hooks(spec, state, action.type, result, now)
    if isinstance(action, SetTraffic):
        assert isinstance(result, TrafficResult)
        return _settle_traffic(spec, stages, state, result, now)
    if isinstance(action, Analyze):
        assert isinstance(result, AnalysisResult)
        return _settle_analysis(spec, state, action, result, now)
    if isinstance(action, Advance):
        return _settle_advance(spec, stages, state, now)
    if isinstance(action, Finish):
        state = replace(state, phase=Phase.SUCCEEDED, finished_at=now, pending=())
        return _event(state, now, "Succeeded", f"{spec.canary} serves all of service/{spec.service}")
    return state


# -- commands -----------------------------------------------------------------------


def command(state: RolloutState, verb: str, by: str, now: float) -> RolloutState:
    """A person's command; raises CommandRefused when it does not apply now. ``retry`` is the engine's
    (it starts a new run: see :func:`start`) and is only checked here."""
    ended = state.phase in ENDED
    if verb == "retry":
        if not ended or state.phase is Phase.SUCCEEDED:
            raise CommandRefused(f"only a failed or aborted run can be retried; this one is {state.phase.value}")
        return state
    if ended:
        raise CommandRefused(f"the run has ended ({state.phase.value}); retry starts a new one")
    if state.aborting is not None or state.pending[:1] == ("rollback",):
        raise CommandRefused("the run is rolling back")
    if verb == "pause":
        if state.paused_by is not None and state.paused_by != "step":
            raise CommandRefused(f"already paused by {state.paused_by}")
        state = replace(state, paused_by=by, phase=Phase.PAUSED)
        return _event(state, now, "Paused", f"paused by {by}")
    if verb == "resume":
        if state.paused_by is None:
            raise CommandRefused("the run is not paused")
        promote = "step" if state.paused_by == "step" else None  # resuming a pause step passes it
        state = replace(state, paused_by=None, phase=Phase.PROGRESSING, promote=promote)
        return _event(state, now, "Resumed", f"resumed by {by}")
    if verb in ("promote", "promote-full"):
        if state.stage < 0:
            raise CommandRefused("the run has not entered its first stage yet")
        state = replace(
            state, promote="full" if verb == "promote-full" else "step", paused_by=None, phase=Phase.PROGRESSING,
        )
        what = "to the end" if verb == "promote-full" else "past this stage"
        return _event(state, now, "PromoteRequested", f"promoted {what} by {by}")
    if verb == "abort":
        state = replace(state, aborting=by, pending=("rollback",), retry_at=0.0, promote=None)
        return _event(state, now, "Aborting", f"aborted by {by}")
    raise CommandRefused(f"there is no command {verb!r} (commands: {', '.join(COMMANDS)})")
