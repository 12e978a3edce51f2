"""Rollouts judged by a real Prometheus that scrapes a real Envoy's /stats/prometheus, instead of Envoy's reports."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from switchman.app import ServeSettings, Switchman
from switchman.client import SwitchmanClient
from switchman.lab.local import EnvoyProcess, bootstrap
from switchman.lab.local.load import ClientKind, run_load
from switchman.lab.local.upstream import Faults
from switchman.rollout import EngineSettings
from switchman.testing.prometheus import PrometheusServer, prometheus_binary
from tests.e2e.helpers import checkout_documents

pytestmark = [
    pytest.mark.envoy,
    pytest.mark.skipif(prometheus_binary() is None, reason="no prometheus binary (.ci/run installs Debian's)"),
]


async def _run(tmp_path: Path, upstreams: Any, bad: bool) -> dict[str, Any]:
    blue, green = await upstreams("checkout", "v1"), await upstreams("checkout", "v2")
    if bad:
        green.faults = Faults(error_rate=0.3)
    app = Switchman(ServeSettings(
        xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=str(tmp_path / "s.db"),
        rollouts=EngineSettings(prometheus_lag=2.0),
    ))
    await app.start()
    envoy = EnvoyProcess(bootstrap("prom-front", app.xds_port, cluster="front"))
    prometheus: PrometheusServer | None = None
    stop = asyncio.Event()
    try:
        service, routes, listener = checkout_documents(blue.port, green.port, {"v1": 100, "v2": 0})
        del service["spec"]["outlierDetection"]
        async with SwitchmanClient(f"http://127.0.0.1:{app.api_port}", author="tester") as api:
            await api.apply([service, routes, listener])
            await envoy.start()
            port = await envoy.wait_listener("ingress")
            admin = urlsplit(envoy.admin_url)
            prometheus = PrometheusServer([f"{admin.hostname}:{admin.port}"], tmp_path / "prometheus")
            address = await prometheus.start()
            load = asyncio.create_task(run_load([f"http://127.0.0.1:{port}/"], 100, 4000, max_seconds=40,
                                                stop=stop, kinds=(ClientKind.H1_KEEPALIVE,)))
            await asyncio.sleep(2.0)
            await api.apply([{"kind": "Rollout", "metadata": {"name": "checkout"}, "spec": {
                "service": "checkout", "stable": "v1", "canary": "v2",
                "analysis": {"interval": "2s", "threshold": 2, "minRequests": 10, "stepWeights": [30, 60],
                             "provider": {"prometheus": {"address": address}},
                             "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 95}}]}}}])
            deadline = time.monotonic() + 40
            while True:
                state = (await api.rollout("checkout")).get("state") or {}
                if state.get("phase") in ("Succeeded", "Failed", "Aborted") or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            stop.set()
            await load
            return state
    finally:
        stop.set()
        if prometheus is not None:
            await prometheus.stop()
        await envoy.stop()
        await app.stop(0.1)


async def test_a_healthy_canary_judged_by_prometheus_is_promoted(tmp_path: Path, upstreams: Any) -> None:
    state = await _run(tmp_path, upstreams, bad=False)
    assert state["phase"] == "Succeeded", state.get("events")
    judged = [a for a in state["analyses"] if a["outcome"] == "Passed"]
    assert judged and all(a["measurement"]["source"] == "prometheus" for a in judged)
    assert all(a["measurement"]["requests"] >= 10 for a in judged)


async def test_a_failing_canary_judged_by_prometheus_is_rolled_back(tmp_path: Path, upstreams: Any) -> None:
    state = await _run(tmp_path, upstreams, bad=True)
    assert state["phase"] == "Failed", state.get("events")
    halted = [e for e in state["events"] if e["kind"] == "Halted"]
    assert len(halted) == 2 and all(e["values"]["request-success-rate"] < 95 for e in halted)
