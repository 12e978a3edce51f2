"""Which node group an Envoy belongs to, chosen from its ``Node``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from envoy.config.core.v3 import base_pb2

from switchman.errors import ConfigError

__all__ = ["NodeGrouper", "grouper"]

NodeGrouper = Callable[[base_pb2.Node], str]

_BY: Final = "by"


def _by_id(node: base_pb2.Node) -> str:
    return str(node.id)


def _by_cluster(node: base_pb2.Node) -> str:
    return str(node.cluster or node.id)


def grouper(spec: str) -> NodeGrouper:
    """A grouper from a spec: ``id``, ``cluster`` or ``metadata:KEY``.

    ``cluster`` falls back to the node id when the node has no cluster;
    ``metadata:KEY`` reads a string from the node's metadata and falls back
    to the cluster.
    """
    if spec == "id":
        return _by_id
    if spec == "cluster":
        return _by_cluster
    if spec.startswith("metadata:") and len(spec) > len("metadata:"):
        key = spec.removeprefix("metadata:")

        def by_metadata(node: base_pb2.Node) -> str:
            value = node.metadata.fields.get(key)
            if value is not None and value.WhichOneof("kind") == "string_value":
                return str(value.string_value)
            return _by_cluster(node)

        return by_metadata
    raise ConfigError("group_by", f"{spec!r} is not one of id, cluster, metadata:KEY")
