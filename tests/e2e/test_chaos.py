"""Chaos under load: requests flow through a real Envoy at 200 a second while the API is hammered with
invalid documents and Switchman's etcd is killed for 30 s and started again.

What must hold: no data-plane request fails (Envoy keeps what it was given), every change the API
acknowledged with a 2xx is in the history afterwards, no invalid document is answered with a 5xx (they
are refused before the store is asked, outage or not), changes during the outage are refused with 503
``store_unavailable`` (never acknowledged), and once etcd is back a change reaches the Envoy quickly.

How quickly is printed, from the moment the restarted etcd's health endpoint answers: the first change
accepted, the Envoy running it, /readyz back to 200 (the goal: each within 1 s; docs/security.md has the
figures). Run it with ``pytest tests/e2e/test_chaos.py -s``.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from switchman.app import ServeSettings, Switchman
from switchman.lab.local import EnvoyProcess, bootstrap
from switchman.lab.local.load import ClientKind, run_load
from switchman.store import EtcdStore
from tests.e2e.helpers import checkout_documents, history_numbers
from tests.etcd_process import free_port, private_etcd, until_healthy, until_up

pytestmark = [
    pytest.mark.envoy,
    pytest.mark.heavy,
    pytest.mark.skipif(shutil.which("etcd") is None, reason="no etcd binary to start and kill a private etcd"),
]

OUTAGE = 30.0
RATE = 200.0


def junk(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value: what a careless or hostile client sends."""
    pick = rng.randrange(7 if depth < 3 else 4)
    if pick == 0:
        return rng.randrange(-10**6, 10**6)
    if pick == 1:
        return "".join(rng.choice("abc/:._-{}[]* \\\"") for _ in range(rng.randrange(12)))
    if pick == 2:
        return rng.choice([True, False, None, 1.5e300])
    if pick == 3:
        return rng.choice(["v1", "checkout", "127.0.0.1", "/", "5s", "ingress-routes"])
    if pick in (4, 5):
        keys = ["spec", "versions", "weights", "routes", "match", "name", "port", "x"]
        return {rng.choice(keys): junk(rng, depth + 1) for _ in range(rng.randrange(4))}
    return [junk(rng, depth + 1) for _ in range(rng.randrange(4))]


def invalid_document(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["Service", "Routes", "Listener", "Cluster", "Rollout", "EnvoyResource", "Gateway"])
    # an unknown top-level field makes it invalid whatever the rest is; the rest makes the checker work for it
    return {"kind": kind, "metadata": {"name": rng.choice(["checkout", "x", "Bad Name"])}, "spec": junk(rng),
            "surprise": junk(rng)}


async def post(session: aiohttp.ClientSession, port: int, docs: list[dict[str, Any]]) -> tuple[int, Any]:
    async with session.post(f"http://127.0.0.1:{port}/v1/apply", json={"documents": docs}) as resp:
        return resp.status, await resp.json(content_type=None)


async def hammer(session: aiohttp.ClientSession, port: int, count: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    statuses: list[int] = []
    for _ in range(count):
        status, _ = await post(session, port, [invalid_document(rng)])
        statuses.append(status)
    return statuses


@dataclass(frozen=True)
class Recovery:
    """When (time.monotonic()) each sign of recovery was first seen, and the revision of the first change."""

    revision: int
    accepted: float
    envoy_runs_it: float
    ready: float


async def recovery(session: aiohttp.ClientSession, app: Switchman, v1_port: int, v2_port: int) -> Recovery:
    """Right after etcd answers again: a change every 20 ms until one is accepted, then watch the Envoy run it;
    /readyz polled beside, every 20 ms. Bounded: 20 s in all."""

    async def readyz() -> float:
        while True:
            async with session.get(f"http://127.0.0.1:{app.api_port}/readyz") as resp:
                if resp.status == 200:
                    return time.monotonic()
            await asyncio.sleep(0.02)

    async with asyncio.timeout(20):
        ready = asyncio.create_task(readyz())
        try:
            change = checkout_documents(v1_port, v2_port, {"v1": 40, "v2": 60})
            while True:
                status, body = await post(session, app.api_port, change)
                if status == 200:
                    accepted = time.monotonic()
                    break
                await asyncio.sleep(0.02)
            while True:
                if envoy_runs(app, "chaos-envoy", body["revision"]):
                    break
                await asyncio.sleep(0.005)
            return Recovery(body["revision"], accepted, time.monotonic(), await ready)
        finally:
            ready.cancel()


def envoy_runs(app: Switchman, node_id: str, revision: int) -> bool:
    """The Envoy has ACKed every type of the served snapshot (which is ``revision``)."""
    state = next((n for n in app.xds.statuses() if n.node_id == node_id), None)
    return app.controller.served_revision == revision and state is not None and all(t.synced for t in state.types)


async def test_etcd_killed_for_30_s_and_junk_under_load_loses_nothing_and_fails_no_request(
    tmp_path: Path, upstreams: Any
) -> None:
    blue, green = await upstreams("checkout", "v1"), await upstreams("checkout", "v2")
    client_port, peer_port = free_port(), free_port()
    data = tmp_path / "etcd"
    prefix = f"/switchman-chaos/{uuid.uuid4().hex}"
    app = Switchman(
        ServeSettings(xds_address="127.0.0.1:0", api_address="127.0.0.1:0"),
        store=EtcdStore("127.0.0.1", client_port, prefix=prefix, timeout=2),
    )
    envoy: EnvoyProcess | None = None
    stop = asyncio.Event()
    load: asyncio.Task[Any] | None = None
    acked: list[tuple[int, int]] = []  # (revision, v2 weight) of every change answered 2xx
    try:
        async with aiohttp.ClientSession() as session:
            with private_etcd(data, client_port, peer_port):
                await until_up(app.store)  # type: ignore[arg-type]
                await app.start()
                status, body = await post(session, app.api_port, checkout_documents(blue.port, green.port, {"v1": 100}))
                assert status == 200, body
                acked.append((body["revision"], 0))
                envoy = EnvoyProcess(bootstrap("chaos-envoy", app.xds_port))
                await envoy.start()
                port = await envoy.wait_listener("ingress")
                load = asyncio.create_task(run_load(
                    [f"http://127.0.0.1:{port}/"], RATE, int(RATE * (OUTAGE + 40)), max_seconds=OUTAGE + 40, stop=stop,
                    kinds=tuple(ClientKind),
                ))
                for v2 in (10, 20, 30):
                    status, body = await post(session, app.api_port,
                                              checkout_documents(blue.port, green.port, {"v1": 100 - v2, "v2": v2}))
                    assert status == 200, body
                    acked.append((body["revision"], v2))
                before = await hammer(session, app.api_port, 500, seed=1)
            # etcd is killed (SIGKILL) as the block ends
            outage_started = time.monotonic()
            during = await hammer(session, app.api_port, 500, seed=2)
            refused = []
            while time.monotonic() - outage_started < OUTAGE:
                status, body = await post(session, app.api_port,
                                          checkout_documents(blue.port, green.port, {"v1": 50, "v2": 50}))
                refused.append((status, body.get("error", {}).get("code") if isinstance(body, dict) else None))
                await asyncio.sleep(1.0)
            with private_etcd(data, client_port, peer_port):
                # From etcd's own health endpoint, not through the store: that would reconnect the store for it.
                back = await until_healthy(client_port)
                figures = await recovery(session, app, blue.port, green.port)
                acked.append((figures.revision, 60))
                await asyncio.sleep(2.0)  # the load goes on after the change
                stop.set()
                result = await load
                history = set(await history_numbers(app.api_port, 100))
    finally:
        stop.set()
        if load is not None and not load.done():
            load.cancel()
            await asyncio.gather(load, return_exceptions=True)
        if envoy is not None:
            await envoy.stop()
        await app.stop(0)

    assert result.failures == [], result.failures[:5]  # the data plane never noticed
    assert len(result.samples) > RATE * OUTAGE
    assert all(400 <= s < 500 for s in before + during), sorted(set(before + during))  # junk is never a 5xx
    assert refused and all(r == (503, "store_unavailable") for r in refused), refused  # never acknowledged
    assert {revision for revision, _ in acked} <= history, (acked, history)  # every 2xx change is there
    accepted, running, ready = (t - back for t in (figures.accepted, figures.envoy_runs_it, figures.ready))
    print(f"\netcd back (health endpoint) -> first change accepted {accepted:.3f} s, a real Envoy running it "
          f"{running:.3f} s, /readyz 200 {ready:.3f} s (goal: each <= 1 s)")
    assert max(accepted, running, ready) < 5.0, (accepted, running, ready)  # generous: the goal, 1 s, is printed
