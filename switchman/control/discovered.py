"""The discovered-endpoints layer: endpoints found outside the documents, laid over the served snapshots.

Documents make snapshots (:mod:`switchman.control.groups`); a Service version whose endpoints come from
Kubernetes (``kubernetes:``) translates to an EDS cluster with an empty load assignment. This layer keeps
the last endpoints known for each source and puts them in those load assignments, and in nothing else:

- when a revision is served, every group's snapshot is overlaid before it is installed;
- when a source's endpoints change, each group's installed snapshot gets new load assignments for the
  clusters that source feeds, by :meth:`Snapshot.with_changes <switchman.xds.cache.Snapshot.with_changes>`:
  the other types are shared, only endpoints are checked, and streams re-send only those assignments.

No revision is made and no document translated for an endpoint change: history is for what people change,
and a pod coming or going is not that. A source never heard of keeps its translated (empty) assignment;
once heard of, its last endpoints stay until the source says otherwise (a lost API server empties nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from switchman.model.kinds.cluster import Endpoint
from switchman.model.kinds.service import KubernetesSource
from switchman.translate.clusters import load_assignment
from switchman.xds import Snapshot
from switchman.xds import resources as rt

__all__ = ["DiscoveredEndpoint", "DiscoveredLayer", "endpoint_rows"]


@dataclass(frozen=True, slots=True)
class DiscoveredEndpoint:
    """An endpoint and where it was found (``kubernetes shop/checkout-v2/checkout-v2-x7k2p``: the slice)."""

    endpoint: Endpoint
    origin: str


class DiscoveredLayer:
    """The last endpoints known of each source, and how they change a snapshot."""

    def __init__(self) -> None:
        self._known: dict[KubernetesSource, tuple[DiscoveredEndpoint, ...]] = {}

    def update(self, source: KubernetesSource, endpoints: Iterable[DiscoveredEndpoint]) -> bool:
        """Record ``source``'s endpoints (sorted by address and port); True when they differ from before."""
        found = tuple(sorted(endpoints, key=lambda d: (d.endpoint.address, d.endpoint.port)))
        if self._known.get(source) == found:
            return False
        self._known[source] = found
        return True

    def forget(self, source: KubernetesSource) -> None:
        """Drop what is known of a source no document names any longer."""
        self._known.pop(source, None)

    def endpoints(self, source: KubernetesSource) -> tuple[DiscoveredEndpoint, ...] | None:
        """``source``'s last endpoints; None when it was never heard of."""
        return self._known.get(source)

    def overlay(
        self, snapshot: Snapshot, discovered: Mapping[str, KubernetesSource], only: KubernetesSource | None = None
    ) -> Snapshot:
        """``snapshot`` with the known endpoints in the load assignments of its discovered clusters (of
        ``only``, when given); ``snapshot`` itself when none changes."""
        served = snapshot.get(rt.ENDPOINT).resources
        upsert = []
        for cluster, source in discovered.items():
            if cluster not in served or (only is not None and source != only):
                continue
            known = self._known.get(source)
            if known is not None:
                upsert.append(load_assignment(cluster, (d.endpoint for d in known)))
        if not upsert:
            return snapshot
        changed = snapshot.with_changes(upsert)
        # Equal contents (a source reporting what it had): keep the old one, so no stream is woken.
        if changed.version(rt.ENDPOINT) == snapshot.version(rt.ENDPOINT):
            return snapshot
        return changed


def endpoint_rows(
    snapshot: Snapshot, discovered: Mapping[str, KubernetesSource], layer: DiscoveredLayer,
    document_of: Mapping[tuple[str, str], str],
) -> dict[str, list[dict[str, Any]]]:
    """Every endpoint of ``snapshot``'s load assignments by cluster, with where it came from: ``document
    service/checkout`` or the Kubernetes slice (``kubernetes shop/checkout-v2/checkout-v2-x7k2p``)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name in sorted(snapshot.get(rt.ENDPOINT).resources):
        source = discovered.get(name)
        known = layer.endpoints(source) if source is not None else None
        if source is not None and known is not None:
            out[name] = [_row(d.endpoint, d.origin) for d in known]
            continue
        message = snapshot.get(rt.ENDPOINT).resources[name].message
        origin = f"document {document_of.get((rt.ENDPOINT, name), '?')}"
        if source is not None:
            origin = f"kubernetes {source} (nothing discovered yet)"
        out[name] = [
            _row(
                Endpoint(
                    lb.endpoint.address.socket_address.address, lb.endpoint.address.socket_address.port_value,
                    lb.load_balancing_weight.value or 1, locality.locality.zone,
                ),
                origin,
            )
            for locality in message.endpoints
            for lb in locality.lb_endpoints
        ]
    return out


def _row(endpoint: Endpoint, origin: str) -> dict[str, Any]:
    return {
        "address": endpoint.address,
        "port": endpoint.port,
        "weight": endpoint.weight,
        "zone": endpoint.zone,
        "health": endpoint.health or "HEALTHY",
        "source": origin,
    }
