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
        description="Drills bring up the lab, put it under open-loop load, apply a Rollout and act on it "
        "(faults, commands) as the file says, then judge what the clients and Envoy saw. examples/drills/ "
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

    scenario = read_scenario(_read(args.file), args.file)
    folder = Path(args.run_dir) / f"drill-{scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)

    async def go() -> bool:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
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
