"""Frames that ask for nothing: PING (CVE-2019-9512), SETTINGS (CVE-2019-9515), empty DATA (CVE-2019-9518),
PRIORITY and WINDOW_UPDATE floods.

Each is cut short with GOAWAY (ENHANCE_YOUR_CALM) long before it costs
anything; and a client that makes the server answer frames while it reads
nothing fills the socket's buffer, after which the server reads no more
from it and drops it when ``max_write_stall_seconds`` pass.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest
from envoy.service.discovery.v3 import discovery_pb2
from h2.errors import ErrorCodes

from switchman.xds import SnapshotCache
from switchman.xds import resources as rt
from tests.adversarial.conftest import Connect, MakeHonest, Serve, buffered, connections, eventually, node
from tests.adversarial.raw import ADS, Raw

HIGH_WATER = 256 * 1024


def _pings(raw: Raw) -> None:
    for _ in range(50):
        raw.h2.ping(os.urandom(8))


def _settings(raw: Raw) -> None:
    for i in range(500):
        raw.h2.update_settings({4: 65535 + i % 2})  # INITIAL_WINDOW_SIZE, back and forth: every stream's window


def _stream(raw: Raw) -> int:
    stream_id = raw.open(ADS)
    raw.message(stream_id, discovery_pb2.DiscoveryRequest(node=node("flood"), type_url=rt.CLUSTER))
    return stream_id


def _empty_data(raw: Raw) -> None:
    stream_id = _stream(raw)
    for _ in range(2000):
        raw.h2.send_data(stream_id, b"")


def _priority(raw: Raw) -> None:
    stream_id = _stream(raw)
    for i in range(2000):
        raw.h2.prioritize(stream_id, weight=1 + i % 200)


def _window_updates(raw: Raw) -> None:
    _stream(raw)
    for _ in range(3000):
        raw.h2.increment_flow_control_window(1)


@pytest.mark.parametrize(("flood", "reason"), [
    (_pings, b"too_many_pings"),
    (_settings, b"control_frame_flood"),
    (_empty_data, b"control_frame_flood"),
    (_priority, b"control_frame_flood"),
    (_window_updates, b"control_frame_flood"),
])
async def test_a_flood_of_frames_that_ask_for_nothing_is_cut_short(
    cache: SnapshotCache, serve: Serve, honest: MakeHonest, connect: Connect, flood: Callable[[Raw], None],
    reason: bytes,
) -> None:
    xds = await serve()
    good = await honest(xds)
    raw = await connect(xds.port)
    flood(raw)
    raw.send()
    seen = await raw.closed(5.0)
    assert seen.goaway is not None
    assert (seen.goaway.error_code, seen.goaway.additional_data) == (ErrorCodes.ENHANCE_YOUR_CALM, reason)
    assert xds.metrics.refusals[reason.decode()] == 1
    await good.push(cache)
    assert buffered(xds) < 64 * 1024


async def test_a_client_that_makes_the_server_answer_and_reads_nothing_is_dropped(
    cache: SnapshotCache, serve: Serve, honest: MakeHonest, connect: Connect
) -> None:
    # Pings allowed without limit here, to see the bound that holds for any frame the server must answer.
    xds = await serve(max_ping_strikes=10**9, max_write_stall_seconds=1.0)
    good = await honest(xds)
    raw = await connect(xds.port, rcvbuf=4096)
    peak = 0
    for _ in range(400):  # up to 400 x 2,000 PINGs (14 MB of acks), until the kernel's buffers are full too
        for _ in range(2000):
            raw.h2.ping(os.urandom(8))
        raw.send()
        await asyncio.sleep(0.01)
        peak = max(peak, buffered(xds))
        if peak > HIGH_WATER:  # the server's socket buffer is past its high-water mark: it stops reading
            break
    await good.push(cache)
    await eventually(lambda: connections(xds) == 1, 5.0, "the deaf client is dropped")
    assert xds.metrics.refusals["write_stall"] + xds.metrics.refusals["send_buffer"] == 1
    # The socket's high-water mark, and what one read (256 KiB of PINGs) makes the server answer.
    assert peak <= HIGH_WATER + 256 * 1024, peak
