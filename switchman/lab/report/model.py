"""What the demo measured: its steps, their place on the timeline, and every request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from switchman.lab.local.load import Sample

__all__ = ["CheckRow", "DemoRun", "Phase", "PhaseKind", "Section", "StepResult"]

PhaseKind = Literal["ramp", "fault", "retries"]


@dataclass(frozen=True, slots=True)
class StepResult:
    """One row of the demo's table: a measured step, or the load that ran across the ramp."""

    name: str
    requested_v2: float | None  # None: the row measures failures only
    requests: int
    measured_v2: float | None
    within_3_sigma: bool
    success_rate: float
    p99_ms: float
    failures: int
    counts_against_verdict: bool


@dataclass(frozen=True, slots=True)
class Phase:
    """A step on the timeline; every time is wall-clock seconds (``time.time()``), like ``Sample.started``."""

    name: str
    label: str  # short, for the plots
    kind: PhaseKind
    requested_v2: float  # the v2 weight (0..1) in effect from ``applied`` on
    applied: float  # the change was made: the API accepted the weights, or the fault was switched on
    synced: float  # the status API said every Envoy ran it
    started: float  # the step's own load started...
    ended: float  # ...and its last answer came back

    @property
    def sync_ms(self) -> float:
        """How long the Envoys took to run the change, in milliseconds."""
        return (self.synced - self.applied) * 1000


@dataclass(frozen=True, slots=True)
class CheckRow:
    """One pass/fail criterion of a run, and the numbers behind it."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Section:
    """A table a drill adds to its report: what it shows, its columns and rows (text, as shown)."""

    title: str
    note: str
    columns: list[str]
    rows: list[list[str]]


@dataclass(slots=True)
class DemoRun:
    """Everything the report is written from: the demo's, or a drill's (``title``, ``checks``, ``facts``,
    ``events`` say what a drill adds)."""

    stamp: str
    passed: bool
    steps: list[StepResult]
    phases: list[Phase]
    samples: list[Sample] = field(default_factory=list)  # every request of every load, by start time
    initial_v2: float = 0.0  # the v2 weight before the first phase
    lab: str = ""  # the topology that served the traffic, in one line
    title: str = "Switchman demo: canary ramp and retries"
    checks: list[CheckRow] = field(default_factory=list)  # empty: the demo's own verdict (splits and failures)
    facts: dict[str, Any] = field(default_factory=dict)  # figures a drill measured, shown and kept in report.json
    events: list[dict[str, Any]] = field(default_factory=list)  # the rollout's events, as its API shows them
    sections: list[Section] = field(default_factory=list)  # tables a drill adds (the control plane's restarts)
    figures: dict[str, str] = field(default_factory=dict)  # PNGs a drill drew in the folder: file -> caption
