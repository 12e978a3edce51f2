"""A demo gRPC upstream for proxyless gRPC clients: one unary method that says who answered.

It needs no generated code: the method takes and returns raw bytes, so a
client calls it with ``channel.unary_unary(METHOD)`` (no serializers) and
gets ``b"<name>:<request bytes>"`` back.
"""

from __future__ import annotations

from typing import Any, Final

import grpc
from grpc import aio

from switchman.errors import LabError

__all__ = ["METHOD", "SERVICE", "GrpcEcho", "start_server"]

SERVICE: Final = "switchman.demo.Echo"
METHOD: Final = f"/{SERVICE}/Say"


async def start_server(
    host: str, port: int, service: str, methods: dict[str, grpc.RpcMethodHandler], what: str
) -> tuple[aio.Server, int]:
    """A grpc.aio server on ``host:port`` (0: the OS picks) serving ``methods`` of ``service``, started;
    returns it and its bound port. ``what`` names it in the LabError raised when it cannot bind."""
    server = aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service, methods)])
    bound: int = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise LabError(f"{what}: cannot bind {host}:{port}")
    await server.start()
    return server, bound


class GrpcEcho:
    """A grpc.aio server on loopback answering ``METHOD`` with ``b"<name>:<request>"``.

    ``start`` binds ``host:port`` (0: the OS picks) and returns the port;
    ``calls`` counts the requests answered.
    """

    def __init__(self, name: str, host: str = "127.0.0.1") -> None:
        self.name = name
        self.host = host
        self.port = 0
        self.calls = 0
        self._server: aio.Server | None = None

    async def _say(self, request: bytes, context: aio.ServicerContext[Any, Any]) -> bytes:
        self.calls += 1
        return self.name.encode() + b":" + request

    async def start(self, port: int = 0) -> int:
        """Bind and start serving; returns the bound port."""
        # No serializers: requests and responses are the raw message bytes.
        say = grpc.unary_unary_rpc_method_handler(self._say)
        self._server, self.port = await start_server(self.host, port, SERVICE, {"Say": say}, f"grpc echo {self.name}")
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving; calls in flight get ``grace`` seconds (None: they are cancelled)."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
