"""Hand-written protobuf framing for discovery responses.

A response is mostly resources that many streams share. Each resource is
encoded once (as the ``Any`` that a ``DiscoveryResponse`` repeats, and as the
``Resource`` a ``DeltaDiscoveryResponse`` repeats); a response is then a join
of those bytes plus the per-response fields (version, nonce). Protobuf allows
this: a message's encoding is the concatenation of its fields' encodings.
Field numbers come from envoy/service/discovery/v3/discovery.proto.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "delta_resource",
    "delta_response",
    "encode_any",
    "length_delimited",
    "sotw_response",
]


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def length_delimited(field_number: int, payload: bytes) -> bytes:
    """One length-delimited field (wire type 2): strings, bytes and embedded messages."""
    return _varint(field_number << 3 | 2) + _varint(len(payload)) + payload


def _string(field_number: int, text: str) -> bytes:
    return length_delimited(field_number, text.encode()) if text else b""


def encode_any(type_url: str, value: bytes) -> bytes:
    """A ``google.protobuf.Any`` holding ``value``."""
    return _string(1, type_url) + length_delimited(2, value)


def delta_resource(name: str, version: str, any_bytes: bytes) -> bytes:
    """A ``discovery.v3.Resource`` (version=1, resource=2, name=3)."""
    return _string(1, version) + length_delimited(2, any_bytes) + _string(3, name)


def sotw_response(version: str, resource_fields: bytes, type_url: str, nonce: str) -> bytes:
    """A ``DiscoveryResponse``; ``resource_fields`` is already a run of field-2 ``Any`` entries."""
    # One join: chained + would copy the (possibly megabytes of) resources once per operand.
    return b"".join((_string(1, version), resource_fields, _string(4, type_url), _string(5, nonce)))


def delta_response(
    system_version: str,
    resource_fields: bytes,
    type_url: str,
    removed: Iterable[str],
    nonce: str,
) -> bytes:
    """A ``DeltaDiscoveryResponse``; ``resource_fields`` is a run of field-2 ``Resource`` entries."""
    return b"".join(
        (
            _string(1, system_version),
            resource_fields,
            _string(4, type_url),
            _string(5, nonce),
            *(_string(6, name) for name in removed),
        )
    )
