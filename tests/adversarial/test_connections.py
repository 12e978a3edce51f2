"""Connection floods: the limits in all and per source address, and connections that do nothing.

The attackers connect from 127.0.0.2, the honest client from 127.0.0.1:
two source addresses on one machine.
"""

from __future__ import annotations

import asyncio

from h2.errors import ErrorCodes

from switchman.xds import SnapshotCache
from tests.adversarial.conftest import Connect, MakeHonest, Serve, connections, eventually
from tests.adversarial.raw import Raw

ATTACKER = "127.0.0.2"


async def _refused(raw: Raw) -> bytes:
    """The GOAWAY's debug data, once the server has said GOAWAY (ENHANCE_YOUR_CALM) and closed."""
    seen = await raw.closed(5.0)
    assert seen.goaway is not None, "no GOAWAY"
    assert seen.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert seen.settings == 1  # the server's preface came first
    return seen.goaway.additional_data or b""


async def test_connections_over_the_per_address_limit_are_turned_away(
    cache: SnapshotCache, serve: Serve, honest: MakeHonest, connect: Connect
) -> None:
    xds = await serve(max_connections_per_address=5)
    good = await honest(xds)
    kept = [await connect(xds.port, source=ATTACKER) for _ in range(5)]
    await eventually(lambda: connections(xds) == 6, 5.0, "five attackers and the honest client are in")
    flood = [await connect(xds.port, source=ATTACKER) for _ in range(200)]
    reasons = await asyncio.gather(*(_refused(raw) for raw in flood))
    assert set(reasons) == {b"connections_per_address"}
    assert connections(xds) == 6  # bound: the limit per address, whatever the attempts
    assert xds.metrics.refusals["connections_per_address"] == 200
    await good.push(cache)
    for raw in kept:
        raw.close()
    await eventually(lambda: connections(xds) == 1, 5.0, "the attackers' connections are gone")


async def test_connections_over_the_server_limit_are_turned_away(
    cache: SnapshotCache, serve: Serve, honest: MakeHonest, connect: Connect
) -> None:
    xds = await serve(max_connections=8)
    good = await honest(xds)
    for _ in range(7):
        await connect(xds.port, source=ATTACKER)
    await eventually(lambda: connections(xds) == 8, 5.0, "the limit is reached")
    flood = [await connect(xds.port, source=ATTACKER) for _ in range(50)]
    assert set(await asyncio.gather(*(_refused(raw) for raw in flood))) == {b"connections"}
    assert connections(xds) == 8
    await good.push(cache)


async def test_a_connection_without_calls_is_closed_when_idle(
    cache: SnapshotCache, serve: Serve, honest: MakeHonest, connect: Connect
) -> None:
    xds = await serve(max_connection_idle_seconds=0.5)
    good = await honest(xds)
    idle = await connect(xds.port, source=ATTACKER)  # the preface, and nothing more (it answers pings)
    seen = await idle.closed(5.0)
    assert seen.goaway is not None and seen.goaway.error_code == ErrorCodes.NO_ERROR
    assert seen.goaway.additional_data == b"max_idle"
    assert xds.metrics.refusals["idle"] == 1
    idle.close()
    await asyncio.sleep(0.6)  # the honest connection has a stream: it is not idle
    await good.push(cache)
    await eventually(lambda: connections(xds) == 1, 3.0, "the idle connection is gone")
