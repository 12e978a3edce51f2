"""The lab's topology and the routing config that wires it, as a user would write it (docs/config.md).

Downstream clients reach one **front Envoy** (node cluster ``front``), which
splits ``checkout`` between its versions. Each version runs in one or more
**pods**; a pod is the demo app and its **sidecar Envoy** (node cluster = the
pod's name), which takes the pod's inbound traffic and hands it to the app on
the pod's own loopback::

    client -> front Envoy -> sidecar (pod checkout-v1-0) -> app v1
                          -> sidecar (pod checkout-v2-0) -> app v2

Every Envoy gets its config from Switchman; the documents say which node
group they are for (``metadata.groups``), so the front never opens a
sidecar's listener and a sidecar never opens the front's. The pods' sidecars
listen on port 0; the front's endpoints are the ports they got.

Nothing here starts a process: :mod:`switchman.lab.local.supervisor` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "FRONT_GROUP",
    "FRONT_LISTENER",
    "FRONT_NODE",
    "FRONT_ROUTES",
    "SERVICE",
    "VERSIONS",
    "PodSpec",
    "front_documents",
    "front_documents_for",
    "pod_specs",
    "retry_routes",
    "sidecar_documents",
]

SERVICE: Final = "checkout"
VERSIONS: Final = ("v1", "v2")
FRONT_GROUP: Final = "front"
FRONT_NODE: Final = "front-envoy"
FRONT_LISTENER: Final = "ingress"
FRONT_ROUTES: Final = "checkout-routes"
# 0.2 ** 7: about one request in 80,000 still fails after six retries when 20 % fail.
RETRY_POLICY: Final = {"retryOn": ["5xx", "reset", "connect-failure"], "attempts": 6, "perTryTimeout": "1s"}


@dataclass(frozen=True, slots=True)
class PodSpec:
    """One pod: ``service`` at ``version``, replica ``replica`` of that version, ``index`` among all pods."""

    service: str
    version: str
    replica: int
    index: int

    @property
    def name(self) -> str:
        """``checkout-v1-0``: the pod, its node group, and the prefix of its documents' names."""
        return f"{self.service}-{self.version}-{self.replica}"

    @property
    def sidecar_node(self) -> str:
        return f"{self.name}-sidecar"

    @property
    def listener(self) -> str:
        """The sidecar's inbound listener."""
        return f"{self.name}-inbound"


def pod_specs(sidecars: int, service: str = SERVICE, versions: Sequence[str] = VERSIONS) -> list[PodSpec]:
    """``sidecars`` pods, the versions taking turns (v1, v2, v1, ...); at least one pod per version.

    ValueError when there are fewer sidecars than versions.
    """
    if sidecars < len(versions):
        raise ValueError(f"{sidecars} sidecars cannot run {len(versions)} versions: one pod per version at least")
    return [
        PodSpec(service, versions[i % len(versions)], i // len(versions), i) for i in range(sidecars)
    ]


def sidecar_documents(
    pod: PodSpec | str, app_port: int, listen_address: str = "127.0.0.1", port: int = 0
) -> list[dict[str, Any]]:
    """A sidecar's config: an inbound listener on ``listen_address``:``port`` to the app at 127.0.0.1:``app_port``.

    ``pod`` is the node group the documents are for: one pod of the local lab (its name), or on Kubernetes a
    workload (``checkout-v1``) whose pods all run the same sidecar. The app listens on the pod's loopback:
    inside a network namespace (or a Kubernetes pod) only the sidecar reaches it.
    """
    group = pod if isinstance(pod, str) else pod.name
    meta = {"groups": [group]}
    return [
        {
            "kind": "Cluster",
            "metadata": {"name": f"{group}-app", **meta},
            "spec": {"discovery": "static", "endpoints": [{"address": "127.0.0.1", "port": app_port}]},
        },
        {
            "kind": "Routes",
            "metadata": {"name": f"{group}-inbound", **meta},
            "spec": {
                "virtualHosts": [
                    {
                        "name": group,
                        "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"}, "cluster": f"{group}-app", "timeout": "5s"}],
                    }
                ]
            },
        },
        {
            "kind": "Listener",
            "metadata": {"name": f"{group}-inbound", **meta},
            "spec": {"address": listen_address, "port": port, "routes": f"{group}-inbound"},
        },
    ]


def front_routes(retries: bool = False) -> dict[str, Any]:
    """The front's routes: everything to ``checkout`` by its weights; with ``retries``, a retry policy."""
    route: dict[str, Any] = {"match": {"prefix": "/"}, "service": SERVICE, "timeout": "5s"}
    if retries:
        route["retries"] = dict(RETRY_POLICY)
    return {
        "kind": "Routes",
        "metadata": {"name": FRONT_ROUTES, "groups": [FRONT_GROUP]},
        "spec": {"virtualHosts": [{"name": SERVICE, "domains": ["*"], "routes": [route]}]},
    }


def retry_routes() -> list[dict[str, Any]]:
    """The one document to apply to turn the front's retries on."""
    return [front_routes(retries=True)]


def front_documents(
    sidecars: Mapping[str, Iterable[tuple[str, int]]], weights: Mapping[str, int] | None = None
) -> list[dict[str, Any]]:
    """The front's config: ``checkout`` whose versions are the sidecars' ``(address, port)``, and a listener.

    ``weights`` default to everything on the first version.
    """
    versions = {v: {"endpoints": [{"address": a, "port": p} for a, p in eps]} for v, eps in sidecars.items()}
    return front_documents_for(versions, weights)


def front_documents_for(
    versions: Mapping[str, Mapping[str, Any]], weights: Mapping[str, int] | None = None,
    listen_address: str = "127.0.0.1", port: int = 0,
) -> list[dict[str, Any]]:
    """The front's config: ``checkout`` with ``versions`` (each a version's spec: its ``endpoints``, or its
    ``kubernetes`` source), and a listener on ``listen_address``:``port``.

    ``weights`` default to everything on the first version.
    """
    split = dict(weights) if weights is not None else {v: 100 if i == 0 else 0 for i, v in enumerate(versions)}
    meta = {"groups": [FRONT_GROUP]}
    return [
        {
            "kind": "Service",
            "metadata": {"name": SERVICE, **meta},
            "spec": {
                "versions": {v: dict(spec) for v, spec in versions.items()},
                "weights": split,
                # Envoy allows 3 concurrent retries per cluster by default; at 200
                # requests/s with 20 % failing that overflows now and then.
                "circuitBreakers": {"maxRetries": 1000},
            },
        },
        front_routes(),
        {
            "kind": "Listener",
            "metadata": {"name": FRONT_LISTENER, **meta},
            # Every request the front serves is logged to Switchman: what rollouts are judged by.
            "spec": {
                "address": listen_address, "port": port, "routes": FRONT_ROUTES,
                "accessLogService": {"cluster": "xds", "bufferFlushInterval": "250ms"},
            },
        },
    ]
