"""One xDS resource, encoded once and shared by every stream that sends it."""

from __future__ import annotations

import hashlib

from google.protobuf.message import Message

from switchman.xds import resources, wire

__all__ = ["Resource"]


class Resource:
    """An immutable, pre-encoded resource.

    ``version`` is a digest of the resource's bytes, so the same resource has
    the same version in every snapshot and across restarts (delta clients
    send it back in ``initial_resource_versions``).
    """

    __slots__ = ("_delta_field", "any_bytes", "message", "name", "references", "sotw_field", "type_url", "version")

    def __init__(self, message: Message, type_url: str | None = None) -> None:
        self.message = message
        self.type_url = type_url or resources.TYPE_URL_OF[type(message)]
        self.name = resources.resource_name(message)
        value = message.SerializeToString(deterministic=True)
        self.version = hashlib.blake2b(value, digest_size=8).hexdigest()
        self.any_bytes = wire.encode_any(self.type_url, value)
        # The entry of DiscoveryResponse.resources (field 2) for this resource.
        self.sotw_field = wire.length_delimited(2, self.any_bytes)
        self.references: tuple[tuple[str, str], ...] = tuple(resources.references(message))
        self._delta_field: bytes | None = None

    @property
    def delta_field(self) -> bytes:
        """The entry of DeltaDiscoveryResponse.resources (field 2) for this resource."""
        if self._delta_field is None:
            self._delta_field = wire.length_delimited(
                2, wire.delta_resource(self.name, self.version, self.any_bytes)
            )
        return self._delta_field

    def __repr__(self) -> str:
        return f"Resource({resources.short_name(self.type_url)}/{self.name}@{self.version})"
