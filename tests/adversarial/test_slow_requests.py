"""Slow clients: streams that never send their first request (the node), messages trickled byte by byte,
and the client's own deadline (``grpc-timeout``).

A call's first request, and any request once begun, must arrive whole
within ``request_timeout_seconds``, or the call ends with DEADLINE_EXCEEDED
and what it held is released. ``grpc-timeout`` ends a call (stream or
unary) with DEADLINE_EXCEEDED when it passes, as gRPC does.
"""

from __future__ import annotations

import asyncio
import time

from envoy.service.discovery.v3 import discovery_pb2

from switchman.xds import SnapshotCache
from switchman.xds import resources as rt
from tests.adversarial.conftest import SLEEP, Connect, MakeHonest, Serve, buffered, node
from tests.adversarial.raw import ADS, FETCH_CLUSTERS, grpc_message

DEADLINE_EXCEEDED = 4


async def test_streams_that_never_send_their_node_are_ended(
    cache: SnapshotCache, serve: Serve, honest: MakeHonest, connect: Connect
) -> None:
    xds = await serve(request_timeout_seconds=0.5)
    good = await honest(xds)
    raw = await connect(xds.port)
    ids = [raw.open(ADS) for _ in range(200)]  # streams, and not a byte on them
    raw.send()
    await good.push(cache)  # meanwhile
    started = time.monotonic()
    seen = await raw.read(lambda s: all(s.status(i) is not None for i in ids), 5.0)
    assert {seen.status(i) for i in ids} == {DEADLINE_EXCEEDED}
    assert time.monotonic() - started < 2.0
    assert b"no request within 0.5 s" in seen.headers[ids[0]][b"grpc-message"]
    assert xds.metrics.refusals["request_timeout"] == 200
    assert len(xds.context.streams) == 1  # the honest one: the 200 are forgotten
    assert seen.goaway is None  # the connection itself may go on


async def test_a_message_trickled_byte_by_byte_is_cut_off(
    cache: SnapshotCache, serve: Serve, honest: MakeHonest, connect: Connect
) -> None:
    xds = await serve(request_timeout_seconds=0.5)
    good = await honest(xds)
    raw = await connect(xds.port)
    first = raw.open(ADS)
    raw.message(first, discovery_pb2.DiscoveryRequest(node=node("trickle"), type_url=rt.CLUSTER))
    raw.send()
    await raw.read(lambda s: first in s.data)
    # The second request, a byte every 50 ms: 600 bytes would take 30 s.
    second = grpc_message(discovery_pb2.DiscoveryRequest(type_url=rt.ENDPOINT, resource_names=["x" * 590]))
    unary = raw.open(FETCH_CLUSTERS)  # and a unary call whose request never ends
    raw.h2.send_data(unary, grpc_message(discovery_pb2.DiscoveryRequest(node=node("never-ends"))))
    held = 0
    for byte in second[:40]:
        await raw.poll(0.001)
        if raw.seen.status(first) is not None:
            break
        raw.h2.send_data(first, bytes([byte]))
        raw.send()
        await asyncio.sleep(0.05)
        held = max(held, buffered(xds))
    seen = await raw.read(lambda s: s.status(first) is not None and s.status(unary) is not None, 3.0)
    assert (seen.status(first), seen.status(unary)) == (DEADLINE_EXCEEDED, DEADLINE_EXCEEDED)
    assert b"did not arrive whole within 0.5 s" in seen.trailers[first][b"grpc-message"]
    assert held < 4096  # what a trickle holds: its bytes so far
    assert buffered(xds) == 0
    await good.push(cache)


async def test_grpc_timeout_ends_unary_calls_and_streams(serve: Serve, connect: Connect) -> None:
    xds = await serve()
    raw = await connect(xds.port)
    started = time.monotonic()
    unary = raw.call(SLEEP, discovery_pb2.DiscoveryRequest(version_info="5"), extra=[(b"grpc-timeout", b"200m")])
    stream = raw.open(ADS, extra=[(b"grpc-timeout", b"400m")])
    raw.message(stream, discovery_pb2.DiscoveryRequest(node=node("deadline"), type_url=rt.CLUSTER))
    raw.send()
    seen = await raw.read(lambda s: s.status(unary) is not None, 3.0)
    assert seen.status(unary) == DEADLINE_EXCEEDED
    assert 0.15 < time.monotonic() - started < 1.0  # its handler was cancelled: it would have slept 5 s
    assert seen.status(stream) is None
    seen = await raw.read(lambda s: s.status(stream) is not None, 3.0)
    assert seen.status(stream) == DEADLINE_EXCEEDED
    assert stream in seen.data  # it was served until then
    assert not xds.context.streams


async def test_a_malformed_grpc_timeout_is_refused(serve: Serve, connect: Connect) -> None:
    xds = await serve()
    raw = await connect(xds.port)
    calls = [raw.call(FETCH_CLUSTERS, discovery_pb2.DiscoveryRequest(node=node("bad")),
                      extra=[(b"grpc-timeout", value)]) for value in (b"123456789S", b"1x", b"S", b"-1S")]
    seen = await raw.read(lambda s: all(s.status(c) is not None for c in calls))
    assert {seen.status(c) for c in calls} == {13}  # INTERNAL, as grpc-go answers it
