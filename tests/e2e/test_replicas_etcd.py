"""Two Switchman replicas on one etcd: an apply on one reaches the Envoys connected to the other."""

from __future__ import annotations

import os
import uuid
from typing import Any

import aiohttp
import pytest

from switchman.app import ServeSettings, Switchman
from switchman.lab.local import EnvoyProcess, Upstream, bootstrap
from tests.e2e.helpers import checkout_documents, wait_for_version

ETCD = os.environ.get("SWITCHMAN_TEST_ETCD", "")
pytestmark = [
    pytest.mark.envoy,
    pytest.mark.skipif(not ETCD, reason="SWITCHMAN_TEST_ETCD (host:port of an etcd) is not set; .ci/run sets it"),
]


async def apply(api_port: int, docs: list[dict[str, Any]]) -> dict[str, Any]:
    url = f"http://127.0.0.1:{api_port}/v1/apply"
    async with aiohttp.ClientSession() as s, s.post(url, json={"documents": docs}) as r:
        body: dict[str, Any] = await r.json()
        assert r.status == 200, body
        return body


async def test_apply_on_one_replica_reaches_envoys_of_the_other() -> None:
    store = f"etcd://{ETCD}/switchman-test-{uuid.uuid4().hex[:8]}"
    settings = ServeSettings(xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=store)
    a, b = Switchman(settings), Switchman(settings)
    blue, green = Upstream("checkout", "v1"), Upstream("checkout", "v2")
    await blue.start()
    await green.start()
    await a.start()
    await b.start()
    envoy = EnvoyProcess(bootstrap("replica-envoy", b.xds_port))
    try:
        await apply(a.api_port, checkout_documents(blue.port, green.port, {"v1": 100}))
        await envoy.start()
        port = await envoy.wait_listener("ingress")
        await wait_for_version(port, "v1")

        body = await apply(a.api_port, checkout_documents(blue.port, green.port, {"v2": 100}))
        await wait_for_version(port, "v2")  # through b's etcd watch, not through a
        assert b.controller.served_revision == body["revision"]
        assert [s.node_id for s in b.xds.statuses()] == ["replica-envoy"]
        assert a.xds.statuses() == []
    finally:
        await envoy.stop()
        await a.stop(0)
        await b.stop(0)
        await blue.stop()
        await green.stop()
