"""A change whose xDS responses a client of a node group could not receive is refused when it is applied.

The client is grpcio's own xDS client (a proxyless gRPC channel on ``xds:///echo``, in a process of its own,
as a real one is): it says ``gRPC C-core ...`` in its node's user agent, and a gRPC channel refuses messages
over 4 MiB. The config has a cluster of 4.5 MB: Envoy would take it, gRPC would not.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from google.protobuf import struct_pb2

from switchman.client import to_document
from switchman.testing.builders import api_listener, eds_cluster, load_assignment, route_config
from tests.functional.api.conftest import Api, Start

GROUP = "edge"
NODE = "grpc-edge-1"
PAD = 4_500_000  # bytes of metadata on the cluster: a CDS response of 4.5 MB
CLIENT = r"""
import sys, grpc
channel = grpc.insecure_channel("xds:///echo")
channel.subscribe(lambda state: None, try_to_connect=True)
sys.stdin.read()
"""


def big_config(groups: list[str] | None = None) -> list[dict[str, Any]]:
    """What a proxyless gRPC client on ``xds:///echo`` follows, with a cluster of 4.5 MB."""
    cluster = eds_cluster("big")
    # Its endpoints under a name of their own: an EnvoyResource document is named after its resource.
    cluster.eds_cluster_config.service_name = "big-endpoints"
    pad = struct_pb2.Struct()
    pad.update({"note": "x" * PAD})
    cluster.metadata.filter_metadata["pad"].CopyFrom(pad)
    docs = [to_document(m) for m in (api_listener("echo", "echo-routes"),
                                     route_config("echo-routes", "big", domains=["echo"]), cluster,
                                     load_assignment("big-endpoints", [("127.0.0.1", 9)]))]
    if groups is not None:
        for doc in docs:
            doc["metadata"]["groups"] = groups
    return docs


GrpcClients = Callable[[Api, str], Awaitable[None]]


@pytest.fixture
async def grpc_clients() -> AsyncIterator[GrpcClients]:
    """``await grpc_clients(api, node_group)``: a proxyless gRPC client connected to ``api``'s xDS port."""
    procs: list[asyncio.subprocess.Process] = []

    async def start(api: Api, group: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRPC_")}
        env["GRPC_XDS_BOOTSTRAP_CONFIG"] = json.dumps({
            "xds_servers": [{"server_uri": f"127.0.0.1:{api.switchman.xds_port}",
                             "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
            "node": {"id": NODE, "cluster": group},
        })
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CLIENT, stdin=asyncio.subprocess.PIPE,
                                                    env=env)
        procs.append(proc)
        deadline = time.monotonic() + 10
        while not any(s.node_id == NODE for s in api.switchman.xds.statuses()):
            assert time.monotonic() < deadline, "the gRPC client never connected"
            await asyncio.sleep(0.05)

    yield start
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_a_config_a_connected_grpc_client_could_not_receive_is_refused_naming_group_type_and_limit(
    api: Api, grpc_clients: GrpcClients
) -> None:
    await grpc_clients(api, GROUP)
    for query in ("", "?dryRun=true"):
        reply = await api.apply(big_config([GROUP]), query=query)
        assert reply.status == 422, reply.body
        assert reply.error["code"] == "invalid_config"
        assert reply.error["path"] == "node group 'edge': cds"
        message = reply.error["message"]
        assert "the cds response would be 4,50" in message, message
        assert "over the 4,194,304-byte limit (4 MiB) of this node group's grpc clients (connected: grpc-edge-1)" \
            in message, message
        assert "cds/big (4,50" in message, message
        assert "Limits per client kind: envoy none, grpc 4 MiB, other 4 MiB (switchman serve --response-limits)" \
            in message, message
    assert await api.history() == []


async def test_nodes_served_the_default_group_count_there(api: Api, grpc_clients: GrpcClients) -> None:
    await grpc_clients(api, GROUP)  # no document names "edge": it is served what every node is
    reply = await api.apply(big_config())
    assert reply.status == 422
    assert reply.error["path"] == "node group '*': cds"


async def test_the_same_config_for_a_group_without_grpc_clients_is_accepted(
    api: Api, grpc_clients: GrpcClients
) -> None:
    await grpc_clients(api, "elsewhere")
    reply = await api.apply(big_config([GROUP]))  # only "edge" gets the big clusters; "elsewhere" gets nothing
    assert reply.status == 200, reply.body


async def test_declared_client_kinds_are_checked_with_no_client_connected(start: Start) -> None:
    api = await start(client_kinds={GROUP: ("grpc",)})
    reply = await api.apply(big_config([GROUP]))
    assert reply.status == 422
    assert "grpc clients (declared with --client-kinds)" in reply.error["message"]


async def test_a_client_of_a_group_unknown_at_apply_time_is_not_sent_what_it_cannot_receive(
    api: Api, grpc_clients: GrpcClients
) -> None:
    reply = await api.apply(big_config([GROUP]))
    assert reply.status == 200, reply.body  # nobody of "edge" is known: nothing to check against
    await grpc_clients(api, GROUP)
    deadline = time.monotonic() + 10
    waiting, nodes = "", []
    while "exceeds the limit" not in waiting:
        assert time.monotonic() < deadline, f"the oversized CDS response never showed: {nodes!r}"
        await asyncio.sleep(0.05)
        nodes = (await api.get("/v1/status")).body["nodes"]
        waiting = " ".join(t["waiting"] for n in nodes for t in n["types"] if t["type"] == "cds")
    assert "exceeds the limit of 4194304 bytes of grpc clients; not sent" in waiting
    # It is told of a config it can take once there is one.
    small = big_config([GROUP])
    del small[2]["spec"]["metadata"]
    assert (await api.apply(small)).status == 200
    deadline = time.monotonic() + 10
    while not all(t["synced"] for n in (await api.get("/v1/status")).body["nodes"] for t in n["types"]):
        assert time.monotonic() < deadline, "the gRPC client never ACKed the smaller config"
        await asyncio.sleep(0.05)
