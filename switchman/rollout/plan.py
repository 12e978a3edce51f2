"""A Rollout document as a list of stages: the traffic each one sets, and what ends it.

Every strategy is the same machine over a different plan:

==========  ==================================================================
canary      a stage per ``setWeight`` (one passing analysis each), ``pause``
            stages (a while, or until promoted), then promotion (100 %)
blueGreen   preview (the ``match`` cohort to the new version, ``iterations``
            passing analyses; without ``match`` there is nothing to judge
            before the flip), then the flip to 100 % judged ``iterations``
            more times: a failure flips back
abTest      the ``match`` cohort to the new version for ``iterations``
            passing analyses, then promotion
mirror      ``mirrorWeight`` % of requests copied to the new version for
            ``iterations`` passing analyses, then any weight steps, then
            promotion
==========  ==================================================================

Analysis runs every interval in every stage, also while a stage waits (a
pause, a gate): a canary that turns bad while nobody looks is still rolled back.
"""

from __future__ import annotations

from dataclasses import dataclass

from switchman.model.kinds.rollout import Pause, RolloutSpec, SetWeight
from switchman.rollout.traffic import Traffic, canary_traffic, stable_traffic

__all__ = ["Stage", "plan"]


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    traffic: Traffic
    checks: int  # passing analyses needed before the stage may end
    hold: float | None = None  # seconds the stage lasts at least
    gate: bool = False  # waits to be promoted
    promotion: bool = False  # the last stage: confirm-promotion webhooks run before it is entered


def _steps(spec: RolloutSpec, base: Traffic) -> list[Stage]:
    stages: list[Stage] = []
    current = base
    for step in spec.steps:
        if isinstance(step, SetWeight):
            current = Traffic(step.weight, base.cohort, base.mirror_percent)
            stages.append(Stage(f"weight {step.weight}%", current, checks=1))
        elif isinstance(step, Pause):
            if step.seconds is None:
                stages.append(Stage("paused until promoted", current, checks=0, gate=True))
            else:
                stages.append(Stage(f"pause {step.seconds:g}s", current, checks=0, hold=step.seconds))
    return stages


def plan(spec: RolloutSpec) -> list[Stage]:
    """The stages of a run of ``spec``, in order; the last one is the promotion."""
    analysis = spec.analysis
    iterations = analysis.iterations
    done = Stage("promoted", canary_traffic(), checks=0, promotion=True)
    if spec.strategy == "canary":
        stages = _steps(spec, stable_traffic())
    elif spec.strategy == "blueGreen":
        preview = Traffic(0, cohort=analysis.matches)
        stages = [Stage("preview", preview, checks=iterations if analysis.matches else 0)]
        done = Stage("promoted", canary_traffic(), checks=iterations, promotion=True)
    elif spec.strategy == "abTest":
        stages = [Stage("cohort", Traffic(0, cohort=analysis.matches), checks=iterations)]
    else:  # mirror
        mirrored = Traffic(0, mirror_percent=analysis.mirror_weight)
        stages = [Stage(f"mirror {analysis.mirror_weight}%", mirrored, checks=iterations), *_steps(spec, Traffic(0))]
    if spec.skip_analysis:
        stages = [Stage(s.name, s.traffic, checks=0, hold=s.hold, gate=s.gate, promotion=s.promotion) for s in stages]
        done = Stage(done.name, done.traffic, checks=0, promotion=True)
    return [*stages, done]
