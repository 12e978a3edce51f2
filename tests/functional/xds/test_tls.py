"""TLS and mutual TLS on the xDS port, on both transports, against grpcio's client with certificates made here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc
from grpc import aio

from switchman.errors import ConfigError
from switchman.testing.builders import eds_cluster, load_assignment
from switchman.xds import Snapshot, SnapshotCache, XdsServer, XdsSettings
from switchman.xds import resources as rt
from switchman.xds.server.server import TRANSPORTS
from switchman.xds.tls import TlsSettings
from tests.certs import Authority, Issued

IDENTITIES = {"spiffe://lab/front": ("front",), "spiffe://lab/pod-*": ("checkout-*",)}


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return Authority(tmp_path)


@pytest.fixture
def server_cert(ca: Authority) -> Issued:
    return ca.issue("xds-server", ips=("127.0.0.1",), server=True)


def _snapshot() -> Snapshot:
    return Snapshot.build([eds_cluster("web"), load_assignment("web", [("127.0.0.1", 9000)]),
                           secret_pb2.Secret(name="front-cert")])


async def _serve(cache: SnapshotCache, ca: Authority | None, server_cert: Issued, *, require: bool = True,
                 identities: dict[str, tuple[str, ...]] | None = None, transport: str = "h2") -> XdsServer:
    """A server with ``server_cert``; mutual TLS with ``ca`` (no client CA without one)."""
    for group in ("front", "checkout-v2"):
        cache.set_snapshot(group, _snapshot())
    tls = TlsSettings(str(server_cert.cert_file), str(server_cert.key_file), str(ca.file) if ca else None,
                      require_client_cert=require and ca is not None)
    xds = XdsServer(cache, XdsSettings(tls=tls, node_identities=IDENTITIES if identities is None else identities,
                                       transport=transport))
    await xds.start("127.0.0.1:0")
    return xds


@pytest.fixture
async def mtls(cache: SnapshotCache, ca: Authority, server_cert: Issued, transport: str) -> AsyncIterator[XdsServer]:
    xds = await _serve(cache, ca, server_cert, transport=transport)
    yield xds
    await xds.stop(0.5)


def _channel(xds: XdsServer, ca: Authority, client: Issued | None) -> aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        ca.pem, client.key if client else None, client.cert if client else None)
    return aio.secure_channel(f"127.0.0.1:{xds.port}", credentials)


async def _first(channel: aio.Channel, cluster: str, type_url: str = rt.CLUSTER) -> discovery_pb2.DiscoveryResponse:
    call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
    await call.write(discovery_pb2.DiscoveryRequest(node=base_pb2.Node(id=f"{cluster}-1", cluster=cluster),
                                                    type_url=type_url))
    response = await asyncio.wait_for(call.read(), 5)
    assert isinstance(response, discovery_pb2.DiscoveryResponse)
    return response


async def test_an_allowed_identity_gets_its_config(mtls: XdsServer, ca: Authority) -> None:
    front = ca.issue("front", uris=("spiffe://lab/front",))
    pod = ca.issue("pod-7", uris=("spiffe://lab/pod-7",), dns=("pod-7.lab",))
    async with _channel(mtls, ca, front) as channel:
        response = await _first(channel, "front")
        assert [r.type_url for r in response.resources] == [rt.CLUSTER]
    async with _channel(mtls, ca, pod) as channel:  # a prefix pattern, a prefix group
        assert len((await _first(channel, "checkout-v2")).resources) == 1


async def test_an_identity_claiming_another_group_is_denied(mtls: XdsServer, ca: Authority) -> None:
    pod = ca.issue("pod-7", uris=("spiffe://lab/pod-7",))
    async with _channel(mtls, ca, pod) as channel:
        with pytest.raises(aio.AioRpcError) as caught:
            await _first(channel, "front")
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'spiffe://lab/pod-7'" in str(caught.value.details())
    assert "'front'" in str(caught.value.details())
    assert mtls.statuses() == []


async def test_a_dns_name_is_the_identity_without_a_spiffe_id(cache: SnapshotCache, ca: Authority,
                                                               server_cert: Issued, transport: str) -> None:
    xds = await _serve(cache, ca, server_cert, identities={"front.lab": ("front",)}, transport=transport)
    try:
        named = ca.issue("front-dns", dns=("front.lab",), uris=("https://not-spiffe.example/",))
        async with _channel(xds, ca, named) as channel:
            assert len((await _first(channel, "front")).resources) == 1
    finally:
        await xds.stop(0.5)


async def test_plaintext_and_certificate_less_clients_are_refused(mtls: XdsServer, ca: Authority) -> None:
    async with aio.insecure_channel(f"127.0.0.1:{mtls.port}") as channel:
        with pytest.raises(aio.AioRpcError) as plain:
            await _first(channel, "front")
    assert plain.value.code() == grpc.StatusCode.UNAVAILABLE
    async with _channel(mtls, ca, None) as channel:  # TLS, but no client certificate: the handshake fails
        with pytest.raises(aio.AioRpcError) as anonymous:
            await _first(channel, "front")
    assert anonymous.value.code() == grpc.StatusCode.UNAVAILABLE
    other_ca = Authority(ca.directory, "another CA")
    stranger = other_ca.issue("stranger", uris=("spiffe://lab/front",))
    async with _channel(mtls, ca, stranger) as channel:  # a certificate the client CA did not sign
        with pytest.raises(aio.AioRpcError) as forged:
            await _first(channel, "front")
    assert forged.value.code() == grpc.StatusCode.UNAVAILABLE


async def _secrets_refused_without_a_certificate(xds: XdsServer, ca: Authority) -> None:
    node = base_pb2.Node(id="front-1", cluster="front")
    async with _channel(xds, ca, None) as channel:
        sds = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
        stream = sds.StreamSecrets()
        await stream.write(discovery_pb2.DiscoveryRequest(node=node))
        with pytest.raises(aio.AioRpcError) as streamed:
            await asyncio.wait_for(stream.read(), 5)
        assert streamed.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(aio.AioRpcError) as fetched:
            await sds.FetchSecrets(discovery_pb2.DiscoveryRequest(node=node), timeout=5)
        assert fetched.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "certificate" in str(fetched.value.details())
        # On ADS the secrets are not answered; the stream and its other types go on.
        ads = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
        await ads.write(discovery_pb2.DiscoveryRequest(node=node, type_url=rt.SECRET))
        await ads.write(discovery_pb2.DiscoveryRequest(type_url=rt.CLUSTER))
        response = await asyncio.wait_for(ads.read(), 5)
        assert response.type_url == rt.CLUSTER
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ads.read(), 0.5)
        ads.cancel()


async def test_secrets_go_only_to_clients_with_a_certificate(cache: SnapshotCache, ca: Authority,
                                                             server_cert: Issued) -> None:
    xds = await _serve(cache, ca, server_cert, require=False, identities={})  # a certificate is optional (h2)
    try:
        await _secrets_refused_without_a_certificate(xds, ca)
        async with _channel(xds, ca, ca.issue("front", uris=("spiffe://lab/front",))) as channel:
            secrets = await _first(channel, "front", rt.SECRET)
            assert [r.type_url for r in secrets.resources] == [rt.SECRET]
    finally:
        await xds.stop(0.5)


async def test_without_client_certificates_no_secrets_are_served(cache: SnapshotCache, ca: Authority,
                                                                 server_cert: Issued, transport: str) -> None:
    xds = await _serve(cache, None, server_cert, identities={}, transport=transport)  # TLS, no client CA
    try:
        await _secrets_refused_without_a_certificate(xds, ca)
    finally:
        await xds.stop(0.5)


async def test_certified_clients_get_secrets(mtls: XdsServer, ca: Authority) -> None:
    async with _channel(mtls, ca, ca.issue("front", uris=("spiffe://lab/front",))) as channel:
        secrets = await _first(channel, "front", rt.SECRET)
        assert [r.type_url for r in secrets.resources] == [rt.SECRET]
        fetched = await sds_pb2_grpc.SecretDiscoveryServiceStub(channel).FetchSecrets(
            discovery_pb2.DiscoveryRequest(node=base_pb2.Node(id="front-1", cluster="front")), timeout=5)
        assert len(fetched.resources) == 1


async def test_tls_files_that_do_not_do_are_refused_naming_the_flag(cache: SnapshotCache, ca: Authority,
                                                                     server_cert: Issued, tmp_path: Path,
                                                                     transport: str) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    cert, key, junk = str(server_cert.cert_file), str(server_cert.key_file), str(tmp_path / "junk.pem")
    cases = [
        (TlsSettings(str(tmp_path / "missing.crt"), key, str(ca.file)), "--xds-tls-cert: cannot read"),
        (TlsSettings(cert, str(tmp_path / "missing.key"), str(ca.file)), "--xds-tls-key: cannot read"),
        (TlsSettings(junk, key, str(ca.file)), "--xds-tls-cert:"),
        (TlsSettings(cert, key, junk), "--xds-client-ca:"),
        (TlsSettings(cert, key, None), "--xds-client-ca: client certificates are required"),
    ]
    for tls, says in cases:
        xds = XdsServer(cache, XdsSettings(tls=tls, transport=transport))
        with pytest.raises(ConfigError, match=says.replace("(", r"\(")):
            await xds.start("127.0.0.1:0")


async def test_the_grpc_transport_cannot_make_a_client_certificate_optional(
    cache: SnapshotCache, ca: Authority, server_cert: Issued,
) -> None:
    tls = TlsSettings(str(server_cert.cert_file), str(server_cert.key_file), str(ca.file), require_client_cert=False)
    xds = XdsServer(cache, XdsSettings(transport="grpc", tls=tls))
    with pytest.raises(ConfigError, match="--xds-client-ca: the grpc transport cannot make client certificates "
                                          "optional"):
        await xds.start("127.0.0.1:0")


def test_node_identities_need_client_certificates(cache: SnapshotCache, server_cert: Issued) -> None:
    tls = TlsSettings(str(server_cert.cert_file), str(server_cert.key_file), None, require_client_cert=False)
    for without_a_client_ca in (None, tls):  # plaintext, or TLS that asks for no client certificate
        with pytest.raises(ConfigError, match=r"^--node-identities: needs --xds-client-ca: .* every node would be "
                                              "refused"):
            XdsServer(cache, XdsSettings(tls=without_a_client_ca, node_identities=IDENTITIES))
