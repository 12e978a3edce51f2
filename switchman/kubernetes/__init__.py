"""Endpoints from Kubernetes: EndpointSlices watched with ``kubernetes.aio`` and laid over EDS.

``settings`` says how to reach the API server; ``api`` is the typed edge over the client, ``slices``
reads an EndpointSlice, ``watch`` keeps one namespace's slices through failures, ``discovery`` hands the
endpoints to the controller. Only ``settings`` is imported here: the client is loaded when discovery runs.
See docs/kubernetes.md.
"""

from __future__ import annotations

from switchman.kubernetes.settings import KubernetesSettings

__all__ = ["KubernetesSettings"]
