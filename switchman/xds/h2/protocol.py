"""gRPC over HTTP/2 as the transport speaks it: response headers, trailers, call metadata and ``grpc-timeout``.

From gRPC's "gRPC over HTTP2" specification: ``:status 200`` and
``content-type: application/grpc`` before the first message, trailers with
``grpc-status`` and a percent-encoded ``grpc-message`` at the end (or
trailers only when a call fails before its first message), and a request's
deadline in ``grpc-timeout``: at most 8 ASCII digits and a unit
(``H`` hours, ``M`` minutes, ``S`` seconds, ``m`` milli-, ``u`` micro-,
``n`` nanoseconds).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Final

from switchman.xds.server.methods import Code, Metadata

__all__ = ["HEADERS", "PREFIX", "MalformedTimeout", "metadata", "parse_timeout", "trailers"]

HEADERS: Final = ((b":status", b"200"), (b"content-type", b"application/grpc"))
PREFIX: Final = 5  # a message's prefix: compressed flag, 4-byte length
_RESERVED: Final = frozenset({b"content-type", b"te", b"grpc-timeout", b"grpc-encoding", b"grpc-accept-encoding",
                              b"user-agent", b"grpc-message-type"})
_UNITS: Final = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


class MalformedTimeout(ValueError):
    """Raised when a ``grpc-timeout`` header is not what the gRPC specification allows."""


def trailers(code: Code, message: str, extra: Metadata = ()) -> list[tuple[bytes, bytes]]:
    """The trailers that end a call with ``code``."""
    out = [(b"grpc-status", str(int(code)).encode())]
    if message:
        out.append((b"grpc-message", urllib.parse.quote(message, safe=" ").encode()))
    out += [(k.lower().encode("ascii"), v.encode("ascii", "replace")) for k, v in extra]
    return out


def metadata(headers: Mapping[bytes, bytes]) -> Metadata:
    """The call's custom metadata: headers that are not pseudo-headers or gRPC's own (binary ones left out)."""
    return tuple(
        (k.decode("ascii", "replace"), v.decode("ascii", "replace")) for k, v in headers.items()
        if not k.startswith(b":") and k not in _RESERVED and not k.endswith(b"-bin")
    )


def parse_timeout(value: bytes) -> float:
    """``grpc-timeout`` in seconds; raises :class:`MalformedTimeout` when malformed."""
    digits, unit = value[:-1], value[-1:]
    if not 1 <= len(digits) <= 8 or not digits.isdigit() or unit not in _UNITS:
        raise MalformedTimeout(f"malformed grpc-timeout {value[:20]!r}")
    return int(digits) * _UNITS[unit]
