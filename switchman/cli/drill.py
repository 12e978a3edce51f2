"""``switchman drill run FILE``: run a scenario file against the lab on this machine, under load, and judge it.

Exit 0 when every check of the drill held, 1 when one did not; the report
(``runs/drill-NAME-STAMP/``: report.html, report.json, samples.csv, PNG
plots, the lab's logs in ``lab/``) says which and with what numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

import yaml

from switchman.errors import ConfigError

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "drill", help="run a drill (a scenario file) against the lab",
        description="Drills bring up the lab, put it under open-loop load, apply a Rollout (or, with spec.apply, "
        "documents for the front) and act on it (faults, commands, restarts of the control plane) as the file says, "
        "then judge what the clients and Envoy saw (expect.envoy: the front Envoy's counters). examples/drills/ "
        "holds one file per strategy and failure. Exit 0: every check held; 1: one did not.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    run_parser = verbs.add_parser("run", help="run one drill file")
    run_parser.add_argument("file", metavar="FILE", help="a drill file (kind: Drill)")
    run_parser.add_argument(
        "--netns", action="store_true", help="each pod (app and sidecar) in its own network namespace (needs root)"
    )
    run_parser.add_argument("--run-dir", default="runs", help="where the report goes (default ./runs)")
    parser.set_defaults(run=run)


def _read(path: str) -> object:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(path, f"cannot read it: {exc.strerror or exc}") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ConfigError(path, f"is not YAML: {exc}") from None
    if len(docs) != 1:
        raise ConfigError(path, f"holds {len(docs)} documents; a drill file holds one (kind: Drill)")
    return docs[0]


def run(args: argparse.Namespace) -> int:
    from switchman.lab.drill import read_scenario, run_drill, summary, write_drill_report
    from switchman.lab.drill.scenario import DemoScenario, HotRestartScenario

    scenario = read_scenario(_read(args.file), args.file)
    folder = Path(args.run_dir) / f"drill-{scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}"

    async def go() -> bool:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        if isinstance(scenario, DemoScenario):  # the demo writes runs/demo-STAMP/ as `switchman demo` does
            from switchman.lab.demo import DemoSettings, run_demo

            return await run_demo(DemoSettings(
                sidecars=scenario.pods, rate=scenario.rate, requests_per_step=scenario.requests_per_step,
                steps=scenario.steps, run_dir=Path(args.run_dir), netns=args.netns,
            ))
        folder.mkdir(parents=True, exist_ok=True)
        if isinstance(scenario, HotRestartScenario):
            return await _hot_restart(scenario, folder)
        result = await run_drill(scenario, folder, netns=args.netns, out=sys.stdout)
        html = await write_drill_report(result, folder)
        print(summary(result))
        print(f"report: {html}")
        return result.verdict.passed

    try:
        passed = asyncio.run(go())
    except asyncio.CancelledError:
        return 128 + signal.SIGTERM
    return 0 if passed else 1


async def _hot_restart(scenario: object, folder: Path) -> bool:
    """An Envoy hot-restarted under load; its own report (report.json, report.html, requests.png)."""
    from switchman.lab.drill.scenario import HotRestartScenario
    from switchman.lab.local.hot_restart_drill import HotRestartDrillSettings, run_hot_restart_drill

    assert isinstance(scenario, HotRestartScenario)
    report = await run_hot_restart_drill(HotRestartDrillSettings(
        rate=scenario.rate, duration_s=scenario.seconds, restarts=scenario.restarts, clients=scenario.clients,
        negative_drills=scenario.negative_drills, run_dir=folder,
    ))
    print(f"{'PASS' if report.passed else 'FAIL'}: drill {scenario.name}")
    for problem in report.problems:
        print(f"  NOT {problem}")
    for restart in report.restarts:
        h = restart.handover
        print(f"  restart epoch {h.old_epoch} -> {h.new_epoch}: LIVE after {h.live_s:.3f}s, old epoch exited "
              f"{h.old_exit_code} after {h.old_exited_s:.2f}s; generation {h.generation_before} -> "
              f"{h.generation_after}; {restart.requests} requests during it, {restart.failures} failed")
    print(f"  load: {report.load.requests} requests, {report.load.requests - report.load.successes} failed")
    for note in report.notes:
        print(f"  note: {note}")
    print(f"report: {folder / 'report.html'}")
    return report.passed
