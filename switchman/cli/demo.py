"""``switchman demo``: the lab (front Envoy, pods with sidecars, Switchman); a canary ramp and retries, measured."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from switchman.cli.lab import kubernetes_lab_settings, kubernetes_options
from switchman.cli.options import seconds

if TYPE_CHECKING:
    from collections.abc import Callable

    from switchman.lab.demo import DemoLab, DemoSettings

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("demo", help="run the traffic-shifting demo on this machine")
    parser.add_argument(
        "--envoys", type=int, default=2,
        help="sidecar Envoys, one per pod, v1 and v2 taking turns (default 2; the front Envoy comes on top)",
    )
    parser.add_argument(
        "--netns", action="store_true", help="each pod (app and sidecar) in its own network namespace (needs root)"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (default 200)")
    parser.add_argument("--requests", type=int, default=600, help="requests per step (default 600)")
    parser.add_argument("--run-dir", default="runs", help="where the report goes (default ./runs)")
    parser.add_argument("--timeout", default="300", help="seconds for the lab to come up (--kubernetes; default 300)")
    kubernetes_options(parser)
    parser.set_defaults(run=run)


async def _until_signalled(settings: DemoSettings, lab_in: Callable[[Path], DemoLab] | None) -> bool:
    """Run the demo; SIGTERM cancels it, so that it still stops its lab and deletes its namespaces."""
    from switchman.lab.demo import run_demo

    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run_demo(settings, lab_in=lab_in)


def run(args: argparse.Namespace) -> int:
    from switchman.lab.demo import DemoSettings

    settings = DemoSettings(
        sidecars=args.envoys, netns=args.netns, rate=args.rate, requests_per_step=args.requests,
        run_dir=Path(args.run_dir),
    )
    lab_in = None
    if args.kubernetes:
        from switchman.lab.kubernetes.lab import KubernetesLab

        lab_settings = kubernetes_lab_settings(args, seconds(args.timeout, "--timeout"))

        def lab_in(folder: Path) -> DemoLab:
            return KubernetesLab(folder, lab_settings)

    try:
        passed = asyncio.run(_until_signalled(settings, lab_in))
    except asyncio.CancelledError:
        return 128 + signal.SIGTERM
    return 0 if passed else 1
