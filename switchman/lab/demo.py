"""The demo: the lab's topology on this machine; a canary ramped live; retries shown.

1. The lab (:mod:`switchman.lab.local.supervisor`, run in this process):
   Switchman, a front Envoy, and pods of ``checkout`` v1 (blue) and v2
   (green), each app behind its own sidecar Envoy; optionally one network
   namespace per pod.
2. A canary ramp 0 -> 10 -> 50 -> 100 % to v2 at the front. Each step waits
   until every Envoy has ACKed it, then sends a bounded, open-loop load and
   compares the measured split with the requested weight (binomial 3 sigma).
3. v2 starts failing 20 % of requests (told through its sidecar): first
   without retries, then with a retry policy at the front that hides the failures.

The verdict: every split within 3 sigma, and no failed request while
traffic moved. Every request is kept, with when each change was applied and
when every Envoy ran it; the report (``runs/demo-STAMP/``: report.json,
report.html, plots; the lab's logs in ``lab/``) is written from them. On a
terminal a live table shows the running step; elsewhere one plain line per step.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO, runtime_checkable

from switchman.client import SwitchmanClient
from switchman.errors import LabError
from switchman.lab.local.launcher import cleanup_netns
from switchman.lab.local.load import ClientKind, LoadResult, Sample, run_load
from switchman.lab.local.supervisor import Supervisor, wait_synced
from switchman.lab.local.upstream import Faults, set_faults
from switchman.lab.report import DemoRun, Phase, StepResult, write_report
from switchman.lab.report.live import DemoView
from switchman.lab.report.model import PhaseKind
from switchman.lab.topology import SERVICE, retry_routes

__all__ = ["Churning", "DemoLab", "DemoSettings", "StepResult", "run_demo"]

# Every step's load mixes the three kinds of downstream client.
ALL_CLIENTS = tuple(ClientKind)


@dataclass(frozen=True, slots=True)
class DemoSettings:
    sidecars: int = 2  # pods, each an app and its sidecar Envoy; v1 and v2 take turns
    rate: float = 200.0
    requests_per_step: int = 600
    steps: tuple[int, ...] = (0, 10, 50, 100)
    run_dir: Path = Path("runs")
    live: bool | None = None  # the live table; None: when the output is a terminal
    netns: bool = False  # each pod in its own network namespace (root)


class DemoLab(Protocol):
    """Where the demo runs: the local lab (:class:`~switchman.lab.local.supervisor.Supervisor`) or the lab on
    Kubernetes (:class:`~switchman.lab.kubernetes.lab.KubernetesLab`). ``start`` returns the lab's record:
    ``api_url`` (and ``token`` when the API wants one), ``front.listener_url``, ``pods`` (``name``,
    ``version``, ``sidecar.url``)."""

    @property
    def node_ids(self) -> set[str]: ...

    @property
    def description(self) -> str: ...

    async def start(self) -> dict[str, Any]: ...

    async def stop(self) -> None: ...


@runtime_checkable
class Churning(Protocol):
    """A lab whose pods can come and go on demand (Kubernetes): ``churn`` scales and deletes pods of a version
    and returns what it did, once the version is back to its replicas; ``state`` is the record then."""

    async def churn(self, version: str) -> list[str]: ...

    def state(self) -> dict[str, Any]: ...


def _clean_earlier_runs(run_dir: Path, out: TextIO) -> None:
    """Delete the network namespaces an earlier demo left when it was killed (its lab could not)."""
    for lab_dir in sorted(run_dir.glob("demo-*/lab")):
        try:
            removed = cleanup_netns(lab_dir)
        except LabError as exc:
            print(f"note: {exc}", file=out)
            continue
        if removed:
            print(f"deleted network namespaces a killed demo left in {lab_dir}: {', '.join(removed)}", file=out)


async def _pods_come_and_go(
    lab: Churning, targets: list[str], settings: DemoSettings, view: DemoView,
    phases: list[Phase], samples: list[Sample],
) -> StepResult:
    """v2's pods scaled up, one deleted, scaled down and back, under a steady load that must not fail."""
    done = asyncio.Event()
    load = LoadResult()
    view.watch_steady(load)
    started = time.time()
    task = asyncio.create_task(
        run_load(targets, settings.rate / 2, 1_000_000, max_seconds=180, stop=done, into=load, kinds=ALL_CLIENTS)
    )
    try:
        actions = await lab.churn("v2")
    finally:
        done.set()
        await task
        view.watch_steady(None)
    samples.extend(load.samples)
    phases.append(Phase("pods come and go", "pods", "ramp", 1.0, started, started, started, time.time()))
    result = _steady_result(f"v2 pods come and go ({'; '.join(actions)})", load)
    view.finish_step(result)
    return result


def _steady_result(name: str, load: LoadResult) -> StepResult:
    """A load across changes: no split to judge, and every failure counts against the verdict."""
    return StepResult(
        name=name,
        requested_v2=None,
        requests=len(load.samples),
        measured_v2=None,
        within_3_sigma=True,
        success_rate=load.success_rate(),
        p99_ms=load.p99_ms(),
        failures=len(load.failures),
        counts_against_verdict=True,
    )


def within_3_sigma(hits: int, n: int, p: float) -> bool:
    """Is ``hits`` out of ``n`` within three binomial standard deviations of ``n * p``?"""
    sigma = math.sqrt(n * p * (1 - p))
    return abs(hits - n * p) <= 3 * sigma


async def run_demo(
    settings: DemoSettings, out: TextIO = sys.stdout, lab_in: Callable[[Path], DemoLab] | None = None
) -> bool:
    """Run the demo; True when every split was within 3 sigma and nothing failed in a transition.

    The lab runs under a supervisor in this process, but the demo drives
    Switchman only through its public HTTP API (the Python client), as any
    user would, and the upstreams only through their sidecars. Writes the
    report into ``settings.run_dir / "demo-STAMP"``. ``lab_in(folder)`` makes the lab (its logs and record go
    into ``folder``); by default the local lab with ``settings.sidecars`` pods.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = settings.run_dir / f"demo-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    lab: DemoLab
    if lab_in is None:
        _clean_earlier_runs(settings.run_dir, out)
        lab = Supervisor(folder / "lab", settings.sidecars, netns=settings.netns)
    else:
        lab = lab_in(folder / "lab")
    steady: asyncio.Task[LoadResult] | None = None
    results: list[StepResult] = []
    phases: list[Phase] = []
    samples: list[Sample] = []
    try:
        state = await lab.start()
        topology = lab.description
        front = state["front"]
        pods: list[dict[str, Any]] = state["pods"]
        print(
            f"Switchman: xDS on {state['xds_address']}, API {state['api_url']}; front Envoy {front['listener_url']}; "
            + ", ".join(f"{p['name']} behind {p['sidecar']['url']}" for p in pods),
            file=out,
        )
        targets = [str(front["listener_url"])]
        async with SwitchmanClient(str(state["api_url"]), state.get("token"), author="demo") as client:
            view = DemoView(out, live=settings.live)

            async def measure(
                name: str, label: str, kind: PhaseKind, v2: int, revision: int, applied: float, counts: bool
            ) -> None:
                await wait_synced(client, revision, lab.node_ids, timeout=10.0)
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
                    applied = await client.set_weights(SERVICE, {"v1": 100 - v2, "v2": v2})
                    at = time.time()
                    await measure(f"canary {v2}% to v2", f"{v2} %", "ramp", v2, applied.revision or 0, at, True)
                ramp_done.set()
                await steady
                view.watch_steady(None)
                samples.extend(during.samples)
                moved = _steady_result("load across the whole ramp", during)
                results.append(moved)
                view.finish_step(moved)
                if isinstance(lab, Churning):
                    results.append(await _pods_come_and_go(lab, targets, settings, view, phases, samples))
                    pods = lab.state()["pods"]
                for pod in pods:
                    if pod["version"] == "v2":
                        await set_faults(str(pod["sidecar"]["url"]), Faults(error_rate=0.2))
                at = time.time()
                await measure("v2 fails 20%, no retries", "fault", "fault", 100, applied.revision or 0, at, False)
                applied = await client.apply(retry_routes(), message="demo: retries on")
                at = time.time()
                await measure("v2 fails 20%, retries on", "retries", "retries", 100, applied.revision or 0, at, True)
    finally:
        if steady is not None and not steady.done():
            steady.cancel()
            await asyncio.gather(steady, return_exceptions=True)
        await lab.stop()

    passed = bool(results) and all(
        r.within_3_sigma and (r.failures == 0 or not r.counts_against_verdict) for r in results
    )
    samples.sort(key=lambda s: s.started)
    # matplotlib takes a second or two: off the event loop
    run = DemoRun(stamp, passed, results, phases, samples, lab=topology)
    html = await asyncio.to_thread(write_report, run, folder)
    verdict = "PASS" if passed else "FAIL"
    print(f"\n{verdict}: splits within 3σ and no failed request while traffic moved. Report: {html}", file=out)
    return passed
