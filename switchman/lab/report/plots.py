"""The report's figures, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from switchman.lab.local.load import Sample
from switchman.lab.report.model import Phase
from switchman.lab.report.series import Bin

__all__ = ["DPI", "FIG_SIZE", "plot_counters", "plot_latency", "plot_split", "plot_success"]

FIG_SIZE = (11.0, 4.6)  # inches: 1100 x 460 pixels at DPI
DPI = 100
_V2 = "#2ca02c"  # green, as in the demo's upstream colours
_REQUESTED = "#1f1f1f"
_FAULT = "#d62728"
_RETRIES = "#1f77b4"


def _figure(title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=FIG_SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=14, pad=28)
    ax.set_xlabel("time since the run started (s)", fontsize=12)
    ax.tick_params(labelsize=11)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _extent(phases: Sequence[Phase], i: int, origin: float) -> tuple[float, float]:
    """Where phase ``i`` lies on the x axis: from its change to the next phase's (or its own load's end)."""
    start = phases[i].applied - origin
    end = (phases[i + 1].applied if i + 1 < len(phases) else phases[i].ended) - origin
    return start, max(start, end)


def _mark_phases(ax: Axes, phases: Sequence[Phase], origin: float) -> None:
    """A dotted line at every change, the fault and retry phases shaded, and each phase named on top."""
    centres: list[float] = []
    labels: list[str] = []
    shaded: set[str] = set()
    for i, phase in enumerate(phases):
        start, end = _extent(phases, i, origin)
        ax.axvline(start, color="0.45", linestyle=":", linewidth=1)
        if phase.kind in ("fault", "retries"):
            colour = _FAULT if phase.kind == "fault" else _RETRIES
            name = f"fault: {phase.name}" if phase.kind == "fault" else "fault + retries on"
            ax.axvspan(start, end, color=colour, alpha=0.10, label=None if phase.kind in shaded else name)
            shaded.add(phase.kind)
        centres.append((start + end) / 2)
        labels.append(phase.label)
    top = ax.secondary_xaxis("top")
    top.set_xticks(centres, labels)
    top.tick_params(length=0, labelsize=10)


def _edges(bins: Sequence[Bin]) -> list[float]:
    return [b.start for b in bins] + ([bins[-1].start + bins[-1].width] if bins else [])


def _save(fig: Figure, path: Path, ncols: int | None = None) -> Path:
    handles, _ = fig.axes[0].get_legend_handles_labels()
    fig.legend(loc="outside lower center", ncols=ncols or max(1, len(handles)), fontsize=11, frameon=False)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _nan(value: float | None, scale: float = 1.0) -> float:
    return math.nan if value is None else value * scale


def plot_split(
    bins: Sequence[Bin], phases: Sequence[Phase], origin: float, end: float, initial_v2: float, path: Path
) -> Path:
    """(a) The measured share of v2 per bin against the requested weight (a step line) and its 3σ band."""
    fig, ax = _figure("Share of traffic served by v2: measured vs requested")
    centres = [b.start + b.width / 2 for b in bins]
    edges = _edges(bins)
    if bins:
        lows = [max(0.0, _nan(b.expected_v2) - 3 * _nan(b.sigma_v2)) * 100 for b in bins]
        highs = [min(1.0, _nan(b.expected_v2) + 3 * _nan(b.sigma_v2)) * 100 for b in bins]
        ax.fill_between(edges, lows + lows[-1:], highs + highs[-1:], step="post", color=_V2, alpha=0.18,
                        linewidth=0, label="3σ band")
    times = [0.0] + [p.applied - origin for p in phases] + [end - origin]
    weights = [initial_v2] + [p.requested_v2 for p in phases]
    ax.step(times, [w * 100 for w in [*weights, weights[-1]]], where="post", color=_REQUESTED, linewidth=1.8,
            label="requested weight")
    # points, not a line: a line between bins would draw a ramp where the change was a step
    ax.plot(centres, [_nan(b.share_v2, 100) for b in bins], "o", color=_V2, markersize=7,
            markeredgecolor="white", markeredgewidth=0.8, label="measured (1 s bins)")
    off = [(c, _nan(b.share_v2, 100)) for c, b in zip(centres, bins, strict=True) if b.within_3_sigma is False]
    if off:
        ax.plot([c for c, _ in off], [v for _, v in off], "x", color=_FAULT, markersize=10, markeredgewidth=2,
                label="outside 3σ")
    _mark_phases(ax, phases, origin)
    ax.set_ylabel("share of v2 (%)", fontsize=12)
    ax.set_ylim(-5, 105)
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.set_xlim(0, end - origin)
    return _save(fig, path)


def plot_latency(bins: Sequence[Bin], phases: Sequence[Phase], origin: float, end: float, path: Path) -> Path:
    """(b) Latency p50 and p99 per bin, on a log scale."""
    fig, ax = _figure("Request latency through Envoy (p50 and p99 per 1 s bin)")
    centres = [b.start + b.width / 2 for b in bins]
    ax.plot(centres, [_nan(b.p50_ms) for b in bins], "o-", color="#1f77b4", markersize=4, label="p50")
    ax.plot(centres, [_nan(b.p99_ms) for b in bins], "s-", color="#ff7f0e", markersize=4, label="p99")
    _mark_phases(ax, phases, origin)
    ax.set_yscale("log")
    latencies = [v for b in bins for v in (b.p50_ms, b.p99_ms) if v is not None and v > 0]
    if latencies:  # from the power of ten below the fastest bin, so that the axis has a labelled tick there
        ax.set_ylim(10 ** math.floor(math.log10(min(latencies))), 10 ** math.ceil(math.log10(max(latencies) * 1.5)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylabel("latency (ms, log scale)", fontsize=12)
    ax.set_xlim(0, end - origin)
    return _save(fig, path)


def plot_counters(counters: Sequence[tuple[float, Mapping[str, int]]], samples: Sequence[Sample],
                  phases: Sequence[Phase], origin: float, end: float, path: Path) -> Path:
    """(d) A drill's front-Envoy stats, each one's change since the run began, against the failed requests the
    clients had sent by then: the counters that decided the drill, over time."""
    fig, ax = _figure("The front Envoy's counters over the run, and the clients' failed requests")
    times = [at - origin for at, _ in counters]
    for stat in (counters[0][1] if counters else {}):
        ax.step(times, [reading[stat] for _, reading in counters], where="post", linewidth=1.8, label=stat)
    failed = sorted(s.started - origin for s in samples if not s.ok)
    if failed:
        ax.step([0.0, *failed, end - origin], [0, *range(1, len(failed) + 1), len(failed)], where="post",
                color=_REQUESTED, linestyle="--", linewidth=1.2, label="failed requests (clients)")
    _mark_phases(ax, phases, origin)
    ax.set_ylabel("change since the run began", fontsize=12)
    ax.set_xlim(0, end - origin)
    return _save(fig, path, ncols=2)  # stat names are long


def plot_success(bins: Sequence[Bin], phases: Sequence[Phase], origin: float, end: float, path: Path) -> Path:
    """(c) The share of successful requests per bin, with the fault and retry phases shaded."""
    fig, ax = _figure("Success rate seen by clients (per 1 s bin)")
    centres = [b.start + b.width / 2 for b in bins]
    rates = [_nan(b.success_rate, 100) for b in bins]
    ax.plot(centres, rates, "o-", color="#9467bd", markersize=4, label="successful requests")
    _mark_phases(ax, phases, origin)
    lowest = min((r for r in rates if not math.isnan(r)), default=100.0)
    ax.set_ylim(min(90.0, math.floor(lowest / 10) * 10 - 5), 101)
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.set_ylabel("successful requests (%)", fontsize=12)
    ax.set_xlim(0, end - origin)
    return _save(fig, path)
