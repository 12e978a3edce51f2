"""Rollouts driven by ``switchman serve``'s engine, judged by what a real Envoy reports (ALS), under real load.

One Switchman in-process (SQLite in tmp_path), a front Envoy from the lab's
template in node group ``front`` whose listener logs to Switchman, two real
upstreams (checkout v1 and v2), and the lab's open-loop load generator at
100 requests/s. A Rollout is applied through the API, as a user would.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from switchman.app import ServeSettings, Switchman
from switchman.client import SwitchmanClient
from switchman.lab.local import EnvoyProcess, bootstrap
from switchman.lab.local.load import ClientKind, LoadResult, run_load
from switchman.lab.local.upstream import Faults
from switchman.rollout import EngineSettings
from switchman.telemetry import TelemetrySettings
from tests.e2e.helpers import checkout_documents, until

pytestmark = pytest.mark.envoy

RATE = 100.0


def _rollout(**analysis: Any) -> dict[str, Any]:
    body = {"interval": "1s", "threshold": 2, "minRequests": 10,
            "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 95}}]} | analysis
    return {"kind": "Rollout", "metadata": {"name": "checkout"},
            "spec": {"service": "checkout", "stable": "v1", "canary": "v2", "analysis": body}}




@pytest.fixture
async def stack(tmp_path: Path, upstreams: Any) -> Any:
    blue, green = await upstreams("checkout", "v1"), await upstreams("checkout", "v2")
    app = Switchman(ServeSettings(
        xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=str(tmp_path / "s.db"),
        telemetry=TelemetrySettings(load_reporting_interval=0.5),
        rollouts=EngineSettings(analysis_lag=0.5),
    ))
    await app.start()
    envoy = EnvoyProcess(bootstrap("rollout-front", app.xds_port, cluster="front"))
    service, routes, listener = checkout_documents(blue.port, green.port, {"v1": 100, "v2": 0})
    del service["spec"]["outlierDetection"]  # the rollout, not Envoy, must be what takes a bad canary out
    listener["spec"]["accessLogService"] = {"cluster": "xds", "bufferFlushInterval": "200ms"}
    api = SwitchmanClient(f"http://127.0.0.1:{app.api_port}", author="tester")
    try:
        await api.apply([service, routes, listener])
        await envoy.start()
        port = await envoy.wait_listener("ingress")
        yield app, api, f"http://127.0.0.1:{port}/", green
    finally:
        await api.close()
        await envoy.stop()
        await app.stop(0.1)


async def _load(url: str, seconds: float, stop: asyncio.Event) -> LoadResult:
    return await run_load([url], RATE, int(RATE * seconds), max_seconds=seconds, stop=stop,
                          kinds=(ClientKind.H1_KEEPALIVE, ClientKind.H2))


async def test_a_healthy_canary_is_promoted_step_by_step_with_no_failed_request(stack: Any) -> None:
    _app, api, url, _ = stack
    stop = asyncio.Event()
    load = asyncio.create_task(_load(url, 40, stop))
    try:
        await asyncio.sleep(1.0)
        await api.apply([_rollout(stepWeights=[20, 50])], message="roll out checkout v2")
        status = await until(
            lambda: _ended(api), 30, "the rollout ends",
        )
    finally:
        stop.set()
        result = await load
    state = status["state"]
    assert state["phase"] == "Succeeded", state["events"]
    assert [e["kind"] for e in state["events"]][:1] == ["Started"]
    assert [e["kind"] for e in state["events"]].count("Advanced") == 2
    service = await api.get("Service", "checkout")
    assert service["spec"]["weights"] == {"v1": 0, "v2": 100}
    authors = [(r["author"], r["message"]) for r in await api.history(10)]
    moves = [m for a, m in authors if a == "rollout/checkout"]
    assert len(moves) == 3 and all(m.startswith("rollout/checkout: ") for m in moves), authors
    verdict = state["last_verdict"]
    assert verdict["outcome"] == "Passed" and verdict["measurement"]["source"] == "als"
    assert result.failures == [], result.failures[:5]
    assert result.versions["v2"] > 0 and result.versions["v1"] > 0


async def test_a_canary_that_fails_20_percent_is_rolled_back_within_two_intervals(stack: Any) -> None:
    _app, api, url, green = stack
    green.faults = Faults(error_rate=0.2)
    stop = asyncio.Event()
    load = asyncio.create_task(_load(url, 40, stop))
    try:
        await asyncio.sleep(1.0)
        await api.apply([_rollout(stepWeights=[50, 80])])
        status = await until(lambda: _ended(api), 30, "the rollout ends")
        await asyncio.sleep(1.5)  # the load goes on after the rollback
    finally:
        stop.set()
        result = await load
    state = status["state"]
    assert state["phase"] == "Failed", state["events"]
    kinds = [e["kind"] for e in state["events"]]
    assert kinds[:2] == ["Started", "Advanced"] and kinds[-1] == "RolledBack", kinds
    assert kinds.count("Halted") == 2
    halted = [e for e in state["events"] if e["kind"] == "Halted"]
    # 20 % of v2's answers fail: over both failed checks, the share of errors says so (a window alone is small)
    errors, requests = sum(e["values"]["errors"] for e in halted), sum(e["values"]["requests"] for e in halted)
    assert requests >= 20 and 0.08 < errors / requests < 0.4, halted
    entered = next(e["at"] for e in state["events"] if e["kind"] == "Advanced")
    back = state["events"][-1]["at"]
    assert back - entered < 2 * 1.0 + 1.5, (entered, back)  # two intervals, and the analysis lag
    service = await api.get("Service", "checkout")
    assert service["spec"]["weights"] == {"v1": 100, "v2": 0}
    # after the rollback, nothing reaches v2
    after = [s for s in result.samples if s.started > back + 0.5]
    assert after and all(s.version == "v1" for s in after if s.ok)


async def test_people_pause_resume_and_abort_through_the_api(stack: Any) -> None:
    _app, api, url, _ = stack
    stop = asyncio.Event()
    load = asyncio.create_task(_load(url, 40, stop))
    try:
        await asyncio.sleep(1.0)
        await api.apply([_rollout(stepWeights=[10, 20, 30, 40, 50, 60])])
        await until(lambda: _weight(api, 10), 10, "the first step")
        paused = await api.rollout_command("checkout", "pause")
        assert paused["state"]["phase"] == "Paused" and paused["state"]["paused_by"] == "tester"
        await asyncio.sleep(2.5)  # more than two intervals: no step while paused
        held = await api.rollout("checkout")
        assert held["state"]["weight"] == 10 and held["state"]["phase"] == "Paused"
        await api.rollout_command("checkout", "resume")
        await until(lambda: _weight(api, 20), 10, "the next step after resume")
        await api.rollout_command("checkout", "abort")
        status = await until(lambda: _ended(api), 10, "the abort")
    finally:
        stop.set()
        result = await load
    assert status["state"]["phase"] == "Aborted"
    assert status["state"]["events"][-1]["message"] == "traffic back on v1 (aborted by tester)"
    assert (await api.get("Service", "checkout"))["spec"]["weights"] == {"v1": 100, "v2": 0}
    assert result.failures == []


async def _ended(api: SwitchmanClient) -> dict[str, Any] | None:
    status = await api.rollout("checkout")
    state = status.get("state") or {}
    return status if state.get("phase") in ("Succeeded", "Failed", "Aborted") else None


async def _weight(api: SwitchmanClient, weight: int) -> bool:
    state = (await api.rollout("checkout")).get("state") or {}
    return bool(state.get("weight") == weight and state.get("stage", -1) >= 0)
