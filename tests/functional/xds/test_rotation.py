"""The xDS port's certificates rotated while it serves, on both transports: new connections get the new ones,
open connections keep going, and files that do not do leave the old certificate in use."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from grpc import aio

from switchman.certificates import ServerCertificates
from switchman.testing.builders import eds_cluster, load_assignment
from switchman.xds import Snapshot, SnapshotCache, XdsServer, XdsSettings
from switchman.xds import resources as rt
from switchman.xds.server.server import TRANSPORTS
from switchman.xds.tls import TlsSettings
from tests.certs import Authority, Issued, install, names, new_certificate, replace_file, served_certificate

NODE = base_pb2.Node(id="front-1", cluster="front")


@dataclass
class Port:
    """A running xDS port over mutual TLS: the CA of its certificates, the CA its client CA file holds now, and
    where its files are."""

    xds: XdsServer
    server_ca: Authority
    clients: Authority
    cert_file: Path
    key_file: Path
    client_ca_file: Path

    def channel(self, client: Issued, target_name: str | None = None) -> aio.Channel:
        credentials = grpc.ssl_channel_credentials(self.server_ca.pem, client.key, client.cert)
        options = [("grpc.ssl_target_name_override", target_name)] if target_name else []
        return aio.secure_channel(f"127.0.0.1:{self.xds.port}", credentials, options=options)


def _snapshot(version: str) -> Snapshot:
    """A cluster named after ``version``: each version changes what a stream of clusters is sent."""
    name = f"web-{version}"
    return Snapshot.build([eds_cluster(name), load_assignment(name, [("127.0.0.1", 9000)])], version=version)


@pytest.fixture
def poll_seconds() -> float:
    """The port's files are looked at only when a test says so (``certificates.check``) unless it sets this."""
    return 0.0


@pytest.fixture(params=TRANSPORTS)
async def port(request: pytest.FixtureRequest, tmp_path: Path, cache: SnapshotCache,
               poll_seconds: float) -> AsyncIterator[Port]:
    """An xDS port over mutual TLS, its files in ``tmp_path``."""
    server_ca, clients = Authority(tmp_path, "server CA"), Authority(tmp_path, "clients")
    first = server_ca.issue("xds-server", ips=("127.0.0.1",), dns=("xds-1.lab",), server=True)
    client_ca_file = tmp_path / "client-ca.pem"
    client_ca_file.write_bytes(clients.pem)
    tls = TlsSettings(str(first.cert_file), str(first.key_file), str(client_ca_file), poll_seconds=poll_seconds)
    cache.set_snapshot("front", _snapshot("v1"))
    xds = XdsServer(cache, XdsSettings(tls=tls, transport=str(request.param)))
    await xds.start("127.0.0.1:0")
    yield Port(xds, server_ca, clients, first.cert_file, first.key_file, client_ca_file)
    await xds.stop(0.5)


async def _stream(channel: aio.Channel) -> aio.StreamStreamCall:
    call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
    await call.write(discovery_pb2.DiscoveryRequest(node=NODE, type_url=rt.CLUSTER))
    return call


async def _next(call: aio.StreamStreamCall) -> discovery_pb2.DiscoveryResponse:
    response = await asyncio.wait_for(call.read(), 5)
    assert isinstance(response, discovery_pb2.DiscoveryResponse), response
    await call.write(discovery_pb2.DiscoveryRequest(type_url=rt.CLUSTER, version_info=response.version_info,
                                                    response_nonce=response.nonce))
    return response


def _certificates(port: Port) -> ServerCertificates:
    assert port.xds.certificates is not None
    return port.xds.certificates


async def test_a_rotated_certificate_goes_to_new_connections_and_open_ones_keep_going(
    port: Port, cache: SnapshotCache,
) -> None:
    client = port.clients.issue("front", uris=("spiffe://lab/front",))
    old_serial = (await served_certificate(port.xds.port, port.server_ca, client)).serial_number
    async with port.channel(client) as before:
        stream = await _stream(before)
        assert (await _next(stream)).version_info == "v1"

        rotated = port.server_ca.issue("xds-server-2", ips=("127.0.0.1",), dns=("xds-2.lab",), server=True)
        install(rotated, port.cert_file, port.key_file)
        assert await _certificates(port).check()

        served = await served_certificate(port.xds.port, port.server_ca, client)
        assert served.serial_number != old_serial
        assert "xds-2.lab" in names(served) and "xds-1.lab" not in names(served)
        # A gRPC client that checks for the new name gets its config; one that wants the old name no longer can.
        async with port.channel(client, "xds-2.lab") as after:
            assert (await _next(await _stream(after))).version_info == "v1"
        async with port.channel(client, "xds-1.lab") as stale:
            with pytest.raises(aio.AioRpcError) as refused:
                await _next(await _stream(stale))
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        # The connection made before the rotation still gets pushes.
        cache.set_snapshot("front", _snapshot("v2"))
        assert (await _next(stream)).version_info == "v2"
        stream.cancel()


async def test_files_that_do_not_do_leave_the_certificate_in_use(
    port: Port, caplog: pytest.LogCaptureFixture,
) -> None:
    client = port.clients.issue("front", uris=("spiffe://lab/front",))
    in_use = (await served_certificate(port.xds.port, port.server_ca, client)).serial_number
    other = port.server_ca.issue("someone-else", ips=("127.0.0.1",), server=True)
    rotated = port.server_ca.issue("xds-server-2", ips=("127.0.0.1",), dns=("xds-2.lab",), server=True)
    caplog.set_level(logging.INFO, "switchman.certificates")

    replace_file(port.key_file, other.key)  # the new certificate's key is not there yet: not its key
    replace_file(port.cert_file, rotated.cert)
    assert not await _certificates(port).check()
    assert "xDS port: the certificate files changed but cannot be used, so sha256:" in caplog.text
    assert "--xds-tls-cert:" in caplog.text and "KEY_VALUES_MISMATCH" in caplog.text
    assert (await served_certificate(port.xds.port, port.server_ca, client)).serial_number == in_use
    async with port.channel(client) as channel:
        assert (await _next(await _stream(channel))).version_info == "v1"

    replace_file(port.key_file, b"")  # an empty key
    assert not await _certificates(port).check()
    port.key_file.unlink()  # a key that cannot be read
    caplog.clear()
    assert not await _certificates(port).check(forced=True)
    assert "--xds-tls-key: cannot read" in caplog.text and "No such file" in caplog.text
    assert (await served_certificate(port.xds.port, port.server_ca, client)).serial_number == in_use

    replace_file(port.key_file, rotated.key)  # the rotation done right
    assert await _certificates(port).check()
    served = await served_certificate(port.xds.port, port.server_ca, client)
    assert served.serial_number != in_use and "xds-2.lab" in names(served)


async def test_a_rotated_client_ca_refuses_the_old_ones_clients(port: Port, cache: SnapshotCache) -> None:
    old_client = port.clients.issue("front-old", uris=("spiffe://lab/front",))
    new_clients = Authority(port.clients.directory, "clients 2")
    new_client = new_clients.issue("front-new", uris=("spiffe://lab/front",))
    async with port.channel(old_client) as before:
        stream = await _stream(before)
        assert (await _next(stream)).version_info == "v1"

        replace_file(port.client_ca_file, new_clients.pem)
        assert await _certificates(port).check()

        async with port.channel(old_client) as refused:
            with pytest.raises(aio.AioRpcError) as caught:
                await _next(await _stream(refused))
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # the handshake fails
        async with port.channel(new_client) as accepted:
            assert (await _next(await _stream(accepted))).version_info == "v1"
        cache.set_snapshot("front", _snapshot("v2"))  # the old client's open connection goes on
        assert (await _next(stream)).version_info == "v2"
        stream.cancel()


@pytest.mark.parametrize("poll_seconds", [0.1])
async def test_changed_files_are_noticed_without_being_told(port: Port) -> None:
    client = port.clients.issue("front", uris=("spiffe://lab/front",))
    old_serial = (await served_certificate(port.xds.port, port.server_ca, client)).serial_number
    install(port.server_ca.issue("xds-server-2", ips=("127.0.0.1",), dns=("xds-2.lab",), server=True),
            port.cert_file, port.key_file)
    served = await new_certificate(port.xds.port, port.server_ca, old_serial, client)
    assert "xds-2.lab" in names(served)
    assert _certificates(port).current.generation == 2
