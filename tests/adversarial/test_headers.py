"""Header floods: a header block over the limit, an HPACK bomb, endless CONTINUATION frames.

A header list is at most ``max_header_list_bytes`` decoded (16 KiB: the
server advertises it in SETTINGS_MAX_HEADER_LIST_SIZE and HPACK enforces it
while decoding); a block is at most 64 CONTINUATION frames of 16 KiB (h2's
own limit), so a connection holds at most about 1 MiB of a header block
before it is dropped.
"""

from __future__ import annotations

from h2.errors import ErrorCodes
from hyperframe.frame import ContinuationFrame, HeadersFrame

from switchman.xds import SnapshotCache
from tests.adversarial.conftest import Connect, MakeHonest, Serve, buffered, connections, eventually
from tests.adversarial.raw import ADS, request_headers


async def test_a_header_block_over_the_limit_ends_the_connection(
    cache: SnapshotCache, serve: Serve, honest: MakeHonest, connect: Connect
) -> None:
    xds = await serve()
    good = await honest(xds)
    raw = await connect(xds.port)
    raw.open(ADS, extra=[(b"x-big", b"v" * 20_000)])
    raw.send()
    seen = await raw.closed()
    assert seen.goaway is not None and seen.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert xds.metrics.refusals["header_list_size"] == 1
    await good.push(cache)


async def test_an_hpack_bomb_is_counted_decoded(
    cache: SnapshotCache, serve: Serve, honest: MakeHonest, connect: Connect
) -> None:
    xds = await serve()
    good = await honest(xds)
    raw = await connect(xds.port)
    # One header indexed once, then named 1,000 times by its index: a few KB on the wire, 1.2 MB decoded.
    raw.open(ADS, extra=[(b"x-bomb", b"b" * 1000)] * 1000)
    raw.send()
    seen = await raw.closed()
    assert seen.goaway is not None and seen.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    await good.push(cache)


async def test_endless_continuation_frames_end_the_connection(
    cache: SnapshotCache, serve: Serve, honest: MakeHonest, connect: Connect
) -> None:
    xds = await serve()
    good = await honest(xds)
    raw = await connect(xds.port)
    block = raw.h2.encoder.encode(request_headers(ADS))
    frames = [HeadersFrame(1, data=block[:10]).serialize()]  # no END_HEADERS: CONTINUATION follows
    frames += [ContinuationFrame(1, data=b"\x00" * 16_000).serialize() for _ in range(200)]
    raw.write(b"".join(frames))
    seen = await raw.closed()
    assert seen.goaway is not None and seen.goaway.error_code == ErrorCodes.PROTOCOL_ERROR
    assert xds.metrics.refusals["protocol_error"] == 1
    await eventually(lambda: connections(xds) == 1, 2.0, "the attacker is gone")
    assert buffered(xds) < 64 * 1024
    await good.push(cache)
