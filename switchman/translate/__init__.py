"""The model -> Envoy resources, as pure functions. Nothing here does I/O."""

from __future__ import annotations

from google.protobuf.message import Message

from switchman.model.config import Config
from switchman.model.kinds.cluster import ClusterSpec
from switchman.model.kinds.listener import ListenerSpec
from switchman.model.kinds.routes import RoutesSpec
from switchman.model.kinds.service import ServiceSpec, version_cluster
from switchman.translate.clusters import cluster_resources
from switchman.translate.listeners import listener
from switchman.translate.routes import route_configuration

__all__ = ["translate"]


def translate(config: Config) -> list[Message]:
    """Every Envoy resource a configuration produces, raw EnvoyResource documents included."""
    out: list[Message] = []
    for doc in sorted(config.documents.values(), key=lambda d: d.id):
        spec = doc.spec
        if isinstance(spec, ClusterSpec):
            out += cluster_resources(doc.name, spec.endpoints, spec.upstream, spec.discovery)
        elif isinstance(spec, ServiceSpec):
            for version, endpoints in spec.versions.items():
                out += cluster_resources(version_cluster(doc.name, version), endpoints, spec.upstream)
        elif isinstance(spec, RoutesSpec):
            out.append(route_configuration(config, doc.name, spec))
        elif isinstance(spec, ListenerSpec):
            out.append(listener(config, doc.name, spec))
        else:
            out.append(spec)
    return out
