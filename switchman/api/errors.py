"""Errors as the API shows them: one table from exception to HTTP status and stable code.

Every error body is ``{"error": {"code": ..., "message": ..., "path": ...}}``;
``code`` is stable and meant for programs, ``message`` for people.

The codes: ``invalid_config`` 422, ``bad_request`` 400, ``unauthorized``
401, ``forbidden`` 403, ``not_found`` 404, ``conflict`` 409, ``too_large``
413 (a body over ``--max-body-bytes``), ``store_unavailable`` 503,
``unavailable`` 503 (too many event streams open), ``internal`` 500.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from switchman.control import NotFound
from switchman.errors import ConfigError, SwitchmanError
from switchman.rollout.machine import CommandRefused
from switchman.store.base import ConflictError, RevisionNotFound, StoreError

__all__ = ["CODES", "ApiError", "error_response", "status_of"]

#: Every stable code, as the OpenAPI document lists them.
CODES: Final = (
    "invalid_config", "bad_request", "unauthorized", "forbidden", "not_found", "conflict", "too_large",
    "store_unavailable", "unavailable", "internal",
)


class ApiError(SwitchmanError):
    """Raised by handlers for a bad request that is not a config error (a malformed body, a bad query)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


# Most specific first.
_TABLE: Final[tuple[tuple[type[Exception], int, str], ...]] = (
    (ConfigError, 422, "invalid_config"),
    (ConflictError, 409, "conflict"),
    (CommandRefused, 409, "conflict"),
    (RevisionNotFound, 404, "not_found"),
    (NotFound, 404, "not_found"),
    (StoreError, 503, "store_unavailable"),
    (SwitchmanError, 500, "internal"),
)


def status_of(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, ApiError):
        return exc.status, exc.code
    for cls, status, code in _TABLE:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal"


def error_response(status: int, code: str, message: str, path: str | None = None) -> web.Response:
    body: dict[str, str] = {"code": code, "message": message}
    if path is not None:
        body["path"] = path
    return web.json_response({"error": body}, status=status)
