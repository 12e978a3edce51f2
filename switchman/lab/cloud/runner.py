"""The pipeline: steps in order for plan and apply, in reverse for destroy, each sharing one state file.

Every step has the same four verbs (:class:`Step`): ``plan`` (what it would
do and render, touching nothing), ``apply`` (find what exists, do only what is
missing, record what it created), ``status`` and ``destroy`` (remove what the
state records, in reverse). Long waits report through :class:`Progress`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from switchman.lab.cloud.config import CloudConfig
from switchman.lab.cloud.plan import DELETE, Action, Plan, StepPlan
from switchman.lab.cloud.state import State

__all__ = [
    "Context",
    "Done",
    "PrintProgress",
    "Progress",
    "Proxy",
    "StatusLine",
    "Step",
    "apply_steps",
    "destroy_plan",
    "destroy_steps",
    "plan_steps",
    "status_steps",
]


class Progress(Protocol):
    def __call__(self, step: str, message: str) -> None: ...


class Proxy(Protocol):
    """The lab's proxy to what is behind the GCE host (:class:`~switchman.lab.cloud.tunnel.Tunnel`)."""

    async def url(self) -> str: ...


class PrintProgress:
    """Progress as lines with the seconds since start: ``[  12.3s] openstack: server demo-master BUILD``."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self.out = out
        self.start = time.monotonic()

    def __call__(self, step: str, message: str) -> None:
        print(f"[{time.monotonic() - self.start:7.1f}s] {step}: {message}", file=self.out, flush=True)


@dataclass
class Context:
    """What every step gets: the config, the state file, where the lab keeps files, and a progress sink."""

    config: CloudConfig
    state: State
    workdir: Path
    progress: Progress = field(default=lambda step, message: None)
    tunnel: Proxy | None = None  # set by the CLI for a run; steps ask it through reach.proxy_url


@dataclass(frozen=True)
class StatusLine:
    what: str
    name: str
    status: str
    ok: bool = True


@dataclass(frozen=True)
class Done:
    """What apply or destroy did in one step: an action per resource (``+`` made, ``=`` found, ``-`` removed)."""

    step: str
    actions: tuple[Action, ...]


class Step(Protocol):
    name: str

    def plan(self, ctx: Context) -> StepPlan: ...

    async def apply(self, ctx: Context) -> list[Action]: ...

    async def status(self, ctx: Context) -> list[StatusLine]: ...

    async def destroy(self, ctx: Context) -> list[Action]: ...


def plan_steps(ctx: Context, steps: Sequence[Step]) -> Plan:
    return Plan(ctx.config.name, tuple(step.plan(ctx) for step in steps))


def destroy_plan(ctx: Context, steps: Sequence[Step]) -> Plan:
    """What destroy would remove: every record of the state, newest first, step by step in reverse."""
    plans = []
    for step in reversed(steps):
        records = list(ctx.state.reversed_of_step(step.name))
        actions = tuple(Action(DELETE, r.kind, r.name, f"id {r.id}") for r in records)
        plans.append(StepPlan(step.name, f"{len(actions)} recorded resources", actions))
    return Plan(ctx.config.name, tuple(plans))


async def apply_steps(ctx: Context, steps: Sequence[Step]) -> list[Done]:
    done = []
    for step in steps:
        ctx.progress(step.name, "apply")
        done.append(Done(step.name, tuple(await step.apply(ctx))))
    return done


async def destroy_steps(ctx: Context, steps: Sequence[Step]) -> list[Done]:
    done = []
    for step in reversed(steps):
        ctx.progress(step.name, "destroy")
        done.append(Done(step.name, tuple(await step.destroy(ctx))))
    return done


async def status_steps(ctx: Context, steps: Sequence[Step]) -> dict[str, list[StatusLine]]:
    return {step.name: await step.status(ctx) for step in steps}
