"""The demo: upstreams, real Envoys and Switchman on loopback; a canary ramped live; retries shown.

1. ``checkout`` v1 (blue) and v2 (green) upstreams, N Envoys on ADS.
2. A canary ramp 0 -> 10 -> 50 -> 100 % to v2. Each step waits until every
   Envoy has ACKed it, then sends a bounded, open-loop load and compares the
   measured split with the requested weight (binomial 3 sigma).
3. v2 starts failing 20 % of requests: first without retries, then with a
   retry policy that hides the failures.

The verdict: every split within 3 sigma, and no failed request while
traffic moved. Every request is kept, with when each change was applied and
when every Envoy ran it; the report (``runs/demo-STAMP/``: report.json,
report.html, plots) is written from them. On a terminal a live table shows
the running step; elsewhere one plain line per step.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from switchman.app import ServeSettings, Switchman
from switchman.client import SwitchmanClient
from switchman.errors import LabError
from switchman.lab.local.envoy import EnvoyProcess, bootstrap
from switchman.lab.local.load import ClientKind, LoadResult, Sample, run_load
from switchman.lab.local.upstream import Faults, Upstream
from switchman.lab.report import DemoRun, Phase, StepResult, write_report
from switchman.lab.report.live import DemoView
from switchman.lab.report.model import PhaseKind

__all__ = ["DemoSettings", "StepResult", "run_demo"]

# Every step's load mixes the three kinds of downstream client.
ALL_CLIENTS = tuple(ClientKind)


@dataclass(frozen=True, slots=True)
class DemoSettings:
    envoys: int = 2
    rate: float = 200.0
    requests_per_step: int = 600
    steps: tuple[int, ...] = (0, 10, 50, 100)
    run_dir: Path = Path("runs")
    live: bool | None = None  # the live table; None: when the output is a terminal


def _documents(ports: dict[str, int], retries: bool) -> list[dict[str, Any]]:
    """The demo's routing config, as a user would write it (docs/config.md)."""
    route: dict[str, Any] = {"match": {"prefix": "/"}, "service": "checkout", "timeout": "5s"}
    if retries:
        # 0.2 ** 7: about one request in 80,000 still fails after six retries.
        route["retries"] = {"retryOn": ["5xx", "reset", "connect-failure"], "attempts": 6, "perTryTimeout": "1s"}
    return [
        {
            "kind": "Service",
            "metadata": {"name": "checkout"},
            "spec": {
                "versions": {v: {"endpoints": [{"address": "127.0.0.1", "port": p}]} for v, p in ports.items()},
                "weights": {"v1": 100, "v2": 0},
                # Envoy allows 3 concurrent retries per cluster by default; at 200
                # requests/s with 20 % failing that overflows now and then.
                "circuitBreakers": {"maxRetries": 1000},
            },
        },
        {
            "kind": "Routes",
            "metadata": {"name": "checkout-routes"},
            "spec": {"virtualHosts": [{"name": "checkout", "domains": ["*"], "routes": [route]}]},
        },
        {"kind": "Listener", "metadata": {"name": "ingress"}, "spec": {"port": 0, "routes": "checkout-routes"}},
    ]


def within_3_sigma(hits: int, n: int, p: float) -> bool:
    """Is ``hits`` out of ``n`` within three binomial standard deviations of ``n * p``?"""
    sigma = math.sqrt(n * p * (1 - p))
    return abs(hits - n * p) <= 3 * sigma


async def _all_synced(client: SwitchmanClient, revision: int, envoys: int, timeout: float = 10.0) -> None:
    """Wait until the status API says every Envoy runs ``revision`` (or later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await client.status()
        nodes = status["nodes"]
        if (status["revision"] or 0) >= revision and len(nodes) >= envoys and all(n["synced"] for n in nodes):
            return
        await asyncio.sleep(0.01)
    raise LabError(f"the Envoys did not all run revision {revision} within {timeout}s: {await client.status()}")


async def run_demo(settings: DemoSettings, out: TextIO = sys.stdout) -> bool:
    """Run the demo; True when every split was within 3 sigma and nothing failed in a transition.

    Switchman runs in this process, but the demo drives it only through its
    public HTTP API (the Python client), as any user would. Writes the
    report into ``settings.run_dir / "demo-STAMP"``.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = settings.run_dir / f"demo-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    switchman = Switchman(
        ServeSettings(xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=str(folder / "switchman.db"))
    )
    blue, green = Upstream("checkout", "v1"), Upstream("checkout", "v2")
    envoys: list[EnvoyProcess] = []
    results: list[StepResult] = []
    phases: list[Phase] = []
    samples: list[Sample] = []
    try:
        xds_port, api_port = await switchman.start()
        ports = {"v1": await blue.start(), "v2": await green.start()}
        print(f"upstreams: checkout v1 on :{ports['v1']}, v2 on :{ports['v2']}", file=out)
        async with SwitchmanClient(f"http://127.0.0.1:{api_port}", author="demo") as client:
            await client.apply(_documents(ports, retries=False), message="demo: checkout on v1")
            envoys = [EnvoyProcess(bootstrap(f"demo-envoy-{i}", xds_port)) for i in range(settings.envoys)]
            for envoy in envoys:
                await envoy.start()
            listeners = [await e.wait_listener("ingress") for e in envoys]
            print(f"Switchman: xDS on :{xds_port}, API on :{api_port}; Envoys listening on {listeners}", file=out)
            targets = [f"http://127.0.0.1:{p}/" for p in listeners]
            view = DemoView(out, live=settings.live)

            async def measure(
                name: str, label: str, kind: PhaseKind, v2: int, revision: int, applied: float, counts: bool
            ) -> None:
                await _all_synced(client, revision, len(envoys))
                synced = time.time()
                load = LoadResult()
                view.start_step(name, v2 / 100, load)
                started = time.time()
                await run_load(targets, settings.rate, settings.requests_per_step, into=load, kinds=ALL_CLIENTS)
                phases.append(Phase(name, label, kind, v2 / 100, applied, synced, started, time.time()))
                samples.extend(load.samples)
                n = len(load.samples)
                hits = load.versions.get("v2", 0)
                ok = n - len(load.failures)
                result = StepResult(
                    name=name,
                    requested_v2=v2 / 100,
                    requests=n,
                    measured_v2=hits / ok if ok else 0.0,
                    within_3_sigma=within_3_sigma(hits, ok, v2 / 100) if counts else True,
                    success_rate=load.success_rate(),
                    p99_ms=load.p99_ms(),
                    failures=len(load.failures),
                    counts_against_verdict=counts,
                )
                results.append(result)
                view.finish_step(result)

            with view:
                # A steady load runs across every transition of the ramp: no request may fail.
                ramp_done = asyncio.Event()
                during = LoadResult()
                view.watch_steady(during)
                steady = asyncio.create_task(
                    run_load(
                        targets, settings.rate / 2, 1_000_000, max_seconds=120, stop=ramp_done, into=during,
                        kinds=ALL_CLIENTS,
                    )
                )
                for v2 in settings.steps:
                    applied = await client.set_weights("checkout", {"v1": 100 - v2, "v2": v2})
                    at = time.time()
                    await measure(f"canary {v2}% to v2", f"{v2} %", "ramp", v2, applied.revision or 0, at, True)
                ramp_done.set()
                await steady
                view.watch_steady(None)
                samples.extend(during.samples)
                moved = StepResult(
                    name="load across the whole ramp",
                    requested_v2=None,
                    requests=len(during.samples),
                    measured_v2=None,
                    within_3_sigma=True,
                    success_rate=during.success_rate(),
                    p99_ms=during.p99_ms(),
                    failures=len(during.failures),
                    counts_against_verdict=True,
                )
                results.append(moved)
                view.finish_step(moved)
                green.faults = Faults(error_rate=0.2)
                at = time.time()
                await measure("v2 fails 20%, no retries", "fault", "fault", 100, applied.revision or 0, at, False)
                docs = _documents(ports, retries=True)
                docs[0]["spec"]["weights"] = {"v1": 0, "v2": 100}
                applied = await client.apply(docs, message="demo: retries on")
                at = time.time()
                await measure("v2 fails 20%, retries on", "retries", "retries", 100, applied.revision or 0, at, True)
    finally:
        for envoy in envoys:
            await envoy.stop()
        await blue.stop()
        await green.stop()
        await switchman.stop(0.5)

    passed = bool(results) and all(
        r.within_3_sigma and (r.failures == 0 or not r.counts_against_verdict) for r in results
    )
    samples.sort(key=lambda s: s.started)
    # matplotlib takes a second or two: off the event loop
    html = await asyncio.to_thread(write_report, DemoRun(stamp, passed, results, phases, samples), folder)
    verdict = "PASS" if passed else "FAIL"
    print(f"\n{verdict}: splits within 3σ and no failed request while traffic moved. Report: {html}", file=out)
    return passed
