"""The rollout state machine, step by step: every transition, with a clock and results of our choosing."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from switchman.model.config import parse_document
from switchman.model.kinds.rollout import RolloutSpec
from switchman.rollout.analysis import Measurement, judge
from switchman.rollout.machine import (
    Action,
    Advance,
    AnalysisResult,
    Analyze,
    CommandRefused,
    Finish,
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
from switchman.rollout.plan import plan
from switchman.rollout.state import Phase, RolloutState

GOOD = Measurement(requests=200, errors=0, p50_ms=3.0, p99_ms=9.0, source="als")
BAD = Measurement(requests=200, errors=40, p50_ms=3.0, p99_ms=9.0, source="als")
QUIET = Measurement(requests=3, errors=0, p50_ms=3.0, p99_ms=9.0, source="als")


def rollout(**spec: Any) -> RolloutSpec:
    body = {"service": "checkout", "stable": "v1", "canary": "v2"} | spec
    doc = parse_document({"kind": "Rollout", "metadata": {"name": "checkout"}, "spec": body}, "test")
    assert isinstance(doc.spec, RolloutSpec)
    return doc.spec


@dataclass
class Run:
    """Drives the machine as the engine would, with measurements and webhook answers given by the test."""

    spec: RolloutSpec
    measure: Callable[[float], Measurement] = lambda now: GOOD
    hooks: Callable[[str, float], bool] = lambda kind, now: True
    now: float = 1000.0
    revision: int = 10
    early: float = 0.0  # how long before its due moment an analysis can be made (the engine's ready())
    state: RolloutState = field(init=False)
    traffic: list[tuple[float, int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state = start(self.spec, "g1", 1, self.now)

    def step(self) -> Action:
        stages = plan(self.spec)
        action = decide(self.spec, stages, self.state, self.now, lambda start, end: end - self.early)
        result: Any = None
        if isinstance(action, Wait):
            assert action.until > self.now, "a wait must move time on"
            self.now = action.until
            return action
        if isinstance(action, Idle):
            return action
        if isinstance(action, Hooks):
            result = HookResult(self.hooks(action.type, self.now), f"{action.type} answered")
        elif isinstance(action, SetTraffic):
            weight = action.traffic.canary_weight
            if self.traffic and self.traffic[-1][1] == weight and self.traffic[-1][2] == action.reason:
                result = TrafficResult(True, None, action.reason)  # nothing changed: no revision
            else:
                self.revision += 1
                if not self.traffic or self.traffic[-1][1] != weight:
                    self.traffic.append((self.now, weight, action.reason))
                result = TrafficResult(True, self.revision, action.reason)
        elif isinstance(action, Analyze):
            assert action.end - action.start == pytest.approx(self.spec.analysis.interval)
            result = AnalysisResult(judge(self.spec.analysis, self.measure(self.now)))
        self.state = settle(self.spec, stages, self.state, action, result, self.now)
        return action

    def until(self, done: Callable[[RolloutState], bool], limit: int = 500) -> None:
        for _ in range(limit):
            if done(self.state):
                return
            self.step()
        raise AssertionError(f"not reached after {limit} steps: {self.state.phase} {self.state.message}")

    def finish(self) -> None:
        self.until(lambda s: s.phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.ABORTED))

    def kinds(self) -> list[str]:
        return [e.kind for e in self.state.events]


def test_a_healthy_canary_steps_up_one_interval_at_a_time_and_is_promoted() -> None:
    run = Run(rollout(analysis={"interval": "2s", "stepWeight": 25, "maxWeight": 75}))
    run.finish()
    assert run.state.phase is Phase.SUCCEEDED
    assert [w for _, w, _ in run.traffic] == [25, 50, 75, 100]
    times = [t for t, _, _ in run.traffic]
    assert [b - a for a, b in itertools.pairwise(times)] == [2.0, 2.0, 2.0]
    assert run.kinds() == ["Started", "Advanced", "Advanced", "Advanced", "Promoted", "Succeeded"]
    assert run.state.weight == 100 and run.state.revision == 14


def test_runs_started_apart_are_due_together_on_whole_seconds() -> None:
    """Rollouts started at different moments analyse (and step) at the same moments: one revision for all."""
    spec = rollout(analysis={"interval": "2s", "stepWeights": [10, 20, 30]})
    runs = [Run(spec, now=1000.0 + offset) for offset in (0.03, 0.4, 0.97)]
    for run in runs:
        run.until(lambda s: s.stage == 1)
    dues = [[e.at for e in run.state.events if e.kind == "Advanced"][-1] for run in runs]
    assert dues == [dues[0]] * 3 and dues[0] == int(dues[0])
    assert 1002.0 <= dues[0] <= 1004.0  # the first analysis within an interval and a second of the start
    short = rollout(analysis={"interval": "500ms", "stepWeights": [10, 20]})  # a shorter grid: its own
    quick = Run(short, now=7.1)
    wait = quick.step()
    assert isinstance(wait, Wait) and wait.until == pytest.approx(7.5)  # stage 0's weights on its grid
    assert isinstance(quick.step(), SetTraffic)
    wait = quick.step()
    assert isinstance(wait, Wait) and wait.until == pytest.approx(8.0)  # the first analysis 500 ms later
    # Runs started within one second enter stage 0 together: one revision for all of them.
    entered = []
    for offset in (0.05, 0.5, 0.95):
        run = Run(spec, now=2000.0 + offset)
        run.until(lambda s: s.stage == 0)
        entered.append(run.traffic[0][0])
    assert entered == [2001.0] * 3


def test_an_analysis_made_early_still_steps_at_its_due_moment() -> None:
    """The analysis runs once its window's reports are in; the step it allows lands when it was due."""
    spec = rollout(analysis={"interval": "2s", "stepWeights": [10, 20, 30]})
    run = Run(spec, now=1000.0, early=0.5)
    run.until(lambda s: s.stage == 0)
    analyses: list[tuple[float, float]] = []
    while run.state.stage < 2:
        action = run.step()
        if isinstance(action, Analyze):
            analyses.append((run.now, action.end))
    assert [(end - at) for at, end in analyses] == [0.5, 0.5]  # each made half a second before it was due
    entered = [(at, weight) for at, weight, _ in run.traffic]
    assert entered[1:] == [(analyses[0][1], 20), (analyses[1][1], 30)]  # each step at its due moment
    run.state = command(run.state, "promote", "alice", run.now)  # a person's promote does not wait
    promoted_at = run.now
    run.until(lambda s: s.stage == 3 or s.phase is Phase.SUCCEEDED)
    assert run.traffic[-1][0] == promoted_at


def test_failed_checks_up_to_the_threshold_roll_back_to_stable() -> None:
    run = Run(rollout(analysis={"interval": "2s", "threshold": 2, "stepWeights": [10, 50]}))
    run.measure = lambda now: BAD
    run.finish()
    assert run.state.phase is Phase.FAILED
    assert [w for _, w, _ in run.traffic] == [10, 0]
    assert run.kinds() == ["Started", "Advanced", "Halted", "Halted", "RollingBack", "RolledBack"]
    halted = run.state.events[2]
    assert halted.values["request-success-rate"] == pytest.approx(80.0)
    assert halted.values["requests"] == 200 and halted.values["errors"] == 40
    assert "request-success-rate 80.00% < 99%" in halted.message
    # two intervals after the canary got traffic, it has none
    assert run.traffic[-1][0] - run.traffic[0][0] == pytest.approx(4.0)


def test_a_canary_that_turns_bad_mid_ramp_is_rolled_back() -> None:
    run = Run(rollout(analysis={"interval": "1s", "threshold": 1, "stepWeights": [10, 20, 30, 40]}))
    run.measure = lambda now: BAD if now >= 1003.0 else GOOD
    run.finish()
    assert run.state.phase is Phase.FAILED
    assert [w for _, w, _ in run.traffic] == [10, 20, 30, 0]


def test_quiet_intervals_are_inconclusive_and_never_advance() -> None:
    run = Run(rollout(analysis={"interval": "1s", "minRequests": 50, "stepWeights": [10, 20]}))
    run.measure = lambda now: QUIET
    for _ in range(40):
        run.step()
    assert run.state.phase is Phase.PROGRESSING
    assert [w for _, w, _ in run.traffic] == [10]
    assert run.state.failed == 0
    assert run.kinds().count("Inconclusive") >= 10
    run.measure = lambda now: GOOD
    run.finish()
    assert run.state.phase is Phase.SUCCEEDED


def test_an_inconclusive_interval_between_failures_does_not_reset_the_count() -> None:
    seq = iter([BAD, QUIET, BAD])
    run = Run(rollout(analysis={"interval": "1s", "threshold": 2, "minRequests": 10, "stepWeights": [10]}))
    run.measure = lambda now: next(seq)
    run.finish()
    assert run.state.phase is Phase.FAILED
    assert run.kinds()[2:] == ["Halted", "Inconclusive", "Halted", "RollingBack", "RolledBack"]


def test_a_pause_step_holds_the_weight_for_its_duration() -> None:
    run = Run(rollout(analysis={"interval": "1s"}, steps=[{"setWeight": 20}, {"pause": {"duration": "5s"}},
                                                          {"setWeight": 60}]))
    run.finish()
    (t20, w20, _), (t60, w60, _) = run.traffic[0], run.traffic[1]
    assert (w20, w60) == (20, 60)
    assert t60 - t20 == pytest.approx(6.0)  # one interval to pass 20 %, then 5 s held


def test_a_pause_without_duration_waits_for_promote_and_keeps_judging() -> None:
    run = Run(rollout(analysis={"interval": "1s"}, steps=[{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}]))
    run.until(lambda s: s.phase is Phase.PAUSED)
    assert run.state.paused_by == "step"
    for _ in range(20):
        run.step()
    assert [w for _, w, _ in run.traffic] == [20]  # held
    assert run.state.phase is Phase.PAUSED
    run.state = command(run.state, "promote", "alice", run.now)
    run.finish()
    assert [w for _, w, _ in run.traffic] == [20, 60, 100]
    assert run.state.phase is Phase.SUCCEEDED


def test_a_paused_gate_still_rolls_back_a_bad_canary() -> None:
    run = Run(rollout(analysis={"interval": "1s", "threshold": 2}, steps=[{"setWeight": 20}, {"pause": {}}]))
    run.until(lambda s: s.phase is Phase.PAUSED)
    run.measure = lambda now: BAD
    run.finish()
    assert run.state.phase is Phase.FAILED
    assert run.traffic[-1][1] == 0


def test_a_person_pauses_and_resumes() -> None:
    run = Run(rollout(analysis={"interval": "1s", "stepWeights": [10, 20, 30]}))
    run.until(lambda s: s.weight == 10)
    run.state = command(run.state, "pause", "bob", run.now)
    assert run.state.phase is Phase.PAUSED
    for _ in range(20):
        run.step()
    assert run.state.weight == 10
    with pytest.raises(CommandRefused, match="already paused by bob"):
        command(run.state, "pause", "bob", run.now)
    run.state = command(run.state, "resume", "bob", run.now)
    run.finish()
    assert run.state.phase is Phase.SUCCEEDED
    assert "Paused" in run.kinds() and "Resumed" in run.kinds()


def test_promote_full_skips_the_remaining_steps() -> None:
    run = Run(rollout(analysis={"interval": "10s", "stepWeights": [10, 20, 30, 40]}))
    run.until(lambda s: s.weight == 10)
    run.state = command(run.state, "promote-full", "carol", run.now)
    run.finish()
    assert [w for _, w, _ in run.traffic] == [10, 100]


def test_abort_returns_traffic_and_says_who() -> None:
    run = Run(rollout(analysis={"interval": "1s", "stepWeights": [10, 20]}))
    run.until(lambda s: s.weight == 10)
    run.state = command(run.state, "abort", "dave", run.now)
    run.finish()
    assert run.state.phase is Phase.ABORTED
    assert run.traffic[-1][1] == 0
    assert run.state.events[-1].message == "traffic back on v1 (aborted by dave)"
    with pytest.raises(CommandRefused, match="has ended"):
        command(run.state, "pause", "dave", run.now)
    command(run.state, "retry", "dave", run.now)  # allowed: the engine starts a new run


def test_retry_is_refused_for_a_running_or_succeeded_run() -> None:
    run = Run(rollout(analysis={"interval": "1s", "stepWeights": [10]}))
    run.until(lambda s: s.weight == 10)
    with pytest.raises(CommandRefused, match="only a failed or aborted run"):
        command(run.state, "retry", "x", run.now)
    run.finish()
    with pytest.raises(CommandRefused, match="Succeeded"):
        command(run.state, "retry", "x", run.now)


def test_unknown_command_is_refused() -> None:
    run = Run(rollout())
    with pytest.raises(CommandRefused, match="there is no command 'jump'"):
        command(run.state, "jump", "x", run.now)


def test_promote_before_the_first_stage_is_refused() -> None:
    run = Run(rollout())
    with pytest.raises(CommandRefused, match="first stage"):
        command(run.state, "promote", "x", run.now)


WEBHOOK = {"name": "gate", "url": "http://127.0.0.1:9/gate"}


def test_a_closed_confirm_rollout_gate_holds_the_run_before_any_traffic_moves() -> None:
    hooks = [WEBHOOK | {"type": "confirm-rollout"}]
    run = Run(rollout(analysis={"interval": "1s", "stepWeights": [50], "webhooks": hooks}))
    run.hooks = lambda kind, now: now >= 1005.0
    run.finish()
    assert run.traffic[0][0] == pytest.approx(1005.0)
    assert run.kinds().count("Waiting") == 5
    assert run.state.failed == 0


def test_a_failing_pre_rollout_webhook_is_a_failed_check() -> None:
    hooks = [WEBHOOK | {"type": "pre-rollout"}]
    run = Run(rollout(analysis={"interval": "1s", "threshold": 3, "webhooks": hooks}))
    run.hooks = lambda kind, now: False
    run.finish()
    assert run.state.phase is Phase.FAILED
    assert run.state.failed == 3
    assert run.traffic == [(run.traffic[0][0], 0, "rollback")]


def test_confirm_promotion_gates_only_the_last_stage() -> None:
    hooks = [WEBHOOK | {"type": "confirm-promotion"}]
    run = Run(rollout(analysis={"interval": "1s", "stepWeights": [10, 20], "webhooks": hooks}))
    run.hooks = lambda kind, now: now >= 1010.0
    run.finish()
    assert [w for _, w, _ in run.traffic] == [10, 20, 100]
    assert run.traffic[1][0] == pytest.approx(1001.0)
    assert run.traffic[2][0] == pytest.approx(1010.0)


def test_post_rollout_failure_is_a_warning_after_promotion() -> None:
    hooks = [WEBHOOK | {"type": "post-rollout"}]
    run = Run(rollout(analysis={"interval": "1s", "stepWeights": [50], "webhooks": hooks}))
    run.hooks = lambda kind, now: False
    run.finish()
    assert run.state.phase is Phase.SUCCEEDED
    assert "Warning" in run.kinds()


def test_a_rollback_webhook_that_answers_yes_rolls_back() -> None:
    spec = rollout(analysis={"interval": "1s", "stepWeights": [10, 20]})
    state = start(spec, "g", 1, 0.0)
    stages = plan(spec)
    state = settle(spec, stages, state, SetTraffic(stages[0].traffic, "x"), TrafficResult(True, 2, ""), 0.0)
    action = decide(spec, stages, state, 1.0)
    assert isinstance(action, Analyze)
    state = settle(spec, stages, state, action, AnalysisResult(None, rollback_requested="gate: HTTP 200"), 1.0)
    assert state.pending == ("rollback",)
    assert isinstance(decide(spec, stages, state, 1.0), SetTraffic)


def test_blue_green_previews_flips_and_judges_after_the_flip() -> None:
    match = [{"headers": {"x-preview": {"exact": "1"}}}]
    run = Run(rollout(strategy="blueGreen", analysis={"interval": "1s", "iterations": 3, "match": match}))
    run.measure = lambda now: GOOD
    run.finish()
    assert run.state.phase is Phase.SUCCEEDED
    assert [(w, r) for _, w, r in run.traffic] == [(0, "preview"), (100, "promoted")]
    (t_preview, _, _), (t_flip, _, _) = run.traffic
    assert t_flip - t_preview == pytest.approx(3.0)
    assert run.state.finished_at is not None and run.state.finished_at - t_flip == pytest.approx(3.0)


def test_blue_green_flips_back_when_the_new_version_fails_after_the_flip() -> None:
    run = Run(rollout(strategy="blueGreen", analysis={"interval": "1s", "iterations": 2, "threshold": 1,
                                                      "match": [{"headers": {"x-preview": {"exact": "1"}}}]}))
    run.measure = lambda now: BAD if now > 1003.0 else GOOD
    run.finish()
    assert run.state.phase is Phase.FAILED
    assert [w for _, w, _ in run.traffic] == [0, 100, 0]


def test_ab_test_sends_the_cohort_then_promotes() -> None:
    match = [{"headers": {"x-user": {"exact": "beta"}}}]
    run = Run(rollout(strategy="abTest", analysis={"interval": "1s", "iterations": 2, "match": match}))
    stages = plan(run.spec)
    assert stages[0].traffic.cohort and stages[0].traffic.canary_weight == 0
    run.finish()
    assert [w for _, w, _ in run.traffic] == [0, 100]


def test_mirror_then_weights() -> None:
    run = Run(rollout(strategy="mirror", analysis={"interval": "1s", "iterations": 2, "mirrorWeight": 50,
                                                   "stepWeights": [50]}))
    stages = plan(run.spec)
    assert stages[0].traffic.mirror_percent == 50 and stages[1].traffic.mirror_percent == 0
    run.finish()
    assert [w for _, w, _ in run.traffic] == [0, 50, 100]


def test_skip_analysis_promotes_without_measuring() -> None:
    run = Run(rollout(skipAnalysis=True, analysis={"interval": "1s", "stepWeights": [10, 50]}))
    run.measure = lambda now: BAD
    run.finish()
    assert run.state.phase is Phase.SUCCEEDED
    assert {t for t, _, _ in run.traffic} == {1000.0}


def test_a_traffic_change_that_is_refused_fails_the_run() -> None:
    spec = rollout(analysis={"stepWeights": [10]})
    state = start(spec, "g", 1, 0.0)
    action = decide(spec, plan(spec), state, 0.0)
    assert isinstance(action, SetTraffic)
    state = settle(spec, plan(spec), state, action, TrafficResult(False, None, "service/checkout does not exist"), 0)
    assert state.phase is Phase.FAILED
    assert "service/checkout does not exist" in state.message
    assert isinstance(decide(spec, plan(spec), state, 5.0), Idle)


def test_state_survives_json() -> None:
    run = Run(rollout(analysis={"interval": "1s", "stepWeights": [10, 20]}))
    run.until(lambda s: s.weight == 20)
    again = RolloutState.from_json(run.state.to_json())
    assert again == run.state


def test_advance_and_finish_need_no_io() -> None:
    spec = rollout(skipAnalysis=True, analysis={"stepWeights": [10]})
    stages = plan(spec)
    state = start(spec, "g", 1, 0.0)
    state = settle(spec, stages, state, SetTraffic(stages[0].traffic, ""), TrafficResult(True, 1, ""), 0.0)
    assert isinstance(decide(spec, stages, state, 0.0), Advance)
    state = settle(spec, stages, state, Advance(), None, 0.0)
    state = settle(spec, stages, state, SetTraffic(stages[1].traffic, ""), TrafficResult(True, 2, ""), 0.0)
    state = settle(spec, stages, state, Advance(), None, 0.0)
    assert isinstance(decide(spec, stages, state, 0.0), Finish)


def test_confirm_traffic_increase_gates_each_raise_but_not_the_promotion() -> None:
    hooks = [WEBHOOK | {"type": "confirm-traffic-increase"}]
    run = Run(rollout(analysis={"interval": "1s", "stepWeights": [10, 20], "webhooks": hooks}))
    asked: list[float] = []

    def gate(kind: str, now: float) -> bool:
        asked.append(now)
        return now >= 1004.0

    run.hooks = gate
    run.finish()
    assert [w for _, w, _ in run.traffic] == [10, 20, 100]
    assert run.traffic[1][0] == pytest.approx(1004.0)  # held at 10 % until the gate opened
    assert run.traffic[2][0] == pytest.approx(1005.0)  # the promotion is not a traffic increase gate
    assert all(t <= 1004.0 for t in asked)


def test_blue_green_without_a_preview_flips_at_once_and_judges_after() -> None:
    run = Run(rollout(strategy="blueGreen", analysis={"interval": "1s", "iterations": 2}))
    run.finish()
    assert [(w, r) for _, w, r in run.traffic] == [(0, "preview"), (100, "promoted")]
    assert run.traffic[1][0] == pytest.approx(run.traffic[0][0])
    assert run.state.finished_at is not None and run.state.finished_at - run.traffic[1][0] == pytest.approx(2.0)
