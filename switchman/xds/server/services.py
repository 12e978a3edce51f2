"""The gRPC services an Envoy (or a proxyless gRPC client) talks to, as generic handlers.

Responses are already-encoded bytes (see :mod:`switchman.xds.wire`), so
the handlers use an identity serializer; requests are parsed as usual.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import grpc
from envoy.service.discovery.v3 import discovery_pb2
from grpc import aio

from switchman.errors import ProtocolError
from switchman.xds import resources as rt
from switchman.xds import wire
from switchman.xds.server.delta import DeltaStream
from switchman.xds.server.sotw import SotwStream
from switchman.xds.server.stream import Stream, StreamContext

__all__ = ["discovery_handlers"]

# service, its type (None: aggregated), and its three methods
_SERVICES: Final = (
    ("envoy.service.discovery.v3.AggregatedDiscoveryService", None, "AggregatedResources", "ads"),
    ("envoy.service.listener.v3.ListenerDiscoveryService", rt.LISTENER, "Listeners", "lds"),
    ("envoy.service.route.v3.RouteDiscoveryService", rt.ROUTE, "Routes", "rds"),
    ("envoy.service.cluster.v3.ClusterDiscoveryService", rt.CLUSTER, "Clusters", "cds"),
    ("envoy.service.endpoint.v3.EndpointDiscoveryService", rt.ENDPOINT, "Endpoints", "eds"),
    ("envoy.service.secret.v3.SecretDiscoveryService", rt.SECRET, "Secrets", "sds"),
)


def _identity(data: bytes) -> bytes:
    return data


def _streaming(
    ctx: StreamContext, kind: type[Stream], label: str, only_type: str | None
) -> Callable[[AsyncIterator[Any], aio.ServicerContext[Any, Any]], AsyncIterator[bytes]]:
    async def handler(
        requests: AsyncIterator[Any], context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        stream = kind(ctx, label, only_type)
        try:
            async for response in stream.run(requests):
                yield response
                del response  # not pinned while the stream idles
        except ProtocolError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    return handler


def _fetch(ctx: StreamContext, type_url: str) -> Callable[..., Any]:
    async def handler(request: discovery_pb2.DiscoveryRequest, context: aio.ServicerContext[Any, Any]) -> bytes:
        if request.type_url and request.type_url != type_url:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"this service serves {type_url}")
        snapshot = ctx.cache.snapshot(ctx.group_of(request.node))
        if snapshot is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "no configuration for this node yet")
            raise AssertionError("unreachable")
        tsnap = snapshot.get(type_url)
        names = frozenset(request.resource_names) - {"*"}
        selection = tsnap.select(names or None)
        return wire.sotw_response(tsnap.version, selection.body, type_url, "")

    return handler


def discovery_handlers(ctx: StreamContext) -> list[grpc.GenericRpcHandler]:
    """Handlers for ADS and the per-type LDS, RDS, CDS, EDS and SDS services."""
    parse_sotw = discovery_pb2.DiscoveryRequest.FromString
    parse_delta = discovery_pb2.DeltaDiscoveryRequest.FromString
    handlers: list[grpc.GenericRpcHandler] = []
    for service, only_type, noun, label in _SERVICES:
        methods = {
            f"Stream{noun}": grpc.stream_stream_rpc_method_handler(
                _streaming(ctx, SotwStream, label, only_type),
                request_deserializer=parse_sotw,
                response_serializer=_identity,
            ),
            f"Delta{noun}": grpc.stream_stream_rpc_method_handler(
                _streaming(ctx, DeltaStream, label, only_type),
                request_deserializer=parse_delta,
                response_serializer=_identity,
            ),
        }
        if only_type is not None:
            methods[f"Fetch{noun}"] = grpc.unary_unary_rpc_method_handler(
                _fetch(ctx, only_type), request_deserializer=parse_sotw, response_serializer=_identity
            )
        handlers.append(grpc.method_handlers_generic_handler(service, methods))
    return handlers
