"""Kinds of xDS client, and the largest response each can receive.

A client says what it is in its node's ``user_agent_name``: Envoy sends
``envoy``; gRPC's xDS clients send ``gRPC C-core ...``, ``gRPC Java``,
``gRPC Go`` (so anything starting with ``grpc``, any case). Their receive
limits differ: Envoy's gRPC client takes messages of any size unless its
config source sets ``max_receive_message_length``; a gRPC channel refuses
messages over 4 MiB by default (``grpc.max_receive_message_length``), and
ends the stream with RESOURCE_EXHAUSTED when one comes, then reconnects and
gets it again. Other clients are taken to have gRPC's default.

A response over its client's limit is never sent (:mod:`~switchman.xds.server.stream`);
:func:`oversized` finds, before a configuration is served, the node groups
whose clients could not receive it, so that it can be refused instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from envoy.config.core.v3 import base_pb2

from switchman.xds import resources as rt
from switchman.xds.cache import DEFAULT_GROUP, Snapshot, TypeSnapshot

__all__ = [
    "CLIENT_KINDS", "ENVOY", "GRPC", "OTHER", "Oversize", "ResponseLimits", "client_kind", "largest_response",
    "oversized",
]

ENVOY: Final = "envoy"
GRPC: Final = "grpc"
OTHER: Final = "other"
CLIENT_KINDS: Final = (ENVOY, GRPC, OTHER)
_MIB: Final = 1024 * 1024
#: Bytes a response adds around its resources, at most: the version, the type URL (up to ~80 bytes), the
#: nonce, the delta protocol's system version, and their field tags.
_FRAME: Final = 256


def client_kind(node: base_pb2.Node) -> str:
    """``envoy``, ``grpc`` or ``other``, from the node's ``user_agent_name``."""
    agent = node.user_agent_name.strip().lower()
    if agent == ENVOY:
        return ENVOY
    return GRPC if agent.startswith("grpc") else OTHER


def _size(limit: int | None) -> str:
    if limit is None:
        return "none"
    return f"{limit / _MIB:g} MiB" if limit % (_MIB // 4) == 0 else f"{limit} bytes"


@dataclass(frozen=True, slots=True)
class ResponseLimits:
    """The largest response each kind of client can receive, in bytes; None: no limit."""

    envoy: int | None = None
    grpc: int | None = 4 * _MIB
    other: int | None = 4 * _MIB

    def of(self, kind: str) -> int | None:
        limit: int | None = getattr(self, kind)
        return limit

    def describe(self) -> str:
        """``envoy none, grpc 4 MiB, other 4 MiB``: what errors and logs say."""
        return ", ".join(f"{kind} {_size(self.of(kind))}" for kind in CLIENT_KINDS)


def largest_response(types: TypeSnapshot) -> int:
    """The most bytes a response of these resources can take, state of the world or delta: all of them (a
    wildcard subscription, or a first delta response), each with its name and version (delta's framing)."""
    resources = types.resources.values()
    return _FRAME + sum(len(r.sotw_field) + len(r.name) + len(r.version) + 16 for r in resources)


@dataclass(frozen=True, slots=True)
class Oversize:
    """A node group whose clients of one kind could not receive one type's response."""

    group: str
    type: str  # the short type: cds
    size: int
    kind: str
    limit: int
    nodes: tuple[str, ...]  # the connected clients of that kind (none: declared only)
    largest: tuple[tuple[str, int], ...]  # the type's largest resources and their sizes

    def message(self, limits: ResponseLimits) -> str:
        who = f"connected: {', '.join(self.nodes[:3])}" + (" ..." if len(self.nodes) > 3 else "")
        who = who if self.nodes else "declared with --client-kinds"
        largest = ", ".join(f"{self.type}/{name} ({size:,} bytes)" for name, size in self.largest)
        return (
            f"the {self.type} response would be {self.size:,} bytes, over the {self.limit:,}-byte limit "
            f"({_size(self.limit)}) of this node group's {self.kind} clients ({who}): they could not receive it. "
            f"Largest: {largest}. Limits per client kind: {limits.describe()} (switchman serve --response-limits)"
        )


def oversized(
    snapshots: Mapping[str, Snapshot],
    kinds: Mapping[str, Iterable[str]],
    limits: ResponseLimits,
    nodes: Mapping[tuple[str, str], list[str]],
) -> list[Oversize]:
    """Every (group, type, kind) of ``snapshots`` whose largest response is over the kind's limit.

    ``kinds``: the client kinds of each node group (a group without a snapshot of its own is served the
    default group's: its kinds count there). ``nodes``: the connected node ids by (group, kind).
    """
    served: dict[str, set[str]] = {}
    for group, found in kinds.items():
        served.setdefault(group if group in snapshots else DEFAULT_GROUP, set()).update(found)
    out = []
    for group in sorted(served.keys() & snapshots.keys()):
        limited = sorted((limit, kind) for kind in served[group] if (limit := limits.of(kind)) is not None)
        if not limited:
            continue
        for type_url in rt.ORDERED_TYPES:
            types = snapshots[group].get(type_url)
            size = largest_response(types)
            for limit, kind in limited:
                if size > limit:
                    names = [n for (g, k), ids in nodes.items() if k == kind and (g if g in snapshots else
                                                                                  DEFAULT_GROUP) == group
                             for n in ids]
                    biggest = sorted(((len(r.sotw_field), n) for n, r in types.resources.items()), reverse=True)[:3]
                    out.append(Oversize(group, rt.short_name(type_url), size, kind, limit, tuple(sorted(names)),
                                        tuple((n, s) for s, n in biggest)))
    return out
