"""The HTTP/2 "rapid reset" attack (CVE-2023-44487): streams opened and reset at once, as fast as the wire goes.

A connection may reset as many streams as it may have open at once
(``max_concurrent_streams``), then ``max_stream_resets_per_second``;
beyond, GOAWAY with ENHANCE_YOUR_CALM. Streams opened past the concurrency
limit and refused count the same.
"""

from __future__ import annotations

import asyncio
import time

from envoy.service.discovery.v3 import discovery_pb2
from h2.errors import ErrorCodes

from switchman.xds import SnapshotCache, XdsServer
from switchman.xds import resources as rt
from tests.adversarial.conftest import Connect, MakeHonest, Serve, buffered, node
from tests.adversarial.raw import ADS, Raw


async def _reset_until_dropped(raw: Raw, seconds: float) -> int:
    """Open ADS streams (with a first request) and reset them, 100 at a time; the streams opened."""
    opened = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not raw.writer.is_closing():
        for _ in range(100):
            stream_id = raw.open(ADS)
            raw.message(stream_id, discovery_pb2.DiscoveryRequest(node=node("reset"), type_url=rt.CLUSTER))
            raw.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
        opened += 100
        raw.send()
        try:
            await raw.drain()
            while raw.h2.outbound_flow_control_window < 65535 // 2 and not raw.seen.closed:
                await raw.poll(0.1)  # the server's WINDOW_UPDATEs (and maybe its GOAWAY)
        except (ConnectionError, TimeoutError):
            break
        if raw.seen.goaway is not None or raw.seen.closed:
            break
    return opened


async def _attack(xds: XdsServer, connect: Connect, seconds: float) -> list[tuple[int, float, Raw]]:
    """Rapid reset on one connection after another for ``seconds``: (streams opened, seconds it took, client)."""
    rounds = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        raw = await connect(xds.port)
        start = time.monotonic()
        opened = await _reset_until_dropped(raw, deadline - start)
        rounds.append((opened, time.monotonic() - start, raw))
        if raw.seen.goaway is None:  # not dropped: the test's time is up
            break
        await raw.closed(2.0)
    return rounds


async def test_rapid_reset_is_cut_short_and_pushes_go_on(
    cache: SnapshotCache, serve: Serve, honest: MakeHonest, connect: Connect
) -> None:
    xds = await serve()
    good = await honest(xds)
    attack = asyncio.create_task(_attack(xds, connect, 2.0))
    await asyncio.sleep(0.2)
    took = [await good.push(cache) for _ in range(3)]
    peak = 0
    while not attack.done():
        peak = max(peak, buffered(xds), len(xds.context.streams))
        await asyncio.sleep(0.02)
    rounds = attack.result()
    assert len(rounds) > 1, "no connection was dropped"
    allowed = xds.settings.max_concurrent_streams
    rate = xds.settings.max_stream_resets_per_second
    for opened, seconds, raw in rounds:
        goaway = raw.seen.goaway
        if goaway is None:  # the last round, cut by the test's own clock
            continue
        assert (goaway.error_code, goaway.additional_data) == (ErrorCodes.ENHANCE_YOUR_CALM, b"too_many_resets")
        # The client's own count, the GOAWAY's way back included (a few hundred streams in flight)
        assert opened <= allowed + rate * seconds + 600, f"{opened} streams opened in {seconds:.2f} s"
    assert xds.metrics.refusals["too_many_resets"] >= 1
    assert max(took) < 1.0
    assert peak < 256 * 1024  # nothing piles up: bytes held, and streams alive at once
    assert len(xds.context.streams) == 1  # the honest stream alone
    await good.push(cache)


async def test_streams_opened_past_the_limit_over_and_over_are_cut_short(
    cache: SnapshotCache, serve: Serve, honest: MakeHonest, connect: Connect
) -> None:
    xds = await serve(max_concurrent_streams=10)
    good = await honest(xds)
    raw = await connect(xds.port)
    await raw.read(lambda s: s.settings >= 1)
    raw.ignore_server_limits()
    for i in range(300):  # ten are taken, the rest refused: each refusal counts as a reset
        stream_id = raw.open(ADS)
        raw.message(stream_id, discovery_pb2.DiscoveryRequest(node=node(f"over-{i}"), type_url=rt.CLUSTER))
    raw.send()
    seen = await raw.closed()
    assert seen.goaway is not None and seen.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert seen.goaway.additional_data == b"too_many_resets"
    assert ErrorCodes.REFUSED_STREAM in set(seen.resets.values())
    await good.push(cache)
