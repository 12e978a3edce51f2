"""What a commit changed, by ``kind/metadata.name``, and the JSON both backends store.

Both backends keep documents as JSON text, and both compute a revision's
added/changed/removed lists against the head inside the commit, so the two
must agree on what "the same document" means. Equality is therefore decided
on :func:`encode` output (keys sorted, no whitespace), not on Python ``==``:
a tuple and a list with the same items, or two mappings whose keys were
inserted in a different order, are the same document once stored, and must
not show up as "changed".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from switchman.store.base import Document, StoreError

__all__ = ["Changes", "decode", "diff", "document_key", "encode"]


@dataclass(frozen=True, slots=True)
class Changes:
    """The ``kind/name`` keys a revision added, changed and removed, each sorted."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]


def encode(value: Any) -> str:
    """Canonical JSON: sorted keys, compact, and strict.

    ``allow_nan=False`` because NaN and Infinity are not JSON: a store file or
    an etcd value holding them could not be read by other JSON tools.
    """
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise StoreError(f"cannot store a value that is not plain JSON: {e}") from e


def decode(text: str | bytes) -> Any:
    """The inverse of :func:`encode`; a value that is not JSON means the store was damaged."""
    try:
        return json.loads(text)
    except ValueError as e:
        raise StoreError(f"stored JSON is unreadable: {e}") from e


def document_key(document: Document, index: int) -> str:
    """``kind/metadata.name`` of ``document``; ``index`` only names it in the error."""
    kind = document.get("kind")
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(kind, str) or not kind or not isinstance(name, str) or not name:
        raise StoreError(f"document {index}: a stored document needs a string kind and metadata.name")
    return f"{kind.lower()}/{name}"  # the spelling errors and apply results use too


def _by_key(documents: Sequence[Document]) -> dict[str, str]:
    keyed: dict[str, str] = {}
    for index, document in enumerate(documents):
        key = document_key(document, index)
        if key in keyed:
            raise StoreError(f"document {index}: {key} appears twice in one revision")
        keyed[key] = encode(document)
    return keyed


def diff(previous: Sequence[Document], current: Sequence[Document]) -> Changes:
    """Compare two whole configurations by ``kind/metadata.name``.

    Raises :class:`StoreError` when a document has no key, or a key appears
    twice in ``current``: the lists would be ambiguous.
    """
    before, after = _by_key(previous), _by_key(current)
    return Changes(
        added=tuple(sorted(after.keys() - before.keys())),
        changed=tuple(sorted(k for k in after.keys() & before.keys() if after[k] != before[k])),
        removed=tuple(sorted(before.keys() - after.keys())),
    )
