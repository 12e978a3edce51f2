"""Leases on both backends: one holder at a time, renewal, release, expiry, and a holder that dies.

Two store objects stand for two replicas (etcd) or two processes on one
file (SQLite). etcd grants whole seconds and at least its minimum TTL (2 s
with its default election timeout), so a "1 s" lease there lasts about 2 s.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time

from switchman.store import EtcdStore, SqliteStore
from tests.functional.conftest import AnyStore, StoreFactory
from tests.functional.store.etcd_env import ENDPOINT, host_port, needs_etcd

NAME = "rollouts/checkout"
LONG = 30.0


def short_ttl(store: AnyStore) -> float:
    return 0.3 if isinstance(store, SqliteStore) else 1.0


async def until_taken(store: AnyStore, holder: str, ttl: float, within: float = 10.0) -> float:
    """Try to take the lease until it works; the seconds that took."""
    start = time.monotonic()
    async with asyncio.timeout(within):
        while True:
            if await store.acquire_lease(NAME, holder, ttl):
                break
            await asyncio.sleep(0.05)  # nothing tells when a lease expires: poll
    return time.monotonic() - start


async def test_the_first_holder_wins_and_renews(stores: StoreFactory) -> None:
    a, b = stores(), stores()
    assert await a.lease_holder(NAME) is None
    assert await a.acquire_lease(NAME, "replica-a", LONG)
    assert not await b.acquire_lease(NAME, "replica-b", LONG)
    assert await b.lease_holder(NAME) == "replica-a"
    assert await a.acquire_lease(NAME, "replica-a", LONG)  # renewed
    assert await b.acquire_lease(NAME, "replica-a", LONG)  # the holder's name is what counts, not the object
    assert await b.lease_holder(NAME) == "replica-a"
    assert await b.acquire_lease("rollouts/cart", "replica-b", LONG)  # another name, another lease
    assert await a.lease_holder("rollouts/cart") == "replica-b"


async def test_racing_takers_one_wins(stores: StoreFactory) -> None:
    a, b = stores(), stores()
    calls = [(a, "replica-a"), (b, "replica-b"), (a, "replica-a"), (b, "replica-b")]
    taken = await asyncio.gather(*(s.acquire_lease(NAME, holder, LONG) for s, holder in calls))
    winners = {holder for (_, holder), won in zip(calls, taken, strict=True) if won}
    assert len(winners) == 1, taken
    assert await a.lease_holder(NAME) in winners


async def test_release_lets_another_take_it(stores: StoreFactory) -> None:
    a, b = stores(), stores()
    assert await a.acquire_lease(NAME, "replica-a", LONG)
    await b.release_lease(NAME, "replica-b")  # not the holder: nothing happens
    assert await b.lease_holder(NAME) == "replica-a"
    await a.release_lease(NAME, "replica-a")
    assert await b.lease_holder(NAME) is None
    assert await b.acquire_lease(NAME, "replica-b", LONG)
    await a.release_lease(NAME, "replica-a")  # no longer the holder: nothing happens
    assert await a.lease_holder(NAME) == "replica-b"
    assert not await a.acquire_lease(NAME, "replica-a", LONG)


async def test_renewal_keeps_it_and_expiry_hands_it_over(stores: StoreFactory) -> None:
    a, b = stores(), stores()
    ttl = short_ttl(a)
    assert await a.acquire_lease(NAME, "replica-a", ttl)
    # Renewed at a third of the TTL for well past the TTL (etcd: its 2 s minimum): never lost.
    deadline = time.monotonic() + 1.5 * (ttl if isinstance(a, SqliteStore) else 2.0)
    while time.monotonic() < deadline:
        await asyncio.sleep(ttl / 3)
        assert await a.acquire_lease(NAME, "replica-a", ttl)
        assert not await b.acquire_lease(NAME, "replica-b", ttl)
    # a stops renewing: b gets it once the TTL has run out, not before.
    waited = await until_taken(b, "replica-b", ttl)
    assert waited >= ttl * 0.5
    assert await a.lease_holder(NAME) == "replica-b"
    assert not await a.acquire_lease(NAME, "replica-a", ttl)


# A process that takes the lease, says so, and then only sleeps: killed, it never releases.
HOLDER = """
import asyncio, sys
from switchman.store import EtcdStore

async def main(host, port, prefix, name):
    store = EtcdStore(host, int(port), prefix=prefix)
    assert await store.acquire_lease(name, "doomed", 1)
    print("held", flush=True)
    await asyncio.sleep(600)

asyncio.run(main(*sys.argv[1:]))
"""


@needs_etcd
async def test_a_killed_holder_loses_it_after_the_ttl(prefix: str) -> None:
    host, port = host_port(ENDPOINT)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, host, str(port), prefix, NAME, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    try:
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"held\n"
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    store = EtcdStore(host, port, prefix=prefix)
    try:
        assert await store.lease_holder(NAME) == "doomed"
        assert not await store.acquire_lease(NAME, "replica", 1)
        await until_taken(store, "replica", 1)
        assert await store.lease_holder(NAME) == "replica"
    finally:
        await store.close()
