"""A whole configuration: documents checked one by one, then together.

Rules that need more than one document live here: names used twice,
references to documents that are not there, listeners that clash on a
port, and Envoy cluster names that two documents would both produce.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from google.protobuf.message import Message

from switchman.errors import ConfigError
from switchman.model.document import document_id, read_envelope
from switchman.model.kinds.cluster import ClusterSpec, Upstream, read_cluster
from switchman.model.kinds.envoy_resource import read_envoy_resource
from switchman.model.kinds.listener import ListenerSpec, read_listener
from switchman.model.kinds.rollout import RolloutSpec, read_rollout
from switchman.model.kinds.routes import Forward, RoutesSpec, Target, read_routes
from switchman.model.kinds.service import ServiceSpec, read_service, version_cluster
from switchman.model.kinds.tracing import tracing_cluster
from switchman.xds import resources as rt

__all__ = ["Config", "Document", "Spec", "build_config", "check_rollouts", "parse_document"]

Spec: TypeAlias = "ListenerSpec | RoutesSpec | ClusterSpec | ServiceSpec | RolloutSpec | Message"


@dataclass(frozen=True, slots=True)
class Document:
    """One checked document: its typed spec, and the mapping it came from (what the store keeps)."""

    kind: str
    name: str
    labels: Mapping[str, str]
    spec: Spec
    raw: Mapping[str, Any]
    groups: tuple[str, ...] = ()  # the node groups it is for; empty: every node

    @property
    def id(self) -> str:
        return document_id(self.kind, self.name)


def parse_document(raw: Any, where: str) -> Document:
    """Check one document on its own. Raises ConfigError naming the document and field."""
    envelope = read_envelope(raw, where)
    spec: Spec
    if envelope.kind == "Listener":
        spec = read_listener(envelope.spec)
    elif envelope.kind == "Routes":
        spec = read_routes(envelope.spec)
    elif envelope.kind == "Cluster":
        spec = read_cluster(envelope.spec)
    elif envelope.kind == "Service":
        spec = read_service(envelope.spec)
    elif envelope.kind == "Rollout":
        if envelope.groups:
            reason = "a Rollout is not served to Envoys: it takes no groups"
            raise ConfigError(f"{envelope.id}: metadata.groups", reason)
        spec = read_rollout(envelope.spec)
    else:
        spec = read_envoy_resource(envelope.spec, envelope.name)
    return Document(envelope.kind, envelope.name, envelope.labels, spec, raw, envelope.groups)


@dataclass(frozen=True, slots=True)
class Config:
    """Documents by id (``routes/checkout``), checked together."""

    documents: Mapping[str, Document]

    def of_kind(self, kind: str) -> list[Document]:
        return [d for d in self.documents.values() if d.kind == kind]

    def get(self, kind: str, name: str) -> Document | None:
        return self.documents.get(document_id(kind, name))


def build_config(documents: Iterable[Document]) -> Config:
    """Check documents together; raises ConfigError for the first problem found."""
    by_id: dict[str, Document] = {}
    for doc in documents:
        if doc.id in by_id:
            raise ConfigError(doc.id, "appears twice")
        by_id[doc.id] = doc
    config = Config(by_id)
    _check_references(config)
    _check_secrets(config)
    _check_collectors(config)
    _check_ports(config)
    _check_names(config)
    return config


def _raw_names(config: Config, type_url: str) -> set[str]:
    return {
        d.name
        for d in config.of_kind("EnvoyResource")
        if isinstance(d.spec, Message) and rt.TYPE_URL_OF.get(type(d.spec)) == type_url
    }


def _check_target(config: Config, target: Target, doc: str, path: str, raw_clusters: set[str]) -> None:
    if target.cluster is not None:
        if config.get("Cluster", target.cluster) is None and target.cluster not in raw_clusters:
            raise ConfigError(f"{doc}: {path}", f"names cluster {target.cluster!r}, which does not exist")
        return
    assert target.service is not None
    service = config.get("Service", target.service)
    if service is None:
        raise ConfigError(f"{doc}: {path}", f"names service {target.service!r}, which does not exist")
    assert isinstance(service.spec, ServiceSpec)
    if target.version is not None and target.version not in service.spec.versions:
        versions = ", ".join(service.spec.versions)
        raise ConfigError(
            f"{doc}: {path}", f"service {target.service!r} has no version {target.version!r} (it has {versions})"
        )


def _check_references(config: Config) -> None:
    raw_clusters = _raw_names(config, rt.CLUSTER)
    for doc in config.of_kind("Routes"):
        assert isinstance(doc.spec, RoutesSpec)
        for vhost in doc.spec.virtual_hosts:
            for route in vhost.routes:
                if isinstance(route.action, Forward):
                    for i, split in enumerate(route.action.splits):
                        where = f"{route.path}.split[{i}]" if len(route.action.splits) > 1 else route.path
                        _check_target(config, split.target, doc.id, where, raw_clusters)
                for mirror in route.mirrors:
                    _check_target(config, mirror.target, doc.id, f"{route.path}.mirror", raw_clusters)
    raw_routes = _raw_names(config, rt.ROUTE)
    for doc in config.of_kind("Listener"):
        assert isinstance(doc.spec, ListenerSpec)
        for chain in doc.spec.chains:
            prefix = f"{chain.path}." if chain.path != "spec" else "spec."
            routes = chain.routes
            if routes is not None and config.get("Routes", routes) is None and routes not in raw_routes:
                raise ConfigError(f"{doc.id}: {prefix}routes", f"names Routes {routes!r}, which does not exist")
            if chain.tcp is not None:
                _check_target(config, chain.tcp, doc.id, f"{prefix}tcp", raw_clusters)


def check_rollouts(config: Config) -> None:
    """A rollout moves two versions of a Service that exists; one rollout a service.

    Rollouts are checked against every document, whatever its node groups: a rollout is not
    served to Envoys, it moves a Service wherever that Service is served."""
    drivers: dict[str, str] = {}
    for doc in sorted(config.of_kind("Rollout"), key=lambda d: d.name):
        spec = doc.spec
        assert isinstance(spec, RolloutSpec)
        service = config.get("Service", spec.service)
        if service is None:
            raise ConfigError(f"{doc.id}: spec.service", f"names service {spec.service!r}, which does not exist")
        assert isinstance(service.spec, ServiceSpec)
        for field in ("stable", "canary"):
            version = getattr(spec, field)
            if version not in service.spec.versions:
                versions = ", ".join(service.spec.versions)
                reason = f"service {spec.service!r} has no version {version!r} (it has {versions})"
                raise ConfigError(f"{doc.id}: spec.{field}", reason)
        if spec.analysis.prometheus is not None and "." in spec.service:
            reason = f"service {spec.service!r} has a dot: Envoy's Prometheus stats cannot name it (tags split it)"
            raise ConfigError(f"{doc.id}: spec.analysis.provider", reason)
        other = drivers.get(spec.service)
        if other is not None:
            raise ConfigError(f"{doc.id}: spec.service", f"service {spec.service!r} is already rolled out by {other}")
        drivers[spec.service] = doc.id


def _raw_listener_addresses(config: Config) -> list[tuple[str, str, int]]:
    out = []
    for doc in config.of_kind("EnvoyResource"):
        spec = doc.spec
        if isinstance(spec, Message) and rt.TYPE_URL_OF.get(type(spec)) == rt.LISTENER and spec.HasField("address"):
            socket = spec.address.socket_address
            out.append((doc.id, socket.address, socket.port_value))
    return out


def _check_ports(config: Config) -> None:
    bound: list[tuple[str, str, int]] = []
    for doc in sorted(config.of_kind("Listener"), key=lambda d: d.name):
        assert isinstance(doc.spec, ListenerSpec)
        bound.append((doc.id, doc.spec.address, doc.spec.port))
    bound += _raw_listener_addresses(config)
    taken: dict[tuple[str, int], str] = {}
    for owner_id, address, port in bound:
        if port == 0:
            continue  # every Envoy picks a free port of its own
        for (other_address, other_port), other in taken.items():
            wildcard = "0.0.0.0" in (address, other_address) or "::" in (address, other_address)
            if port == other_port and (address == other_address or wildcard):
                where = f"{owner_id}: spec.port" if owner_id.startswith("listener/") else owner_id
                raise ConfigError(where, f"{address}:{port} clashes with {other} on {other_address}:{other_port}")
        taken[(address, port)] = owner_id


def _check_names(config: Config) -> None:
    """No two documents may produce an Envoy resource of the same type and name."""
    owners: dict[tuple[str, str], str] = {}
    produced: list[tuple[str, str, str]] = [(rt.CLUSTER, d.name, d.id) for d in config.of_kind("Cluster")]
    for doc in config.of_kind("Service"):
        assert isinstance(doc.spec, ServiceSpec)
        produced += [(rt.CLUSTER, version_cluster(doc.name, v), doc.id) for v in doc.spec.versions]
    produced += [(rt.ROUTE, d.name, d.id) for d in config.of_kind("Routes")]
    for doc in config.of_kind("Listener"):
        assert isinstance(doc.spec, ListenerSpec)
        produced.append((rt.LISTENER, doc.name, doc.id))
        if doc.spec.tracing is not None and doc.spec.tracing.collector.address is not None:
            produced.append((rt.CLUSTER, tracing_cluster(doc.name), doc.id))
    for doc in config.of_kind("EnvoyResource"):
        type_url = rt.TYPE_URL_OF.get(type(doc.spec))
        if type_url is not None:
            produced.append((type_url, doc.name, doc.id))
    for type_url, name, owner in produced:
        other = owners.get((type_url, name))
        if other is not None and other != owner:
            what = rt.short_name(type_url)
            raise ConfigError(owner, f"the Envoy resource {what}/{name} would also come from {other}")
        owners[(type_url, name)] = owner


def _secret_kinds(config: Config) -> dict[str, str]:
    """Each Secret's name and what it holds (``tls_certificate``, ``validation_context``, ...)."""
    out: dict[str, str] = {}
    for doc in config.of_kind("EnvoyResource"):
        spec = doc.spec
        if isinstance(spec, Message) and rt.TYPE_URL_OF.get(type(spec)) == rt.SECRET:
            out[doc.name] = spec.WhichOneof("type") or ""
    return out


def _check_secret(secrets: Mapping[str, str], name: str | None, holds: str, where: str) -> None:
    if name is None:
        return
    kind = secrets.get(name)
    if kind is None:
        reason = f"names secret {name!r}, which does not exist (add it as an EnvoyResource Secret)"
        raise ConfigError(where, reason)
    if kind and kind != holds:
        raise ConfigError(where, f"names secret {name!r}, which holds a {kind}, not a {holds}")


def _check_secrets(config: Config) -> None:
    secrets = _secret_kinds(config)
    for doc in config.of_kind("Listener"):
        assert isinstance(doc.spec, ListenerSpec)
        for chain in doc.spec.chains:
            secret = chain.tls.secret if chain.tls is not None else None
            prefix = f"{chain.path}." if chain.path != "spec" else "spec."
            _check_secret(secrets, secret, "tls_certificate", f"{doc.id}: {prefix}tls.secret")
    for doc in [*config.of_kind("Cluster"), *config.of_kind("Service")]:
        assert isinstance(doc.spec, ClusterSpec | ServiceSpec)
        tls = doc.spec.upstream.tls
        if tls is not None:
            _check_secret(secrets, tls.secret, "tls_certificate", f"{doc.id}: spec.tls.secret")
            _check_secret(secrets, tls.ca_secret, "validation_context", f"{doc.id}: spec.tls.caSecret")


def _upstream_of(config: Config, cluster: str) -> Upstream | None:
    """The upstream settings of the Envoy cluster a Cluster or Service document makes, if one does."""
    for doc in config.of_kind("Cluster"):
        if doc.name == cluster:
            assert isinstance(doc.spec, ClusterSpec)
            return doc.spec.upstream
    for doc in config.of_kind("Service"):
        assert isinstance(doc.spec, ServiceSpec)
        if any(version_cluster(doc.name, v) == cluster for v in doc.spec.versions):
            return doc.spec.upstream
    return None


def _check_collectors(config: Config) -> None:
    """A tracing collector is reached over gRPC: a cluster of ours that it names must speak HTTP/2."""
    for doc in config.of_kind("Listener"):
        assert isinstance(doc.spec, ListenerSpec)
        name = doc.spec.tracing.collector.cluster if doc.spec.tracing is not None else None
        upstream = _upstream_of(config, name) if name is not None else None
        if upstream is not None and not upstream.http2:
            reason = f"cluster {name!r} speaks {upstream.protocol}: an OTLP collector needs protocol GRPC (HTTP/2)"
            raise ConfigError(f"{doc.id}: spec.tracing.collector.cluster", reason)
