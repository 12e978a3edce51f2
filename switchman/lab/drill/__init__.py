"""Drills: scenario files run against the lab under load, judged by the data plane and the clients.

``scenario`` (the file), ``runner`` (lab, load, rollout, actions), ``judge``
(figures and checks), ``report`` (the report folder).
"""

from __future__ import annotations

from switchman.lab.drill.judge import Check, Verdict
from switchman.lab.drill.report import write_drill_report
from switchman.lab.drill.runner import DrillResult, run_drill, summary
from switchman.lab.drill.scenario import ResilienceScenario, Scenario, read_scenario

__all__ = [
    "Check",
    "DrillResult",
    "ResilienceScenario",
    "Scenario",
    "Verdict",
    "read_scenario",
    "run_drill",
    "summary",
    "write_drill_report",
]
