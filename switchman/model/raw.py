"""Raw Envoy resources as JSON or YAML: any v3 Listener, RouteConfiguration, Cluster,
ClusterLoadAssignment or Secret, each a mapping with its ``@type``.

Unknown fields are rejected; every error names the document and the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from switchman.errors import ConfigError
from switchman.model.protos import import_package_of, missing_type
from switchman.xds import resources as rt

__all__ = ["parse_resources"]

_PREFIX = "type.googleapis.com/"


def _where(source: str, index: int, doc: Mapping[str, Any]) -> str:
    name = doc.get("name") or doc.get("cluster_name") or doc.get("clusterName") or f"#{index}"
    return f"{source}[{index}] ({name})"


def parse_resources(docs: Iterable[Any], source: str = "resources") -> list[Message]:
    """Parse mappings with an ``@type`` into Envoy protobuf messages.

    Raises :class:`ConfigError` naming ``source[index] (name)`` and the reason.
    """
    out: list[Message] = []
    for index, doc in enumerate(docs):
        if not isinstance(doc, Mapping):
            raise ConfigError(f"{source}[{index}]", "must be a mapping with an @type")
        where = _where(source, index, doc)
        type_name = str(doc.get("@type", ""))
        type_url = type_name if type_name.startswith(_PREFIX) else _PREFIX + type_name
        try:
            cls = rt.message_class(type_url)
        except KeyError:
            served = ", ".join(sorted(u.removeprefix(_PREFIX) for u in rt.TYPE_URLS))
            raise ConfigError(f"{where}.@type", f"{type_name!r} is not one of {served}") from None
        body = {k: v for k, v in doc.items() if k != "@type"}
        out.append(_parse(body, cls, where))
    return out


def _parse(body: Mapping[str, Any], cls: rt.MessageClass, where: str) -> Message:
    tried: set[str] = set()
    while True:
        try:
            return json_format.ParseDict(body, cls())
        except json_format.ParseError as exc:
            missing = missing_type(str(exc))
            if missing is None or missing in tried or not import_package_of(missing):
                # protobuf appends the list of every field; the first line says it all
                raise ConfigError(where, str(exc).split("\n", 1)[0]) from None
            tried.add(missing)
