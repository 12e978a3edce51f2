"""``kind: Service``: the unit a traffic shift moves — named versions, each a set of endpoints.

Each version becomes an Envoy cluster named ``SERVICE-VERSION`` (``checkout-v2``).
A route that targets the service without naming a version splits by
``spec.weights`` (default: all to the first version).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from switchman.model.fields import Node
from switchman.model.kinds.cluster import Endpoint, Upstream, read_endpoints, read_upstream

__all__ = ["ServiceSpec", "read_service", "version_cluster"]

VERSION_PATTERN = r"[a-z0-9]([a-z0-9_-]{0,30}[a-z0-9])?"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    versions: Mapping[str, tuple[Endpoint, ...]]
    weights: Mapping[str, int]
    upstream: Upstream


def version_cluster(service: str, version: str) -> str:
    """The Envoy cluster of one version of a service."""
    return f"{service}-{version}"


def read_service(spec: Node) -> ServiceSpec:
    versions: dict[str, tuple[Endpoint, ...]] = {}
    versions_node = spec["versions"]
    for name, version in versions_node.items():
        Node(version.doc, version.path, name).text(VERSION_PATTERN, "a version name (lowercase, digits, - and _)")
        versions[name] = read_endpoints(version["endpoints"])
        version.done()
    if not versions:
        versions_node.fail("needs at least one version")
    weights: dict[str, int] = {}
    weights_node = spec.get("weights")
    if weights_node is not None:
        for name, weight in weights_node.items():
            if name not in versions:
                weight.fail(f"there is no version {name!r} (versions: {', '.join(versions)})")
            weights[name] = weight.integer(0, 100)
        if sum(weights.values()) == 0:
            weights_node.fail("weights sum to 0")
    else:
        weights = {next(iter(versions)): 100}
    result = ServiceSpec(versions=versions, weights=weights, upstream=read_upstream(spec))
    spec.done()
    return result
