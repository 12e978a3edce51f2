"""The HTTP/2 xDS transport against grpcio's own client: the gRPC contract, its errors, its limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.cluster.v3 import cds_pb2_grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from grpc import aio

from switchman.testing.builders import eds_cluster, load_assignment
from switchman.xds import Snapshot, SnapshotCache, XdsServer, XdsSettings
from switchman.xds import resources as rt

NODE = base_pb2.Node(id="h2-test", cluster="demo")


def _snapshot(clusters: int = 1, endpoints: int = 1) -> Snapshot:
    items: list[Any] = []
    for i in range(clusters):
        name = f"c{i:05d}"
        items += [eds_cluster(name), load_assignment(name, [("127.0.0.1", 9000 + j) for j in range(endpoints)])]
    return Snapshot.build(items)


@pytest.fixture
async def server(cache: SnapshotCache) -> AsyncIterator[XdsServer]:
    settings = XdsSettings(
        transport="h2", max_request_bytes=64 * 1024, keepalive_seconds=0.2, keepalive_timeout_seconds=0.2
    )
    xds = XdsServer(cache, settings)
    await xds.start("127.0.0.1:0")
    yield xds
    await xds.stop(0.5)


@pytest.fixture
async def channel(server: XdsServer) -> AsyncIterator[aio.Channel]:
    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as chan:
        yield chan


async def _requests(*items: discovery_pb2.DiscoveryRequest) -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
    for item in items:
        yield item


async def test_ads_over_h2_answers_acks_and_pushes_changes(cache: SnapshotCache, channel: aio.Channel,
                                                           server: XdsServer) -> None:
    cache.set_snapshot("demo", _snapshot(2))
    call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
    await call.write(discovery_pb2.DiscoveryRequest(node=NODE, type_url=rt.CLUSTER))
    first = await asyncio.wait_for(call.read(), 5)
    assert first.type_url == rt.CLUSTER and len(first.resources) == 2
    await call.write(discovery_pb2.DiscoveryRequest(
        type_url=rt.CLUSTER, version_info=first.version_info, response_nonce=first.nonce))
    cache.set_snapshot("demo", _snapshot(3))
    second = await asyncio.wait_for(call.read(), 5)
    assert len(second.resources) == 3 and second.version_info != first.version_info
    assert [s.node_id for s in server.statuses()] == ["h2-test"]
    await call.done_writing()  # the client's half-close ends the stream cleanly
    assert await asyncio.wait_for(call.code(), 5) == grpc.StatusCode.OK
    await asyncio.sleep(0.05)
    assert server.statuses() == []


async def test_a_response_larger_than_the_flow_control_window_arrives_whole(cache: SnapshotCache,
                                                                            channel: aio.Channel) -> None:
    snapshot = _snapshot(clusters=200, endpoints=40)  # EDS of ~200 KB: several 64 KB windows
    cache.set_snapshot("demo", snapshot)
    call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
    await call.write(discovery_pb2.DiscoveryRequest(node=NODE, type_url=rt.ENDPOINT))
    response = await asyncio.wait_for(call.read(), 10)
    assert response.ByteSize() > 3 * 65535
    assert len(response.resources) == 200
    assert response.version_info == snapshot.get(rt.ENDPOINT).version
    call.cancel()


async def test_fetch_over_h2(cache: SnapshotCache, channel: aio.Channel) -> None:
    stub = cds_pb2_grpc.ClusterDiscoveryServiceStub(channel)
    with pytest.raises(aio.AioRpcError) as empty:
        await stub.FetchClusters(discovery_pb2.DiscoveryRequest(node=NODE))
    assert empty.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "no configuration for this node yet" in (empty.value.details() or "")
    cache.set_snapshot("demo", _snapshot(4))
    response = await stub.FetchClusters(discovery_pb2.DiscoveryRequest(node=NODE))
    assert len(response.resources) == 4
    with pytest.raises(aio.AioRpcError) as wrong:
        await stub.FetchClusters(discovery_pb2.DiscoveryRequest(node=NODE, type_url=rt.LISTENER))
    assert wrong.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_errors_come_back_as_grpc_statuses(cache: SnapshotCache, channel: aio.Channel) -> None:
    cache.set_snapshot("demo", _snapshot(1))
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)

    no_node = stub.StreamAggregatedResources(_requests(discovery_pb2.DiscoveryRequest(type_url=rt.CLUSTER)))
    assert await asyncio.wait_for(no_node.code(), 5) == grpc.StatusCode.INVALID_ARGUMENT
    assert "must carry the node" in (await no_node.details() or "")

    too_big = discovery_pb2.DiscoveryRequest(node=NODE, type_url=rt.CLUSTER, resource_names=["x" * 70_000])
    big = stub.StreamAggregatedResources(_requests(too_big))
    assert await asyncio.wait_for(big.code(), 5) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "exceeds the limit of 65536" in (await big.details() or "")

    unknown = channel.unary_unary("/envoy.service.nothing.v3.Nope/Fetch")
    with pytest.raises(aio.AioRpcError) as missing:
        await unknown(b"")
    assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED

    garbage = channel.stream_stream(
        "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources",
        request_serializer=lambda b: b, response_deserializer=lambda b: b,
    )
    bad = garbage(_bytes(b"\xff\xff\xff"))
    assert await asyncio.wait_for(bad.code(), 5) == grpc.StatusCode.INVALID_ARGUMENT


async def _bytes(*items: bytes) -> AsyncIterator[bytes]:
    for item in items:
        yield item


async def test_compressed_requests_are_refused(cache: SnapshotCache, server: XdsServer) -> None:
    cache.set_snapshot("demo", _snapshot(1))
    async with aio.insecure_channel(f"127.0.0.1:{server.port}", compression=grpc.Compression.Gzip) as chan:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(chan).StreamAggregatedResources(
            _requests(discovery_pb2.DiscoveryRequest(node=NODE, type_url=rt.CLUSTER, resource_names=["a" * 500]))
        )
        assert await asyncio.wait_for(call.code(), 5) == grpc.StatusCode.UNIMPLEMENTED


async def test_a_cancelled_stream_is_forgotten(cache: SnapshotCache, channel: aio.Channel, server: XdsServer) -> None:
    cache.set_snapshot("demo", _snapshot(1))
    call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
    await call.write(discovery_pb2.DiscoveryRequest(node=NODE, type_url=rt.CLUSTER))
    await asyncio.wait_for(call.read(), 5)
    assert len(server.context.streams) == 1
    call.cancel()
    for _ in range(100):
        if not server.context.streams:
            break
        await asyncio.sleep(0.02)
    assert not server.context.streams


async def test_stop_ends_streams_with_unavailable(cache: SnapshotCache, server: XdsServer,
                                                  channel: aio.Channel) -> None:
    cache.set_snapshot("demo", _snapshot(1))
    call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
    await call.write(discovery_pb2.DiscoveryRequest(node=NODE, type_url=rt.CLUSTER))
    await asyncio.wait_for(call.read(), 5)
    await server.stop(1.0)
    assert await asyncio.wait_for(call.code(), 5) == grpc.StatusCode.UNAVAILABLE
    assert not server.context.streams


async def test_a_peer_that_does_not_answer_pings_is_dropped(server: XdsServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # preface, SETTINGS
    await writer.drain()
    got = b""
    try:
        async with asyncio.timeout(5):
            while chunk := await reader.read(65536):  # the server's SETTINGS, then a PING we never answer
                got += chunk
    finally:
        writer.close()
    # the read loop ended: the server closed the connection, after a PING (length 8, type 6) went unanswered
    assert b"\x00\x00\x08\x06\x00" in got


async def test_a_stream_reset_in_the_same_read_as_its_request_leaves_the_connection_serving(
    cache: SnapshotCache, server: XdsServer
) -> None:
    import h2.config
    import h2.connection
    import h2.events

    cache.set_snapshot("demo", _snapshot(2))
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()

    def headers(path: str) -> list[tuple[bytes, bytes]]:
        return [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()), (b":authority", b"x"),
                (b"content-type", b"application/grpc"), (b"te", b"trailers")]

    client.send_headers(1, headers("/nowhere.Nope/Fetch"))  # refused by the server...
    client.reset_stream(1)  # ...but reset before the server's answer: both arrive in one read
    request = discovery_pb2.DiscoveryRequest(node=NODE).SerializeToString()
    client.send_headers(3, headers("/envoy.service.cluster.v3.ClusterDiscoveryService/FetchClusters"))
    client.send_data(3, b"\0" + len(request).to_bytes(4, "big") + request, end_stream=True)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(client.data_to_send())
    status = None
    body = b""
    try:
        async with asyncio.timeout(5):
            while status is None:
                data = await reader.read(65536)
                assert data, "the server closed the connection"
                for event in client.receive_data(data):
                    if isinstance(event, h2.events.DataReceived) and event.stream_id == 3:
                        body += event.data
                    if isinstance(event, h2.events.TrailersReceived) and event.stream_id == 3:
                        status = dict(event.headers)[b"grpc-status"]
                writer.write(client.data_to_send())
    finally:
        writer.close()
    assert status == b"0"
    response = discovery_pb2.DiscoveryResponse.FromString(body[5:])
    assert len(response.resources) == 2


async def test_csds_is_served_on_the_xds_port(cache: SnapshotCache, channel: aio.Channel) -> None:
    from envoy.admin.v3 import config_dump_shared_pb2 as dump_pb2
    from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc

    cache.set_snapshot("demo", _snapshot(2))
    call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
    await call.write(discovery_pb2.DiscoveryRequest(node=NODE, type_url=rt.CLUSTER))
    first = await asyncio.wait_for(call.read(), 5)
    await call.write(discovery_pb2.DiscoveryRequest(
        type_url=rt.CLUSTER, version_info=first.version_info, response_nonce=first.nonce))
    csds = csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel)
    for _ in range(100):
        fetched = await csds.FetchClientStatus(csds_pb2.ClientStatusRequest())
        configs = [c for config in fetched.config for c in config.generic_xds_configs]
        if configs and all(c.client_status == dump_pb2.ClientResourceStatus.ACKED for c in configs):
            break
        await asyncio.sleep(0.02)
    assert [config.node.id for config in fetched.config] == ["h2-test"]
    assert {c.name for c in configs} == {"c00000", "c00001"}
    assert all(c.client_status == dump_pb2.ClientResourceStatus.ACKED for c in configs)
    stream = csds.StreamClientStatus()
    await stream.write(csds_pb2.ClientStatusRequest(exclude_resource_contents=True))
    streamed = await asyncio.wait_for(stream.read(), 5)
    assert [config.node.id for config in streamed.config] == ["h2-test"]
    await stream.done_writing()
    assert await asyncio.wait_for(stream.code(), 5) == grpc.StatusCode.OK
    call.cancel()


async def test_a_connection_cannot_hold_more_unfinished_requests_than_its_limit(server: XdsServer) -> None:
    import h2.config
    import h2.connection
    import h2.events

    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    headers = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"x"),
               (b":path", b"/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"),
               (b"content-type", b"application/grpc"), (b"te", b"trailers")]
    # each stream: a message that says 60,000 bytes and stops 1,000 short (the limit here: 4 x 64 KiB)
    pending = {}
    for stream_id in (1, 3, 5, 7, 9):
        client.send_headers(stream_id, headers)
        pending[stream_id] = b"\0" + (60_000).to_bytes(4, "big") + b"\x08" * 59_000
    statuses: dict[int, bytes] = {}
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        async with asyncio.timeout(10):
            while pending and 9 not in statuses:
                for stream_id in list(pending):
                    size = min(len(pending[stream_id]), client.local_flow_control_window(stream_id),
                               client.max_outbound_frame_size)
                    if size > 0:
                        client.send_data(stream_id, pending[stream_id][:size])
                        pending[stream_id] = pending[stream_id][size:]
                        if not pending[stream_id]:
                            del pending[stream_id]
                writer.write(client.data_to_send())
                data = await reader.read(65536)
                assert data, "the server closed the connection"
                for event in client.receive_data(data):
                    if isinstance(event, (h2.events.TrailersReceived, h2.events.ResponseReceived)):
                        found = dict(event.headers).get(b"grpc-status")
                        if found is not None:
                            statuses[event.stream_id] = found
                writer.write(client.data_to_send())
    finally:
        writer.close()
    assert statuses == {9: b"8"}  # RESOURCE_EXHAUSTED for the stream that went over; the others go on
