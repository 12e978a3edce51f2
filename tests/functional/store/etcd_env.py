"""The etcd the store tests run against: ``SWITCHMAN_TEST_ETCD=host:port`` (.ci/run starts one)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import aetcd  # type: ignore[import-untyped]
import pytest

ENDPOINT = os.environ.get("SWITCHMAN_TEST_ETCD", "")

needs_etcd = pytest.mark.skipif(
    not ENDPOINT, reason="SWITCHMAN_TEST_ETCD is not set (host:port of an etcd to test against; .ci/run starts one)"
)


def host_port(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)


@contextlib.asynccontextmanager
async def fresh_prefix() -> AsyncIterator[str]:
    """A key prefix of its own on the test etcd, with everything under it deleted afterwards."""
    prefix = f"/switchman-test/{uuid.uuid4().hex}"
    yield prefix
    host, port = host_port(ENDPOINT)
    client = aetcd.Client(host=host, port=port, timeout=10)
    try:
        await client.delete_prefix(f"{prefix}/".encode())
    finally:
        await client.close()
