"""Running a drill on the local lab: bring it up, load it, apply the Rollout, act as the file says, judge.

The lab runs under a supervisor in this process (as the demo's does), and
the drill drives Switchman only through its public API, as a user would:
the Rollout is applied with the Python client, commands are the API's, and
faults are told to the apps through their sidecars. An open-loop load runs
from before the Rollout is applied until a little after its run ends.

A resilience drill (``spec.apply``) applies its documents to the front,
waits for the front Envoy to run them, reads the front's stats, runs the
load for its seconds with the faults on their clock, and reads the stats
again: the judge gets their change.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from switchman.client import ClientError, SwitchmanClient
from switchman.lab.drill.judge import Mark, StageWindow, Verdict, judge, judge_resilience, stage_windows
from switchman.lab.drill.restarts import ControlPlaneRecord, Restarts, judge_restarts
from switchman.lab.drill.scenario import Action, Condition, ResilienceScenario, Scenario, resolve_documents
from switchman.lab.local.load import LoadResult, run_load
from switchman.lab.local.supervisor import Supervisor, wait_synced
from switchman.lab.local.upstream import Faults, set_faults
from switchman.lab.topology import FRONT_NODE, SERVICE, VERSIONS
from switchman.rollout.plan import plan

__all__ = ["DrillResult", "front_counters", "run_drill"]

_ENDED = ("Succeeded", "Failed", "Aborted")
_POLL = 0.1  # seconds between looks at the rollout's status
_AFTER = 2.0  # seconds of load after the run ends: what traffic does once it settled
_WATCH = 0.25  # seconds between readings of the front's counters during a resilience drill


@dataclass(slots=True)
class DrillResult:
    scenario: Scenario | ResilienceScenario
    verdict: Verdict
    status: dict[str, Any]
    samples: LoadResult
    windows: list[StageWindow]
    marks: list[Mark]
    started: float
    lab: str
    control_plane: ControlPlaneRecord | None = None  # the control plane's replicas and restarts, when it had some
    # a resilience drill's front-Envoy stats over the run: (wall clock, each stat's change since it began)
    counters: list[tuple[float, dict[str, int]]] = field(default_factory=list)


def _holds(when: Condition, state: Mapping[str, Any], since: float, now: float) -> bool:
    if when.after is not None and now - since < when.after:
        return False
    if when.weight is not None and int(state.get("weight", 0)) < when.weight:
        return False
    if when.stage is not None and int(state.get("stage", -1)) + 1 < when.stage:
        return False
    return when.phase is None or state.get("phase") == when.phase


async def _sidecar_requests(admin_url: str, cluster: str) -> int:
    """How many requests a sidecar sent its app (Envoy's own counter)."""
    url = f"{admin_url.rstrip('/')}/stats?format=json&filter=^cluster\\.{cluster}\\.upstream_rq_total$"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        body = await resp.json(content_type=None)
    return sum(int(s.get("value", 0)) for s in body.get("stats", []) if "value" in s)


async def front_counters(admin_url: str) -> dict[str, int]:
    """Every numeric stat on the Envoy at ``admin_url`` (counters and gauges; text readouts left out), by name."""
    url = f"{admin_url.rstrip('/')}/stats?format=json"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        resp.raise_for_status()
        body = await resp.json(content_type=None)
    return {
        str(s["name"]): int(s["value"]) for s in body.get("stats", [])
        if "name" in s and isinstance(s.get("value"), int | float)
    }


def _changes(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Each stat's change between two readings; a stat absent before (not yet created) counts from 0."""
    return {name: value - before.get(name, 0) for name, value in after.items()}


async def _watch(admin_url: str, before: Mapping[str, int], stats: tuple[str, ...], until: asyncio.Task[Any],
                 into: list[tuple[float, dict[str, int]]]) -> None:
    """Read the front's ``stats`` every :data:`_WATCH` seconds until ``until`` is done: their change since
    ``before``, with when it was read."""
    while not until.done():
        changes = _changes(before, await front_counters(admin_url))
        into.append((time.time(), {stat: changes.get(stat, 0) for stat in stats}))
        await asyncio.sleep(_WATCH)


class _MirrorCount:
    """What the canary's apps received while only mirrored: two readings of their sidecars' counters inside the
    mirror stage (a second after it began, a second before its analyses can end it), and the clients' requests
    started between the two."""

    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.pods = pods
        self.readings: list[tuple[float, int]] = []
        self.task: asyncio.Task[None] | None = None

    async def _read(self) -> tuple[float, int]:
        at = time.time()
        counts = [await _sidecar_requests(p["sidecar"]["admin_url"], f"{p['name']}-app") for p in self.pods]
        return at, sum(counts)

    def start(self, entered: float, lasts: float) -> None:
        async def measure() -> None:
            await asyncio.sleep(max(0.0, entered + 1.0 - time.time()))
            self.readings.append(await self._read())
            await asyncio.sleep(max(0.5, entered + lasts - 1.0 - time.time()))
            self.readings.append(await self._read())

        self.task = asyncio.create_task(measure())

    async def result(self, samples: list[Any]) -> dict[str, int] | None:
        if self.task is None:
            return None
        await asyncio.gather(self.task, return_exceptions=True)
        if len(self.readings) != 2:
            return None
        (t1, c1), (t2, c2) = self.readings
        return {"received": c2 - c1, "front": sum(1 for s in samples if t1 <= s.started < t2)}


class _Actions:
    """The file's actions, each done once, the first time its condition holds."""

    def __init__(self, actions: tuple[Action, ...], pods: list[dict[str, Any]], client: SwitchmanClient,
                 name: str, start: str = "the rollout started", restarts: Restarts | None = None) -> None:
        self.pending = list(actions)
        self.restarts = restarts
        self.start = start
        self.pods = pods
        self.client = client
        self.name = name
        self.marks: list[Mark] = []

    async def run(self, state: Mapping[str, Any], since: float, out: TextIO) -> None:
        now = time.time()
        for action in [a for a in self.pending if _holds(a.when, state, since, now)]:
            self.pending.remove(action)
            at = time.time()  # the fault may take effect as soon as it is sent: mark it from then
            if action.faults is not None:
                f = action.faults
                faults = Faults(latency_ms=f.latency_ms, error_rate=f.error_rate, reset_rate=f.reset_rate)
                for pod in self.pods:
                    if pod["name"] == f.pod if f.pod is not None else pod["version"] == f.version:
                        await set_faults(str(pod["sidecar"]["url"]), faults)
                what = f"fault: {action.describe()}"
            elif action.control_plane is not None:
                assert self.restarts is not None
                self.restarts.start(action.control_plane)  # in the background: the drill goes on watching
                what = f"control plane: {action.describe()}"
            else:
                assert action.command is not None
                await self.client.rollout_command(self.name, action.command)
                what = f"command: {action.command}"
            self.marks.append(Mark(at, what))
            print(f"  {at - since:6.2f}s  {what} (when {action.when.describe(self.start)})", file=out)


async def run_drill(scenario: Scenario | ResilienceScenario, run_dir: Path, *, netns: bool = False,
                    out: TextIO = sys.stdout) -> DrillResult:
    """Run ``scenario`` on a lab of its own in ``run_dir`` (the lab's files in ``run_dir / "lab"``)."""
    if isinstance(scenario, ResilienceScenario):
        return await _run_resilience(scenario, run_dir, netns=netns, out=out)
    lab = Supervisor(run_dir / "lab", scenario.pods, netns=netns, control_plane=scenario.control_plane)
    stop = asyncio.Event()
    load_task: asyncio.Task[LoadResult] | None = None
    stages = plan(scenario.spec)
    restarts: Restarts | None = None
    record: ControlPlaneRecord | None = None
    try:
        state = await lab.start()
        pods: list[dict[str, Any]] = state["pods"]
        front = state["front"]
        lab_line = (
            f"Lab: clients → front Envoy → {len(pods)} pods ({', '.join(p['name'] for p in pods)}), "
            f"{'each in its own network namespace' if netns else 'on loopback'}; the front logs every request "
            "to Switchman, which judges the rollout by it"
        )
        print(lab_line, file=out)
        load = LoadResult()
        load_task = asyncio.create_task(run_load(
            [str(front["listener_url"])], scenario.rate, int(scenario.rate * scenario.seconds),
            max_seconds=scenario.seconds, stop=stop, into=load, kinds=scenario.clients, cohort=scenario.cohort,
        ))
        before = await front_counters(str(front["admin_url"])) if scenario.expect.envoy else {}
        async with SwitchmanClient(str(state["api_url"]), author="drill") as client:
            await asyncio.sleep(1.5)  # the front reports load before the rollout starts judging it
            mirrored = _MirrorCount([p for p in pods if p["version"] == scenario.spec.canary])
            started = time.time()
            await client.apply([dict(scenario.rollout)], message=f"drill {scenario.name}")
            print(f"drill {scenario.name}: rollout applied ({scenario.spec.strategy}, "
                  f"{len(stages)} stages: {', '.join(s.name for s in stages)})", file=out)
            if scenario.control_plane is not None or any(a.control_plane for a in scenario.actions):
                restarts = Restarts(lab.control_plane, client, scenario.name, lab.node_ids)
            actions = _Actions(scenario.actions, pods, client, scenario.name, restarts=restarts)
            timeline: list[tuple[float, int, str, bool, int]] = [(started, 0, "before the rollout", False, 0)]
            seen_stage = -1
            status: dict[str, Any] = {}
            deadline = time.monotonic() + scenario.timeout
            while True:
                try:
                    status = await client.rollout(scenario.name)
                except ClientError:
                    if restarts is None or not restarts.busy:
                        raise
                    await asyncio.sleep(_POLL)  # the only replica is down: it comes back
                    continue
                if restarts is not None:
                    restarts.observe(status)
                run = status.get("state") or {}
                stage = int(run.get("stage", -1))
                if stage != seen_stage and stage >= 0:
                    entered = next((float(e["at"]) for e in reversed(run.get("events") or [])
                                    if e.get("kind") in ("Advanced", "Promoted") and int(e.get("stage", -2)) == stage),
                                   time.time())
                    traffic = stages[stage].traffic
                    timeline.append((entered, traffic.canary_weight, stages[stage].name, bool(traffic.cohort),
                                     traffic.mirror_percent))
                    print(f"  {entered - started:6.2f}s  stage {stage + 1}/{len(stages)}: {stages[stage].name}",
                          file=out)
                    if traffic.mirror_percent and mirrored.task is None:
                        mirrored.start(entered, stages[stage].checks * scenario.spec.analysis.interval)
                    seen_stage = stage
                await actions.run(run, started, out)
                if run.get("phase") in _ENDED:
                    break
                if time.monotonic() > deadline:
                    print(f"  the rollout did not end within {scenario.timeout:g}s", file=out)
                    break
                await asyncio.sleep(_POLL)
            for event in run.get("events") or []:
                if event.get("kind") == "RolledBack":
                    timeline.append((float(event["at"]), 0, "rolled back", False, 0))
            ended = time.time()
            print(f"  {ended - started:6.2f}s  {run.get('phase')}: {run.get('message', '')}", file=out)
            await asyncio.sleep(_AFTER)
            stop.set()
            await load_task
            mirror = await mirrored.result(load.samples)
            after = await front_counters(str(front["admin_url"])) if scenario.expect.envoy else None
            counters = _changes(before, after) if after is not None else None
            record = await restarts.finish() if restarts is not None else None
    finally:
        stop.set()
        if load_task is not None and not load_task.done():
            load_task.cancel()
            await asyncio.gather(load_task, return_exceptions=True)
        if restarts is not None:
            await restarts.cancel()
        await lab.stop()
    load.samples.sort(key=lambda s: s.started)
    end = time.time()
    windows = stage_windows(sorted(timeline), end)
    verdict = judge(scenario, load.samples, windows, status, actions.marks, mirror, counters,
                    gaps=record.gaps() if record is not None else ())
    if record is not None:
        judge_restarts(verdict, record, status, load.samples[0].started if load.samples else started, end)
    return DrillResult(scenario, verdict, status, load, windows, actions.marks, started, lab_line, record)


def _canary_weight(documents: list[dict[str, Any]]) -> int:
    """The percent of ``checkout`` on v2 once the documents are applied (the lab's default: 0)."""
    service = next((d for d in documents if d.get("kind") == "Service" and d["metadata"]["name"] == SERVICE), None)
    weights = (service or {}).get("spec", {}).get("weights") or {}
    total = sum(int(weights.get(v, 0)) for v in VERSIONS)
    return round(100 * int(weights.get(VERSIONS[1], 0)) / total) if total else 0


async def _run_resilience(scenario: ResilienceScenario, run_dir: Path, *, netns: bool, out: TextIO) -> DrillResult:
    lab = Supervisor(run_dir / "lab", scenario.pods, netns=netns)
    stop = asyncio.Event()
    load_task: asyncio.Task[LoadResult] | None = None
    watch: asyncio.Task[None] | None = None
    try:
        state = await lab.start()
        pods: list[dict[str, Any]] = state["pods"]
        front = state["front"]
        admin = str(front["admin_url"])
        lab_line = (
            f"Lab: clients → front Envoy → {len(pods)} pods ({', '.join(p['name'] for p in pods)}), "
            f"{'each in its own network namespace' if netns else 'on loopback'}; judged by the front Envoy's "
            "counters and the clients' record"
        )
        print(lab_line, file=out)
        endpoints: dict[str, list[tuple[str, int]]] = {}
        for pod in pods:
            endpoints.setdefault(str(pod["version"]), []).append(
                (str(pod["address"]), int(pod["sidecar"]["listener_port"]))
            )
        documents = resolve_documents(scenario.documents, endpoints)
        async with SwitchmanClient(str(state["api_url"]), author="drill") as client:
            applied = await client.apply(documents, message=f"drill {scenario.name}")
            await wait_synced(client, applied.revision or 0, {FRONT_NODE}, 30.0)
            names = ", ".join(f"{d['kind']}/{d['metadata']['name']}" for d in documents)
            print(f"drill {scenario.name}: applied {names}; the front runs them", file=out)
            before = await front_counters(admin)
            load = LoadResult()
            started = time.time()
            load_task = asyncio.create_task(run_load(
                [str(front["listener_url"])], scenario.rate, int(scenario.rate * scenario.seconds),
                max_seconds=scenario.seconds, stop=stop, into=load, kinds=scenario.clients, cohort=scenario.cohort,
            ))
            actions = _Actions(scenario.actions, pods, client, scenario.name, start="the load started")
            series: list[tuple[float, dict[str, int]]] = []
            watch = asyncio.create_task(_watch(admin, before, scenario.expect.stats, load_task, series))
            while not load_task.done():
                await actions.run({}, started, out)
                await asyncio.sleep(_POLL)
            await load_task
            await watch
            ended = time.time()
            counters = _changes(before, await front_counters(admin))
            series.append((ended, {stat: counters.get(stat, 0) for stat in scenario.expect.stats}))
            print(f"  {ended - started:6.2f}s  the load ended: {len(load.samples)} requests", file=out)
    finally:
        stop.set()
        for task in (load_task, watch):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await lab.stop()
    load.samples.sort(key=lambda s: s.started)
    windows = stage_windows([(started, _canary_weight(documents), "under load", False, 0)], ended)
    verdict = judge_resilience(scenario, load.samples, windows, actions.marks, counters)
    return DrillResult(scenario, verdict, {}, load, windows, actions.marks, started, lab_line,
                       counters=series if scenario.expect.stats else [])


def summary(result: DrillResult) -> str:
    """The verdict and its checks, as people read them."""
    lines = [f"{'PASS' if result.verdict.passed else 'FAIL'}: drill {result.scenario.name}"]
    for c in result.verdict.checks:
        lines.append(f"  {'ok ' if c.passed else 'NOT'} {c.name}: {c.detail}")
    figures = {k: v for k, v in result.verdict.figures.items() if k != "analysisAgreement"}
    lines.append("  figures: " + json.dumps(figures))
    return "\n".join(lines)
