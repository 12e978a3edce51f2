"""A private etcd member for the tests that stop, restart or secure their etcd (the shared test etcd,
``SWITCHMAN_TEST_ETCD``, is left alone): plaintext, or TLS with client certificates, on loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import pytest
from aetcd import rpc  # type: ignore[import-untyped]

from switchman.lab.local.etcd import free_port
from switchman.store import EtcdStore, StoreError
from switchman.store.etcd_client import EtcdClient, EtcdTls
from tests.certs import Authority, Issued

__all__ = [
    "EtcdCerts", "enable_auth", "free_port", "needs_etcd_binary", "private_etcd", "until_healthy", "until_up",
]

needs_etcd_binary = pytest.mark.skipif(shutil.which("etcd") is None, reason="no etcd binary to start a private etcd")


@dataclass(frozen=True)
class EtcdCerts:
    """etcd's server certificate, the CA that signed it and that etcd trusts for clients, and a client's."""

    ca: Authority
    server: Issued
    client: Issued

    @classmethod
    def make(cls, directory: Path) -> EtcdCerts:
        ca = Authority(directory, "etcd CA")
        return cls(ca, ca.issue("etcd", ips=("127.0.0.1",), dns=("localhost",), server=True),
                   ca.issue("switchman-etcd-client", dns=("switchman",)))

    def client_tls(self) -> EtcdTls:
        return EtcdTls.from_files(str(self.ca.file), str(self.client.cert_file), str(self.client.key_file))

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca.file))
        context.load_cert_chain(self.client.cert_file, self.client.key_file)
        return context


@contextlib.contextmanager
def private_etcd(
    data: Path, client_port: int, peer_port: int, *, certs: EtcdCerts | None = None, quota_bytes: int | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """etcd on 127.0.0.1 with its data in ``data`` (kept across restarts); with ``certs``, clients speak TLS and
    must present a certificate its CA signed; with ``quota_bytes``, its database refuses writes past that size
    (``--quota-backend-bytes``). Killed (SIGKILL) when the block ends; its log is ``data``.log."""
    binary = shutil.which("etcd")
    assert binary is not None
    url = f"{'https' if certs else 'http'}://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    flags = {
        "--name": "t",
        "--data-dir": str(data),
        "--listen-client-urls": url,
        "--advertise-client-urls": url,
        "--listen-peer-urls": peer,
        "--initial-advertise-peer-urls": peer,
        "--initial-cluster": f"t={peer}",
    }
    if quota_bytes is not None:
        flags["--quota-backend-bytes"] = str(quota_bytes)
    if certs is not None:
        flags |= {"--cert-file": str(certs.server.cert_file), "--key-file": str(certs.server.key_file),
                  "--trusted-ca-file": str(certs.ca.file), "--client-cert-auth": "true"}
    with open(data.parent / f"{data.name}.log", "ab") as log:
        proc = subprocess.Popen(
            [binary, *(f"{flag}={value}" for flag, value in flags.items())], stdout=log, stderr=log
        )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


async def until_up(store: EtcdStore) -> None:
    async with asyncio.timeout(30):
        while True:
            with contextlib.suppress(StoreError):
                await store.history(limit=1)
                return
            await asyncio.sleep(0.1)


async def until_healthy(client_port: int, certs: EtcdCerts | None = None, timeout: float = 30.0) -> float:
    """Poll etcd's own health endpoint (not through any store: that would reconnect the store's channel for
    it) every 10 ms; the ``time.monotonic()`` at which it first said healthy."""
    url = f"{'https' if certs else 'http'}://127.0.0.1:{client_port}/health"
    context = certs.ssl_context() if certs else None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session, asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url, ssl=context or False) as resp:
                    if (await resp.json(content_type=None)).get("health") == "true":
                        return time.monotonic()
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def _root_client(client_port: int, certs: EtcdCerts | None) -> AsyncIterator[EtcdClient]:
    client = EtcdClient("127.0.0.1", client_port, timeout=10, options={},
                        tls=certs.client_tls() if certs else None)
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


async def enable_auth(client_port: int, certs: EtcdCerts | None, user: str, password: str, prefix: str) -> None:
    """Turn etcd's authentication on: a root user, and ``user`` whose only role may read and write the keys
    under ``prefix`` (as an operator does with ``etcdctl role grant-permission --prefix``)."""
    async with _root_client(client_port, certs) as client:
        auth = rpc.AuthStub(client.channel)
        await auth.UserAdd(rpc.AuthUserAddRequest(name="root", password="root-secret"))
        await auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user="root", role="root"))
        await auth.RoleAdd(rpc.AuthRoleAddRequest(name="switchman"))
        key = prefix.encode()
        end = key[:-1] + bytes([key[-1] + 1])
        permission = rpc.Permission(permType=rpc.Permission.READWRITE, key=key, range_end=end)
        await auth.RoleGrantPermission(rpc.AuthRoleGrantPermissionRequest(name="switchman", perm=permission))
        await auth.UserAdd(rpc.AuthUserAddRequest(name=user, password=password))
        await auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user=user, role="switchman"))
        try:
            await auth.AuthEnable(rpc.AuthEnableRequest())
        except grpc.aio.AioRpcError as exc:  # pragma: no cover - says why, if etcd refuses
            raise AssertionError(f"etcd refused to enable authentication: {exc.details()}") from exc
