"""Rollouts: a Rollout document moves a Service from its stable version to a new one, judged as it goes.

``plan`` (the stages a strategy makes), ``machine`` (the state machine,
pure), ``analysis`` (judging one interval), ``traffic`` (what a stage writes
into the Service), ``state`` (what is stored per run), ``webhooks``,
``metrics``, and ``engine`` (the asyncio driver inside ``switchman serve``).
"""

from __future__ import annotations

from switchman.rollout.analysis import Measurement, MetricsSource, Outcome, Verdict, judge
from switchman.rollout.engine import EngineSettings, RolloutEngine, RolloutNotFound
from switchman.rollout.machine import COMMANDS, CommandRefused
from switchman.rollout.plan import Stage, plan
from switchman.rollout.prometheus import MetricsUnavailable, PrometheusSource
from switchman.rollout.state import Event, Phase, RolloutState

__all__ = [
    "COMMANDS",
    "CommandRefused",
    "EngineSettings",
    "Event",
    "Measurement",
    "MetricsSource",
    "MetricsUnavailable",
    "Outcome",
    "Phase",
    "PrometheusSource",
    "RolloutEngine",
    "RolloutNotFound",
    "RolloutState",
    "Stage",
    "Verdict",
    "judge",
    "plan",
]
