"""The envelope every document shares, in the kubectl habit: ``kind``, ``metadata.name``, ``spec``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from switchman.model.fields import YAML_BOOLEANS, Node
from switchman.model.labels import read_labels

__all__ = ["GROUP_PATTERN", "KINDS", "NAME_PATTERN", "Envelope", "document_id", "read_envelope"]

KINDS: Final = ("Listener", "Routes", "Cluster", "Service", "Rollout", "EnvoyResource")
# Node groups are what --group-by reads from an Envoy's node (id, cluster or a metadata value).
GROUP_PATTERN: Final = r"[A-Za-z0-9._:/-]{1,128}"
# Names become Envoy resource and stat names: keep them plain.
NAME_PATTERN: Final = r"[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?"


@dataclass(frozen=True, slots=True)
class Envelope:
    kind: str
    name: str
    labels: Mapping[str, str]
    groups: tuple[str, ...]
    spec: Node

    @property
    def id(self) -> str:
        return document_id(self.kind, self.name)


def document_id(kind: str, name: str) -> str:
    """``routes/checkout``: how errors, the history and the API name a document."""
    return f"{kind.lower()}/{name}"


def _plain_json(value: Any, node: Node) -> None:
    """Documents are stored as JSON: refuse what JSON cannot hold (NaN, dates, sets...)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                node.fail(f"has the key {key!r}, which is not a string ({YAML_BOOLEANS}: quote it)")
            _plain_json(item, Node(node.doc, f"{node.path}.{key}" if node.path else key, item))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _plain_json(item, Node(node.doc, f"{node.path}[{i}]", item))
    elif isinstance(value, float):
        if not math.isfinite(value):
            node.fail(f"{value} is not a number JSON can hold")
    elif value is not None and not isinstance(value, str | int | bool):
        node.fail(f"{value!r} ({type(value).__name__}) is not plain JSON: quote it")


def read_envelope(raw: Any, where: str) -> Envelope:
    """Check the envelope of one document; ``where`` names it until its own name is known."""
    top = Node(where, "", raw)
    top.mapping()
    kind = top["kind"].choice(*KINDS)
    metadata = top["metadata"]
    name = metadata["name"].text(NAME_PATTERN, "a name of lowercase letters, digits, '.', '_' and '-'")
    label_node = metadata.get("labels")
    labels: dict[str, str] = {}
    if label_node is not None:  # named by the document, now that its name is known
        labels = read_labels(Node(document_id(kind, name), "metadata.labels", label_node.value))
    groups: tuple[str, ...] = ()
    groups_node = metadata.get("groups")
    if groups_node is not None:
        groups = tuple(g.text(GROUP_PATTERN, "a node group name") for g in groups_node.elements(min_items=1))
        if len(set(groups)) != len(groups):
            groups_node.fail("lists a group twice")
    metadata.done()
    api_version = top.get("apiVersion")  # accepted and ignored: there is one version
    if api_version is not None:
        api_version.text()
    spec = top["spec"]
    top.done()
    spec.doc = document_id(kind, name)
    _plain_json(raw, Node(spec.doc, "", raw))
    return Envelope(kind, name, labels, groups, spec)
