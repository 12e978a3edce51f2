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
    return _bounded([(c, w) for c, w in weights.items() if w > 0])


_MAX_TOTAL = 2**32 - 1  # Envoy sums the weights in a uint32


def _bounded(weights: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Keep the total within a uint32: exactly (dividing by the common divisor) when that is enough,
    else by rescaling with largest remainders."""
    total = sum(w for _, w in weights)
    if total <= _MAX_TOTAL:
        return weights
    divisor = 0
    for _, w in weights:
        divisor = _gcd(divisor, w)
    weights = [(c, w // divisor) for c, w in weights]
    total //= divisor
    if total <= _MAX_TOTAL:
        return weights
    exact = [(c, w * _MAX_TOTAL / total) for c, w in weights]
    floors = [(c, max(1, int(x))) for c, x in exact]
    short = _MAX_TOTAL - sum(w for _, w in floors)
    order = sorted(range(len(exact)), key=lambda i: exact[i][1] - int(exact[i][1]), reverse=True)
    result = dict(floors)
    for i in order[: max(0, short)]:
        result[exact[i][0]] += 1
    return [(c, result[c]) for c, _ in weights]


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a
