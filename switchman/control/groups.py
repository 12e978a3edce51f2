"""Node groups: which documents each group of Envoys gets, and the snapshot of each.

A document without ``metadata.groups`` is for every node; one with groups
is only for those. The default group (``*``) is what nodes of any other
group get: the documents without groups. Each group's documents are checked
together on their own, so a listener for ``canary`` may reuse a port used in
``stable``, and a route for ``canary`` may not name a cluster only ``stable`` has.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from google.protobuf.message import Message

from switchman.errors import ConfigError
from switchman.model.config import Config, Document, build_config, check_rollouts
from switchman.model.kinds.service import KubernetesSource, ServiceSpec, version_cluster
from switchman.translate import translate_documents
from switchman.xds import DEFAULT_GROUP, Snapshot
from switchman.xds import resources as rt

__all__ = ["Served", "build_served"]


@dataclass(frozen=True, slots=True)
class Served:
    """A snapshot per node group, the document each Envoy resource came from, and the Envoy clusters whose
    endpoints are discovered (cluster name -> where from; their load assignments are empty here)."""

    snapshots: Mapping[str, Snapshot]
    origin: Mapping[tuple[str, str], str]
    discovered: Mapping[str, KubernetesSource] = field(default_factory=dict)


def _discovered(documents: Iterable[Document]) -> dict[str, KubernetesSource]:
    return {
        version_cluster(d.name, version): source
        for d in documents
        if isinstance(d.spec, ServiceSpec)
        for version, source in d.spec.sources.items()
    }


def _views(documents: list[Document]) -> dict[str, list[Document]]:
    named = sorted({g for d in documents for g in d.groups})
    views = {DEFAULT_GROUP: [d for d in documents if not d.groups]}
    for group in named:
        views[group] = [d for d in documents if not d.groups or group in d.groups]
    return views


def _snapshot(config: Config, origin: dict[tuple[str, str], str]) -> Snapshot:
    resources: list[Message] = []
    for doc_id, messages in translate_documents(config):
        for message in messages:
            resources.append(message)
            origin[(rt.TYPE_URL_OF[type(message)], rt.resource_name(message))] = doc_id
    try:
        return Snapshot.build(resources)
    except ConfigError as exc:
        # The model's own checks should have caught this; say where it came from.
        raise ConfigError(exc.path, f"{exc.reason} (in the Envoy resources this configuration produces)") from None


def build_served(documents: Iterable[Document]) -> Served:
    """Check, translate and build every group's snapshot; raises ConfigError naming the group if one fails."""
    docs = list(documents)
    seen: set[str] = set()
    for doc in docs:
        if doc.id in seen:
            raise ConfigError(doc.id, "appears twice")
        seen.add(doc.id)
    # Rollouts against every Service, whatever its groups (each group's view checks the rest).
    check_rollouts(Config({d.id: d for d in docs if d.kind in ("Service", "Rollout")}))
    docs = [d for d in docs if d.kind != "Rollout"]  # nothing to serve: they move Services
    snapshots: dict[str, Snapshot] = {}
    origin: dict[tuple[str, str], str] = {}
    views = _views(docs)
    for group, members in views.items():
        try:
            snapshots[group] = _snapshot(build_config(members), origin)
        except ConfigError as exc:
            if len(views) == 1:
                raise
            where = "nodes of every group" if group == DEFAULT_GROUP else f"node group {group!r}"
            raise ConfigError(exc.path, f"{exc.reason} (in what {where} get)") from None
    return Served(snapshots, origin, _discovered(docs))
