"""A drill's report: the demo's report folder (report.json, report.html, samples.csv, PNG plots) with the
drill's checks, figures and the rollout's events added."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from switchman.lab.drill.restarts_report import FIGURE, control_plane_sections, plot_control_plane
from switchman.lab.drill.runner import DrillResult
from switchman.lab.local.load import LoadResult
from switchman.lab.report import DemoRun, Phase, StepResult, write_report
from switchman.lab.report.model import CheckRow

__all__ = ["write_drill_report"]


def _run(result: DrillResult) -> DemoRun:
    samples = result.samples.samples
    phases: list[Phase] = []
    steps: list[StepResult] = []
    by_stage = {row["stage"]: row for row in result.verdict.stages}
    for w in result.windows:
        inside = LoadResult([s for s in samples if w.start <= s.started < w.end])
        label = f"{w.weight} %" + (" +cohort" if w.cohort else "") + (f" +{w.mirror}% mirror" if w.mirror else "")
        phases.append(Phase(w.name, label, "ramp", w.weight / 100, w.start, w.start, w.start, w.end))
        row = by_stage.get(w.name)
        steps.append(StepResult(
            name=w.name, requested_v2=w.weight / 100 if row else None, requests=len(inside.samples),
            measured_v2=row["share"] if row else None, within_3_sigma=bool(row["within3Sigma"]) if row else True,
            success_rate=inside.success_rate(), p99_ms=inside.p99_ms(), failures=len(inside.failures),
            counts_against_verdict=True,
        ))
    for mark in result.marks:
        if mark.what.startswith("fault"):
            weight = next((w.weight for w in reversed(result.windows) if w.start <= mark.at), 0)
            what = mark.what.removeprefix("fault: ")
            phases.append(Phase(what, "fault", "fault", weight / 100, mark.at, mark.at, mark.at, mark.at))
    phases.sort(key=lambda p: p.applied)
    state = result.status.get("state") or {}
    # The split plot judges every answered request against the weight: a cohort goes to the canary whatever
    # the weight, so cohort requests are left out of the figures (the leakage check counts them).
    shown = [s for s in samples if not s.cohort]
    return DemoRun(
        stamp=time.strftime("%Y%m%d-%H%M%S", time.localtime(result.started)),
        passed=result.verdict.passed,
        steps=steps,
        phases=phases,
        samples=shown,
        lab=result.lab,
        title=f"Switchman drill: {result.scenario.name}",
        checks=[CheckRow(c.name, c.passed, c.detail) for c in result.verdict.checks],
        facts=dict(result.verdict.figures),
        events=list(state.get("events") or []),
    )


def _write(result: DrillResult, folder: Path) -> Path:
    run = _run(result)
    record = result.control_plane
    if record is not None:  # on the report's clock: from its first request or change
        origin = min([s.started for s in run.samples] + [p.applied for p in run.phases], default=result.started)
        end = max([s.started for s in run.samples] + [p.ended for p in run.phases], default=result.started)
        run.sections = control_plane_sections(record, origin, end)
        run.figures = dict([FIGURE])
        folder.mkdir(parents=True, exist_ok=True)
        plot_control_plane(record, result.windows, origin, end, folder / FIGURE[0])
    return write_report(run, folder)


async def write_drill_report(result: DrillResult, folder: Path) -> Path:
    """Write the report into ``folder``; returns report.html. The plots take a second or two: off the loop."""
    return await asyncio.to_thread(_write, result, folder)
