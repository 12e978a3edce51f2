"""Reading user documents field by field, so that every error names where it is.

A :class:`Node` wraps one value and its path (``spec.virtualHosts[0].domains``).
Reading a mapping marks the keys it consumed; :meth:`Node.done` then rejects
any key nobody read, with the list of the keys that are allowed.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn, TypeVar

from switchman.errors import ConfigError

__all__ = ["MAX_DURATION_SECONDS", "UINT32_MAX", "YAML_BOOLEANS", "Node"]

T = TypeVar("T")

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_MISSING = object()
# google.protobuf.Duration's range: 10,000 years.
MAX_DURATION_SECONDS = 315_576_000_000
UINT32_MAX = 2**32 - 1
YAML_BOOLEANS = "YAML reads on, off, yes, no as booleans"


class Node:
    """One value in a document, with the path to it and the name of the document."""

    __slots__ = ("_read", "doc", "path", "value")

    def __init__(self, doc: str, path: str, value: Any) -> None:
        self.doc = doc
        self.path = path
        self.value = value
        self._read: set[str] = set()

    # -- errors -------------------------------------------------------------

    def fail(self, reason: str) -> NoReturn:
        """Raise a ConfigError at this node: ``doc: path: reason``."""
        raise ConfigError(f"{self.doc}: {self.path}" if self.path else self.doc, reason)

    # -- structure ----------------------------------------------------------

    def _child_path(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def mapping(self) -> Mapping[str, Any]:
        if not isinstance(self.value, Mapping):
            self.fail(f"must be a mapping, not {_kind(self.value)}")
        return self.value

    def has(self, key: str) -> bool:
        return key in self.mapping()

    def get(self, key: str) -> Node | None:
        """The child ``key``, or None when absent (or null)."""
        data = self.mapping()
        self._read.add(key)
        if key not in data or data[key] is None:
            return None
        return Node(self.doc, self._child_path(key), data[key])

    def __getitem__(self, key: str) -> Node:
        """The child ``key``; a missing key is an error that names it."""
        child = self.get(key)
        if child is None:
            Node(self.doc, self._child_path(key), None).fail("is required")
        return child

    def items(self) -> Iterator[tuple[str, Node]]:
        """Every entry of a mapping (all count as read); keys must be strings."""
        for key, value in self.mapping().items():
            if not isinstance(key, str):
                self.fail(f"has the key {key!r}, which is not a string ({YAML_BOOLEANS}: quote it)")
            self._read.add(key)
            yield key, Node(self.doc, self._child_path(key), value)

    def elements(self, min_items: int = 0) -> list[Node]:
        if not isinstance(self.value, list):
            self.fail(f"must be a list, not {_kind(self.value)}")
        if len(self.value) < min_items:
            self.fail(f"needs at least {min_items} item{'s' if min_items > 1 else ''}")
        return [Node(self.doc, self._child_path(i), v) for i, v in enumerate(self.value)]

    def done(self) -> None:
        """Reject keys of this mapping that nothing read."""
        odd = [k for k in self.mapping() if not isinstance(k, str)]
        if odd:
            self.fail(f"has the key {odd[0]!r}, which is not a string ({YAML_BOOLEANS}: quote it)")
        unknown = sorted(set(self.mapping()) - self._read)
        if unknown:
            allowed = ", ".join(sorted(self._read)) or "none"
            Node(self.doc, self._child_path(unknown[0]), None).fail(f"unknown field (allowed here: {allowed})")

    def one_of(self, *keys: str) -> tuple[str, Node]:
        """Exactly one of ``keys`` must be present; returns it and its node."""
        present = [k for k in keys if self.get(k) is not None]
        if len(present) != 1:
            what = "none" if not present else ", ".join(present)
            self.fail(f"needs exactly one of {', '.join(keys)} (found {what})")
        child = self.get(present[0])
        assert child is not None
        return present[0], child

    # -- scalars ------------------------------------------------------------

    def text(self, pattern: str | None = None, what: str = "") -> str:
        if not isinstance(self.value, str) or not self.value:
            self.fail(f"must be a non-empty string, not {_kind(self.value)}")
        if pattern is not None and not re.fullmatch(pattern, self.value):
            self.fail(f"{self.value!r} is not {what or 'valid'}")
        return self.value

    def integer(self, low: int | None = None, high: int | None = UINT32_MAX) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            self.fail(f"must be a whole number, not {_kind(self.value)}")
        if low is not None and self.value < low:
            self.fail(f"{self.value} is below {low}")
        if high is not None and self.value > high:
            self.fail(f"{self.value} is above {high}")
        return self.value

    def number(self, low: float | None = None, high: float | None = None) -> float:
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            self.fail(f"must be a number, not {_kind(self.value)}")
        value = float(self.value)
        if not math.isfinite(value):
            self.fail(f"must be a finite number, not {value}")
        if low is not None and value < low:
            self.fail(f"{value:g} is below {low:g}")
        if high is not None and value > high:
            self.fail(f"{value:g} is above {high:g}")
        return value

    def flag(self) -> bool:
        if not isinstance(self.value, bool):
            self.fail(f"must be true or false, not {_kind(self.value)}")
        return self.value

    def choice(self, *allowed: str) -> str:
        value = self.text()
        if value not in allowed:
            self.fail(f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def duration(self, low: float = 0.0, high: float | None = None) -> float:
        """``250ms``, ``1.5s``, ``2m``, ``1h`` or a number of seconds; returns seconds."""
        if isinstance(self.value, int | float) and not isinstance(self.value, bool):
            seconds = float(self.value)
            if not math.isfinite(seconds):
                self.fail(f"must be a finite duration, not {seconds}")
        else:
            match = _DURATION.match(self.value) if isinstance(self.value, str) else None
            if match is None:
                self.fail(f"{self.value!r} is not a duration such as 250ms, 1.5s, 2m")
            seconds = float(match.group(1)) * _UNITS[match.group(2)]
        if seconds < low:
            self.fail(f"must be at least {low:g}s")
        high = MAX_DURATION_SECONDS if high is None else min(high, MAX_DURATION_SECONDS)
        if seconds > high:
            self.fail(f"must be at most {high:g}s")
        return seconds

    def strings(self, min_items: int = 0) -> list[str]:
        return [item.text() for item in self.elements(min_items)]

    def scalar(self, *, allow_empty: bool = True) -> str:
        """A string, or a number written as text; booleans, lists and mappings are refused."""
        value = self.value
        if isinstance(value, bool):
            self.fail(f"must be a string, not the boolean {value} ({YAML_BOOLEANS}: quote it)")
        if isinstance(value, int | float):
            if not math.isfinite(value):
                self.fail(f"must be a string, not {value}")
            return str(value)
        if not isinstance(value, str):
            self.fail(f"must be a string, not {_kind(value)}")
        if not value and not allow_empty:
            self.fail("must not be empty")
        return value

    def header_value(self) -> str:
        """Text that goes into an HTTP header: no CR, LF or NUL."""
        value = self.scalar()
        if any(c in value for c in "\r\n\0"):
            self.fail("must not contain CR, LF or NUL")
        return value

    def ip(self) -> str:
        """An IPv4 or IPv6 address (Envoy's static and EDS endpoints take no host names)."""
        text = self.text()
        try:
            ipaddress.ip_address(text)
        except ValueError:
            self.fail(f"{text!r} is not an IP address")
        return text

    def regex(self) -> str:
        """A regular expression that compiles (Envoy's RE2 is stricter still: no backreferences)."""
        text = self.text()
        try:
            re.compile(text)
        except re.error as exc:
            self.fail(f"{text!r} is not a valid regular expression: {exc}")
        return text


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}" if value else "an empty string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__
