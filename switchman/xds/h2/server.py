"""The xDS methods served over our own asyncio HTTP/2 transport instead of grpc.aio.

Why: grpc.aio costs 130-220 us of server CPU per pushed message and ~22 KB
per stream before Switchman does anything (``bench/ads_streams.py --bare``);
a callback-driven transport on ``h2`` costs 50-80 us and ~1 KB
(``--bare-h2``), with no task per stream. It serves the xDS methods
(:func:`~switchman.xds.server.methods.xds_methods`): ADS and the per-type
services, state of the world and delta, and the fetches; CSDS; and any
unary methods added (the management API).

HTTP/2 with prior knowledge (``h2c``, as Envoy's and gRPC's clients speak to
a plaintext server), or over TLS when :meth:`H2Server.start` is given an
``ssl.SSLContext`` (:func:`switchman.xds.tls.xds_certificates`); a client's
certificate then names it to its streams. Keepalive pings find dead peers; a maximum connection
age sends GOAWAY and gives the connection's calls a grace period before it
ends them with UNAVAILABLE, so that its client reconnects (to another
replica, maybe); stopping ends every call with UNAVAILABLE at once.

Hostile clients meet the limits of :class:`H2Settings`: connections in all
and per source address are counted here (a connection over either gets the
server's SETTINGS and a GOAWAY with ENHANCE_YOUR_CALM); the rest is per
connection (:mod:`switchman.xds.h2.connection`, :mod:`switchman.xds.h2.guard`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from switchman.errors import ConfigError
from switchman.xds.h2.connection import Connection
from switchman.xds.h2.guard import FloodLimits
from switchman.xds.server.methods import AnyMethod

__all__ = ["H2Server", "H2Settings"]

log = logging.getLogger(__name__)

_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class H2Settings:
    """The transport's limits and timers (:class:`~switchman.xds.server.server.XdsSettings` says why each default)."""

    max_request_bytes: int = 4 * _MIB
    max_connection_buffer_bytes: int = 16 * _MIB  # unfinished requests of all a connection's calls
    max_send_buffer_bytes: int = 1 * _MIB  # responses a connection holds that its client has not taken
    max_write_stall_seconds: float = 30.0
    max_connections: int = 20_000
    max_connections_per_address: int | None = 1_000
    max_concurrent_streams: int = 1000  # per connection
    max_header_list_bytes: int = 16 * 1024
    request_timeout_seconds: float = 10.0
    keepalive_seconds: float = 30.0
    keepalive_timeout_seconds: float = 10.0
    max_connection_idle_seconds: float | None = 300.0
    max_connection_age_seconds: float | None = None
    max_connection_age_grace_seconds: float = 30.0
    floods: FloodLimits = field(default_factory=FloodLimits)


def address_key(address: str) -> str:
    """What connections are counted by: the IPv4 address, or the IPv6 address's /64 (a host gets a whole /64)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class H2Server:
    """Serves ``methods`` (by ``:path``) on one TCP address.

    ``on_refusal(reason)`` hears of every connection, stream or request a
    limit refused or ended (``reason`` is one of a fixed set: see
    :data:`switchman.xds.server.metrics.REFUSALS`).
    """

    def __init__(self, methods: list[AnyMethod], settings: H2Settings | None = None,
                 on_refusal: Callable[[str], None] | None = None) -> None:
        self.methods = {m.path: m for m in methods}
        self.settings = settings or H2Settings()
        self.connections: set[Connection] = set()
        self._per_address: dict[str, int] = {}
        self._on_refusal = on_refusal
        self._server: asyncio.Server | None = None
        self._all_gone: asyncio.Event | None = None

    async def start(self, address: str, tls: ssl.SSLContext | None = None) -> int:
        """Bind ``host:port`` (port 0 picks one) and serve, over TLS with ``tls``; returns the bound port."""
        host, sep, port_text = address.rpartition(":")
        if not sep or not port_text.isdigit():
            raise ConfigError("xds address", f"{address!r} is not HOST:PORT")
        loop = asyncio.get_running_loop()
        # A handshake must end within the request timeout, as a first request must arrive (a silent client).
        handshake = self.settings.request_timeout_seconds if tls is not None else None
        try:
            self._server = await loop.create_server(
                lambda: Connection(self), host.strip("[]") or None, int(port_text), backlog=4096,
                family=socket.AF_UNSPEC, ssl=tls, ssl_handshake_timeout=handshake,
            )
        except OSError as exc:
            raise ConfigError("xds address", f"cannot bind {address}: {exc.strerror}") from None
        port = int(self._server.sockets[0].getsockname()[1])
        log.info("xDS (HTTP/2 transport%s) listening on %s (port %d)", ", TLS" if tls else "", address, port)
        return port

    def refused(self, reason: str) -> None:
        if self._on_refusal is not None:
            self._on_refusal(reason)

    def admit(self, connection: Connection, host: str) -> str | None:
        """Count ``connection`` (from ``host``) in; or say which limit it would go over (it is then not counted)."""
        settings = self.settings
        key = address_key(host)
        if len(self.connections) >= settings.max_connections:
            return "connections"
        per_address = settings.max_connections_per_address
        if per_address is not None and self._per_address.get(key, 0) >= per_address:
            return "connections_per_address"
        self.connections.add(connection)
        connection.address_key = key
        self._per_address[key] = self._per_address.get(key, 0) + 1
        return None

    def connection_gone(self, connection: Connection) -> None:
        """Called by a connection once its socket is closed."""
        if connection in self.connections:
            self.connections.discard(connection)
            key = connection.address_key
            left = self._per_address.get(key, 0) - 1
            if left > 0:
                self._per_address[key] = left
            else:
                self._per_address.pop(key, None)
        if not self.connections and self._all_gone is not None:
            self._all_gone.set()

    def connection_count(self) -> int:
        return len(self.connections)

    def buffered_bytes(self) -> int:
        """What every connection holds for its client or from it: responses not yet taken, requests not yet whole."""
        return sum(c.buffered_bytes() for c in self.connections)

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
                connection.abort()
