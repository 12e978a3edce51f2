"""Whatever the order of snapshot changes, ACKs and subscription changes, a client ends up with the snapshot.

A seeded random walk drives one stream while a model of the client applies
every response. Snapshots change faster than the client ACKs, names change
and change back, assignments leave and come back, and the walk outruns the
snapshots' history: the responses that only diff what changed must leave the
client exactly where comparing everything would.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from envoy.service.discovery.v3 import discovery_pb2

from switchman.testing.builders import load_assignment
from switchman.xds import Resource, Snapshot, SnapshotCache
from switchman.xds import resources as rt
from switchman.xds.cache import snapshot as snapshot_module
from tests.unit.xds.conftest import DeltaFactory, SotwFactory
from tests.unit.xds.harness import GROUP, Client, ack, delta_ack, delta_request, request, unpack, world

POOL = [f"c{i}" for i in range(6)]
STEPS = 160


async def turns(client: Client[discovery_pb2.DiscoveryResponse] | Client[discovery_pb2.DeltaDiscoveryResponse]) -> None:
    """Let the stream handle everything sent so far (it runs in-process)."""
    for _ in range(20):
        await asyncio.sleep(0)
    assert not client.task.done(), client.task


class Walk:
    """The server's side of the walk: snapshots changing at random."""

    def __init__(self, cache: SnapshotCache, seed: int) -> None:
        self.cache = cache
        self.rng = random.Random(seed)
        self.snap = world(POOL[0], POOL)
        cache.set_snapshot(GROUP, self.snap)

    def change(self, burst: bool = False) -> None:
        """One new snapshot; a burst is more of them than the history holds."""
        for _ in range(snapshot_module._HISTORY + 1 if burst else 1):
            name = self.rng.choice(POOL)
            if name in self.snap.get(rt.ENDPOINT).resources and self.rng.random() < 0.25:
                self.snap = self.snap.with_changes(remove=[(rt.ENDPOINT, name)])
            else:
                # Few ports: an assignment often changes back to a version the client had.
                port = self.rng.randrange(1, 4)
                self.snap = self.snap.with_changes(upsert=[load_assignment(name, [("10.0.0.1", port)])])
            if self.rng.random() < 0.05:  # now and then a snapshot without history
                self.snap = Snapshot.build(r for t in rt.TYPE_URLS for r in self.snap.get(t).resources.values())
            self.cache.set_snapshot(GROUP, self.snap)

    def expected(self, subscribed: set[str] | None) -> dict[str, str]:
        current = self.snap.get(rt.ENDPOINT).resources
        return {n: r.version for n, r in current.items() if subscribed is None or n in subscribed}


@pytest.mark.parametrize("wildcard", [False, True], ids=["named", "wildcard"])
@pytest.mark.parametrize("seed", range(6))
async def test_a_delta_client_converges(cache: SnapshotCache, delta: DeltaFactory, seed: int, wildcard: bool) -> None:
    walk = Walk(cache, seed)
    rng = walk.rng
    subscribed: set[str] | None = None if wildcard else set(POOL[:4])
    client = delta()
    client.send(delta_request(rt.ENDPOINT, [] if subscribed is None else sorted(subscribed)))
    view: dict[str, str] = {}
    unacked: list[discovery_pb2.DeltaDiscoveryResponse] = []

    async def receive() -> None:
        await turns(client)
        for response in client.ready():
            for resource in response.resources:
                if subscribed is None or resource.name in subscribed:  # else: dropped before it came
                    view[resource.name] = resource.version
            for name in response.removed_resources:
                view.pop(name, None)
            unacked.append(response)

    async def converge() -> None:
        await receive()
        while unacked:
            while unacked:
                client.send(delta_ack(unacked.pop(0)))
            await receive()
        assert view == walk.expected(subscribed)

    for step in range(STEPS):
        roll = rng.random()
        if roll < 0.45:
            walk.change(burst=roll < 0.05)
        elif roll < 0.85 or subscribed is None:
            if unacked:
                client.send(delta_ack(unacked.pop(0)))
        else:
            name = rng.choice(POOL)
            if name in subscribed:
                subscribed.discard(name)
                view.pop(name, None)  # the client drops it itself
                client.send(delta_request(rt.ENDPOINT, unsubscribe=[name]))
            else:
                subscribed.add(name)
                client.send(delta_request(rt.ENDPOINT, [name]))
        await receive()
        if step % 40 == 39:
            await converge()
    await converge()


@pytest.mark.parametrize("wildcard", [False, True], ids=["named", "wildcard"])
@pytest.mark.parametrize("seed", range(6))
async def test_a_state_of_the_world_client_converges(
    cache: SnapshotCache, sotw: SotwFactory, seed: int, wildcard: bool
) -> None:
    walk = Walk(cache, seed)
    rng = walk.rng
    subscribed: set[str] | None = None if wildcard else set(POOL[:4])

    def names() -> list[str]:
        return [] if subscribed is None else sorted(subscribed)

    client = sotw()
    client.send(request(rt.ENDPOINT, names()))
    view: dict[str, str] = {}
    unacked: list[discovery_pb2.DiscoveryResponse] = []
    last: discovery_pb2.DiscoveryResponse | None = None

    async def receive() -> None:
        nonlocal last
        await turns(client)
        for response in client.ready():
            # Assignments are grouped as in the incremental protocol: a response carries what changed, and
            # one left out is kept (it goes with its cluster). Names the client no longer wants it ignores.
            for resource in response.resources:
                held = Resource(unpack(resource))
                if subscribed is None or held.name in subscribed:
                    view[held.name] = held.version
            unacked.append(response)
            last = response

    async def converge() -> None:
        await receive()
        while unacked:
            while unacked:
                client.send(ack(unacked.pop(0), names()))
            await receive()
        expected = walk.expected(subscribed)
        # an assignment removed from the snapshot may linger until its cluster goes (no cluster goes here)
        assert {n: v for n, v in view.items() if n in expected} == expected

    for step in range(STEPS):
        roll = rng.random()
        if roll < 0.45:
            walk.change(burst=roll < 0.05)
        elif roll < 0.85 or subscribed is None:
            if unacked:
                client.send(ack(unacked.pop(0), names()))
        else:
            name = rng.choice(POOL)
            if name in subscribed:
                subscribed.discard(name)
            else:
                subscribed.add(name)
            # A new subscription goes with the latest nonce the client has seen.
            nonce, version = (last.nonce, last.version_info) if last is not None else ("", "")
            client.send(request(rt.ENDPOINT, names(), nonce=nonce, version=version))
        await receive()
        if step % 40 == 39:
            await converge()
    await converge()
