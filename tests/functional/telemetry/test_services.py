"""ALS and LRS on the xDS port, on either transport, against grpcio's own client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from envoy.service.load_stats.v3 import lrs_pb2, lrs_pb2_grpc
from google.protobuf import timestamp_pb2
from grpc import aio

from switchman.telemetry import (
    TelemetryMetrics,
    TelemetrySettings,
    TrafficRecorder,
    add_telemetry_services,
    telemetry_methods,
)
from switchman.xds import SnapshotCache, XdsServer, XdsSettings
from switchman.xds.server.server import TRANSPORTS

NODE = base_pb2.Node(id="sidecar-0", cluster="checkout-v2-0")


@pytest.fixture(params=TRANSPORTS)
async def served(cache: SnapshotCache, request: pytest.FixtureRequest) -> AsyncIterator[tuple[XdsServer,
                                                                                                TrafficRecorder]]:
    """An xDS server that serves the telemetry services, wired as the composition root does."""
    server = XdsServer(cache, XdsSettings(transport=str(request.param)))
    recorder = TrafficRecorder()
    metrics = TelemetryMetrics(server.metrics.registry)
    settings = TelemetrySettings(load_reporting_interval=0.5)
    group_of = server.context.group_of
    server.add_service(lambda s: add_telemetry_services(s, recorder, group_of, metrics, settings))
    if server.settings.transport == "h2":
        server.add_methods(telemetry_methods(recorder, group_of, metrics, settings))
    await server.start("127.0.0.1:0")
    yield server, recorder
    await server.stop(0.5)


def _message(first: bool, count: int, status: int) -> als_pb2.StreamAccessLogsMessage:
    message = als_pb2.StreamAccessLogsMessage()
    if first:
        message.identifier.node.CopyFrom(NODE)
    now = time.time()
    for _ in range(count):
        entry = message.http_logs.log_entry.add()
        entry.common_properties.upstream_cluster = "local-app"
        entry.common_properties.start_time.CopyFrom(timestamp_pb2.Timestamp(seconds=int(now)))
        entry.response.response_code.value = status
    return message


async def test_access_logs_stream_in_and_the_call_ends_with_its_one_response(
    served: tuple[XdsServer, TrafficRecorder]
) -> None:
    server, recorder = served

    async def messages() -> AsyncIterator[als_pb2.StreamAccessLogsMessage]:
        yield _message(True, 3, 200)
        yield _message(False, 2, 503)

    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        response = await als_pb2_grpc.AccessLogServiceStub(channel).StreamAccessLogs(messages(), timeout=5)
    assert response == als_pb2.StreamAccessLogsResponse()
    stats = recorder.window("local-app", time.time() - 60, time.time() + 1, reporter="checkout-v2-0")
    assert (stats.requests, stats.errors_5xx) == (5, 2)
    entries = server.metrics.registry.get_sample_value("switchman_telemetry_access_log_entries_total")
    assert entries == 5


async def test_access_logs_without_an_identifier_are_refused(served: tuple[XdsServer, TrafficRecorder]) -> None:
    server, recorder = served

    async def messages() -> AsyncIterator[als_pb2.StreamAccessLogsMessage]:
        yield _message(False, 1, 200)

    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(aio.AioRpcError) as info:
            await als_pb2_grpc.AccessLogServiceStub(channel).StreamAccessLogs(messages(), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "identifier" in (info.value.details() or "")
    assert recorder.series() == []


async def test_load_stats_are_asked_for_then_recorded(served: tuple[XdsServer, TrafficRecorder]) -> None:
    server, recorder = served
    async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = lrs_pb2_grpc.LoadReportingServiceStub(channel).StreamLoadStats()
        await call.write(lrs_pb2.LoadStatsRequest(node=NODE))
        answer = await asyncio.wait_for(call.read(), 5)
        assert answer.send_all_clusters
        assert answer.load_reporting_interval.ToMilliseconds() == 500
        request = lrs_pb2.LoadStatsRequest(node=NODE)
        stats = request.cluster_stats.add(cluster_name="local-app")
        stats.upstream_locality_stats.add(total_successful_requests=7, total_error_requests=1, total_issued_requests=8)
        await call.write(request)
        await call.done_writing()
        assert await asyncio.wait_for(call.code(), 5) == grpc.StatusCode.OK
    [report] = recorder.load_reports("local-app", 0, time.time() + 1)
    assert (report.reporter, report.successes, report.errors, report.issued) == ("checkout-v2-0", 7, 1, 8)
