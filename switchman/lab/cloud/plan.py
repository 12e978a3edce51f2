"""A plan: every action a step would take and every file it would render, made without touching any cloud.

``+`` creates, ``=`` is recorded in the state file already (apply looks it up
and keeps it), ``~`` changes something that exists, ``-`` deletes (destroy's
plan). Secrets and values only apply learns (a floating IP) show as
``((...))`` placeholders, so a plan is the same text every time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["CREATE", "DELETE", "KEEP", "UPDATE", "Action", "Plan", "RenderedFile", "StepPlan", "format_plan"]

CREATE = "+"
KEEP = "="
UPDATE = "~"
DELETE = "-"


@dataclass(frozen=True)
class Action:
    """One thing a step does: ``verb`` is one of ``+ = ~ -``; ``what`` is the kind (``server``), ``name`` its name."""

    verb: str
    what: str
    name: str
    detail: str = ""

    def line(self) -> str:
        detail = f"  ({self.detail})" if self.detail else ""
        return f"{self.verb} {self.what} {self.name}{detail}"


@dataclass(frozen=True)
class RenderedFile:
    """A file a step renders: where it goes (``demo-master: user-data``) and its text."""

    where: str
    text: str


@dataclass(frozen=True)
class StepPlan:
    step: str
    summary: str
    actions: tuple[Action, ...] = ()
    files: tuple[RenderedFile, ...] = ()


@dataclass(frozen=True)
class Plan:
    name: str
    steps: tuple[StepPlan, ...] = field(default_factory=tuple)

    def counts(self) -> dict[str, int]:
        counts = {CREATE: 0, KEEP: 0, UPDATE: 0, DELETE: 0}
        for step in self.steps:
            for action in step.actions:
                counts[action.verb] += 1
        return counts


def format_plan(plan: Plan, show_files: bool = True) -> str:
    """The plan as the CLI prints it: steps with their actions, then every rendered file in full."""
    lines = [f'cloud lab "{plan.name}"']
    for step in plan.steps:
        lines += ["", f"{step.step}: {step.summary}"]
        lines += [f"  {action.line()}" for action in step.actions]
    counts = plan.counts()
    lines += ["", f"{counts[CREATE]} to create, {counts[UPDATE]} to change, {counts[KEEP]} recorded, "
              f"{counts[DELETE]} to delete"]
    if show_files:
        for step in plan.steps:
            lines += _files(step.step, step.files)
    return "\n".join(lines) + "\n"


def _files(step: str, files: Sequence[RenderedFile]) -> Iterable[str]:
    for rendered in files:
        yield ""
        yield f"--- {step}: {rendered.where} ({len(rendered.text.splitlines())} lines)"
        yield from rendered.text.rstrip("\n").splitlines()
