"""The demo's terminal view: a live ``rich`` table on a terminal, plain lines otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import TextIO

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from switchman.lab.local.load import LoadResult
from switchman.lab.report.model import StepResult

__all__ = ["DemoView", "header", "row"]


def header() -> str:
    """The plain table's header and rule."""
    head = f"{'step':<28} {'want v2':>7} {'got v2':>8} {'3σ':>4} {'reqs':>6} {'success':>8} {'p99 ms':>7}"
    return head + "\n" + "-" * len(head)


def row(r: StepResult) -> str:
    """One plain table line."""
    if r.requested_v2 is None or r.measured_v2 is None:
        want = got = mark = ""
    else:
        want, got, mark = f"{r.requested_v2:.0%}", f"{r.measured_v2:.1%}", "ok" if r.within_3_sigma else "OFF"
    return f"{r.name:<28} {want:>7} {got:>8} {mark:>4} {r.requests:>6} {r.success_rate:>8.2%} {r.p99_ms:>7.1f}"


@dataclass(slots=True)
class _Running:
    name: str
    requested_v2: float
    load: LoadResult


def _split(v2: float | None) -> str:
    """A requested v1/v2 split in percent, e.g. ``90/10``."""
    return "" if v2 is None else f"{(1 - v2) * 100:.0f}/{v2 * 100:.0f}"


def _measured(v2: float | None) -> str:
    """A measured v1/v2 split in percent, e.g. ``89.7/10.3``."""
    return "" if v2 is None else f"{(1 - v2) * 100:.1f}/{v2 * 100:.1f}"


class DemoView:
    """Shows the demo's steps as they run.

    On a terminal (or with ``live=True``) a ``rich`` table is redrawn a few
    times per second: the finished steps, the running step's requested and
    measured v1 : v2 split, success rate and p99 so far, and the steady load
    across the ramp. Otherwise (pipes, CI logs, tests) every finished step is
    printed as one plain line, as the demo always did.
    """

    def __init__(self, out: TextIO, live: bool | None = None, refresh_per_second: float = 4.0) -> None:
        self._out = out
        self.live = out.isatty() if live is None else live
        self._refresh = refresh_per_second
        self._done: list[StepResult] = []
        self._running: _Running | None = None
        self._steady: LoadResult | None = None
        self._live: Live | None = None

    def __enter__(self) -> DemoView:
        if self.live:
            console = Console(file=self._out, force_terminal=True)
            self._live = Live(
                get_renderable=self.render, console=console, refresh_per_second=self._refresh, transient=False
            )
            self._live.start()
        else:
            print("\n" + header(), file=self._out, flush=True)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._running = None
        self._steady = None
        if self._live is not None:
            self._live.stop()  # draws the last frame: the finished table stays on screen
            self._live = None

    def start_step(self, name: str, requested_v2: float, load: LoadResult) -> None:
        """A step's load starts; ``load`` fills up while it runs."""
        self._running = _Running(name, requested_v2, load)

    def finish_step(self, result: StepResult) -> None:
        """A step is measured: it joins the table (or is printed)."""
        self._running = None
        self._done.append(result)
        if self._live is not None:
            self._live.refresh()
        else:
            print(row(result), file=self._out, flush=True)

    def watch_steady(self, load: LoadResult | None) -> None:
        """Show (or, with None, stop showing) the load that runs across the ramp."""
        self._steady = load

    def render(self) -> RenderableType:
        """The live table, as it stands now."""
        # fits 80 columns: two-line headers, no vertical rules
        table = Table(
            title="Switchman demo: canary ramp, then retries",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            padding=(0, 1),
        )
        table.add_column("step", justify="left", no_wrap=True)
        table.add_column("want %\nv1/v2", justify="right", no_wrap=True)
        table.add_column("got %\nv1/v2", justify="right", no_wrap=True)
        table.add_column("3σ", justify="center", no_wrap=True)
        table.add_column("reqs", justify="right", no_wrap=True)
        table.add_column("success", justify="right", no_wrap=True)
        table.add_column("p99\nms", justify="right", no_wrap=True)
        for r in self._done:
            judged = r.requested_v2 is not None and r.measured_v2 is not None
            mark = Text("ok", style="green") if r.within_3_sigma else Text("OFF", style="bold red")
            success_style = "red" if r.failures and r.counts_against_verdict else ""
            table.add_row(
                r.name,
                _split(r.requested_v2),
                _measured(r.measured_v2),
                mark if judged else "",
                str(r.requests),
                Text(f"{r.success_rate:.2%}", style=success_style),
                f"{r.p99_ms:.1f}",
            )
        if self._running is not None:
            load = self._running.load
            ok = sum(load.versions.values())
            got = load.versions.get("v2", 0) / ok if ok else None
            table.add_row(
                f"▶ {self._running.name}",
                _split(self._running.requested_v2),
                _measured(got),
                "…",
                str(len(load.samples)),
                f"{load.success_rate():.2%}",
                f"{load.p99_ms():.1f}",
                style="bold yellow",
            )
        parts: list[RenderableType] = [table]
        if self._steady is not None:
            s = self._steady
            parts.append(
                Text(
                    f"steady load across the ramp: {len(s.samples)} requests, {len(s.failures)} failed, "
                    f"p99 {s.p99_ms():.1f} ms",
                    style="dim" if not s.failures else "bold red",
                )
            )
        return Group(*parts)
