"""The xDS methods served over our own asyncio HTTP/2 transport instead of grpc.aio.

Why: grpc.aio costs 130-220 us of server CPU per pushed message and ~22 KB
per stream before Switchman does anything (``bench/ads_streams.py --bare``);
a callback-driven transport on ``h2`` costs 50-80 us and ~1 KB
(``--bare-h2``), with no task per stream. It serves the xDS methods only
(:func:`~switchman.xds.server.methods.xds_methods`): ADS and the per-type
services, state of the world and delta, and the fetches, and CSDS. Other gRPC
services (the management API) stay on grpc.aio, on their own address.

HTTP/2 with prior knowledge (``h2c``, as Envoy's and gRPC's clients speak to
a plaintext server). Keepalive pings find dead peers; a maximum connection
age ends a connection's calls with UNAVAILABLE so that its client reconnects
(to another replica, maybe); stopping does the same for every connection.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass

from switchman.errors import ConfigError
from switchman.xds.h2.connection import Connection
from switchman.xds.server.methods import AnyMethod

__all__ = ["H2Server", "H2Settings"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class H2Settings:
    """The transport's limits and timers."""

    max_request_bytes: int = 4 * 1024 * 1024
    max_connection_buffer_bytes: int = 16 * 1024 * 1024  # unfinished requests of all a connection's calls
    max_concurrent_streams: int = 1000  # per connection
    keepalive_seconds: float = 30.0
    keepalive_timeout_seconds: float = 10.0
    max_connection_age_seconds: float | None = None


class H2Server:
    """Serves ``methods`` (by ``:path``) on one TCP address."""

    def __init__(self, methods: list[AnyMethod], settings: H2Settings | None = None) -> None:
        self.methods = {m.path: m for m in methods}
        self.settings = settings or H2Settings()
        self.connections: set[Connection] = set()
        self._server: asyncio.Server | None = None
        self._all_gone: asyncio.Event | None = None

    async def start(self, address: str) -> int:
        """Bind ``host:port`` (port 0 picks one) and serve; returns the bound port."""
        host, sep, port_text = address.rpartition(":")
        if not sep or not port_text.isdigit():
            raise ConfigError("xds address", f"{address!r} is not HOST:PORT")
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: Connection(self), host.strip("[]") or None, int(port_text), backlog=4096,
                family=socket.AF_UNSPEC,
            )
        except OSError as exc:
            raise ConfigError("xds address", f"cannot bind {address}: {exc.strerror}") from None
        port = int(self._server.sockets[0].getsockname()[1])
        log.info("xDS (HTTP/2 transport) listening on %s (port %d)", address, port)
        return port

    def connection_gone(self, connection: Connection) -> None:
        """Called by a connection once its socket is closed."""
        self.connections.discard(connection)
        if not self.connections and self._all_gone is not None:
            self._all_gone.set()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting; end every call with UNAVAILABLE so that clients reconnect, and close.

        Waits up to ``grace`` seconds for the connections to write that and close; aborts what is left.
        """
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        self._all_gone = asyncio.Event()
        if not self.connections:
            self._all_gone.set()
        for connection in list(self.connections):
            connection.close()
        try:
            await asyncio.wait_for(self._all_gone.wait(), grace)
        except TimeoutError:
            log.warning("%d connections still open %.1f s after stop: aborted", len(self.connections), grace)
            for connection in list(self.connections):
                if connection.transport is not None:
                    connection.transport.abort()
