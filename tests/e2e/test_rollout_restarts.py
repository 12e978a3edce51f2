"""A rollout outlives the process that drives it: ``switchman serve`` killed with SIGKILL mid-rollout resumes
the same run at the same stage, and the Envoys keep serving meanwhile (no failed request)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from switchman.client import SwitchmanClient
from switchman.lab.local import EnvoyProcess, Upstream, bootstrap
from switchman.lab.local.load import ClientKind, run_load
from tests.e2e.helpers import checkout_documents, until
from tests.e2e.serve_process import Serve

pytestmark = pytest.mark.envoy




def _rollout() -> dict[str, Any]:
    return {
        "kind": "Rollout", "metadata": {"name": "checkout"},
        "spec": {
            "service": "checkout", "stable": "v1", "canary": "v2",
            "analysis": {"interval": "1s", "threshold": 3, "minRequests": 5},
            "steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}],
        },
    }


async def test_kill_9_mid_rollout_resumes_the_same_run_at_the_same_stage(tmp_path: Path) -> None:
    blue, green = Upstream("checkout", "v1"), Upstream("checkout", "v2")
    await blue.start()
    await green.start()
    store = tmp_path / "switchman.db"
    serve = Serve(store, transport="h2")
    again: Serve | None = None
    await serve.start()
    envoy = EnvoyProcess(bootstrap("restart-front", serve.xds_port, cluster="front"))
    stop = asyncio.Event()
    load: asyncio.Task[Any] | None = None
    try:
        docs = checkout_documents(blue.port, green.port, {"v1": 100, "v2": 0})
        docs[2]["spec"]["accessLogService"] = {"cluster": "xds", "bufferFlushInterval": "200ms"}
        async with SwitchmanClient(f"http://127.0.0.1:{serve.api_port}", author="tester") as api:
            await api.apply(docs)
            await envoy.start()
            port = await envoy.wait_listener("ingress")
            load = asyncio.create_task(run_load(
                [f"http://127.0.0.1:{port}/"], 100, 4000, max_seconds=40, stop=stop,
                kinds=(ClientKind.H1_KEEPALIVE, ClientKind.H1_NEW, ClientKind.H2),
            ))
            await asyncio.sleep(0.5)
            await api.apply([_rollout()])

            async def at_the_gate() -> dict[str, Any] | None:
                state = (await api.rollout("checkout")).get("state") or {}
                return state if state.get("phase") == "Paused" and state.get("stage") == 1 else None

            before = await until(at_the_gate, 15, "the rollout waits at its pause step")
        assert before["weight"] == 20 and before["run"] == 1

        await serve.kill(signal.SIGKILL)
        again = Serve(store, xds_port=serve.xds_port, transport="h2")
        await again.start()
        async with SwitchmanClient(f"http://127.0.0.1:{again.api_port}", author="tester") as api:
            after = (await api.rollout("checkout"))["state"]
            assert (after["run"], after["stage"], after["phase"], after["weight"]) == (1, 1, "Paused", 20)
            kinds_before = [e["kind"] for e in before["events"]]
            kinds_after = [e["kind"] for e in after["events"]]
            assert kinds_after[: len(kinds_before)] == kinds_before
            await api.rollout_command("checkout", "promote")

            async def ended() -> dict[str, Any] | None:
                state = (await api.rollout("checkout")).get("state") or {}
                return state if state.get("phase") in ("Succeeded", "Failed", "Aborted") else None

            done = await until(ended, 20, "the rollout ends after the promote")
            assert done["phase"] == "Succeeded", done["events"]
            assert done["run"] == 1
            assert (await api.get("Service", "checkout"))["spec"]["weights"] == {"v1": 0, "v2": 100}
        stop.set()
        result = await load
        assert result.failures == [], result.failures[:5]
        assert result.versions["v2"] > 0
    finally:
        stop.set()
        if load is not None:
            await asyncio.gather(load, return_exceptions=True)
        await envoy.stop()
        await serve.ensure_stopped()
        if again is not None:
            await again.ensure_stopped()
        await blue.stop()
        await green.stop()
