"""A real ADS client for the functional tests: one stream as an Envoy opens it, so that status,
render and CSDS have a node to show; it requests, ACKs and NACKs like Envoy does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.rpc import status_pb2

__all__ = ["AdsClient", "ads_clients"]


class AdsClient:
    """One ADS stream over gRPC, as an Envoy opens it: requests, responses, ACKs and NACKs."""

    def __init__(self, port: int, node_id: str, cluster: str = "demo") -> None:
        self.node = base_pb2.Node(id=node_id, cluster=cluster)
        self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self._requests: asyncio.Queue[discovery_pb2.DiscoveryRequest | None] = asyncio.Queue()
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self._channel)
        self._call: Any = stub.StreamAggregatedResources(self._outgoing())

    async def _outgoing(self) -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
        while (request := await self._requests.get()) is not None:
            yield request

    async def request(self, type_url: str, names: tuple[str, ...] = ()) -> discovery_pb2.DiscoveryResponse:
        """Subscribe to ``type_url`` and wait for the first response."""
        await self._requests.put(
            discovery_pb2.DiscoveryRequest(node=self.node, type_url=type_url, resource_names=list(names))
        )
        response: discovery_pb2.DiscoveryResponse = await asyncio.wait_for(self._call.read(), 10)
        return response

    async def next_response(self) -> discovery_pb2.DiscoveryResponse:
        """The next response on the stream (a push after a change)."""
        response: discovery_pb2.DiscoveryResponse = await asyncio.wait_for(self._call.read(), 10)
        return response

    async def ack(self, response: discovery_pb2.DiscoveryResponse, names: tuple[str, ...] = ()) -> None:
        await self._requests.put(
            discovery_pb2.DiscoveryRequest(
                type_url=response.type_url, version_info=response.version_info,
                response_nonce=response.nonce, resource_names=list(names),
            )
        )

    async def nack(self, response: discovery_pb2.DiscoveryResponse, message: str, names: tuple[str, ...] = ()) -> None:
        await self._requests.put(
            discovery_pb2.DiscoveryRequest(
                type_url=response.type_url, version_info="", response_nonce=response.nonce,
                resource_names=list(names), error_detail=status_pb2.Status(code=3, message=message),
            )
        )

    async def close(self) -> None:
        await self._requests.put(None)
        self._call.cancel()
        await self._channel.close()

    async def subscribe_and_ack(self, type_url: str) -> discovery_pb2.DiscoveryResponse:
        """Subscribe to ``type_url``, ACK the first response and return it."""
        response = await self.request(type_url)
        await self.ack(response)
        return response


@contextlib.asynccontextmanager
async def ads_clients(port: int) -> AsyncIterator[Callable[[str], AdsClient]]:
    """``make(node_id)`` opens an ADS stream to ``port``; every stream is closed on exit."""
    clients: list[AdsClient] = []

    def make(node_id: str) -> AdsClient:
        client = AdsClient(port, node_id)
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            await client.close()
