"""What both backends check before they write runtime state or touch a lease.

The checks live here, once, so that SQLite and etcd refuse the same values
with the same messages. A wrong argument (an empty key, a version below 1,
a TTL that is not positive) is the caller's bug and raises ``ValueError``;
a value the store cannot keep raises :class:`StoreError` naming the key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from switchman.store.base import MAX_STATE_BYTES, StoreError
from switchman.store.diff import encode

__all__ = ["check_expected", "check_key", "check_lease", "describe_version", "encode_state"]


def check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"a state key is a non-empty string, not {key!r}")


def check_expected(expected_version: int | None) -> None:
    """Versions start at 1: 0 would read as "absent" on etcd and as "never" on SQLite."""
    if expected_version is not None and (isinstance(expected_version, bool) or expected_version < 1):
        raise ValueError(f"an expected version is None or a version (1 or more), not {expected_version!r}")


def encode_state(key: str, value: Mapping[str, Any]) -> str:
    """``value`` as the canonical JSON both backends store; refuses what does not fit."""
    check_key(key)
    if not isinstance(value, Mapping):
        raise StoreError(f"state {key!r}: a value is a mapping, not {type(value).__name__}")
    try:
        text = encode(value)
    except StoreError as e:
        raise StoreError(f"state {key!r}: {e}") from e
    size = len(text.encode())
    if size > MAX_STATE_BYTES:
        raise StoreError(f"state {key!r}: the value is {size} bytes encoded, over the limit of {MAX_STATE_BYTES}")
    return text


def describe_version(version: int | None) -> str:
    return "none (it must not exist)" if version is None else str(version)


def check_lease(name: str, holder: str | None = None, ttl: float | None = None) -> None:
    """Check what is given: a lease name, and a holder and a TTL where the call takes them."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a lease name is a non-empty string, not {name!r}")
    if holder is not None and (not isinstance(holder, str) or not holder):
        raise ValueError(f"a lease holder is a non-empty string, not {holder!r}")
    if ttl is not None and not (ttl > 0 and math.isfinite(ttl)):
        raise ValueError(f"a lease TTL is a positive number of seconds, not {ttl!r}")
