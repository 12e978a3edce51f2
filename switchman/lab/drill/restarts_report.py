"""The control plane's part of a drill's report: a table per replica and a figure of who was up and who drove.

``control-plane.png`` draws one lane per replica of ``serve`` over the run:
up, down (from SIGKILL until it served again), and the stretches its
processes drove the rollout, with the canary's weight over them and a
line where every Envoy was back on the head revision.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from switchman.lab.drill.judge import StageWindow
from switchman.lab.drill.restarts import ControlPlaneRecord
from switchman.lab.report.model import Section

__all__ = ["FIGURE", "control_plane_sections", "plot_control_plane"]

FIGURE = (
    "control-plane.png",
    "The replicas of serve over the run: up, down from SIGKILL until it served again, and who drove the rollout "
    "(hatched); the canary's weight, and when every Envoy was back on the head revision after each kill.",
)
_UP, _DOWN, _DRIVE, _WEIGHT = "#34a853", "#d93025", "#1f77b4", "#1f1f1f"


def _replica_of(process: str, replicas: Sequence[str]) -> str:
    """``a-2`` -> ``a``: the replica a process ran."""
    return next((r for r in replicas if process == r or process.startswith(f"{r}-")), process)


def _s(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def control_plane_sections(record: ControlPlaneRecord, origin: float, end: float) -> list[Section]:
    """Per replica: its restarts (time down, time to ready, Envoys back), and who drove the rollout when."""
    spans = record.driving(end)
    rows = []
    for name in record.replicas:
        mine = [r for r in record.restarts if r.restart.replica == name]
        drove = "; ".join(f"{p} {a - origin:.2f} to {b - origin:.2f}" for p, a, b in spans
                          if _replica_of(p, record.replicas) == name) or "never"
        if not mine:
            rows.append([name, "not killed", "", "", "", "", "", drove])
        for r in mine:
            x = r.restart
            state = (r.before.get("state") or {}, r.after.get("state") or {})
            rows.append([
                name, f"{x.killed} → {x.started}", _s(x.killed_at - origin), _s(x.down_s), _s(x.ready_s),
                _s(r.envoys_back_at - x.killed_at if r.envoys_back_at is not None else None),
                f"{int(state[0].get('stage', -1)) + 1} → {int(state[1].get('stage', -1)) + 1}", drove,
            ])
    replicas = Section(
        "Control plane",
        "Each replica of serve: when it was killed with SIGKILL (s since the run started), how long it was down "
        "(until it served again on its ports), its time to ready (from its restart), when every Envoy ran the "
        "head revision again (s after the kill), the rollout's stage before the kill and once it served again, "
        "and when its processes drove the rollout (as the drill saw it, polling every 0.1 s).",
        ["replica", "killed → restarted as", "killed at s", "down s", "time to ready s", "Envoys back after s",
         "stage", "drove the rollout (s)"],
        rows,
    )
    drivers = Section(
        "Who drove the rollout",
        "The rollout's lease holder over the run: a process killed keeps it until its lease runs out.",
        ["process", "from s", "until s", "for s"],
        [[p, _s(a - origin), _s(b - origin), _s(b - a)] for p, a, b in spans],
    )
    return [replicas, drivers]


def plot_control_plane(
    record: ControlPlaneRecord, windows: Sequence[StageWindow], origin: float, end: float, path: Path
) -> Path:
    """Draw ``control-plane.png`` into ``path``."""
    fig = Figure(figsize=(11.0, 1.6 + 0.9 * len(record.replicas)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title("The control plane: replicas up and down, who drove the rollout", fontsize=14)
    lanes = {name: i for i, name in enumerate(reversed(record.replicas))}
    for name, y in lanes.items():
        down = [(r.restart.killed_at - origin, r.restart.down_s) for r in record.restarts if r.restart.replica == name]
        ax.broken_barh([(0.0, end - origin)], (y - 0.3, 0.6), color=_UP, alpha=0.35)
        ax.broken_barh(down, (y - 0.3, 0.6), color=_DOWN)
    for process, a, b in record.driving(end):
        lane = lanes.get(_replica_of(process, record.replicas))
        if lane is not None:
            ax.broken_barh([(a - origin, b - a)], (lane - 0.18, 0.36), facecolor="none", edgecolor=_DRIVE, hatch="///")
            ax.text((a + b) / 2 - origin, lane + 0.36, process, ha="center", va="bottom", fontsize=9, color=_DRIVE)
    for r in record.restarts:
        if r.envoys_back_at is not None:
            ax.axvline(r.envoys_back_at - origin, color=_DRIVE, linestyle=":", linewidth=1.2)
    ax.set_yticks(list(lanes.values()), [f"serve {n}" for n in lanes])
    ax.set_ylim(-0.6, len(lanes) - 0.2)
    ax.set_xlim(0, end - origin)
    ax.set_xlabel("time since the run started (s)", fontsize=12)
    ax.grid(True, axis="x", alpha=0.3)
    weight = ax.twinx()
    if windows:
        times = [w.start - origin for w in windows] + [windows[-1].end - origin]
        weights = [w.weight for w in windows]
        weight.step(times, [*weights, weights[-1]], where="post", color=_WEIGHT, linewidth=1.5)
    weight.set_ylim(-5, 105)
    weight.set_ylabel("canary weight (%)", fontsize=11)
    handles = [Patch(color=_UP, alpha=0.35, label="up"), Patch(color=_DOWN, label="down (killed → serving)"),
               Patch(facecolor="none", edgecolor=_DRIVE, hatch="///", label="drives the rollout"),
               Line2D([], [], color=_WEIGHT, label="canary weight (right axis)"),
               Line2D([], [], color=_DRIVE, linestyle=":", label="every Envoy back on the head revision")]
    fig.legend(handles=handles, loc="outside lower center", ncols=5, fontsize=10, frameon=False)
    fig.savefig(path, dpi=100, format="png")
    return path
