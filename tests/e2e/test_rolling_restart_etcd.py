"""A rolling restart of two ``switchman serve`` replicas on one etcd, under load and under changes.

Two replicas (real processes) share an etcd of the test's own; a real Envoy is attached to each; 200
requests a second go through the two Envoys. Replica A is killed (SIGKILL), started again and waited for
until /readyz says ready; then replica B the same way. Changes go to the API all along, to whichever
replica answers. What must hold: no data-plane request fails, every change answered 2xx is in the history
afterwards, and both Envoys end on the head revision (each replica serves the head and its Envoy has ACKed
it, and traffic follows it). The figures (requests, failures, changes, time to ready) are printed:
``pytest tests/e2e/test_rolling_restart_etcd.py -s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from switchman.lab.local import EnvoyProcess, Upstream, bootstrap
from switchman.lab.local.load import run_load
from tests.e2e.helpers import checkout_documents, history_numbers, until, wait_for_version
from tests.e2e.serve_process import Serve
from tests.etcd_process import free_port, needs_etcd_binary, private_etcd, until_healthy

pytestmark = [pytest.mark.envoy, pytest.mark.heavy, needs_etcd_binary]

RATE = 200.0


@dataclass
class Changes:
    """Changes sent to the API while the replicas roll: what was acknowledged, and in which phase."""

    acked: list[tuple[int, str]] = field(default_factory=list)  # (revision, phase)
    refused: int = 0  # not acknowledged: a replica down, or the store's answer lost with it
    phase: str = "both up"


async def change_all_along(
    session: aiohttp.ClientSession, replicas: list[Serve], ports: tuple[int, int], changes: Changes,
    stop: asyncio.Event,
) -> None:
    """Every 0.1 s, a change of the split: to A and B in turn, to the other one when that one does not answer
    (two replicas committing in turn: each commit also checks the head the other moved)."""
    step = 0
    while not stop.is_set():
        step += 1
        v2 = 10 + (step * 7) % 80
        docs = checkout_documents(*ports, {"v1": 100 - v2, "v2": v2})
        for replica in replicas[step % 2:] + replicas[:step % 2]:
            if replica.proc is None or replica.proc.returncode is not None or not replica.api_port:
                continue
            try:
                url = f"http://127.0.0.1:{replica.api_port}/v1/apply"
                async with session.post(url, json={"documents": docs}) as resp:
                    body = await resp.json(content_type=None)
                    if resp.status == 200:
                        # No revision: the split was so already (a replica whose answer was lost had made it).
                        made = body["revision"] if body["revision"] is not None else body["head"]
                        changes.acked.append((int(made), changes.phase))
                        break
            except (aiohttp.ClientError, TimeoutError):
                pass
            changes.refused += 1
        await asyncio.sleep(0.1)


async def ready(session: aiohttp.ClientSession, replica: Serve) -> None:
    async def check() -> bool:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(f"http://127.0.0.1:{replica.api_port}/readyz") as resp:
                return resp.status == 200
        return False

    await until(check, 30, f"replica on xDS port {replica.wanted_xds_port} ready")


async def roll(session: aiohttp.ClientSession, replica: Serve, changes: Changes, name: str) -> float:
    """Kill ``replica`` (SIGKILL), start it again on the same xDS port; seconds from its start to ready."""
    changes.phase = f"{name} down"
    await replica.kill(signal.SIGKILL)
    replica.api_port = 0
    started = time.monotonic()
    await replica.start()
    await ready(session, replica)
    changes.phase = "both up"
    return time.monotonic() - started


async def status(session: aiohttp.ClientSession, replica: Serve) -> dict[str, Any]:
    async with session.get(f"http://127.0.0.1:{replica.api_port}/v1/status") as resp:
        body: dict[str, Any] = await resp.json()
        return body


async def test_rolling_restart_of_two_replicas_on_etcd_under_load_fails_no_request_and_loses_no_change(
    tmp_path: Path, upstreams: Callable[[str, str], Awaitable[Upstream]]
) -> None:
    blue, green = await upstreams("checkout", "v1"), await upstreams("checkout", "v2")
    ports = (blue.port, green.port)
    client_port, peer_port = free_port(), free_port()
    store = f"etcd://127.0.0.1:{client_port}/switchman-rolling-{uuid.uuid4().hex[:8]}"
    a, b = Serve(store, free_port(), transport="h2"), Serve(store, free_port(), transport="h2")
    envoys = [EnvoyProcess(bootstrap("rolling-a", a.wanted_xds_port)),
              EnvoyProcess(bootstrap("rolling-b", b.wanted_xds_port))]
    changes, stop_changes, stop_load = Changes(), asyncio.Event(), asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []
    with private_etcd(tmp_path / "etcd", client_port, peer_port):
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session, \
                    asyncio.timeout(100):
                await until_healthy(client_port)
                await a.start()
                await b.start()
                status_code, body = await a.apply(checkout_documents(*ports, {"v1": 100}))
                assert status_code == 200, body
                listeners = []
                for envoy in envoys:
                    await envoy.start()
                    listeners.append(await envoy.wait_listener("ingress"))
                for port in listeners:
                    await wait_for_version(port, "v1")
                load = asyncio.create_task(run_load(
                    [f"http://127.0.0.1:{port}/" for port in listeners], RATE, int(RATE * 90), max_seconds=90,
                    stop=stop_load,
                ))
                tasks.append(load)
                tasks.append(asyncio.create_task(change_all_along(session, [a, b], ports, changes, stop_changes)))
                await asyncio.sleep(2.0)
                ready_a = await roll(session, a, changes, "A")
                await asyncio.sleep(1.0)
                ready_b = await roll(session, b, changes, "B")
                await asyncio.sleep(2.0)
                stop_changes.set()
                await tasks[1]

                status_code, body = await b.apply(checkout_documents(*ports, {"v2": 100}))
                assert status_code == 200, body
                head = int(body["revision"])
                changes.acked.append((head, "after"))
                for port in listeners:
                    await wait_for_version(port, "v2")

                async def on_head() -> bool:
                    states = [await status(session, replica) for replica in (a, b)]
                    return all(s["revision"] == head and s["nodes"] and all(n["synced"] for n in s["nodes"])
                               for s in states)

                await until(on_head, 15, f"both replicas serve revision {head} and their Envoys ACKed it")
                await asyncio.sleep(1.0)  # the load goes on, on the head
                stop_load.set()
                result = await load
                history = set(await history_numbers(a.api_port))
        finally:
            stop_changes.set()
            stop_load.set()
            for task in tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for envoy in envoys:
                await envoy.stop()
            for replica in (a, b):
                await replica.ensure_stopped()

    by_phase = {phase: sum(1 for _, p in changes.acked if p == phase) for phase in ("A down", "B down", "both up")}
    print(f"\nrolling restart under {RATE:.0f} req/s: {len(result.samples)} requests, {len(result.failures)} failed; "
          f"changes acknowledged {len(changes.acked)} ({by_phase}), not acknowledged {changes.refused}; "
          f"time to ready after restart: A {ready_a:.2f} s, B {ready_b:.2f} s; head revision {head}")
    assert result.failures == [], result.failures[:5]
    assert len(result.samples) > RATE * 5
    missing = {revision for revision, _ in changes.acked} - history
    assert not missing, f"acknowledged but not in the history: {sorted(missing)}"
    assert by_phase["A down"] and by_phase["B down"], by_phase  # changes went on through the other replica
    assert max(history) == head
