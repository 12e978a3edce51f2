"""Upstream TLS and protocols, through a real Switchman and a real Envoy to upstreams on loopback.

TLS: an HTTPS upstream whose certificate (made here, by a test CA) names
``checkout.internal`` and which asks Envoy for a client certificate (mutual
TLS). Envoy's certificate and the CA come from files or from Switchman's SDS
(served only over mutual TLS, so this Envoy reaches Switchman so). With the
right subject alt name the client gets the upstream's answers; with another
one every request is 503, Envoy counts ``ssl.fail_verify_san`` and the
upstream sees nothing.

Protocols: a gRPC server reached through Envoy as HTTP/2 (``protocol: GRPC``);
as HTTP/1.1 (the default) the same call fails.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from grpc import aio

from switchman.client import SwitchmanClient
from switchman.lab.local import EnvoyProcess, Upstream, XdsClientTls
from switchman.lab.local.grpc_echo import METHOD, GrpcEcho
from switchman.lab.local.upstream import VERSION_HEADER
from switchman.tls import TlsSettings
from tests.certs import Authority, Issued
from tests.e2e.helpers import switchman_and_envoy, until

pytestmark = pytest.mark.envoy

UPSTREAM_NAME = "checkout.internal"
SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


@dataclass
class Lab:
    api: SwitchmanClient
    envoy: EnvoyProcess
    ca: Authority
    client: Issued  # Envoy's certificate, to Switchman and to the upstream


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    ca = Authority(tmp_path)
    server = ca.issue("switchman", ips=("127.0.0.1",), server=True)
    client = ca.issue("front-1", uris=("spiffe://lab/front",))
    xds_tls = TlsSettings(str(server.cert_file), str(server.key_file), str(ca.file))
    envoy_tls = XdsClientTls(str(client.cert_file), str(client.key_file), str(ca.file))
    async with switchman_and_envoy(tmp_path, "front-1", xds_tls=xds_tls, envoy_tls=envoy_tls) as (api, envoy):
        yield Lab(api, envoy, ca, client)


def _routes_and_listener(*routes: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"kind": "Routes", "metadata": {"name": "ingress-routes"}, "spec": {"virtualHosts": [
            {"name": "all", "domains": ["*"], "routes": list(routes)}]}},
        {"kind": "Listener", "metadata": {"name": "ingress"}, "spec": {"port": 0, "routes": "ingress-routes"}},
    ]


def _secrets(lab: Lab) -> list[dict[str, Any]]:
    certificate = {"certificate_chain": {"filename": str(lab.client.cert_file)},
                   "private_key": {"filename": str(lab.client.key_file)}}
    return [
        {"kind": "EnvoyResource", "metadata": {"name": "envoy-client"},
         "spec": {"@type": SECRET_TYPE, "name": "envoy-client", "tls_certificate": certificate}},
        {"kind": "EnvoyResource", "metadata": {"name": "upstream-ca"},
         "spec": {"@type": SECRET_TYPE, "name": "upstream-ca",
                  "validation_context": {"trusted_ca": {"filename": str(lab.ca.file)}}}},
    ]


def _service(lab: Lab, name: str, port: int, source: str, san: str) -> dict[str, Any]:
    tls: dict[str, Any] = {"sni": UPSTREAM_NAME, "subjectAltNames": [{"dns": san}]}
    if source == "sds":
        tls |= {"secret": "envoy-client", "caSecret": "upstream-ca"}
    else:
        tls |= {"certFile": str(lab.client.cert_file), "keyFile": str(lab.client.key_file), "caFile": str(lab.ca.file)}
    return {"kind": "Service", "metadata": {"name": name}, "spec": {
        "versions": {"v1": {"endpoints": [{"address": "127.0.0.1", "port": port}]}}, "tls": tls}}


def _https_context(lab: Lab, tmp_path: Path) -> ssl.SSLContext:
    """The upstream's side: a certificate for checkout.internal, and a client certificate the test CA signed."""
    issued = lab.ca.issue("checkout", dns=(UPSTREAM_NAME,), server=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.cert_file, issued.key_file)
    context.load_verify_locations(cafile=lab.ca.file)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


async def _statuses(port: int, path: str, count: int) -> list[tuple[int, str | None]]:
    async with aiohttp.ClientSession() as session:
        out = []
        for i in range(count):
            async with session.get(f"http://127.0.0.1:{port}{path}/{i}") as resp:
                await resp.read()
                out.append((resp.status, resp.headers.get(VERSION_HEADER)))
        return out


@pytest.mark.parametrize("source", ["files", "sds"])
async def test_envoy_reaches_an_https_upstream_over_mutual_tls_only_when_its_name_matches(
    lab: Lab, tmp_path: Path, source: str
) -> None:
    """Two services on the same upstream: ``checkout`` expects its real name, ``impostor`` another one."""
    upstream = Upstream("checkout", "v1")
    await upstream.start(ssl_context=_https_context(lab, tmp_path))
    try:
        docs = [
            *(_secrets(lab) if source == "sds" else []),
            _service(lab, "checkout", upstream.port, source, UPSTREAM_NAME),
            _service(lab, "impostor", upstream.port, source, "other.internal"),
            *_routes_and_listener({"match": {"prefix": "/checkout"}, "service": "checkout"},
                                  {"match": {"prefix": "/impostor"}, "service": "impostor"}),
        ]
        await lab.api.apply(docs, message="checkout over TLS")
        port = await lab.envoy.wait_listener("ingress", timeout=15)

        async def answered() -> bool:
            return (await _statuses(port, "/checkout", 1)) == [(200, "v1")]

        await until(answered, 15, "checkout answering through Envoy over TLS")
        assert await _statuses(port, "/checkout", 10) == [(200, "v1")] * 10
        seen = upstream.requests
        assert await _statuses(port, "/impostor", 10) == [(503, None)] * 10
        assert upstream.requests == seen  # no request reached an upstream whose name did not match

        stats = await lab.envoy.stats("cluster.")
        assert stats["cluster.checkout-v1.ssl.handshake"] >= 1, stats
        assert stats["cluster.checkout-v1.ssl.fail_verify_san"] == 0, stats
        assert stats["cluster.impostor-v1.ssl.fail_verify_san"] >= 1, stats
        assert stats["cluster.impostor-v1.ssl.handshake"] == 0, stats
    finally:
        await upstream.stop()


async def _say(port: int, text: bytes, over: str = "") -> bytes:
    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        metadata = (("x-over", over),) if over else None
        answer: bytes = await channel.unary_unary(METHOD)(text, timeout=5, metadata=metadata)
        return answer


async def test_envoy_speaks_http2_to_a_grpc_upstream(lab: Lab) -> None:
    """Two clusters on the same gRPC server: ``echo`` with protocol GRPC, ``echo-h1`` with the default, HTTP/1.1."""
    echo = GrpcEcho("echo")
    await echo.start()
    try:
        clusters = [
            {"kind": "Cluster", "metadata": {"name": name}, "spec": {
                "endpoints": [{"address": "127.0.0.1", "port": echo.port}], **protocol}}
            for name, protocol in (("echo", {"protocol": "GRPC"}), ("echo-h1", {}))
        ]
        over_h1 = {"match": {"prefix": "/", "headers": [{"name": "x-over", "exact": "h1"}]}, "cluster": "echo-h1"}
        routes = _routes_and_listener(over_h1, {"match": {"prefix": "/"}, "cluster": "echo"})
        await lab.api.apply([*clusters, *routes], message="gRPC echo")
        port = await lab.envoy.wait_listener("ingress", timeout=15)

        async def answered() -> bool:
            try:
                return await _say(port, b"warm") == b"echo:warm"
            except grpc.RpcError:
                return False

        await until(answered, 15, "the echo answering through Envoy")
        assert [await _say(port, f"hello {i}".encode()) for i in range(5)] == [
            f"echo:hello {i}".encode() for i in range(5)
        ]
        stats = await lab.envoy.stats("cluster.echo.upstream_cx_http")
        assert stats["cluster.echo.upstream_cx_http2_total"] >= 1, stats
        assert stats["cluster.echo.upstream_cx_http1_total"] == 0, stats

        calls = echo.calls
        with pytest.raises(grpc.RpcError) as failed:
            await _say(port, b"again", over="h1")
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        assert echo.calls == calls
        stats = await lab.envoy.stats("cluster.echo-h1.upstream_cx_http")
        assert stats["cluster.echo-h1.upstream_cx_http1_total"] >= 1, stats
    finally:
        await echo.stop()
