"""``switchman serve`` with its TLS flags, as a real process: it says at start who may do what on each port, and
both ports then serve what it said (mutual TLS on the xDS port, HTTPS on the API)."""

from __future__ import annotations

import asyncio
import re
import signal
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc
from grpc import aio

from switchman.client import SwitchmanClient
from tests.certs import Authority, install, names, new_certificate, served_certificate
from tests.functional.cli.conftest import ROOT, clean_environ

_SERVING = re.compile(r"serving: xDS on port (\d+), API on port (\d+)")


@dataclass
class Served:
    """A running ``switchman serve``: its ports and what it logged until it said where it serves."""

    proc: asyncio.subprocess.Process
    xds_port: int = 0
    api_port: int = 0
    lines: list[str] = field(default_factory=list)

    def said(self, level: str, text: str) -> bool:
        return any(f" {level} " in line and text in line for line in self.lines)


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    started: list[Served] = []
    drains: list[asyncio.Task[None]] = []

    async def start(*flags: str) -> Served:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchman", "serve", "--store", str(tmp_path / f"s{len(started)}.db"),
            "--xds-address", "127.0.0.1:0", "--api-address", "127.0.0.1:0", *flags,
            stderr=asyncio.subprocess.PIPE, env=clean_environ(tmp_path), cwd=ROOT,
        )
        served = Served(proc)
        started.append(served)
        assert proc.stderr is not None
        while not served.xds_port:
            line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
            assert line, "\n".join(served.lines)
            served.lines.append(line.rstrip())
            if match := _SERVING.search(line):
                served.xds_port, served.api_port = int(match.group(1)), int(match.group(2))
        drains.append(asyncio.create_task(_drain(proc.stderr)))
        return served

    yield start
    for served in started:
        if served.proc.returncode is None:
            served.proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(served.proc.wait(), 10)
    for drain in drains:
        await drain


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def test_without_tls_or_tokens_serve_warns_that_both_ports_are_open(serve: Serve) -> None:
    served = await serve("--xds-transport", "grpc")
    assert served.said("WARNING", "(grpc, loopback only): plaintext, no client certificates"), served.lines
    assert served.said("WARNING", "any client may claim any node group, and report access logs and load")
    assert served.said("WARNING", "CSDS and the gRPC management API (reads and changes) are open to anyone")
    assert served.said("WARNING", "API port 127.0.0.1:")
    assert served.said("WARNING", "no API tokens configured")


@pytest.mark.parametrize("transport", ["h2", "grpc"])
async def test_tls_on_both_ports_from_the_flags(serve: Serve, tmp_path: Path, transport: str) -> None:
    ca = Authority(tmp_path)
    server = ca.issue("switchman", ips=("127.0.0.1",), server=True)
    ops = ca.issue("ops", uris=("spiffe://lab/ops/alice",))
    served = await serve(
        "--xds-transport", transport, "--tls-cert", str(server.cert_file), "--tls-key", str(server.key_file),
        "--xds-client-ca", str(ca.file), "--node-identities", "spiffe://lab/front=front",
        "--admin-tokens", "ci=s3cret", "--read-identities", "spiffe://lab/ops/*",
    )
    assert served.said("INFO", f"({transport}, loopback only): mutual TLS ({server.cert_file}, looked at every 2 s "
                               f"and on SIGHUP), client certificates from {ca.file}"), served.lines
    assert served.said("INFO", "node groups only as --node-identities allows (1 identities)")
    assert served.said("INFO", "CSDS and the management API's reads need a read or admin token, or a client "
                               "certificate matching --read-identities (spiffe://lab/ops/*); changes an admin token")
    assert served.said("INFO", f"API port 127.0.0.1:{served.api_port} (loopback only): TLS ({server.cert_file}, "
                               "looked at every 2 s and on SIGHUP)")
    assert served.said("INFO", "/healthz, /readyz and /v1/openapi.json are open")
    assert not any(" WARNING " in line for line in served.lines), served.lines

    credentials = grpc.ssl_channel_credentials(ca.pem, ops.key, ops.cert)
    async with aio.secure_channel(f"127.0.0.1:{served.xds_port}", credentials) as channel:
        stub = csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel)
        assert list((await stub.FetchClientStatus(csds_pb2.ClientStatusRequest(), timeout=5)).config) == []
    async with SwitchmanClient(f"https://127.0.0.1:{served.api_port}", "s3cret", ca_cert=str(ca.file)) as client:
        assert await client.history() == []


async def _healthz(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """GET /healthz on an open HTTP/1.1 connection, kept alive; the answer's status line."""
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: switchman\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
    await reader.readexactly(length)
    return head.split(b"\r\n", 1)[0]


async def test_sighup_rotates_the_certificates_of_both_ports(serve: Serve, tmp_path: Path) -> None:
    ca = Authority(tmp_path)
    first = ca.issue("switchman", ips=("127.0.0.1",), dns=("switchman-1.lab",), server=True)
    served = await serve("--tls-cert", str(first.cert_file), "--tls-key", str(first.key_file),
                         "--tls-poll-seconds", "0")
    assert served.said("INFO", f"TLS ({first.cert_file}, looked at on SIGHUP)"), served.lines
    old = {p: (await served_certificate(p, ca, alpn=a)).serial_number
           for p, a in ((served.xds_port, "h2"), (served.api_port, "http/1.1"))}
    context = ssl.create_default_context(cafile=str(ca.file))
    reader, writer = await asyncio.open_connection("127.0.0.1", served.api_port, ssl=context)
    try:
        assert await _healthz(reader, writer) == b"HTTP/1.1 200 OK"
        install(ca.issue("switchman-2", ips=("127.0.0.1",), dns=("switchman-2.lab",), server=True),
                first.cert_file, first.key_file)
        served.proc.send_signal(signal.SIGHUP)
        for port, alpn in ((served.xds_port, "h2"), (served.api_port, "http/1.1")):
            assert names(await new_certificate(port, ca, old[port], alpn=alpn)) == ["switchman-2.lab", "127.0.0.1"]
        assert await _healthz(reader, writer) == b"HTTP/1.1 200 OK"  # the connection made before goes on
    finally:
        writer.close()
    async with SwitchmanClient(f"https://127.0.0.1:{served.api_port}", ca_cert=str(ca.file)) as client:
        assert await client.history() == []
