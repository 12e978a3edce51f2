"""Who may read CSDS and the management API, and report traffic, on the xDS port: the whole Switchman, on both
transports, with tokens and mutual TLS, against grpcio's own client and certificates made here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from envoy.service.load_stats.v3 import lrs_pb2, lrs_pb2_grpc
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc
from grpc import aio

from switchman.api import Tokens
from switchman.api.grpc import management_pb2 as pb
from switchman.api.grpc import management_pb2_grpc as pb_grpc
from switchman.app import Switchman
from switchman.telemetry import TelemetrySettings
from switchman.xds.server.server import TRANSPORTS
from switchman.xds.tls import TlsSettings
from tests.certs import Authority, Issued
from tests.functional.api.docs import checkout
from tests.functional.conftest import Switchmen
from tests.functional.grpc_api.conftest import apply_request

ADMIN, READ = "s3cret", "r3ad"
TOKENS = Tokens(admin={"ci": ADMIN}, read={"viewer": READ}, read_identities=("spiffe://lab/ops/*",))
FRONT, OPS = "spiffe://lab/front", "spiffe://lab/ops/alice"
Start = Callable[..., Awaitable[Switchman]]


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return Authority(tmp_path)


@pytest.fixture(params=TRANSPORTS)
def start(ca: Authority, switchmen: Switchmen, request: pytest.FixtureRequest) -> Start:
    """``await start(tokens=..., mtls=...)``: a Switchman on the transport, its xDS port over mutual TLS (with
    ``--node-identities`` letting FRONT claim the group ``front``) unless ``mtls=False``."""
    server = ca.issue("xds-server", ips=("127.0.0.1",), server=True)

    async def make(tokens: Tokens = TOKENS, mtls: bool = True) -> Switchman:
        tls = TlsSettings(str(server.cert_file), str(server.key_file), str(ca.file)) if mtls else None
        return await switchmen(
            tokens=tokens, xds_transport=str(request.param), xds_tls=tls,
            node_identities={FRONT: ("front",)} if mtls else {},
            telemetry=TelemetrySettings(load_reporting_interval=0.5),
        )

    return make


def _channel(app: Switchman, ca: Authority, client: Issued) -> aio.Channel:
    credentials = grpc.ssl_channel_credentials(ca.pem, client.key, client.cert)
    return aio.secure_channel(f"127.0.0.1:{app.xds_port}", credentials)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def _csds(channel: aio.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> list[Any]:
    """CSDS both ways (fetch, and one request on a stream): the two answers; raises the refusal."""
    stub = csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel)
    fetched = await stub.FetchClientStatus(csds_pb2.ClientStatusRequest(), metadata=metadata, timeout=5)
    stream = stub.StreamClientStatus(metadata=metadata)
    await stream.write(csds_pb2.ClientStatusRequest())
    streamed = await asyncio.wait_for(stream.read(), 5)
    stream.cancel()
    return [fetched, streamed]


async def _refused(call: Awaitable[Any]) -> aio.AioRpcError:
    with pytest.raises(aio.AioRpcError) as info:
        await call
    return info.value


async def test_csds_needs_a_token_or_a_certificate_that_may_read(start: Start, ca: Authority) -> None:
    app = await start()
    front, ops = ca.issue("front", uris=(FRONT,)), ca.issue("ops", uris=(OPS,))
    async with _channel(app, ca, front) as channel:  # a node identity grants no CSDS
        error = await _refused(_csds(channel))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "bearer token is required" in str(error.details())
        assert dict(error.trailing_metadata() or ()) == {"switchman-error-code": "unauthorized"}
        unknown = await _refused(_csds(channel, bearer("guess")))
        assert (unknown.code(), unknown.details()) == (grpc.StatusCode.UNAUTHENTICATED, "the token is not known")
        assert len(await _csds(channel, bearer(READ))) == 2
        assert len(await _csds(channel, bearer(ADMIN))) == 2
    async with _channel(app, ca, ops) as channel:  # --read-identities: no token needed
        assert len(await _csds(channel)) == 2


async def test_with_tokens_a_plaintext_port_wants_one_and_without_tokens_csds_stays_open(start: Start) -> None:
    secured = await start(mtls=False)
    async with aio.insecure_channel(f"127.0.0.1:{secured.xds_port}") as channel:
        error = await _refused(_csds(channel))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert len(await _csds(channel, bearer(READ))) == 2
    lab = await start(tokens=Tokens(), mtls=False)
    async with aio.insecure_channel(f"127.0.0.1:{lab.xds_port}") as channel:
        assert len(await _csds(channel)) == 2


async def test_a_certificate_that_may_read_reads_the_management_api_and_changes_nothing(
    start: Start, ca: Authority,
) -> None:
    app = await start()
    async with _channel(app, ca, ca.issue("front", uris=(FRONT,))) as channel:
        admin = pb_grpc.ManagementStub(channel)
        await admin.Apply(apply_request(checkout()), metadata=bearer(ADMIN))
        denied = await _refused(admin.ListDocuments(pb.ListDocumentsRequest()))
        assert denied.code() == grpc.StatusCode.UNAUTHENTICATED  # a node identity reads nothing
    async with _channel(app, ca, ca.issue("ops", uris=(OPS,))) as channel:
        reader = pb_grpc.ManagementStub(channel)
        listed = await reader.ListDocuments(pb.ListDocumentsRequest())
        assert len(listed.documents) == len(checkout())
        error = await _refused(reader.Apply(apply_request(checkout(), message="by a certificate")))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f"certificate identity '{OPS}' may only read" in str(error.details())
        history = await reader.History(pb.HistoryRequest())
        assert [r.author for r in history.revisions] == ["ci"]


def _access_logs(node: base_pb2.Node) -> AsyncIterator[als_pb2.StreamAccessLogsMessage]:
    async def messages() -> AsyncIterator[als_pb2.StreamAccessLogsMessage]:
        message = als_pb2.StreamAccessLogsMessage()
        message.identifier.node.CopyFrom(node)
        entry = message.http_logs.log_entry.add()
        entry.common_properties.upstream_cluster = "checkout-v2"
        entry.common_properties.start_time.FromSeconds(int(time.time()))
        entry.response.response_code.value = 503
        yield message

    return messages()


async def test_reports_count_only_for_a_node_group_the_client_may_claim(start: Start, ca: Authority) -> None:
    app = await start()
    intruder, own = base_pb2.Node(id="front-1", cluster="checkout"), base_pb2.Node(id="front-1", cluster="front")
    async with _channel(app, ca, ca.issue("front", uris=(FRONT,))) as channel:
        als = als_pb2_grpc.AccessLogServiceStub(channel)
        error = await _refused(als.StreamAccessLogs(_access_logs(intruder), timeout=5))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f"identity '{FRONT}' may not be served node group 'checkout'" in str(error.details())
        lrs = lrs_pb2_grpc.LoadReportingServiceStub(channel).StreamLoadStats()
        await lrs.write(lrs_pb2.LoadStatsRequest(node=intruder))
        assert await asyncio.wait_for(lrs.code(), 5) == grpc.StatusCode.PERMISSION_DENIED
        assert "'checkout'" in str(await lrs.details())
        assert app.telemetry.series() == []

        await als.StreamAccessLogs(_access_logs(own), timeout=5)
        lrs = lrs_pb2_grpc.LoadReportingServiceStub(channel).StreamLoadStats()
        await lrs.write(lrs_pb2.LoadStatsRequest(node=own))
        assert (await asyncio.wait_for(lrs.read(), 5)).send_all_clusters
        lrs.cancel()
    window = app.telemetry.window("checkout-v2", time.time() - 60, time.time() + 1, reporter="front")
    assert (window.requests, window.errors_5xx) == (1, 1)
