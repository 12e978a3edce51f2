"""Targets (a cluster, a service, a version) -> Envoy cluster names and weights."""

from __future__ import annotations

from switchman.model.config import Config
from switchman.model.kinds.routes import Split, Target
from switchman.model.kinds.service import ServiceSpec, version_cluster

__all__ = ["weighted_clusters"]


def _expand(config: Config, target: Target) -> list[tuple[str, int]]:
    """One target as ``(envoy cluster, weight)`` pairs whose weights sum to a positive total."""
    if target.cluster is not None:
        return [(target.cluster, 1)]
    assert target.service is not None
    if target.version is not None:
        return [(version_cluster(target.service, target.version), 1)]
    service = config.get("Service", target.service)
    assert service is not None and isinstance(service.spec, ServiceSpec)
    return [(version_cluster(target.service, v), w) for v, w in service.spec.weights.items() if w > 0]


def weighted_clusters(config: Config, splits: tuple[Split, ...]) -> list[tuple[str, int]]:
    """Envoy clusters with integer weights (the user's, when no service is spread), zero weights
    dropped, equal clusters merged.

    A split entry naming a whole service is spread over its versions by
    the service's weights; weights are scaled to stay whole numbers.
    """
    expanded = [(split.weight, _expand(config, split.target)) for split in splits]
    scale = 1
    for _, parts in expanded:
        total = sum(w for _, w in parts)
        scale = scale * total // _gcd(scale, total)
    weights: dict[str, int] = {}
    for weight, parts in expanded:
        total = sum(w for _, w in parts)
        for cluster, part in parts:
            weights[cluster] = weights.get(cluster, 0) + weight * part * (scale // total)
    return [(c, w) for c, w in weights.items() if w > 0]


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a
