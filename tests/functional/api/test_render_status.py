"""GET /v1/render (by group, by node) and /v1/status, with a real ADS stream connected."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from switchman.xds import resources as rt
from tests.functional.ads import AdsClient
from tests.functional.api.conftest import Api
from tests.functional.api.docs import checkout


async def test_render_before_anything_is_applied(api: Api) -> None:
    reply = await api.get("/v1/render")
    assert (reply.status, reply.body) == (200, {"group": "*", "resources": {}, "endpoints": {}})


async def test_render_the_default_group(api: Api) -> None:
    await api.apply(checkout())
    reply = await api.get("/v1/render")
    assert reply.status == 200
    assert reply.body["group"] == "*"
    resources = reply.body["resources"]
    assert list(resources) == ["sds", "cds", "eds", "lds", "rds"]
    assert [c["name"] for c in resources["cds"]] == ["checkout-v1", "checkout-v2"]
    assert [e["clusterName"] for e in resources["eds"]] == ["checkout-v1", "checkout-v2"]
    assert resources["rds"][0]["virtualHosts"][0]["routes"][0]["directResponse"]["status"] == 200
    assert resources["lds"][0]["address"]["socketAddress"] == {"address": "127.0.0.1", "portValue": 0}
    # Each endpoint with where it came from: here, the Service document.
    v1 = reply.body["endpoints"]["checkout-v1"]
    assert [(e["address"], e["health"], e["source"]) for e in v1] == [
        ("127.0.0.1", "HEALTHY", "document service/checkout")
    ]


async def test_render_a_group_without_its_own_snapshot_falls_back_to_the_default(api: Api) -> None:
    await api.apply(checkout())
    default = (await api.get("/v1/render")).body["resources"]
    reply = await api.get("/v1/render?group=demo")
    assert (reply.status, reply.body["group"], reply.body["resources"]) == (200, "demo", default)


async def test_render_an_unknown_node_is_404(api: Api) -> None:
    reply = await api.get("/v1/render?node=ghost")
    assert (reply.status, reply.error["code"]) == (404, "not_found")
    assert "ghost" in reply.error["message"]


async def _wait_connected(api: Api, node_id: str) -> None:
    for _ in range(200):
        if any(s.node_id == node_id for s in api.switchman.xds.statuses()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{node_id} never showed up")


async def test_render_and_status_of_a_connected_node(api: Api, ads: Callable[[str], AdsClient]) -> None:
    await api.apply(checkout())
    client = ads("envoy-1")
    response = await client.subscribe_and_ack(rt.CLUSTER)
    assert len(response.resources) == 2
    await _wait_connected(api, "envoy-1")

    render = await api.get("/v1/render?node=envoy-1")
    assert render.status == 200
    assert render.body["group"] == "demo"  # grouped by the node's cluster
    assert [c["name"] for c in render.body["resources"]["cds"]] == ["checkout-v1", "checkout-v2"]

    for _ in range(200):
        status = await api.get("/v1/status")
        [node] = status.body["nodes"]
        [cds] = node["types"]
        if cds["acked_version"]:
            break
        await asyncio.sleep(0.01)
    assert status.body["revision"] == 1
    assert (node["node_id"], node["cluster"], node["group"]) == ("envoy-1", "demo", "demo")
    assert (cds["type"], cds["acked_version"], cds["resources"]) == ("cds", response.version_info, 2)
    assert cds["nack_version"] is None and cds["documents"] == []


async def test_status_with_nobody_connected(api: Api) -> None:
    reply = await api.get("/v1/status")
    assert (reply.body["revision"], reply.body["nodes"]) == (None, [])
    assert (reply.body["store"]["ready"], reply.body["store"]["store_head"]) == (True, None)
    await api.apply(checkout())
    body = (await api.get("/v1/status")).body
    assert (body["revision"], body["nodes"]) == (1, [])
    assert (body["store"]["served_revision"], body["store"]["store_head"], body["store"]["ready"]) == (1, 1, True)


async def test_healthz_and_metrics(api: Api) -> None:
    assert (await api.get("/healthz")).body == {"ok": True}
    metrics = await api.get("/metrics")
    assert metrics.status == 200 and "switchman_xds" in metrics.body
