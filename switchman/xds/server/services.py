"""The xDS methods (:mod:`switchman.xds.server.methods`) as grpc.aio generic handlers.

Responses are already-encoded bytes (see :mod:`switchman.xds.wire`), so
the handlers use an identity serializer; requests are parsed as usual.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from grpc import aio

from switchman.errors import PermissionDenied, ProtocolError
from switchman.xds.server.aio_calls import abort, call_peer, check_guard
from switchman.xds.server.methods import CallError, FetchMethod, Guard, StreamHandler, StreamMethod, xds_methods
from switchman.xds.server.peer import Peer
from switchman.xds.server.stream import Stream, StreamContext

__all__ = ["discovery_handlers"]


def _identity(data: bytes) -> bytes:
    return data


def _streaming(
    open_stream: Callable[[Peer], StreamHandler], guard: Guard | None,
) -> Callable[[AsyncIterator[Any], aio.ServicerContext[Any, Any]], AsyncIterator[bytes]]:
    async def handler(
        requests: AsyncIterator[Any], context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        await check_guard(guard, context)
        stream = open_stream(call_peer(context))
        assert isinstance(stream, Stream)  # grpc.aio serves the xDS streams (CSDS has its own servicer)
        try:
            async for response in stream.run(requests):
                yield response
                del response  # not pinned while the stream idles
        except PermissionDenied as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except ProtocolError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    return handler


def _unary(fetch: Callable[[Any, Peer], bytes], guard: Guard | None) -> Callable[..., Any]:
    async def handler(request: Any, context: aio.ServicerContext[Any, Any]) -> bytes:
        await check_guard(guard, context)
        try:
            return fetch(request, call_peer(context))
        except CallError as exc:
            await abort(context, exc)

    return handler


def discovery_handlers(ctx: StreamContext) -> list[grpc.GenericRpcHandler]:
    """Handlers for ADS and the per-type LDS, RDS, CDS, EDS and SDS services."""
    services: dict[str, dict[str, grpc.RpcMethodHandler]] = defaultdict(dict)
    for method in xds_methods(ctx):
        service, _, name = method.path[1:].partition("/")
        if isinstance(method, StreamMethod):
            services[service][name] = grpc.stream_stream_rpc_method_handler(
                _streaming(method.stream, method.guard), request_deserializer=method.parse,
                response_serializer=_identity,
            )
        else:
            assert isinstance(method, FetchMethod)
            services[service][name] = grpc.unary_unary_rpc_method_handler(
                _unary(method.fetch, method.guard), request_deserializer=method.parse, response_serializer=_identity
            )
    return [grpc.method_handlers_generic_handler(service, methods) for service, methods in services.items()]
