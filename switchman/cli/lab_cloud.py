"""``switchman lab cloud plan|apply|status|check|destroy -f cloud.yaml``: the nested cloud lab.

``plan`` prints every action and every rendered file without touching any
cloud; ``apply`` does only what is missing and records what it created in
``<state-dir>/<name>.state.json``, then waits for the cluster and checks it;
``status`` looks up each recorded resource; ``check`` runs the cluster checks
(on the lab's cluster, or on any with ``--kubeconfig``); ``destroy`` removes
exactly what the state records, in reverse.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from switchman.cli.config import add_switch
from switchman.cli.options import option

if TYPE_CHECKING:
    from switchman.lab.cloud.runner import Context, Done, Step

__all__ = ["add_parser", "through_tunnel"]

T = TypeVar("T")

FILE_ENV = "SWITCHMAN_LAB_CLOUD_FILE"
STATE_DIR_ENV = "SWITCHMAN_LAB_CLOUD_STATE_DIR"


def _common(parser: argparse.ArgumentParser) -> None:
    option(parser, "-f", FILE_ENV, "cloud.yaml", "the lab's description")
    option(parser, "--state-dir", STATE_DIR_ENV, "runs/cloud",
           "where the state file (<name>.state.json), the SSH key and the kubeconfig go")


def add_parser(lab_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = lab_sub.add_parser(
        "cloud", help="the nested cloud lab: GCE host, devstack, OpenStack servers, kubeadm Kubernetes",
        description="Provision the nested cloud lab idempotently: every step finds what exists and does only what "
        "is missing, and records what it created so that destroy removes exactly that, in reverse.",
    )
    sub = parser.add_subparsers(dest="cloud_command", required=True)
    plan = sub.add_parser("plan", help="every action and rendered file, touching nothing")
    _common(plan)
    add_switch(plan, "--destroy", "SWITCHMAN_LAB_CLOUD_PLAN_DESTROY", "what destroy would remove instead")
    add_switch(plan, "--no-files", "SWITCHMAN_LAB_CLOUD_PLAN_NO_FILES", "the actions only, not the rendered files")
    plan.set_defaults(run=run_plan)
    for name, run, text in (("apply", run_apply, "create what is missing and record it"),
                            ("status", run_status, "look up every recorded resource (exit 1 when one is not ok)"),
                            ("destroy", run_destroy, "remove what the state file records, newest first")):
        command = sub.add_parser(name, help=text)
        _common(command)
        command.set_defaults(run=run)
        if name == "apply":
            add_switch(command, "--no-checks", "SWITCHMAN_LAB_CLOUD_NO_CHECKS",
                       "do not wait for the cluster nor run the cluster checks after the kubeadm step")
    from switchman.cli.lab_cloud_check import add_check_parser
    from switchman.cli.lab_cloud_proxy import add_proxy_parser

    add_check_parser(sub, _common)
    add_proxy_parser(sub, _common)


async def through_tunnel(ctx: Context, work: Callable[[], Awaitable[T]]) -> T:
    """``work()`` with the lab's proxy through the GCE host at hand (opened when a step first needs it) when
    devstack's APIs and the floating IPs are behind that host."""
    from switchman.lab.cloud.reach import behind_host, lab_tunnel

    if not behind_host(ctx):
        return await work()
    tunnel = ctx.tunnel = lab_tunnel(ctx)
    try:
        return await work()
    finally:
        await tunnel.aclose()


def _context(args: argparse.Namespace, progress: bool = False) -> tuple[Context, list[Step]]:
    from switchman.lab.cloud import PrintProgress, load_config
    from switchman.lab.cloud.steps import build_steps, open_context

    config = load_config(Path(args.f))
    ctx = open_context(config, Path(args.state_dir), PrintProgress() if progress else None)
    return ctx, build_steps(config, checks=not getattr(args, "no_checks", False))


def run_plan(args: argparse.Namespace) -> int:
    from switchman.lab.cloud import format_plan
    from switchman.lab.cloud.runner import destroy_plan, plan_steps

    ctx, steps = _context(args)
    plan = destroy_plan(ctx, steps) if args.destroy else plan_steps(ctx, steps)
    print(format_plan(plan, show_files=not args.no_files), end="")
    return 0


def _print_done(done: Sequence[Done]) -> None:
    for step in done:
        changed = [a for a in step.actions if a.verb != "="]
        print(f"{step.step}: {len(changed)} changed, {len(step.actions) - len(changed)} already there")
        for action in changed:
            print(f"  {action.line()}")


def run_apply(args: argparse.Namespace) -> int:
    from switchman.lab.cloud.runner import apply_steps

    ctx, steps = _context(args, progress=True)
    _print_done(asyncio.run(through_tunnel(ctx, lambda: apply_steps(ctx, steps))))
    print(f"state: {ctx.state.path}")
    return 0


def run_destroy(args: argparse.Namespace) -> int:
    from switchman.lab.cloud.runner import destroy_steps

    ctx, steps = _context(args, progress=True)
    _print_done(asyncio.run(through_tunnel(ctx, lambda: destroy_steps(ctx, steps))))
    return 0


def run_status(args: argparse.Namespace) -> int:
    from switchman.cli.get import table
    from switchman.lab.cloud.runner import status_steps

    ctx, steps = _context(args)
    lines = asyncio.run(through_tunnel(ctx, lambda: status_steps(ctx, steps)))
    ok = True
    for step, rows in lines.items():
        print(f"{step}: {len(rows)} recorded")
        if rows:
            print(table(("KIND", "NAME", "STATUS"), [(r.what, r.name, r.status) for r in rows]))
        ok = ok and all(r.ok for r in rows)
    return 0 if ok else 1
