"""EndpointSlices (discovery.k8s.io/v1, as JSON) -> the endpoints of a :class:`KubernetesSource`.

A slice belongs to the Service its ``kubernetes.io/service-name`` label names; all its endpoints share its
``ports``. Per endpoint, its conditions (nil ``ready`` and ``serving`` mean true, nil ``terminating`` false):

- ready and not terminating: sent, healthy;
- terminating (the pod is going away; ``serving`` or not): sent as ``DRAINING``, so Envoy sends it no new
  requests but the endpoint is not dropped at once; it goes when the slice drops it;
- not ready and not terminating (a failing readiness probe, a starting pod): not sent, as kube-proxy does.

``zone`` becomes the endpoint's locality. Only the first address of an endpoint is used (the API says the
others are fungible); FQDN slices are skipped (EDS takes IP addresses).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from switchman.control.discovered import DiscoveredEndpoint
from switchman.model.kinds.cluster import Endpoint
from switchman.model.kinds.service import KubernetesSource

__all__ = ["SERVICE_LABEL", "Slice", "SliceEndpoint", "endpoints_of", "read_slice"]

SERVICE_LABEL: Final = "kubernetes.io/service-name"


@dataclass(frozen=True, slots=True)
class SliceEndpoint:
    address: str
    zone: str
    ready: bool
    terminating: bool


@dataclass(frozen=True, slots=True)
class Slice:
    """What discovery keeps of one EndpointSlice."""

    namespace: str
    name: str
    service: str  # "" when it has no service-name label
    ports: tuple[tuple[str, int], ...]  # (name, port)
    endpoints: tuple[SliceEndpoint, ...]


def _flag(conditions: Mapping[str, Any], key: str, default: bool) -> bool:
    value = conditions.get(key)
    return default if value is None else bool(value)


def read_slice(obj: Mapping[str, Any]) -> Slice:
    """The fields discovery needs of an EndpointSlice object."""
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    ports = tuple(
        (str(p.get("name") or ""), int(p["port"])) for p in obj.get("ports") or () if p.get("port") is not None
    )
    endpoints = []
    if obj.get("addressType") in ("IPv4", "IPv6"):
        for item in obj.get("endpoints") or ():
            addresses = item.get("addresses") or ()
            if not addresses:
                continue
            conditions = item.get("conditions") or {}
            ready = _flag(conditions, "ready", True)
            endpoints.append(SliceEndpoint(
                address=str(addresses[0]),
                zone=str(item.get("zone") or ""),
                ready=ready,
                terminating=_flag(conditions, "terminating", False),
            ))
    return Slice(
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ""),
        service=str(labels.get(SERVICE_LABEL) or ""),
        ports=ports,
        endpoints=tuple(endpoints),
    )


def _port(slice_: Slice, wanted: str | int | None) -> int | None:
    """The port ``wanted`` names in ``slice_``; None when it has no such port (or, unnamed, not one port)."""
    if wanted is None:
        return slice_.ports[0][1] if len(slice_.ports) == 1 else None
    for name, number in slice_.ports:
        if (isinstance(wanted, int) and number == wanted) or name == wanted:
            return number
    return None


def endpoints_of(source: KubernetesSource, slices: Iterable[Slice]) -> list[DiscoveredEndpoint]:
    """The endpoints ``slices`` (those of ``source``'s namespace) give ``source``. An address in two slices
    (while the controller moves it) counts once, ready before draining."""
    found: dict[tuple[str, int], DiscoveredEndpoint] = {}
    for slice_ in slices:
        if slice_.service != source.service or slice_.namespace != source.namespace:
            continue
        port = _port(slice_, source.port)
        if port is None:
            continue
        origin = f"kubernetes {slice_.namespace}/{slice_.service}/{slice_.name}"
        for item in slice_.endpoints:
            if item.terminating:
                health = "DRAINING"
            elif item.ready:
                health = ""
            else:
                continue
            key = (item.address, port)
            if key in found and not found[key].endpoint.health:
                continue
            found[key] = DiscoveredEndpoint(Endpoint(item.address, port, 1, item.zone, health), origin)
    return list(found.values())
