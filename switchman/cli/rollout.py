"""``switchman rollout``: where rollouts stand, and the commands people give them.

``list``, ``status NAME``, ``watch NAME`` (a live view until the run ends:
exit 0 when it succeeded, 1 when it failed or was aborted), and ``pause``,
``resume``, ``promote [--full]``, ``abort``, ``retry``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Mapping
from typing import Any

from switchman.cli.config import add_option, client_options, run_client
from switchman.cli.get import add_output_option, print_data, table
from switchman.client import SwitchmanClient

__all__ = ["add_parser", "describe", "run"]

_COMMANDS = ("pause", "resume", "promote", "abort", "retry")
_ENDED = ("Succeeded", "Failed", "Aborted")


def _clock(at: object) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) if isinstance(at, int | float) else ""


def _verdict(verdict: Mapping[str, Any] | None) -> str:
    if not verdict:
        return "none yet"
    return f"{verdict.get('outcome')}: {verdict.get('reason')}"


def describe(status: Mapping[str, Any], events: int = 10) -> str:
    """A rollout's status as people read it: the run, its stage, the last analysis and the newest events."""
    state = status.get("state") or status.get("previousRun")
    stages = status.get("stages") or []
    head = (
        f"rollout/{status['name']}  {status['strategy']} of service/{status['service']}: "
        f"{status['stable']} -> {status['canary']}"
    )
    if state is None:
        return f"{head}\n  not started yet"
    stage = int(state.get("stage", -1))
    where = f"stage {stage + 1}/{len(stages)}: {stages[stage]}" if 0 <= stage < len(stages) else "starting"
    lines = [
        head,
        f"  phase {state['phase']} (run {state['run']})   {where}   canary weight {state['weight']}%",
        f"  failed checks {state['failed']}/{status['threshold']}   interval {status['interval']:g}s   "
        f"driven by {status.get('driver') or 'nobody yet'}",
        f"  last analysis: {_verdict(state.get('last_verdict'))}",
    ]
    if status.get("previousRun") and not status.get("state"):
        lines.append("  (a run of an earlier version of this Rollout; the new one has not started)")
    shown = list(state.get("events") or [])[-events:]
    if shown:
        lines.append("  events:")
        rows = [(f"    {_clock(e.get('at'))}", str(e.get("kind", "")), str(e.get("message", ""))) for e in shown]
        lines.append(table(("    TIME", "EVENT", "MESSAGE"), rows))
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "rollout", help="rollouts: status, watch, pause, resume, promote, abort, retry",
        description="Rollouts move a Service from its stable version to a new one (kind: Rollout). "
        "These commands show where they stand and steer them; any replica of Switchman takes them.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list", parents=[client_options()], help="every rollout and its phase")
    add_output_option(listing)
    status = verbs.add_parser("status", parents=[client_options()], help="one rollout in full")
    status.add_argument("name", metavar="NAME")
    add_output_option(status)
    watch = verbs.add_parser(
        "watch", parents=[client_options()], help="a live view until the run ends",
        description="A live view of one rollout until its run ends: exit 0 when it succeeded, 1 when it failed "
        "or was aborted.",
    )
    watch.add_argument("name", metavar="NAME")
    add_option(
        watch, "--every", env="SWITCHMAN_WATCH_EVERY", default="1", type=float, metavar="SECONDS",
        help="how often to ask",
    )
    for verb in _COMMANDS:
        command = verbs.add_parser(verb, parents=[client_options()], help=f"{verb} a rollout")
        command.add_argument("name", metavar="NAME")
        if verb == "promote":
            command.add_argument(
                "--full", action="store_true", help="skip every remaining stage (default: only the current one)"
            )
        add_output_option(command)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    async def action(client: SwitchmanClient) -> int:
        if args.verb == "list":
            found = await client.rollouts()
            if args.output != "table":
                print_data(found, args.output)
                return 0
            if not found:
                print("no rollouts")
                return 0
            rows = []
            for r in found:
                state = r.get("state") or {}
                rows.append((
                    str(r["name"]), str(r["strategy"]), f"{r['service']}: {r['stable']} -> {r['canary']}",
                    str(state.get("phase", "-")), f"{state.get('weight', 0)}%", str(state.get("message", "")),
                ))
            print(table(("NAME", "STRATEGY", "SERVICE", "PHASE", "WEIGHT", "LAST EVENT"), rows))
            return 0
        if args.verb == "watch":
            return await _watch(client, args.name, max(0.1, args.every))
        if args.verb == "status":
            found_one = await client.rollout(args.name)
        else:
            found_one = await client.rollout_command(args.name, args.verb, full=getattr(args, "full", False))
        if args.output != "table":
            print_data(found_one, args.output)
        else:
            print(describe(found_one))
        return 0

    return run_client(args, action)


async def _watch(client: SwitchmanClient, name: str, every: float) -> int:
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console()
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while True:
            status = await client.rollout(name)
            live.update(Text(describe(status, events=15)))
            state = status.get("state") or {}
            if state.get("phase") in _ENDED:
                return 0 if state["phase"] == "Succeeded" else 1
            await asyncio.sleep(every)
