"""The model -> Envoy resources, as pure functions. Nothing here does I/O."""

from __future__ import annotations

from google.protobuf.message import Message

from switchman.model.config import Config
from switchman.model.kinds.cluster import ClusterSpec
from switchman.model.kinds.listener import ListenerSpec
from switchman.model.kinds.rollout import RolloutSpec
from switchman.model.kinds.routes import RoutesSpec
from switchman.model.kinds.service import ServiceSpec, version_cluster
from switchman.translate.clusters import cluster_resources
from switchman.translate.listeners import listener
from switchman.translate.routes import route_configuration
from switchman.translate.tracing import collector_cluster

__all__ = ["translate", "translate_documents"]


def translate_documents(config: Config) -> list[tuple[str, list[Message]]]:
    """The Envoy resources of each document (by document id), in id order."""
    out: list[tuple[str, list[Message]]] = []
    for doc in sorted(config.documents.values(), key=lambda d: d.id):
        spec = doc.spec
        messages: list[Message] = []
        if isinstance(spec, ClusterSpec):
            messages += cluster_resources(doc.name, spec.endpoints, spec.upstream, spec.discovery)
        elif isinstance(spec, ServiceSpec):
            for version, endpoints in spec.versions.items():
                messages += cluster_resources(version_cluster(doc.name, version), endpoints, spec.upstream)
        elif isinstance(spec, RoutesSpec):
            messages.append(route_configuration(config, doc.name, spec))
        elif isinstance(spec, ListenerSpec):
            messages.append(listener(config, doc.name, spec))
            collector = collector_cluster(doc.name, spec.tracing) if spec.tracing is not None else None
            if collector is not None:
                messages.append(collector)
        elif isinstance(spec, RolloutSpec):
            pass  # a rollout moves a Service's traffic; it has no Envoy resources of its own
        else:
            messages.append(spec)
        out.append((doc.id, messages))
    return out


def translate(config: Config) -> list[Message]:
    """Every Envoy resource a configuration produces, raw EnvoyResource documents included."""
    return [message for _, messages in translate_documents(config) for message in messages]
