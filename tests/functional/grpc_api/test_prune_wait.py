"""Apply over gRPC with prune (a label selector) and wait (a Duration): the same meaning as REST's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import duration_pb2

from switchman.api.grpc import management_pb2 as pb
from switchman.xds import resources as rt
from tests.functional.ads import AdsClient
from tests.functional.grpc_api.conftest import Grpc, refused, struct, trailers


def cluster(name: str, port: int, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A Cluster with its endpoints in CDS (static): one type for the test's ADS client to ACK."""
    metadata: dict[str, Any] = {"name": name, "labels": labels or {"app": "shop"}}
    return {"kind": "Cluster", "metadata": metadata,
            "spec": {"discovery": "static", "endpoints": [{"address": "127.0.0.1", "port": port}]}}


def request(docs: list[dict[str, Any]], **options: Any) -> pb.ApplyRequest:
    return pb.ApplyRequest(documents=[struct(d) for d in docs], **options)


SHOP = {"app": "shop"}


async def test_a_prune_over_grpc_deletes_what_the_request_does_not_hold(api: Grpc) -> None:
    await api.stub.Apply(request([cluster("a", 9001), cluster("b", 9002), cluster("other", 9003, {"app": "x"})]))
    reply = await api.stub.Apply(request([cluster("a", 9001)], prune=True, selector=SHOP))
    assert (reply.revision, list(reply.deleted), list(reply.unchanged)) == (2, ["cluster/b"], ["cluster/a",
                                                                                                 "cluster/other"])
    assert not reply.HasField("wait")


async def test_a_prune_with_no_selector_is_refused_and_changes_nothing(api: Grpc) -> None:
    await api.stub.Apply(request([cluster("a", 9001)]))
    error = await refused(api.stub.Apply(request([cluster("b", 9002)], prune=True)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailers(error)["switchman-error-code"] == "bad_request"
    assert "prune needs a selector" in str(error.details())
    assert len((await api.rest_get("/v1/history"))["revisions"]) == 1


async def test_wait_answers_once_the_client_acked_or_says_it_nacked(
    api: Grpc, ads: Callable[[str], AdsClient]
) -> None:
    await api.stub.Apply(request([cluster("a", 9001)]))
    client = ads("grpc-wait")
    await client.subscribe_and_ack(rt.CLUSTER)
    wait = duration_pb2.Duration(seconds=10)

    applying = asyncio.ensure_future(api.stub.Apply(request([cluster("a", 9011)], wait=wait)))
    await client.ack(await client.next_response())
    reply = await applying
    assert reply.wait.synced is True
    assert [(n.node_id, n.state) for n in reply.wait.nodes] == [("grpc-wait", "synced")]
    assert [(g.group, g.connected, g.synced) for g in reply.wait.groups] == [("*", 1, 1)]

    applying = asyncio.ensure_future(api.stub.Apply(request([cluster("a", 9021)], wait=wait)))
    await client.nack(await client.next_response(), "port 9021 is not allowed here")
    reply = await applying
    assert reply.revision == 3 and reply.wait.synced is False
    [node] = reply.wait.nodes
    [nack] = node.nacks
    assert (node.state, nack.type, nack.message, list(nack.documents)) == (
        "nacked", "cds", "port 9021 is not allowed here", ["cluster/a"])
    assert reply.wait.waited < 5
