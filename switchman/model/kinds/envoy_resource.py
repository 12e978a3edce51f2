"""``kind: EnvoyResource``: any v3 Listener, RouteConfiguration, Cluster, ClusterLoadAssignment
or Secret, written as Envoy's own JSON/YAML with its ``@type``; unknown fields are rejected.

Its Envoy name must equal ``metadata.name``, so that the document and the
resource are one thing to the history and to the status of a NACK; a
ClusterLoadAssignment, named after its cluster, may be named freely.
"""

from __future__ import annotations

from google.protobuf.message import Message

from switchman.model.fields import Node
from switchman.model.raw import parse_resources
from switchman.xds import resources as rt

__all__ = ["read_envoy_resource"]


def read_envoy_resource(spec: Node, name: str) -> Message:
    from switchman.errors import ConfigError

    try:
        [message] = parse_resources([spec.mapping()], source=spec.doc)
    except ConfigError as exc:
        spec.fail(exc.reason)
    actual = rt.resource_name(message)
    # A load assignment is named after its cluster, which is usually a document of the same
    # name: it may carry a metadata.name of its own (e.g. "legacy-endpoints").
    if actual != name and rt.TYPE_URL_OF.get(type(message)) != rt.ENDPOINT:
        spec.fail(f"the resource is named {actual!r}; it must match metadata.name {name!r}")
    return message
