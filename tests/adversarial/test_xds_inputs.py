"""Hostile xDS and CSDS input, on both transports: junk type URLs, huge nodes and NACKs, regexes that backtrack.

* A type URL Switchman does not serve is ignored on ADS: no state, no
  response, no metric label (``switchman_xds_refused{reason="unknown_type"}``
  counts them). Before, 20,000 junk types left /metrics at 27.6 MB.
* A stream keeps a copy of its node without Envoy's extension list; a node
  over ``max_node_bytes`` is refused with INVALID_ARGUMENT. A NACK's message
  is kept up to 16 KiB.
* CSDS node matchers run on RE2: linear time, and what RE2 refuses is
  refused with INVALID_ARGUMENT.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc
from envoy.type.matcher.v3 import node_pb2, regex_pb2, string_pb2
from google.protobuf import struct_pb2
from google.rpc import status_pb2
from grpc import aio
from prometheus_client import generate_latest

from switchman.xds import SnapshotCache, XdsServer
from switchman.xds import resources as rt
from switchman.xds.server.server import TRANSPORTS
from tests.adversarial.conftest import GROUP, Connect, MakeHonest, Serve, eventually, node, snapshot
from tests.adversarial.raw import ADS, CSDS_FETCH, responses

INVALID_ARGUMENT = 3


def _metrics(xds: XdsServer) -> bytes:
    return generate_latest(xds.metrics.registry)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_unknown_type_urls_are_ignored_and_never_become_labels(
    serve: Serve, connect: Connect, transport: str
) -> None:
    xds = await serve(transport)
    raw = await connect(xds.port)
    stream = raw.open(ADS)
    raw.message(stream, discovery_pb2.DiscoveryRequest(node=node("junk"), type_url=rt.CLUSTER))
    raw.send()
    await raw.read(lambda s: stream in s.data)
    before = len(_metrics(xds))
    for i in range(20_000):
        await raw.message_when_allowed(
            stream, discovery_pb2.DiscoveryRequest(type_url=f"type.googleapis.com/junk.v{i}.Thing"))
    raw.message(stream, discovery_pb2.DiscoveryRequest(node=node("junk"), type_url=rt.ENDPOINT))  # and a real one
    raw.send()
    seen = await raw.read(lambda s: len(responses(s.data[stream])) == 2, 10.0)
    types = [discovery_pb2.DiscoveryResponse.FromString(r).type_url for r in responses(seen.data[stream])]
    assert types == [rt.CLUSTER, rt.ENDPOINT]  # nothing for the junk
    (served,) = xds.context.streams
    assert set(served.states) == {rt.CLUSTER, rt.ENDPOINT}
    text = _metrics(xds)
    assert b"junk" not in text
    assert len(text) < before + 2048, (before, len(text))  # the same series, new samples of endpoints
    assert xds.metrics.refusals["unknown_type"] == 20_000
    raw.close()
    await eventually(lambda: not xds.context.streams, 5.0, "the stream is gone")
    assert b"junk" not in _metrics(xds)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_stream_keeps_a_bounded_copy_of_its_node(serve: Serve, transport: str) -> None:
    xds = await serve(transport)
    extensions = [base_pb2.Extension(name=f"envoy.filters.http.ext_{i}", category="envoy.filters.http")
                  for i in range(1000)]  # as Envoy sends them: its whole list, 50 KB
    envoy_like = node("envoy-like", extensions=extensions, user_agent_name="envoy")
    envoy_like.metadata.update({"pod": "checkout-1"})
    metadata = struct_pb2.Struct()
    metadata.update({"blob": "m" * 200_000})
    huge = node("huge", metadata=metadata)
    async with aio.insecure_channel(f"127.0.0.1:{xds.port}") as channel:
        ads = channel.stream_stream(ADS, request_serializer=lambda m: m.SerializeToString(),
                                    response_deserializer=discovery_pb2.DiscoveryResponse.FromString)
        kept = ads()
        await kept.write(discovery_pb2.DiscoveryRequest(node=envoy_like, type_url=rt.CLUSTER))
        await asyncio.wait_for(kept.read(), 5)
        (stream,) = xds.context.streams
        assert stream.node is not None
        assert len(stream.node.extensions) == 0 and stream.node.metadata.fields["pod"].string_value == "checkout-1"
        assert stream.node.ByteSize() < 100
        refused = ads()
        await refused.write(discovery_pb2.DiscoveryRequest(node=huge, type_url=rt.CLUSTER))
        assert await asyncio.wait_for(refused.code(), 5) == grpc.StatusCode.INVALID_ARGUMENT
        assert "over the limit of 65536" in (await refused.details() or "")
        assert xds.metrics.refusals["node_too_large"] == 1
        kept.cancel()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_nack_keeps_at_most_16_kib_of_its_message(serve: Serve, transport: str) -> None:
    xds = await serve(transport)
    async with aio.insecure_channel(f"127.0.0.1:{xds.port}") as channel:
        ads = channel.stream_stream(ADS, request_serializer=lambda m: m.SerializeToString(),
                                    response_deserializer=discovery_pb2.DiscoveryResponse.FromString)
        call = ads()
        await call.write(discovery_pb2.DiscoveryRequest(node=node("nacker"), type_url=rt.CLUSTER))
        response = await asyncio.wait_for(call.read(), 5)
        await call.write(discovery_pb2.DiscoveryRequest(
            type_url=rt.CLUSTER, response_nonce=response.nonce,
            error_detail=status_pb2.Status(code=3, message="x" * 1_000_000)))
        await eventually(lambda: bool(xds.statuses() and xds.statuses()[0].types[0].nack_message), 5.0, "NACK")
        message = xds.statuses()[0].types[0].nack_message
        assert message is not None and len(message) < 17_000 and message.endswith("(1000000 characters)")
        call.cancel()


def _regex(pattern: str) -> csds_pb2.ClientStatusRequest:
    matcher = string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=pattern))
    return csds_pb2.ClientStatusRequest(node_matchers=[node_pb2.NodeMatcher(node_id=matcher)])


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_csds_regexes_run_in_linear_time_and_re2_refusals_are_invalid_argument(
    cache: SnapshotCache, serve: Serve, honest: MakeHonest, transport: str
) -> None:
    xds = await serve(transport)
    good = await honest(xds, node_id="a" * 26 + "!")  # (a+)+$ on this took Python's re 1.4 s
    async with aio.insecure_channel(f"127.0.0.1:{xds.port}") as channel:
        csds = csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel)
        started = time.monotonic()
        answers = await asyncio.gather(*(csds.FetchClientStatus(_regex("(a+)+$")) for _ in range(20)))
        assert time.monotonic() - started < 1.0
        assert all(len(a.config) == 0 for a in answers)  # a fullmatch: "!" does not match
        assert len((await csds.FetchClientStatus(_regex("a+!"))).config) == 1
        for pattern in (r"(a)\1", "(?=a)a", "a{1000}{1000}", "x" * 5000):
            with pytest.raises(aio.AioRpcError) as refused:
                await csds.FetchClientStatus(_regex(pattern))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, pattern
        stream = csds.StreamClientStatus()
        await stream.write(_regex(r"(a)\1"))
        assert await asyncio.wait_for(stream.code(), 5) == grpc.StatusCode.INVALID_ARGUMENT
    await good.push(cache)


async def test_csds_requests_wait_in_a_bounded_queue(
    cache: SnapshotCache, serve: Serve, honest: MakeHonest, connect: Connect
) -> None:
    xds = await serve()
    cache.set_snapshot(GROUP, snapshot(clusters=2000))
    await honest(xds)  # its 2,001 clusters make a CSDS answer of ~200 KB: more than the window of 64 KiB
    raw = await connect(xds.port)
    raw.h2.acknowledge_received_data = lambda *args, **kwargs: None  # type: ignore[method-assign]
    stream = raw.open("/envoy.service.status.v3.ClientStatusDiscoveryService/StreamClientStatus")
    for _ in range(100):  # the first answer waits for window; the next 16 wait for it; one more is too many
        raw.message(stream, csds_pb2.ClientStatusRequest())
    raw.send()
    await asyncio.sleep(0.2)
    del raw.h2.acknowledge_received_data  # now it reads: the first answer, and the trailers behind it
    raw.h2.increment_flow_control_window(1 << 20, stream_id=stream)
    raw.h2.increment_flow_control_window(1 << 20)
    raw.send()
    seen = await raw.read(lambda s: s.status(stream) is not None)
    assert len(responses(seen.data[stream])) == 1
    assert seen.status(stream) == 8  # RESOURCE_EXHAUSTED
    assert b"more than 16 CSDS requests" in seen.trailers[stream][b"grpc-message"]
    fetch = raw.call(CSDS_FETCH, _regex(r"(a)\1"))
    seen = await raw.read(lambda s: s.status(fetch) is not None)
    assert seen.status(fetch) == INVALID_ARGUMENT
