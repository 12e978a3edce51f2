"""Options of an apply that both APIs take: the prune selector and the wait.

REST reads them from the query or the JSON body (``prune=true&selector=app=shop&wait=5s``), gRPC from
``ApplyRequest``; both refuse a bad one with ``bad_request`` (400, INVALID_ARGUMENT) naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from switchman.api.errors import ApiError
from switchman.apply_wait import wait_for
from switchman.errors import ConfigError
from switchman.model.labels import check_selector, parse_selector

__all__ = ["prune_selector", "truth", "wait_seconds"]


def truth(value: Any, name: str) -> bool:
    """A flag: a boolean, or ``true``/``false``/``1``/``0``/``yes``/``no`` (absent: false); 400 otherwise."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no", ""):
        return value.lower() in ("1", "true", "yes")
    raise ApiError(400, "bad_request", f"{name} is true or false, not {str(value)[:40]!r}")


def prune_selector(prune: Any, selector: Any) -> Mapping[str, str] | None:
    """The selector of a prune (``prune=true&selector=app=shop``); 400 for one without the other, or a bad one."""
    if not truth(prune, "prune"):
        if selector:
            raise ApiError(400, "bad_request", "selector goes with prune=true: it chooses what the apply prunes")
        return None
    try:
        if isinstance(selector, Mapping) and all(isinstance(v, str) for v in selector.values()):
            check_selector(selector)
            chosen = {str(k): v for k, v in selector.items()}
        elif isinstance(selector, str) or selector is None:
            chosen = parse_selector(selector or "")
        else:
            raise ApiError(400, "bad_request", 'selector is "KEY=VALUE,..." or a mapping of labels to values')
    except ConfigError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    if not chosen:
        raise ApiError(
            400, "bad_request", "prune needs a selector (selector=app=shop): an empty one would delete every "
            "document the apply does not name",
        )
    return chosen


def wait_seconds(value: Any) -> float | None:
    """:func:`~switchman.api.wait.wait_for`'s reading of ``wait``, refused with 400 when bad."""
    try:
        return wait_for(value, "wait")
    except ConfigError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
