"""Loading the generated modules of Envoy's protobuf packages on demand.

``google.protobuf.Any`` fields in JSON name their type by URL; parsing them
needs that type's module imported. Importing every Envoy module up front
costs seconds, so a package's modules are imported the first time one of
its types is named.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

__all__ = ["import_package_of", "missing_type"]

_MISSING = re.compile(r"Can not find message descriptor by type_url: type\.googleapis\.com/([\w.]+)")


def missing_type(error_text: str) -> str | None:
    """The full type name a protobuf JSON error says it could not find, if any."""
    match = _MISSING.search(error_text)
    return match.group(1) if match else None


def import_package_of(type_name: str) -> bool:
    """Import every ``*_pb2`` module of the protobuf package holding ``type_name``; False if none."""
    package = type_name.rsplit(".", 1)[0]
    top = package.split(".", 1)[0]
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return False
    imported = False
    for base in spec.submodule_search_locations:
        folder = Path(base, *package.split(".")[1:])
        for path in sorted(folder.glob("*_pb2.py")):
            importlib.import_module(f"{package}.{path.stem}")
            imported = True
    return imported
