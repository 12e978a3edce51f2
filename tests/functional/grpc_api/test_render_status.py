"""Render (by group, by node) as Envoy messages, and status with real ADS streams on the same port."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf import json_format

from switchman.api.grpc import management_pb2 as pb
from switchman.xds import resources as rt
from tests.functional.ads import AdsClient
from tests.functional.api.docs import checkout
from tests.functional.grpc_api.conftest import Grpc, apply_request, refused, trailers

ORDER = ["sds", "cds", "eds", "lds", "rds"]


async def test_render_before_anything_is_applied(api: Grpc) -> None:
    reply = await api.stub.Render(pb.RenderRequest())
    assert (reply.group, list(reply.types)) == ("*", [])


async def test_render_is_the_envoy_messages_rest_shows_as_json(api: Grpc) -> None:
    await api.stub.Apply(apply_request(checkout()))
    reply = await api.stub.Render(pb.RenderRequest())
    assert reply.group == "*"
    assert [t.type for t in reply.types] == ORDER
    assert [t.type_url for t in reply.types] == [rt.SECRET, rt.CLUSTER, rt.ENDPOINT, rt.LISTENER, rt.ROUTE]
    cds = reply.types[1]
    clusters = []
    for packed in cds.resources:
        assert packed.type_url == rt.CLUSTER
        cluster = rt.message_class(rt.CLUSTER)()
        assert packed.Unpack(cluster)
        clusters.append(cluster)
    assert [c.name for c in clusters] == ["checkout-v1", "checkout-v2"]

    rest = (await api.rest_get("/v1/render"))["resources"]
    assert list(rest) == ORDER
    for rendered in reply.types:
        messages = []
        for packed in rendered.resources:
            message = rt.message_class(rendered.type_url)()
            packed.Unpack(message)
            messages.append(json_format.MessageToDict(message))
        assert messages == rest[rendered.type]


async def test_render_a_group(api: Grpc) -> None:
    await api.stub.Apply(apply_request(checkout()))
    default = await api.stub.Render(pb.RenderRequest())
    reply = await api.stub.Render(pb.RenderRequest(group="demo"))
    assert (reply.group, list(reply.types)) == ("demo", list(default.types))


async def test_render_an_unknown_node_is_not_found(api: Grpc) -> None:
    error = await refused(api.stub.Render(pb.RenderRequest(node="ghost")))
    assert (error.code(), trailers(error)) == (grpc.StatusCode.NOT_FOUND, {"switchman-error-code": "not_found"})
    assert error.details() == "no node 'ghost' is connected"


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def test_status_with_nobody_connected(api: Grpc) -> None:
    reply = await api.stub.Status(pb.StatusRequest())
    assert (reply.HasField("revision"), list(reply.nodes)) == (False, [])
    await api.stub.Apply(apply_request(checkout()))
    reply = await api.stub.Status(pb.StatusRequest())
    assert (reply.revision, list(reply.nodes)) == (1, [])


async def test_render_and_status_of_a_connected_node(api: Grpc, ads: Callable[[str], AdsClient]) -> None:
    await api.stub.Apply(apply_request(checkout()))
    client = ads("envoy-1")
    response = await client.request(rt.CLUSTER)
    await client.ack(response)

    async def acked() -> bool:
        nodes = (await api.stub.Status(pb.StatusRequest())).nodes
        return len(nodes) == 1 and nodes[0].types[0].acked_version == response.version_info

    await _until(acked, "envoy-1 ACKed its clusters")
    render = await api.stub.Render(pb.RenderRequest(node="envoy-1"))
    assert render.group == "demo"  # grouped by the node's cluster
    assert len(render.types[1].resources) == 2

    status = await api.stub.Status(pb.StatusRequest())
    [node] = status.nodes
    [cds] = node.types
    assert (status.revision, node.node_id, node.cluster, node.group, node.streams) == (1, "envoy-1", "demo", "demo", 1)
    assert (cds.type, cds.acked_version, cds.resources, cds.synced, node.synced) == (
        "cds", response.version_info, 2, True, True)
    assert not cds.HasField("nack_version") and not cds.HasField("nack_message") and list(cds.documents) == []
    rest = (await api.rest_get("/v1/status"))["nodes"][0]["types"][0]
    assert (rest["acked_version"], rest["synced"]) == (cds.acked_version, cds.synced)


async def test_status_traces_a_nack_to_its_documents(api: Grpc, ads: Callable[[str], AdsClient]) -> None:
    await api.stub.Apply(apply_request(checkout()))
    client = ads("envoy-2")
    response = await client.request(rt.CLUSTER)
    await client.nack(response, "cluster checkout-v1: bad outlier detection")

    async def nacked() -> bool:
        nodes = (await api.stub.Status(pb.StatusRequest())).nodes
        return len(nodes) == 1 and nodes[0].types[0].HasField("nack_version")

    await _until(nacked, "envoy-2 NACKed")
    [node] = (await api.stub.Status(pb.StatusRequest())).nodes
    [cds] = node.types
    assert (cds.nack_version, cds.nack_message) == (response.version_info, "cluster checkout-v1: bad outlier detection")
    assert list(cds.nacked_resources) == ["checkout-v1", "checkout-v2"]
    assert list(cds.documents) == ["service/checkout"]
    assert (cds.synced, node.synced, cds.acked_version) == (False, False, "")
    rest = (await api.rest_get("/v1/status"))["nodes"][0]["types"][0]
    assert (rest["nack_message"], rest["documents"]) == (cds.nack_message, list(cds.documents))
