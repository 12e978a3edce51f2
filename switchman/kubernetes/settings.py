"""How ``serve --kubernetes`` reaches the API server (no client imported here: ``serve`` without it stays light)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KubernetesSettings"]


@dataclass(frozen=True, slots=True)
class KubernetesSettings:
    """A kubeconfig file (and context), or, with none, the pod's ServiceAccount (in-cluster) when it runs in
    a pod, else ``$KUBECONFIG`` or ``~/.kube/config``."""

    kubeconfig: str = ""
    context: str = ""
