"""The xDS server: ADS, per-type services, CSDS and any added gRPC service on one port, served by our own
HTTP/2 transport (``transport="h2"``, :mod:`switchman.xds.h2`) or by grpc.aio (``transport="grpc"``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from envoy.service.status.v3 import csds_pb2_grpc
from grpc import aio

from switchman.certificates import ServerCertificates
from switchman.errors import ConfigError
from switchman.xds.cache import Snapshot, SnapshotCache, grouper
from switchman.xds.h2 import H2Server, H2Settings
from switchman.xds.h2.guard import FloodLimits
from switchman.xds.server.clients import CLIENT_KINDS, ResponseLimits, oversized
from switchman.xds.server.collector import CollectorPolicy
from switchman.xds.server.csds import ClientStatusService, csds_methods
from switchman.xds.server.methods import AnyMethod, Guard, xds_methods
from switchman.xds.server.metrics import XdsMetrics
from switchman.xds.server.peer import NodeIdentities
from switchman.xds.server.services import discovery_handlers
from switchman.xds.server.status import NodeStatus, NodeSync, node_statuses, node_syncs
from switchman.xds.server.stream import StreamContext
from switchman.xds.tls import TlsSettings, grpc_credentials, xds_certificates

__all__ = ["TRANSPORTS", "XdsServer", "XdsSettings"]

log = logging.getLogger(__name__)

_MIB = 1024 * 1024
TRANSPORTS: Final = ("h2", "grpc")  # what can serve the xDS port: switchman.xds.h2, or grpc.aio
_POSITIVE: Final = (
    "max_request_bytes", "max_node_bytes", "max_connections", "max_concurrent_streams",
    "max_header_list_bytes", "request_timeout_seconds", "max_send_buffer_bytes", "max_write_stall_seconds",
    "max_stream_resets_per_second", "max_control_frames_per_second",
)


@dataclass(frozen=True, slots=True)
class XdsSettings:
    """How the xDS server behaves on the wire, and what a client may make it hold.

    ``transport`` is ``h2`` (:mod:`switchman.xds.h2` serves the xDS methods,
    CSDS and the methods added with :meth:`XdsServer.add_methods`) or
    ``grpc`` (grpc.aio serves the xDS methods, CSDS and the services added
    with :meth:`XdsServer.add_service`), all on the one xDS port.
    ``group_by`` picks a node's snapshot. ``gc_freeze_seconds`` > 0 runs the
    :class:`CollectorPolicy` rounds that often; it changes the whole
    process's garbage collector, so it is off unless the process's owner
    asks (``switchman serve`` does).

    Messages and the node:

    * ``response_limits``: the largest response each kind of client can
      receive (:class:`~switchman.xds.server.clients.ResponseLimits`: Envoy
      none, gRPC and other clients 4 MiB, gRPC's default); a larger response
      is not sent to it. :meth:`XdsServer.check_response_sizes` refuses such
      a configuration before it is served, for the kinds of client
      connected to each node group and those ``client_kinds`` declares
      (node group -> kinds, for clients not connected at the time, or
      connected to another replica).
    * ``max_request_bytes`` (4 MiB): the largest request; gRPC's default too.
      A connection holds at most 4x that in requests not yet whole or not yet
      answered (h2), enough for a few of the largest at once.
    * ``max_node_bytes`` (64 KiB): what a stream keeps of the node of its
      first request: id, cluster, metadata, locality and user agent (not
      Envoy's list of extensions, which nothing here reads). A larger node
      is refused with INVALID_ARGUMENT. Envoy's and Istio's nodes are a few
      KB; 64 KiB leaves room for generous metadata while 10,000 streams of
      it stay under a gigabyte.

    Connections and streams (the grpc.aio option that bounds the same on
    the ``grpc`` transport in brackets, where there is one):

    * ``max_connections`` (20,000; ``grpc.max_allowed_incoming_connections``):
      room for the 10,000 one-stream connections of the design's aim, and
      for a reconnect storm while the old ones close.
    * ``max_connections_per_address`` (1,000; none: grpc.aio cannot): per
      IPv4 address or IPv6 /64, so that one host cannot take every
      connection. Sidecars have an address each; a Kubernetes node's pods
      (110 at most by default) share a /64 in IPv6; 1,000 leaves room for a
      NAT. None: no limit (a load test from one address).
    * ``max_concurrent_streams`` (1,000 a connection;
      ``grpc.max_concurrent_streams``): an Envoy needs one (ADS) or a few
      per cluster without ADS; the load generators put 100 on a connection.
      Past it a stream is refused with RST_STREAM(REFUSED_STREAM).
    * ``max_header_list_bytes`` (16 KiB; ``grpc.max_metadata_size`` and
      ``grpc.absolute_max_metadata_size``): gRPC's own hard limit; a larger
      header block ends the connection (GOAWAY, ENHANCE_YOUR_CALM).
    * ``request_timeout_seconds`` (10 s; grpc.aio cannot): a call's first
      request (an xDS stream's node), and any request once its first byte
      has come, must arrive whole in this time, or the call ends with
      DEADLINE_EXCEEDED. Clients send their first request at once and a
      whole message in milliseconds; 10 s allows a slow link.
    * ``max_send_buffer_bytes`` (1 MiB a connection; grpc.aio has its own
      flow control): responses a connection holds that its client has not
      taken. Past it, its streams wait (they lose nothing: a stream sends
      the state of the moment when it resumes), so a client that does not
      read holds that, one stream's responses and the socket's 256 KiB.
      Large responses still go (one at a time); 1 MiB is dozens of ordinary
      pushes in flight.
    * ``max_write_stall_seconds`` (30 s; grpc.aio: its keepalive ping goes
      unanswered): a connection whose socket takes nothing for this long is
      dropped; a live client takes its bytes in milliseconds.

    Frames that ask for nothing (h2; grpc-core has its own defences and
    the ping policy below):

    * ``min_ping_interval_seconds`` (5 s) and ``max_ping_strikes`` (2;
      ``grpc.http2.min_recv_ping_interval_without_data_ms``,
      ``grpc.http2.max_ping_strikes``): gRPC's ping policy, with gRPC's
      default strikes: a PING sooner than the interval after the last, with
      no response sent in between, is a strike; one too many ends the
      connection with GOAWAY "too_many_pings", which gRPC clients answer by
      pinging less.
    * ``max_stream_resets_per_second`` (100): the "rapid reset" attack
      (CVE-2023-44487). A client may reset (or open past the limit) as many
      streams as it may have open at once, then this many a second; beyond,
      GOAWAY with ENHANCE_YOUR_CALM. Envoy resets a stream when a cluster
      goes; 100 a second more than covers churn.
    * ``max_control_frames_per_second`` (100, bursts of 1,000): SETTINGS
      (counting 10), PRIORITY, empty DATA frames, unknown frames and
      WINDOW_UPDATEs beyond two per DATA frame sent. Clients send a few.

    Timers:

    * ``keepalive_seconds`` (30 s) and ``keepalive_timeout_seconds`` (10 s):
      a quiet connection is pinged, and dropped when the ping goes
      unanswered; this finds dead peers within 40 s.
    * ``max_connection_idle_seconds`` (300 s; ``grpc.max_connection_idle_ms``):
      a connection without calls this long gets GOAWAY and is closed. An
      Envoy always has a stream open; other clients reconnect when they call.
    * ``max_connection_age_seconds`` (none) spreads clients over replicas
      when they reconnect: at that age (+-10 %) the connection gets GOAWAY,
      and its calls ``max_connection_age_grace_seconds`` (30 s) before they
      end with UNAVAILABLE (``grpc.max_connection_age_ms`` and
      ``grpc.max_connection_age_grace_ms``).
    * ``max_pending_calls`` (20,000; grpc.aio only): calls gRPC core queues
      while the event loop accepts them; past it, a connect storm gets
      CANCELLED and clients back off and retry.

    Who the clients are (both transports):

    * ``tls`` (none: plaintext): the port's certificate and key and, for
      mutual TLS, the CA of the clients' certificates
      (:class:`~switchman.xds.tls.TlsSettings`; the ``grpc`` transport
      cannot make a client certificate optional). A client certificate
      names the client: its first SPIFFE URI SAN, else its first DNS SAN
      (h2 reads it from the TLS socket, grpc.aio from the call's auth
      context). Secrets (SDS) go only to clients with a certificate: without
      one, the SDS services answer PERMISSION_DENIED and ADS leaves requests
      for secrets unanswered. The files are looked at again every
      ``tls.poll_seconds`` and on ``certificates.reload()`` (SIGHUP): new
      connections get new ones (:mod:`switchman.certificates`).
    * ``node_identities`` (none: any client may claim any node): identity
      pattern -> the node groups (``group_by``) it may claim; each pattern
      exact, or a prefix with a trailing ``*``. A stream whose node is in
      another group, or whose client has no identity, ends with
      PERMISSION_DENIED. They need a client CA (``tls.client_ca_file``):
      without client certificates no client has an identity, and every node
      would be refused (a ConfigError instead).
    """

    group_by: str = "cluster"
    response_limits: ResponseLimits = field(default_factory=ResponseLimits)
    client_kinds: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    max_request_bytes: int = 4 * _MIB
    max_node_bytes: int = 64 * 1024
    max_connections: int = 20_000
    max_connections_per_address: int | None = 1_000
    max_concurrent_streams: int = 1_000
    max_header_list_bytes: int = 16 * 1024
    request_timeout_seconds: float = 10.0
    max_send_buffer_bytes: int = 1 * _MIB
    max_write_stall_seconds: float = 30.0
    min_ping_interval_seconds: float = 5.0
    max_ping_strikes: int = 2
    max_stream_resets_per_second: float = 100.0
    max_control_frames_per_second: float = 100.0
    keepalive_seconds: float = 30.0
    keepalive_timeout_seconds: float = 10.0
    max_connection_idle_seconds: float | None = 300.0
    max_connection_age_seconds: float | None = None
    max_connection_age_grace_seconds: float = 30.0
    max_pending_calls: int = 20_000
    gc_freeze_seconds: float = 0.0
    transport: str = "h2"
    tls: TlsSettings | None = None
    node_identities: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def grpc_options(self) -> list[tuple[str, int]]:
        """The same bounds for grpc.aio, where it has them (the docstring says which it lacks)."""
        options = [
            ("grpc.max_receive_message_length", self.max_request_bytes),
            ("grpc.max_send_message_length", -1),  # the streams check each client's own limit
            ("grpc.keepalive_time_ms", int(self.keepalive_seconds * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.keepalive_timeout_seconds * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", int(self.min_ping_interval_seconds * 1000)),
            ("grpc.http2.max_ping_strikes", self.max_ping_strikes),
            ("grpc.so_reuseport", 0),
            ("grpc.server.max_pending_requests", self.max_pending_calls),
            ("grpc.server.max_pending_requests_hard_limit", self.max_pending_calls),
            ("grpc.max_allowed_incoming_connections", self.max_connections),
            ("grpc.max_concurrent_streams", self.max_concurrent_streams),
            ("grpc.max_metadata_size", self.max_header_list_bytes),
            ("grpc.absolute_max_metadata_size", self.max_header_list_bytes),
        ]
        if self.max_connection_idle_seconds is not None:
            options.append(("grpc.max_connection_idle_ms", int(self.max_connection_idle_seconds * 1000)))
        if self.max_connection_age_seconds is not None:
            options += [
                ("grpc.max_connection_age_ms", int(self.max_connection_age_seconds * 1000)),
                ("grpc.max_connection_age_grace_ms", int(self.max_connection_age_grace_seconds * 1000)),
            ]
        return options

    def h2_settings(self) -> H2Settings:
        """The same bounds for the h2 transport."""
        return H2Settings(
            max_request_bytes=self.max_request_bytes,
            max_connection_buffer_bytes=4 * self.max_request_bytes,
            max_send_buffer_bytes=self.max_send_buffer_bytes,
            max_write_stall_seconds=self.max_write_stall_seconds,
            max_connections=self.max_connections,
            max_connections_per_address=self.max_connections_per_address,
            max_concurrent_streams=self.max_concurrent_streams,
            max_header_list_bytes=self.max_header_list_bytes,
            request_timeout_seconds=self.request_timeout_seconds,
            keepalive_seconds=self.keepalive_seconds,
            keepalive_timeout_seconds=self.keepalive_timeout_seconds,
            max_connection_idle_seconds=self.max_connection_idle_seconds,
            max_connection_age_seconds=self.max_connection_age_seconds,
            max_connection_age_grace_seconds=self.max_connection_age_grace_seconds,
            floods=FloodLimits(
                min_ping_interval_seconds=self.min_ping_interval_seconds,
                max_ping_strikes=self.max_ping_strikes,
                max_stream_resets_per_second=self.max_stream_resets_per_second,
                stream_reset_burst=self.max_concurrent_streams,
                max_control_frames_per_second=self.max_control_frames_per_second,
            ),
        )


class XdsServer:
    """Serves a :class:`SnapshotCache` to xDS clients.

    ``start`` binds and returns the port (0 picks a free one); ``stop`` lets
    streams end within a grace period. Clients keep their config while the
    server is away and get the current one when they reconnect.
    """

    def __init__(self, cache: SnapshotCache, settings: XdsSettings | None = None,
                 metrics: XdsMetrics | None = None, *, csds_guard: Guard | None = None) -> None:
        self.settings = settings or XdsSettings()
        for name in _POSITIVE:
            if getattr(self.settings, name) <= 0:
                raise ConfigError(name, "must be positive")
        for limit in (self.settings.response_limits.of(k) for k in CLIENT_KINDS):
            if limit is not None and limit <= 0:
                raise ConfigError("response limits", f"a limit is positive (or none), not {limit}")
        for group, kinds in self.settings.client_kinds.items():
            for kind in kinds:
                if kind not in CLIENT_KINDS:
                    raise ConfigError(f"client kinds: {group}", f"{kind!r} is not one of {', '.join(CLIENT_KINDS)}")
        if self.settings.transport not in TRANSPORTS:
            raise ConfigError("xds transport", f"{self.settings.transport!r} is not one of {', '.join(TRANSPORTS)}")
        if self.settings.node_identities and (self.settings.tls is None or not self.settings.tls.client_ca_file):
            raise ConfigError("--node-identities", "needs --xds-client-ca: node identities come from client "
                                                   "certificates, and without them every node would be refused")
        self.cache = cache
        self.metrics = metrics or XdsMetrics()
        self.context = StreamContext(
            cache=cache,
            group_of=grouper(self.settings.group_by),
            metrics=self.metrics,
            response_limits=self.settings.response_limits,
            max_node_bytes=self.settings.max_node_bytes,
            node_identities=NodeIdentities(dict(self.settings.node_identities)),
        )
        self.csds_guard = csds_guard  # who may read CSDS (None: anyone who reaches the port)
        self._server: aio.Server | None = None
        self._h2: H2Server | None = None
        self._services: list[Callable[[aio.Server], object]] = []
        self._methods: list[AnyMethod] = []
        self.collector: CollectorPolicy | None = None
        #: The port's TLS certificates once started (None: plaintext); ``reload()`` reads them again.
        self.certificates: ServerCertificates | None = None
        if self.settings.gc_freeze_seconds > 0:
            self.collector = CollectorPolicy(interval=self.settings.gc_freeze_seconds)
        self.port = 0
        self._changed: asyncio.Event | None = None
        self.context.on_change = self._notify_change

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
            methods = [*xds_methods(self.context), *csds_methods(self.context, self.csds_guard), *self._methods]
            certificates = self._certificates()
            self._h2 = H2Server(methods, self.settings.h2_settings(), on_refusal=self.metrics.refused)
            self.metrics.transport = self._h2
            self.port = await self._h2.start(address, certificates.context if certificates else None)
        else:
            self.port = await self._start_grpc(address)
        if self.certificates is not None:
            self.certificates.start()
        if self.collector is not None:
            self.collector.start()
        return self.port

    def _certificates(self) -> ServerCertificates | None:
        """The port's certificates, loaded now (before anything binds), re-read when they change."""
        tls = self.settings.tls
        self.certificates = xds_certificates(tls) if tls is not None else None
        return self.certificates

    async def _start_grpc(self, address: str) -> int:
        tls = self.settings.tls
        certificates = self._certificates()
        credentials = grpc_credentials(certificates) if certificates is not None else None
        server = aio.server(options=self.settings.grpc_options())
        server.add_generic_rpc_handlers(discovery_handlers(self.context))
        csds_pb2_grpc.add_ClientStatusDiscoveryServiceServicer_to_server(
            ClientStatusService(self.context, self.csds_guard), server
        )
        for register in self._services:
            register(server)
        port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
        if port == 0:
            raise ConfigError("xds address", f"cannot bind {address}")
        await server.start()
        self._server = server
        log.info("xDS server (grpc.aio) listening on %s (port %d, %s)", address, port, "TLS" if tls else "plaintext")
        return int(port)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting streams; open ones end after ``grace`` seconds."""
        if self._h2 is not None:
            await self._h2.stop(grace)
            self._h2 = None
            self.metrics.transport = None
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        if self.certificates is not None:
            await self.certificates.stop()
        if self.collector is not None:
            await self.collector.stop()

    def statuses(self) -> list[NodeStatus]:
        """What every connected node has ACKed, per type."""
        return node_statuses(tuple(self.context.streams))

    def syncs(self) -> list[NodeSync]:
        """Whether every connected node runs what it is served now, and if not, why."""
        return node_syncs(tuple(self.context.streams))

    def _notify_change(self) -> None:
        # Called on every ACK, NACK, connect and disconnect: cheap unless someone waits.
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def changed(self, timeout: float) -> None:
        """Return when a node connects, disconnects, ACKs or NACKs, or after ``timeout`` seconds."""
        if self._changed is None:
            self._changed = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def check_response_sizes(self, snapshots: Mapping[str, Snapshot]) -> None:
        """Raise ConfigError naming the node group and type when a client of a group (connected now, or
        declared in ``client_kinds``) could not receive a response of ``snapshots`` (by node group).

        A group with no client connected and none declared is not checked: its clients are unknown. Should
        one connect later and be unable to take a response, the response is not sent (logged, counted, and
        shown as the node's ``waiting`` in the status)."""
        clients = self.context.clients
        kinds: dict[str, set[str]] = {}
        for group, kind in clients:
            kinds.setdefault(group, set()).add(kind)
        for group, declared in self.settings.client_kinds.items():
            kinds.setdefault(group, set()).update(declared)
        limits = self.settings.response_limits
        if all(limits.of(k) is None for found in kinds.values() for k in found):
            return  # only Envoys (the usual case): nothing to count
        nodes = {key: list(ids) for key, ids in clients.items()}
        found = oversized(snapshots, kinds, limits, nodes)
        if found:
            first = found[0]
            raise ConfigError(f"node group {first.group!r}: {first.type}", first.message(limits))


