"""Errors as the gRPC API shows them: one table from the stable error code to a gRPC status.

Which code an exception has is decided once, for both APIs, by
:func:`switchman.api.errors.status_of`; this table only says how each code
travels over gRPC. A refused call carries the code in the trailing metadata
(``switchman-error-code``) and, for a config error, the document and field
(``switchman-error-path``); the status details are the REST error's message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import grpc

from switchman.api.errors import status_of
from switchman.errors import ConfigError

__all__ = ["CODE_KEY", "GRPC_STATUS", "PATH_KEY", "GrpcError", "grpc_error"]

CODE_KEY: Final = "switchman-error-code"
PATH_KEY: Final = "switchman-error-path"

# The REST API's stable codes (switchman/api/errors.py, auth.py) -> gRPC status codes.
GRPC_STATUS: Final[Mapping[str, grpc.StatusCode]] = {
    "invalid_config": grpc.StatusCode.INVALID_ARGUMENT,
    "bad_request": grpc.StatusCode.INVALID_ARGUMENT,
    "unauthorized": grpc.StatusCode.UNAUTHENTICATED,
    "forbidden": grpc.StatusCode.PERMISSION_DENIED,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "conflict": grpc.StatusCode.ABORTED,
    "too_large": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "store_unavailable": grpc.StatusCode.UNAVAILABLE,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "internal": grpc.StatusCode.INTERNAL,
}


@dataclass(frozen=True, slots=True)
class GrpcError:
    """How one refusal goes over the wire: status, details and trailing metadata."""

    status: grpc.StatusCode
    code: str
    message: str
    path: str | None = None

    @property
    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        out = [(CODE_KEY, self.code)]
        if self.path is not None:
            out.append((PATH_KEY, _ascii(self.path)))
        return tuple(out)


def grpc_error(exc: Exception) -> GrpcError:
    """The gRPC form of ``exc``, with the same stable code the REST API gives it."""
    _, code = status_of(exc)
    path = exc.path if isinstance(exc, ConfigError) else None
    return GrpcError(GRPC_STATUS.get(code, grpc.StatusCode.INTERNAL), code, str(exc), path)


def _ascii(text: str) -> str:
    """Metadata values (keys without ``-bin``) must be printable ASCII: escape anything else."""
    escaped = text.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in escaped)
