"""Two replicas on one store: the one that drives a rollout judges it by traffic only the other one saw.

Two Switchman objects in-process on one SQLite file (replicas ``a`` and
``b``); ``a`` is started first and takes the rollout's lease, then ``b``
starts and the front Envoy connects to ``b``, so every access log goes to
``b``'s recorder and none to ``a``'s. Real upstreams, the lab's open-loop
load at 100 requests/s.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from switchman.app import ServeSettings, Switchman
from switchman.client import SwitchmanClient
from switchman.lab.local import EnvoyProcess, Upstream, bootstrap
from switchman.lab.local.load import ClientKind, LoadResult, run_load
from switchman.lab.local.upstream import Faults
from switchman.rollout import EngineSettings
from switchman.telemetry import ShareSettings, TelemetrySettings
from tests.e2e.helpers import checkout_documents, until

pytestmark = pytest.mark.envoy

RATE = 100.0




def _rollout(weights: list[int]) -> dict[str, Any]:
    analysis = {"interval": "1s", "threshold": 2, "minRequests": 10, "stepWeights": weights,
                "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 95}},
                            {"name": "request-duration", "thresholdRange": {"max": 500}}]}
    return {"kind": "Rollout", "metadata": {"name": "checkout"},
            "spec": {"service": "checkout", "stable": "v1", "canary": "v2", "analysis": analysis}}


@dataclass
class Replicas:
    a: Switchman
    b: Switchman
    api: SwitchmanClient  # a's
    url: str  # the front Envoy's listener, connected to b
    green: Upstream


@pytest.fixture
async def replicas(tmp_path: Path, upstreams: Any) -> AsyncIterator[Callable[[list[int]], Awaitable[Replicas]]]:
    """Starts a, applies the config and a Rollout through it, waits until a drives it, then starts b
    and the front Envoy on b."""
    started: list[Switchman] = []
    clients: list[SwitchmanClient] = []
    envoys: list[EnvoyProcess] = []

    def settings(name: str) -> ServeSettings:
        return ServeSettings(
            xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=str(tmp_path / "shared.db"),
            telemetry=TelemetrySettings(load_reporting_interval=0.5),
            rollouts=EngineSettings(replica=name, analysis_lag=0.5), share=ShareSettings(period=0.5),
        )

    async def make(weights: list[int]) -> Replicas:
        blue, green = await upstreams("checkout", "v1"), await upstreams("checkout", "v2")
        a = Switchman(settings("a"))
        started.append(a)
        await a.start()
        api = SwitchmanClient(f"http://127.0.0.1:{a.api_port}", author="tester")
        clients.append(api)
        service, routes, listener = checkout_documents(blue.port, green.port, {"v1": 100, "v2": 0})
        del service["spec"]["outlierDetection"]  # the rollout, not Envoy, must take a bad canary out
        listener["spec"]["accessLogService"] = {"cluster": "xds", "bufferFlushInterval": "200ms"}
        await api.apply([service, routes, listener, _rollout(weights)], message="roll out checkout v2")

        async def driven_by_a() -> bool:
            return bool((await api.rollout("checkout"))["driver"] == "a")

        await until(driven_by_a, 10, "a drives the rollout")
        b = Switchman(settings("b"))
        started.append(b)
        await b.start()
        envoy = EnvoyProcess(bootstrap("replicas-front", b.xds_port, cluster="front"))
        envoys.append(envoy)
        await envoy.start()
        port = await envoy.wait_listener("ingress")
        return Replicas(a, b, api, f"http://127.0.0.1:{port}/", green)

    yield make
    for client in clients:
        await client.close()
    for envoy in envoys:
        await envoy.stop()
    for app in reversed(started):
        await app.stop(0.1)


async def _load(url: str, stop: asyncio.Event) -> LoadResult:
    return await run_load([url], RATE, int(RATE * 40), max_seconds=40, stop=stop,
                          kinds=(ClientKind.H1_KEEPALIVE, ClientKind.H2))


async def _ended(api: SwitchmanClient) -> dict[str, Any] | None:
    status = await api.rollout("checkout")
    state = status.get("state") or {}
    return status if state.get("phase") in ("Succeeded", "Failed", "Aborted") else None


async def test_the_driver_promotes_a_healthy_canary_judged_by_the_other_replicas_envoys(
    replicas: Callable[[list[int]], Awaitable[Replicas]],
) -> None:
    r = await replicas([20, 50])
    assert await r.a.rollouts.watched_clusters() == await r.b.rollouts.watched_clusters() == {"checkout-v2"}
    stop = asyncio.Event()
    load = asyncio.create_task(_load(r.url, stop))
    try:
        status = await until(lambda: _ended(r.api), 30, "the rollout ends")
    finally:
        stop.set()
        result = await load

    async def nothing_published() -> bool:
        return await r.a.store.list_state("telemetry/") == []

    # the run is over: nothing is watched any more, and neither replica writes a record a second
    assert await r.a.rollouts.watched_clusters() == set()
    await until(nothing_published, 3, "the replicas take their records away")
    state = status["state"]
    assert state["phase"] == "Succeeded", state["events"]
    assert status["driver"] == "a"  # a drove it all along ...
    assert r.a.telemetry.series() == []  # ... and no Envoy reported to a
    assert ("front", "checkout-v2") in r.b.telemetry.series()
    verdict = state["last_verdict"]
    assert verdict["outcome"] == "Passed", verdict
    measurement = verdict["measurement"]
    assert measurement["source"] == "als" and measurement["requests"] >= 10 and measurement["p99Ms"] is not None
    kinds = [e["kind"] for e in state["events"]]
    assert kinds.count("Advanced") == 2 and kinds[-2:] == ["Promoted", "Succeeded"], kinds
    assert (await r.api.get("Service", "checkout"))["spec"]["weights"] == {"v1": 0, "v2": 100}
    assert result.failures == [], result.failures[:5]
    assert result.versions["v2"] > 0


async def test_the_driver_rolls_back_a_canary_that_fails_20_percent_on_the_other_replica(
    replicas: Callable[[list[int]], Awaitable[Replicas]],
) -> None:
    r = await replicas([50, 80])
    r.green.faults = Faults(error_rate=0.2)
    stop = asyncio.Event()
    load = asyncio.create_task(_load(r.url, stop))
    try:
        status = await until(lambda: _ended(r.api), 30, "the rollout ends")
    finally:
        stop.set()
        await load
    state = status["state"]
    assert state["phase"] == "Failed", state["events"]
    assert status["driver"] == "a" and r.a.telemetry.series() == []
    kinds = [e["kind"] for e in state["events"]]
    assert kinds[-1] == "RolledBack" and kinds.count("Halted") == 2, kinds
    halted = [e for e in state["events"] if e["kind"] == "Halted"]
    assert all(e["values"]["request-success-rate"] < 95 for e in halted), halted
    # 20 % of v2's answers fail: over both failed checks, the share of errors says so (a window alone is small)
    errors, requests = sum(e["values"]["errors"] for e in halted), sum(e["values"]["requests"] for e in halted)
    assert requests >= 20 and abs(errors / requests - 0.2) <= 3 * math.sqrt(0.2 * 0.8 / requests), halted  # 3σ
    assert all(e["values"]["requests"] >= 10 for e in halted), halted
    assert (await r.api.get("Service", "checkout"))["spec"]["weights"] == {"v1": 100, "v2": 0}
