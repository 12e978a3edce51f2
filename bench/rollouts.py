"""The rollout engine's overhead: many concurrent rollouts on one Switchman while many real Envoys report.

One Switchman (in-process, SQLite in a temp folder, the default h2
transport), two upstreams (v1 and v2, a process each), N real Envoys (ADS, load reports to
Switchman every second, one listener that logs every request to Switchman),
and R Services, each with v1 and v2 and a Rollout of many steps judged every
``--interval`` seconds. A bounded open-loop load goes through the Envoys
(each request names one service in its Host header). For every analysis
the engine records how long after it could start (its window's reports in)
it started; for every step, how long after its due moment its revision was
committed and served (in the snapshot cache: the pushes to the Envoys start
then), and how long after each push the Envoys ACKed the new routes. With
the rollouts started one by one, the steps taken while they are still being
started (a burst of two revisions per rollout) are reported apart from the
steady state. Nothing here asserts: it prints.

    python bench/rollouts.py                       # 100 rollouts, 50 Envoys, 2 s analyses, 40 s
    python bench/rollouts.py --rollouts 20 --envoys 10 --seconds 20

Prints a table and, last, one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from switchman.app import ServeSettings, Switchman
from switchman.client import SwitchmanClient
from switchman.lab.local import EnvoyProcess, bootstrap
from switchman.rollout import EngineSettings
from switchman.rollout.metrics import LATENESS_BUCKETS
from switchman.telemetry import TelemetrySettings
from switchman.xds.resources import ROUTE
from switchman.xds.server.metrics import LATENCY_BUCKETS


def documents(rollouts: int, v1: int, v2: int, interval: float, steps: int) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    hosts = []
    for i in range(rollouts):
        name = f"svc-{i}"
        docs.append({"kind": "Service", "metadata": {"name": name}, "spec": {
            "versions": {"v1": {"endpoints": [{"address": "127.0.0.1", "port": v1}]},
                         "v2": {"endpoints": [{"address": "127.0.0.1", "port": v2}]}},
            "weights": {"v1": 100, "v2": 0}}})
        hosts.append({"name": name, "domains": [name], "routes": [{"match": {"prefix": "/"}, "service": name}]})
        docs.append({"kind": "Rollout", "metadata": {"name": name}, "spec": {
            "service": name, "stable": "v1", "canary": "v2",
            "analysis": {"interval": f"{interval}s", "threshold": 1000, "minRequests": 1,
                         # from 50 %: at a few requests a second per service, the canary gets enough to judge
                         "stepWeights": [50 + k for k in range(min(steps, 50))]}}})
    docs.append({"kind": "Routes", "metadata": {"name": "bench-routes"}, "spec": {"virtualHosts": hosts}})
    docs.append({"kind": "Listener", "metadata": {"name": "bench"}, "spec": {
        "address": "127.0.0.1", "port": 0, "routes": "bench-routes",
        "accessLogService": {"cluster": "xds", "bufferFlushInterval": "250ms"}}})
    return docs


async def load(ports: list[int], rollouts: int, rate: float, seconds: float) -> tuple[int, int]:
    """Open loop at ``rate`` a second, round-robin over Envoys and services; returns (sent, failed)."""
    sent = failed = 0
    tasks: list[asyncio.Task[None]] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

        async def one(port: int, host: str) -> None:
            nonlocal failed
            try:
                async with session.get(f"http://127.0.0.1:{port}/", headers={"Host": host}) as resp:
                    await resp.read()
                    failed += resp.status != 200
            except (aiohttp.ClientError, TimeoutError):
                failed += 1

        start = time.monotonic()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(ports[i % len(ports)], f"svc-{i % rollouts}")))
            sent += 1
        await asyncio.gather(*tasks)
    return sent, failed


async def upstream_process(version: str, folder: Path) -> tuple[asyncio.subprocess.Process, int]:
    """The demo upstream ``svc`` ``version`` in a process of its own; returns it and its port."""
    port_file = folder / f"upstream-{version}.port"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchman.lab.local.upstream_main", "svc", version, "--port-file", str(port_file),
        stderr=asyncio.subprocess.DEVNULL,
    )
    for _ in range(200):
        if port_file.exists():
            return process, int(port_file.read_text())
        await asyncio.sleep(0.05)
    process.kill()
    await process.wait()
    raise RuntimeError(f"the {version} upstream did not start")


def bucket_quantile(counts: list[int], q: float) -> float | None:
    """The upper bound (ms) of the histogram bucket holding quantile ``q`` (None: empty; inf: over the last)."""
    total = sum(counts)
    if not total:
        return None
    seen = 0
    for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
        seen += count
        if seen >= q * total:
            return bound * 1000
    return float("inf")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else 0.0


async def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="switchman-bench-"))
    app = Switchman(ServeSettings(
        xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=str(folder / "s.db"),
        gc_freeze_seconds=1.0, telemetry=TelemetrySettings(load_reporting_interval=1.0),
        rollouts=EngineSettings(analysis_lag=0.5),
    ))
    await app.start()
    envoys = [EnvoyProcess(bootstrap(f"bench-{i}", app.xds_port, cluster="bench")) for i in range(args.envoys)]
    upstreams: list[tuple[asyncio.subprocess.Process, int]] = []
    try:
        # The upstreams run in processes of their own, as the load does: their requests are not the engine's work.
        for version in ("v1", "v2"):
            upstreams.append(await upstream_process(version, folder))
        (_, blue_port), (_, green_port) = upstreams
        async with SwitchmanClient(f"http://127.0.0.1:{app.api_port}", author="bench") as api:
            docs = documents(args.rollouts, blue_port, green_port, args.interval, args.steps)
            await api.apply([d for d in docs if d["kind"] != "Rollout"])
            print(f"starting {args.envoys} Envoys ...", file=sys.stderr)
            await asyncio.gather(*(e.start() for e in envoys))
            ports = list(await asyncio.gather(*(e.wait_listener("bench") for e in envoys)))
            # The load runs in a process of its own: in this one it would take the event loop's time from the
            # engine it measures.
            loader = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--load-ports", ",".join(map(str, ports)), "--rollouts", str(args.rollouts),
                "--rate", str(args.rate), "--seconds", str(args.seconds + 3), stdout=asyncio.subprocess.PIPE,
            )
            await asyncio.sleep(2.0)  # reports flowing before the rollouts start
            started = time.time()
            rollouts = [d for d in docs if d["kind"] == "Rollout"]
            if args.together:
                await api.apply(rollouts, message="bench: rollouts")  # every run due at the same moments
            else:
                for doc in rollouts:  # as people start them: one by one, here spread over one interval
                    await api.apply([doc], message=f"bench: {doc['metadata']['name']}")
                    await asyncio.sleep(args.interval / len(rollouts))
            print(f"{args.rollouts} rollouts applied; running {args.seconds:g}s ...", file=sys.stderr)
            await asyncio.sleep(args.seconds)
            statuses = await api.rollouts()
            out, _ = await loader.communicate()
            sent, failed = (int(x) for x in out.split())
    finally:
        await asyncio.gather(*(e.stop() for e in envoys))
        await app.stop(0.1)
        for process, _ in upstreams:
            process.terminate()
            await process.wait()
    metrics = app.rollouts.metrics
    analyses = sum(metrics.lateness)
    # Then the Envoys: how long after each RouteConfiguration went out (every step changes it) each Envoy
    # ACKed it, from the xDS server's push-to-ACK histogram.
    routes = app.xds.metrics.of(ROUTE)
    acked = {f"<= {b * 1000:g} ms": c for b, c in zip(LATENCY_BUCKETS, routes.latency, strict=False)}
    # Steps: how long after the passing analysis was due each next stage was entered: its revision committed
    # and served (the moment it is in the snapshot cache and the pushes to the Envoys start).
    steps: list[tuple[float, float]] = []  # (when, how late)
    first_steps: list[float] = []
    verdicts: dict[str, int] = {}
    for status in statuses:
        state = status.get("state") or {}
        passed = [a for a in state.get("analyses", []) if a["outcome"] == "Passed"]
        mine = []
        for event in state.get("events", []):
            if event["kind"] not in ("Advanced", "Promoted"):
                continue
            before = [a for a in passed if a["at"] <= event["at"]]
            if before:
                mine.append((float(event["at"]), max(0.0, float(event["at"]) - float(before[-1]["due"]))))
        steps += mine
        first_steps.append(min((at for at, _ in mine), default=float("inf")))
        for analysis in state.get("analyses", []):
            verdicts[analysis["outcome"]] = verdicts.get(analysis["outcome"], 0) + 1
    # Starting the rollouts is a burst of revisions of its own (each Rollout applied, then its stage 0's
    # weights): its backlog is reported apart. Steady from the moment every rollout has taken a step.
    steady_from = max(first_steps, default=0.0)
    step_late = [late for _, late in steps]
    steady = [late for at, late in steps if at > steady_from]
    starting = [late for at, late in steps if at <= steady_from]
    buckets = {f"<= {b * 1000:g} ms": c for b, c in zip(LATENESS_BUCKETS, metrics.lateness, strict=False)}
    return {
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "rollouts": args.rollouts, "envoys": args.envoys, "interval_s": args.interval, "seconds": args.seconds,
        "started": "together" if args.together else "one by one over an interval",
        "requests": sent, "failed_requests": failed,
        "analyses": analyses, "verdicts": verdicts,
        "analysis_late_max_ms": round(metrics.lateness_max * 1000, 1),
        "analysis_late_mean_ms": round(metrics.lateness_sum / analyses * 1000, 2) if analyses else None,
        "analysis_late_buckets": buckets,
        "steps": len(step_late),
        "step_late_p50_ms": round(percentile(step_late, 50) * 1000, 1),
        "step_late_p99_ms": round(percentile(step_late, 99) * 1000, 1),
        "step_late_max_ms": round(max(step_late, default=0.0) * 1000, 1),
        "steps_late_over_100ms": sum(1 for x in step_late if x > 0.1),
        "steady_from_s": round(steady_from - started, 1),
        "steady_steps": len(steady),
        "steady_step_late_p50_ms": round(percentile(steady, 50) * 1000, 1),
        "steady_step_late_p99_ms": round(percentile(steady, 99) * 1000, 1),
        "steady_step_late_max_ms": round(max(steady, default=0.0) * 1000, 1),
        "steady_steps_late_over_100ms": sum(1 for x in steady if x > 0.1),
        "starting_steps": len(starting),
        "starting_step_late_max_ms": round(max(starting, default=0.0) * 1000, 1),
        "route_pushes_acked": sum(routes.latency),
        "route_push_to_ack_buckets": acked,
        "route_push_to_ack_p50_ms_at_most": bucket_quantile(routes.latency, 0.5),
        "route_push_to_ack_p99_ms_at_most": bucket_quantile(routes.latency, 0.99),
        "run_wall_s": round(time.time() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=100)
    parser.add_argument("--envoys", type=int, default=50)
    parser.add_argument("--interval", type=float, default=2.0, help="analysis interval, seconds")
    parser.add_argument("--steps", type=int, default=40, help="steps per rollout (more than the run can take)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests a second through the Envoys")
    parser.add_argument("--seconds", type=float, default=40.0, help="how long the rollouts run")
    parser.add_argument(
        "--together", action="store_true",
        help="apply every Rollout in one revision, so that all runs are due at the same moments (the worst case)",
    )
    parser.add_argument("--load-ports", default="", help=argparse.SUPPRESS)  # the load process's own mode
    args = parser.parse_args()
    if args.load_ports:
        ports = [int(p) for p in args.load_ports.split(",")]
        sent, failed = asyncio.run(load(ports, args.rollouts, args.rate, args.seconds))
        print(sent, failed)
        return
    figures = asyncio.run(run(args))
    rows = [
        ("rollouts / Envoys / interval", f"{figures['rollouts']} / {figures['envoys']} / {figures['interval_s']:g} s"),
        ("rollouts started", figures["started"]),
        ("requests (failed)", f"{figures['requests']} ({figures['failed_requests']})"),
        ("analyses run (verdicts)", f"{figures['analyses']} {figures['verdicts']}"),
        ("analysis started late: mean / max", f"{figures['analysis_late_mean_ms']} / "
         f"{figures['analysis_late_max_ms']} ms"),
        ("steps taken", str(figures["steps"])),
        ("step late: p50 / p99 / max", f"{figures['step_late_p50_ms']} / {figures['step_late_p99_ms']} / "
         f"{figures['step_late_max_ms']} ms"),
        ("steps late by more than 100 ms", str(figures["steps_late_over_100ms"])),
        (f"  once every rollout had stepped (from {figures['steady_from_s']} s)",
         f"{figures['steady_steps']} steps: p50 {figures['steady_step_late_p50_ms']} / p99 "
         f"{figures['steady_step_late_p99_ms']} / max {figures['steady_step_late_max_ms']} ms, "
         f"{figures['steady_steps_late_over_100ms']} over 100 ms"),
        ("  while they were starting", f"{figures['starting_steps']} steps, max "
         f"{figures['starting_step_late_max_ms']} ms late"),
        ("Envoys' ACK of each step's routes (pushes)", f"p50 <= {figures['route_push_to_ack_p50_ms_at_most']} / "
         f"p99 <= {figures['route_push_to_ack_p99_ms_at_most']} ms after the push "
         f"({figures['route_pushes_acked']})"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
