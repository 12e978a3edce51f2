"""The xDS server: ADS, per-type services, CSDS and any added gRPC service on one port, served by our own
HTTP/2 transport (``transport="h2"``, :mod:`switchman.xds.h2`) or by grpc.aio (``transport="grpc"``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from envoy.service.status.v3 import csds_pb2_grpc
from grpc import aio

from switchman.errors import ConfigError
from switchman.xds.cache import SnapshotCache, grouper
from switchman.xds.h2 import H2Server, H2Settings
from switchman.xds.server.collector import CollectorPolicy
from switchman.xds.server.csds import ClientStatusService, csds_methods
from switchman.xds.server.methods import AnyMethod, xds_methods
from switchman.xds.server.metrics import XdsMetrics
from switchman.xds.server.services import discovery_handlers
from switchman.xds.server.status import NodeStatus, node_statuses
from switchman.xds.server.stream import StreamContext

__all__ = ["TRANSPORTS", "XdsServer", "XdsSettings"]

log = logging.getLogger(__name__)

_MIB = 1024 * 1024
TRANSPORTS: Final = ("h2", "grpc")  # what can serve the xDS port: switchman.xds.h2, or grpc.aio


@dataclass(frozen=True, slots=True)
class XdsSettings:
    """How the xDS server behaves on the wire.

    ``max_response_bytes`` is the client's receive limit (gRPC's default is
    4 MiB); a larger response is not sent. ``max_request_bytes`` bounds what
    a client may send. Keepalive pings find dead peers; a maximum
    connection age spreads clients over replicas when they reconnect.
    ``transport`` is ``grpc`` (grpc.aio serves the xDS methods, CSDS and
    the services added with :meth:`XdsServer.add_service`) or ``h2``
    (:mod:`switchman.xds.h2` serves the xDS methods, CSDS and the methods
    added with :meth:`XdsServer.add_methods`), all on the one xDS port.
    ``gc_freeze_seconds`` > 0 runs the :class:`CollectorPolicy` rounds that
    often; it changes the whole process's garbage collector, so it is off
    unless the process's owner asks (``switchman serve`` does).
    """

    group_by: str = "cluster"
    max_response_bytes: int = 4 * _MIB
    max_request_bytes: int = 4 * _MIB
    keepalive_seconds: float = 30.0
    keepalive_timeout_seconds: float = 10.0
    max_connection_age_seconds: float | None = None
    max_connection_age_grace_seconds: float = 30.0
    # Calls gRPC core queues while the event loop accepts them; past it,
    # a connect storm gets CANCELLED and clients back off and retry.
    max_pending_calls: int = 20_000
    gc_freeze_seconds: float = 0.0
    transport: str = "h2"

    def grpc_options(self) -> list[tuple[str, int]]:
        options = [
            ("grpc.max_receive_message_length", self.max_request_bytes),
            ("grpc.max_send_message_length", max(self.max_response_bytes, 4 * _MIB)),
            ("grpc.keepalive_time_ms", int(self.keepalive_seconds * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.keepalive_timeout_seconds * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 5000),
            ("grpc.http2.max_ping_strikes", 0),
            ("grpc.so_reuseport", 0),
            ("grpc.server.max_pending_requests", self.max_pending_calls),
            ("grpc.server.max_pending_requests_hard_limit", self.max_pending_calls),
        ]
        if self.max_connection_age_seconds is not None:
            options += [
                ("grpc.max_connection_age_ms", int(self.max_connection_age_seconds * 1000)),
                ("grpc.max_connection_age_grace_ms", int(self.max_connection_age_grace_seconds * 1000)),
            ]
        return options


class XdsServer:
    """Serves a :class:`SnapshotCache` to xDS clients.

    ``start`` binds and returns the port (0 picks a free one); ``stop`` lets
    streams end within a grace period. Clients keep their config while the
    server is away and get the current one when they reconnect.
    """

    def __init__(self, cache: SnapshotCache, settings: XdsSettings | None = None,
                 metrics: XdsMetrics | None = None) -> None:
        self.settings = settings or XdsSettings()
        if self.settings.max_response_bytes <= 0:
            raise ConfigError("max_response_bytes", "must be positive")
        if self.settings.transport not in TRANSPORTS:
            raise ConfigError("xds transport", f"{self.settings.transport!r} is not one of {', '.join(TRANSPORTS)}")
        self.cache = cache
        self.metrics = metrics or XdsMetrics()
        self.context = StreamContext(
            cache=cache,
            group_of=grouper(self.settings.group_by),
            metrics=self.metrics,
            max_response_bytes=self.settings.max_response_bytes,
        )
        self._server: aio.Server | None = None
        self._h2: H2Server | None = None
        self._services: list[Callable[[aio.Server], object]] = []
        self._methods: list[AnyMethod] = []
        self.collector: CollectorPolicy | None = None
        if self.settings.gc_freeze_seconds > 0:
            self.collector = CollectorPolicy(interval=self.settings.gc_freeze_seconds)
        self.port = 0

    def add_service(self, register: Callable[[aio.Server], object]) -> None:
        """Serve another gRPC service on the xDS port: ``register(server)`` runs in :meth:`start`.

        gRPC binds methods when the server starts, so services are added before.
        """
        if self._server is not None:
            raise RuntimeError("add services before start()")
        self._services.append(register)

    def add_methods(self, methods: Sequence[AnyMethod]) -> None:
        """Serve more methods on the xDS port with the h2 transport (:mod:`switchman.xds.h2`); before start.

        The grpc.aio form of the same service is added with :meth:`add_service`; a composition root adds both.
        """
        if self._h2 is not None or self._server is not None:
            raise RuntimeError("add methods before start()")
        self._methods.extend(methods)

    async def start(self, address: str = "127.0.0.1:0") -> int:
        """Bind ``address`` (``host:port``) and start serving; returns the bound xDS port."""
        if self.settings.transport == "h2":
            methods = [*xds_methods(self.context), *csds_methods(self.context), *self._methods]
            self._h2 = H2Server(methods, H2Settings(
                max_request_bytes=self.settings.max_request_bytes,
                max_connection_buffer_bytes=4 * self.settings.max_request_bytes,
                keepalive_seconds=self.settings.keepalive_seconds,
                keepalive_timeout_seconds=self.settings.keepalive_timeout_seconds,
                max_connection_age_seconds=self.settings.max_connection_age_seconds,
            ))
            self.port = await self._h2.start(address)
        else:
            self.port = await self._start_grpc(address)
        if self.collector is not None:
            self.collector.start()
        return self.port

    async def _start_grpc(self, address: str) -> int:
        server = aio.server(options=self.settings.grpc_options())
        server.add_generic_rpc_handlers(discovery_handlers(self.context))
        csds_pb2_grpc.add_ClientStatusDiscoveryServiceServicer_to_server(
            ClientStatusService(self.context), server
        )
        for register in self._services:
            register(server)
        port = server.add_insecure_port(address)
        if port == 0:
            raise ConfigError("xds address", f"cannot bind {address}")
        await server.start()
        self._server = server
        log.info("xDS server (grpc.aio) listening on %s (port %d)", address, port)
        return int(port)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting streams; open ones end after ``grace`` seconds."""
        if self._h2 is not None:
            await self._h2.stop(grace)
            self._h2 = None
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        if self.collector is not None:
            await self.collector.stop()

    def statuses(self) -> list[NodeStatus]:
        """What every connected node has ACKed, per type."""
        return node_statuses(tuple(self.context.streams))


