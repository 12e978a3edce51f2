"""A rollout's webhooks against a real HTTP server on loopback, driven by a real Switchman's engine.

The runs skip analysis (no Envoy here): what is tested is when each webhook
is called, what it is sent, and what its answer does to the run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from switchman.app import ServeSettings, Switchman
from switchman.client import SwitchmanClient
from switchman.rollout import EngineSettings


class Hooks:
    """A webhook server: records every call by path, answers each path with the status it is told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.status: dict[str, int] = {}
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.calls.append((request.path, await request.json()))
        return web.Response(status=self.status.get(request.path, 200), text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def paths(self) -> list[str]:
        return [p for p, _ in self.calls]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    server = Hooks()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[SwitchmanClient]:
    app = Switchman(ServeSettings(
        xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=str(tmp_path / "s.db"),
        rollouts=EngineSettings(replica="r1"),
    ))
    await app.start()
    client = SwitchmanClient(f"http://127.0.0.1:{app.api_port}", author="tester")
    service = {"kind": "Service", "metadata": {"name": "checkout"}, "spec": {
        "versions": {"v1": {"endpoints": [{"address": "127.0.0.1", "port": 9001}]},
                     "v2": {"endpoints": [{"address": "127.0.0.1", "port": 9002}]}},
        "weights": {"v1": 100, "v2": 0}}}
    await client.apply([service])
    yield client
    await client.close()
    await app.stop(0.1)


def rollout(*webhooks: dict[str, Any], **analysis: Any) -> dict[str, Any]:
    return {"kind": "Rollout", "metadata": {"name": "checkout"}, "spec": {
        "service": "checkout", "stable": "v1", "canary": "v2", "skipAnalysis": True,
        "analysis": {"interval": "0.2s", "threshold": 2, "stepWeights": [10, 50],
                     "webhooks": list(webhooks)} | analysis}}


async def until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def phase(api: SwitchmanClient, *phases: str) -> dict[str, Any] | None:
    state = (await api.rollout("checkout")).get("state") or {}
    return state if state.get("phase") in phases else None


async def test_a_closed_confirm_rollout_gate_moves_no_traffic(api: SwitchmanClient, hooks: Hooks) -> None:
    hooks.status["/gate"] = 503
    await api.apply([rollout({"name": "gate", "type": "confirm-rollout", "url": hooks.url("/gate")})])
    await until(lambda: _count(hooks, "/gate", 3))
    assert (await api.get("Service", "checkout"))["spec"]["weights"] == {"v1": 100, "v2": 0}
    state = (await api.rollout("checkout"))["state"]
    assert state["stage"] == -1 and state["events"][-1]["kind"] == "Waiting"
    assert "gate: HTTP 503 ok" in state["events"][-1]["message"]
    hooks.status["/gate"] = 200
    done = await until(lambda: phase(api, "Succeeded"))
    assert done["failed"] == 0
    assert (await api.get("Service", "checkout"))["spec"]["weights"] == {"v1": 0, "v2": 100}
    body = hooks.calls[0][1]
    assert body | {"metadata": {}} == {
        "name": "checkout", "namespace": "switchman", "phase": "Progressing", "service": "checkout",
        "stable": "v1", "canary": "v2", "weight": 0, "type": "confirm-rollout", "metadata": {},
    }


async def test_a_failing_pre_rollout_webhook_fails_the_run_after_the_threshold(
    api: SwitchmanClient, hooks: Hooks
) -> None:
    hooks.status["/smoke"] = 500
    await api.apply([rollout({"name": "smoke", "type": "pre-rollout", "url": hooks.url("/smoke"),
                              "metadata": {"cmd": "curl canary"}})])
    state = await until(lambda: phase(api, "Failed"))
    assert hooks.paths().count("/smoke") == 2  # threshold 2
    assert hooks.calls[0][1]["metadata"] == {"cmd": "curl canary"}
    kinds = [e["kind"] for e in state["events"]]
    assert kinds == ["Started", "Halted", "Halted", "RollingBack", "RolledBack"]
    assert (await api.get("Service", "checkout"))["spec"]["weights"] == {"v1": 100, "v2": 0}


async def test_a_rollback_webhook_that_says_yes_rolls_back(api: SwitchmanClient, hooks: Hooks) -> None:
    hooks.status["/stop"] = 404  # not yet
    doc = rollout({"name": "stop", "type": "rollback", "url": hooks.url("/stop")})
    doc["spec"]["skipAnalysis"] = False  # no traffic here: every analysis is inconclusive, the run holds at 10 %
    await api.apply([doc])
    await until(lambda: _count(hooks, "/stop", 3))  # asked before every analysis
    assert await _weight(api, 10)
    hooks.status["/stop"] = 200
    state = await until(lambda: phase(api, "Failed"))
    assert state["events"][-2]["message"] == "rollback webhook: stop: HTTP 200 ok"
    assert state["weight"] == 0


async def test_event_webhooks_hear_of_every_event(api: SwitchmanClient, hooks: Hooks) -> None:
    await api.apply([rollout({"name": "tell", "type": "event", "url": hooks.url("/events")})])
    await until(lambda: phase(api, "Succeeded"))
    await until(lambda: _count(hooks, "/events", 5))
    kinds = [body["event"]["kind"] for path, body in hooks.calls if path == "/events"]
    assert kinds == ["Started", "Advanced", "Advanced", "Promoted", "Succeeded"]
    assert all(body["type"] == "event" and body["name"] == "checkout" for _, body in hooks.calls)


async def test_a_webhook_that_does_not_answer_in_time_is_a_failure(api: SwitchmanClient) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_post("/slow", slow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        await api.apply([rollout({"name": "slow", "type": "pre-rollout", "url": f"http://127.0.0.1:{port}/slow",
                                  "timeout": "300ms"}, threshold=1)])
        state = await until(lambda: phase(api, "Failed"))
        assert "pre-rollout webhook: slow: no answer within 0.3s" in state["events"][1]["message"]
    finally:
        await runner.cleanup()


async def _count(hooks: Hooks, path: str, n: int) -> bool:
    return hooks.paths().count(path) >= n


async def _weight(api: SwitchmanClient, weight: int) -> bool:
    state = (await api.rollout("checkout")).get("state") or {}
    return bool(state.get("weight") == weight)
