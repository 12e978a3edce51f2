"""The composition root: the one place that wires store, controller, xDS server, HTTP API, gRPC API and telemetry."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from aiohttp import web

from switchman.api import Tokens, api_app
from switchman.api.app import DEFAULT_MAX_BODY_BYTES
from switchman.api.grpc import add_management_service, management_methods
from switchman.api.grpc.access import reader_guard
from switchman.certificates import ServerCertificates
from switchman.console import add_console
from switchman.control import Controller
from switchman.errors import ConfigError
from switchman.exposure import exposure
from switchman.kubernetes import KubernetesSettings
from switchman.rollout import EngineSettings, RolloutEngine
from switchman.rollout.sources import EnvoyReports
from switchman.store import EtcdAuth, EtcdTls, Store, open_store
from switchman.telemetry import (
    ShareSettings,
    TelemetryMetrics,
    TelemetrySettings,
    TelemetryShare,
    TrafficRecorder,
    add_telemetry_services,
    telemetry_methods,
)
from switchman.tls import TlsSettings
from switchman.xds import SnapshotCache, XdsServer, XdsSettings
from switchman.xds.server import ResponseLimits
from switchman.xds.server.peer import Peer

if TYPE_CHECKING:
    from switchman.kubernetes.discovery import KubernetesDiscovery

__all__ = ["DEFAULT_HISTORY_KEEP", "ServeSettings", "Switchman", "split_address"]

log = logging.getLogger(__name__)

#: Revisions kept in the store by default (serve --history-keep).
DEFAULT_HISTORY_KEEP = 1000


def split_address(address: str, what: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6) -> ``(host, port)``; raises ConfigError naming ``what``."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(what, f"{address!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """What ``switchman serve`` runs with."""

    xds_address: str = "127.0.0.1:18000"
    api_address: str = "127.0.0.1:8080"
    store: str = "switchman.db"
    etcd_tls: EtcdTls | None = None  # TLS to an etcd store (serve's --etcd-ca, --etcd-cert, --etcd-key)
    etcd_auth: EtcdAuth | None = None  # etcd's user/password authentication (--etcd-user and the password)
    group_by: str = "cluster"
    tokens: Tokens = field(default_factory=Tokens)
    xds: XdsSettings | None = None
    gc_freeze_seconds: float = 0.0  # see switchman.xds.server.collector; serve's flag sets it
    xds_transport: str = "h2"  # switchman.xds.h2; or "grpc": grpc.aio
    xds_tls: TlsSettings | None = None  # TLS (mutual with a client CA) on the xDS port
    api_tls: TlsSettings | None = None  # TLS (mutual with a client CA) on the REST API
    node_identities: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # identity -> groups it may claim
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    rollouts: EngineSettings = field(default_factory=EngineSettings)
    share: ShareSettings = field(default_factory=ShareSettings)
    history_keep: int = DEFAULT_HISTORY_KEEP  # revisions kept after each commit; 0 keeps them all
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES  # the REST API's largest request body
    response_limits: ResponseLimits = field(default_factory=ResponseLimits)  # per client kind (serve --response-limits)
    client_kinds: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # node group -> kinds (--client-kinds)
    kubernetes: KubernetesSettings | None = None  # endpoint discovery from EndpointSlices (serve --kubernetes)


class Switchman:
    """A running control plane: ``start`` binds both ports and returns them; ``stop`` undoes it all."""

    def __init__(self, settings: ServeSettings, store: Store | None = None) -> None:
        self.settings = settings
        self.cache = SnapshotCache()
        xds = settings.xds or XdsSettings(
            group_by=settings.group_by, gc_freeze_seconds=settings.gc_freeze_seconds,
            transport=settings.xds_transport, tls=settings.xds_tls, node_identities=settings.node_identities,
            response_limits=settings.response_limits, client_kinds=settings.client_kinds,
        )
        # CSDS shows every node's config: it is read as the management API is (tokens, reader identities).
        # Made before the store is opened: settings it refuses leave nothing behind.
        self.xds = XdsServer(self.cache, xds, csds_guard=reader_guard(settings.tokens) if settings.tokens.enabled
                             else None)
        self.store = store or open_store(settings.store, etcd_tls=settings.etcd_tls, etcd_auth=settings.etcd_auth)
        # A change whose responses a connected (or declared) client could not receive is refused.
        self.controller = Controller(
            self.store, self.cache, history_keep=settings.history_keep, admit=self.xds.check_response_sizes
        )
        self.telemetry = TrafficRecorder()
        metrics = TelemetryMetrics(self.xds.metrics.registry)
        # One name for this replica's rollout leases and its published traffic.
        engine = settings.rollouts
        if not engine.replica:
            engine = replace(engine, replica=f"switchman-{uuid.uuid4().hex[:8]}")
        # Rollouts run here, judged by what the Envoys report to this Switchman and, through the store,
        # to the other replicas (or a Prometheus).
        self.share = TelemetryShare(self.telemetry, self.store, engine.replica, settings.share, metrics)
        reports = EnvoyReports(self.telemetry, self.share, settle=engine.analysis_lag)
        self.rollouts = RolloutEngine(self.controller, self.store, reports, engine)
        self.xds.metrics.registry.register(self.rollouts.metrics)
        # The gRPC management API shares the xDS port, on either transport.
        self.xds.add_service(
            lambda server: add_management_service(server, self.controller, self.xds, settings.tokens, self.rollouts)
        )
        # What Envoys report of their traffic (access logs, load reports), on the same port: a report counts
        # for a node group only if its client may claim the group (node identities), as for its config.
        context = self.xds.context
        group_of = context.group_of

        def refusal(peer: Peer, group: str) -> str | None:
            return context.refusal(peer, group, secrets=False)

        self.xds.add_service(
            lambda server: add_telemetry_services(
                server, self.telemetry, group_of, metrics, settings.telemetry, refusal
            )
        )
        if xds.transport == "h2":
            self.xds.add_methods(management_methods(self.controller, self.xds, settings.tokens, self.rollouts))
            self.xds.add_methods(telemetry_methods(self.telemetry, group_of, metrics, settings.telemetry, refusal))
        self._runner: web.AppRunner | None = None
        self.api_certificates: ServerCertificates | None = None  # the API's TLS once started (None: plaintext)
        self.discovery: KubernetesDiscovery | None = None
        self.xds_port = 0
        self.api_port = 0

    async def start(self) -> tuple[int, int]:
        api_tls = self.settings.api_tls
        # HTTP/1.1 is what aiohttp serves; the files are checked before anything starts.
        self.api_certificates = ServerCertificates(api_tls, ["http/1.1"], "API port") if api_tls else None
        await self.controller.start()
        if self.settings.kubernetes is not None:
            # The client is imported only when discovery runs.
            from switchman.kubernetes.api import connect
            from switchman.kubernetes.discovery import KubernetesDiscovery

            self.discovery = KubernetesDiscovery(await connect(self.settings.kubernetes), self.controller)
            await self.discovery.start()
        self.xds_port = await self.xds.start(self.settings.xds_address)
        host, port = split_address(self.settings.api_address, "api address")
        await self.rollouts.start()
        await self.share.start(self.rollouts.watched_clusters)
        app = api_app(
            self.controller, self.xds, self.settings.tokens, self.rollouts, max_body_bytes=self.settings.max_body_bytes,
            discovery=self._discovery_status if self.discovery is not None else None,
        )
        add_console(app)  # the web console at /, on the API's port and behind the same tokens
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=self.api_certificates.context
                           if self.api_certificates else None)
        await site.start()
        if self.api_certificates is not None:
            self.api_certificates.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.api_port = int(sockets[0].getsockname()[1]) if sockets else port
        for level, line in exposure(self.settings, self.xds.settings, self.xds_port, self.api_port):
            log.log(level, "%s", line)
        return self.xds_port, self.api_port

    def reload_certificates(self) -> None:
        """Read both ports' certificate files again now (``serve`` on SIGHUP): new connections get new ones,
        a file that does not do is logged and the certificate in use stays."""
        for certificates in (self.xds.certificates, self.api_certificates):
            if certificates is not None:
                certificates.reload()

    def _discovery_status(self) -> dict[str, Any]:
        assert self.discovery is not None
        return self.discovery.health().as_json()

    async def stop(self, grace: float = 5.0) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.api_certificates is not None:
            await self.api_certificates.stop()
        await self.share.stop()
        await self.rollouts.stop()
        await self.xds.stop(grace)
        if self.discovery is not None:
            await self.discovery.stop()
            self.discovery = None
        await self.controller.stop()
        await self.store.close()
