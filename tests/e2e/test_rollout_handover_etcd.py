"""Two ``switchman serve`` processes on one etcd: SIGKILL the one that drives a rollout, and the other takes it
over within the lease's TTL and finishes the same run from the stage it was at, with no failed request.

The front Envoy is connected to the replica that does not drive the rollout:
until the kill, the driver judges every interval by traffic that only the
other replica saw (through the records they publish in the store); after
it, the survivor judges by its own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from typing import Any

import pytest

from switchman.client import SwitchmanClient
from switchman.lab.local import EnvoyProcess, Upstream, bootstrap
from switchman.lab.local.load import ClientKind, run_load
from tests.e2e.helpers import checkout_documents, until
from tests.e2e.serve_process import Serve

ETCD = os.environ.get("SWITCHMAN_TEST_ETCD", "")
pytestmark = [
    pytest.mark.envoy,
    pytest.mark.skipif(not ETCD, reason="SWITCHMAN_TEST_ETCD (host:port of an etcd) is not set; .ci/run sets it"),
]

LEASE_SECONDS = 2  # etcd's minimum




def _rollout() -> dict[str, Any]:
    analysis = {"interval": "1s", "threshold": 3, "minRequests": 5,
                "stepWeights": [10, 20, 30, 40, 50, 60, 70, 80, 90]}
    return {"kind": "Rollout", "metadata": {"name": "checkout"},
            "spec": {"service": "checkout", "stable": "v1", "canary": "v2", "analysis": analysis}}


async def test_sigkill_of_the_driving_replica_hands_the_rollout_over_mid_run() -> None:
    store = f"etcd://{ETCD}/switchman-test-{uuid.uuid4().hex[:8]}"
    flags = ("--rollout-lease-seconds", str(LEASE_SECONDS))
    serves = {name: Serve(store, transport="h2", extra=("--replica-name", name, *flags)) for name in ("a", "b")}
    blue, green = Upstream("checkout", "v1"), Upstream("checkout", "v2")
    await blue.start()
    await green.start()
    envoy: EnvoyProcess | None = None
    stop = asyncio.Event()
    load: asyncio.Task[Any] | None = None
    try:
        for serve in serves.values():
            await serve.start()
        docs = checkout_documents(blue.port, green.port, {"v1": 100, "v2": 0})
        del docs[0]["spec"]["outlierDetection"]
        docs[2]["spec"]["accessLogService"] = {"cluster": "xds", "bufferFlushInterval": "200ms"}
        status, body = await serves["a"].apply([*docs, _rollout()])
        assert status == 200, body

        async with SwitchmanClient(f"http://127.0.0.1:{serves['a'].api_port}") as api:
            driver: str = await until(lambda: _driver(api), 10, "a replica drives the rollout")
        survivor = "b" if driver == "a" else "a"
        envoy = EnvoyProcess(bootstrap("handover-front", serves[survivor].xds_port, cluster="front"))
        await envoy.start()
        port = await envoy.wait_listener("ingress")
        load = asyncio.create_task(run_load(
            [f"http://127.0.0.1:{port}/"], 100, 4000, max_seconds=40, stop=stop,
            kinds=(ClientKind.H1_KEEPALIVE, ClientKind.H1_NEW, ClientKind.H2),
        ))

        async with SwitchmanClient(f"http://127.0.0.1:{serves[survivor].api_port}") as api:

            async def at_stage_3() -> dict[str, Any] | None:
                state = (await api.rollout("checkout")).get("state") or {}
                return state if state.get("stage", -1) >= 3 else None

            before = await until(at_stage_3, 20, "the driver judges by the other replica's Envoy, stage by stage")
            assert (await api.rollout("checkout"))["driver"] == driver
            killed_at = time.monotonic()
            await serves[driver].kill(signal.SIGKILL)

            async def taken_over() -> bool:
                return bool((await api.rollout("checkout"))["driver"] == survivor)

            await until(taken_over, LEASE_SECONDS + 5, f"{survivor} takes the rollout over")
            handover = time.monotonic() - killed_at
            print(f"handover after SIGKILL: {handover:.2f} s (lease {LEASE_SECONDS} s)")
            after = (await api.rollout("checkout"))["state"]
            assert after["run"] == before["run"] == 1
            assert after["stage"] >= before["stage"]  # not reset: the same run goes on
            done = await until(lambda: _ended(api), 25, "the rollout ends")
        assert done["phase"] == "Succeeded", done["events"]
        assert done["run"] == 1
        kinds = [e["kind"] for e in done["events"]]
        assert kinds.count("Started") == 1 and kinds.count("Advanced") == 9, kinds
        assert kinds.count("Halted") == 0, done["events"]
        stop.set()
        result = await load
        assert result.failures == [], result.failures[:5]
        assert result.versions["v2"] > 0
    finally:
        stop.set()
        if load is not None:
            await asyncio.gather(load, return_exceptions=True)
        if envoy is not None:
            await envoy.stop()
        for serve in serves.values():
            await serve.ensure_stopped()
        await blue.stop()
        await green.stop()


async def _driver(api: SwitchmanClient) -> str | None:
    driver = (await api.rollout("checkout"))["driver"]
    return str(driver) if driver else None


async def _ended(api: SwitchmanClient) -> dict[str, Any] | None:
    state = (await api.rollout("checkout")).get("state") or {}
    return state if state.get("phase") in ("Succeeded", "Failed", "Aborted") else None
