"""A grpc.aio servicer's unary methods, served on the HTTP/2 transport.

Switchman's gRPC services are written for grpc.aio (generated servicer
base classes, ``context.invocation_metadata()``, ``await context.abort(...)``).
:func:`unary_methods` turns such a servicer into transport methods, handing
each handler a context with just those two parts: the call's metadata, and
an abort that ends the call with its status, message and trailing metadata.
:func:`peer_of` is a call's client on either transport (its certificate).
Streaming methods are not supported (the services that have them are served
natively: xDS and CSDS).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NoReturn

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from switchman.xds.server.methods import AsyncUnaryMethod, CallError, Code, Metadata
from switchman.xds.server.peer import Peer, peer_of_auth_context

__all__ = ["CallContext", "peer_of", "unary_methods"]


class CallContext:
    """What a servicer method may use of grpc.aio's ServicerContext on this transport (and who calls)."""

    def __init__(self, metadata: Metadata, client: Peer) -> None:
        self._metadata = metadata
        self.client = client

    def invocation_metadata(self) -> Metadata:
        return self._metadata

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Iterable[tuple[str, str]] = ()
    ) -> NoReturn:
        raise CallError(Code(code.value[0]), details, tuple(trailing_metadata))


def peer_of(context: Any) -> Peer:
    """The client of a servicer's call on either transport: this one's :class:`CallContext` holds it, grpc.aio's
    context has it in its auth context."""
    if isinstance(context, CallContext):
        return context.client
    return peer_of_auth_context(context.auth_context())


def _method(
    handler: Callable[[Any, Any], Awaitable[Message]],
) -> Callable[[Message, Metadata, Peer], Awaitable[bytes]]:
    async def call(request: Message, metadata: Metadata, client: Peer) -> bytes:
        response = await handler(request, CallContext(metadata, client))
        return bytes(response.SerializeToString())

    return call


def unary_methods(servicer: object, service: ServiceDescriptor) -> list[AsyncUnaryMethod]:
    """Every method of ``service``, answered by ``servicer``'s method of the same name."""
    methods = []
    for method in service.methods:
        if method.client_streaming or method.server_streaming:
            raise ValueError(f"{service.full_name}/{method.name} streams: only unary methods are adapted")
        request_class = message_factory.GetMessageClass(method.input_type)
        handler = getattr(servicer, method.name)
        methods.append(AsyncUnaryMethod(f"/{service.full_name}/{method.name}", request_class.FromString,
                                        _method(handler)))
    return methods
