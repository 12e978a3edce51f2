"""Labels on documents (``metadata.labels``) and the selectors that pick documents by them.

Labels are Kubernetes' (so that a GitOps tool's habits carry over): a key
is a name of at most 63 characters (letters, digits, ``-``, ``_``, ``.``,
starting and ending with a letter or digit), optionally after a prefix
that is a DNS subdomain and a ``/`` (``switchman.io/set``); a value is at
most 63 such characters, or empty. A selector is ``KEY=VALUE`` pairs joined
by commas (``app=shop,tier=front``); a document matches when it carries
every pair. ``apply --prune`` deletes the documents a selector matches that
the apply does not name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from switchman.errors import ConfigError
from switchman.model.fields import Node

__all__ = ["check_selector", "format_selector", "matches", "parse_selector", "read_labels"]

_NAME: Final = r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?"
_PREFIX: Final = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
_KEY: Final = re.compile(rf"({_PREFIX}/)?{_NAME}")
_VALUE: Final = re.compile(rf"({_NAME})?")
_KEY_RULE: Final = (
    "a label key: a name of at most 63 letters, digits, '-', '_' and '.' that starts and ends with a letter or "
    "digit, optionally after a DNS prefix and '/' (app, switchman.io/set)"
)
_VALUE_RULE: Final = (
    "a label value: empty, or at most 63 letters, digits, '-', '_' and '.' that start and end with a letter or digit"
)


def _key_problem(key: str) -> str | None:
    if not _KEY.fullmatch(key) or len(key.partition("/")[0]) > 253:
        return f"{key!r} is not {_KEY_RULE}"
    return None


def _value_problem(value: str) -> str | None:
    return None if _VALUE.fullmatch(value) else f"{value!r} is not {_VALUE_RULE}"


def read_labels(node: Node) -> dict[str, str]:
    """``metadata.labels`` of a document, checked; raises ConfigError naming the label."""
    labels: dict[str, str] = {}
    for key, value in node.items():
        problem = _key_problem(key)
        if problem is not None:
            value.fail(problem)
        if isinstance(value.value, int | float) and not isinstance(value.value, bool):
            value.fail(f"must be a string, not the number {value.value!r} (quote it: labels are text)")
        text = value.scalar()  # refuses booleans, lists and mappings, saying which
        problem = _value_problem(text)
        if problem is not None:
            value.fail(problem)
        labels[key] = text
    return labels


def parse_selector(text: str, where: str = "selector") -> dict[str, str]:
    """``app=shop,tier=front`` as a mapping; raises ConfigError naming ``where``. Empty text: empty mapping."""
    selector: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or "=" in value or key.endswith("!"):
            raise ConfigError(where, f"{part!r} is not KEY=VALUE (a selector is KEY=VALUE pairs joined by commas)")
        check_selector({key: value}, where)
        if selector.get(key, value) != value:
            raise ConfigError(where, f"names label {key!r} twice, with different values")
        selector[key] = value
    return selector


def check_selector(selector: Mapping[str, str], where: str = "selector") -> None:
    """Raise ConfigError naming ``where`` when a key or value of ``selector`` could not be a label's."""
    for key, value in selector.items():
        problem = _key_problem(key) or _value_problem(value)
        if problem is not None:
            raise ConfigError(where, problem)


def format_selector(selector: Mapping[str, str]) -> str:
    """``app=shop,tier=front``, sorted by key: what :func:`parse_selector` reads back."""
    return ",".join(f"{k}={selector[k]}" for k in sorted(selector))


def matches(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    """Whether ``labels`` carry every pair of ``selector``."""
    return all(labels.get(k) == v for k, v in selector.items())
