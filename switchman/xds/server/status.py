"""What each connected node runs, as seen from the server: the status API's data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from switchman.xds import resources as rt
from switchman.xds.server.state import TypeState
from switchman.xds.server.stream import Stream

__all__ = ["NodeStatus", "TypeStatus", "node_statuses"]


@dataclass(frozen=True, slots=True)
class TypeStatus:
    """One type on one node: the version it ACKed and the last NACK, if any."""

    type: str
    acked_version: str
    resources: int
    pending_version: str | None
    nack_version: str | None
    nack_message: str | None
    nacked_resources: tuple[str, ...]
    waiting: str
    synced: bool


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One connected node (its streams merged)."""

    node_id: str
    cluster: str
    group: str
    streams: int
    types: tuple[TypeStatus, ...]


def _synced(stream: Stream, state: TypeState) -> bool:
    """Does the client run exactly what it is served now, of the names it asked for?"""
    if state.pending is not None or state.held_back or state.oversized:
        return False
    snapshot = stream.ctx.cache.snapshot(stream.group)
    if snapshot is None:
        return not state.acked
    wanted = snapshot.get(state.type_url).select(state.subscription.selection()).mapping
    if len(wanted) != len(state.acked):
        return False
    return all((had := state.acked.get(n)) is not None and had.version == r.version for n, r in wanted.items())


def node_statuses(streams: Iterable[Stream]) -> list[NodeStatus]:
    """A status per connected node, sorted by node id."""
    by_node: dict[str, list[Stream]] = {}
    for stream in streams:
        if stream.node is not None:
            by_node.setdefault(stream.node.id, []).append(stream)
    out = []
    for node_id in sorted(by_node):
        group = by_node[node_id]
        types = []
        for stream in group:
            for state in stream.states.values():
                types.append(
                    TypeStatus(
                        type=rt.short_name(state.type_url),
                        acked_version=state.acked_version,
                        resources=len(state.acked),
                        pending_version=state.pending.version if state.pending else None,
                        nack_version=state.nack.version if state.nack else None,
                        nack_message=state.nack.message if state.nack else None,
                        nacked_resources=state.nack.resources if state.nack else (),
                        waiting=state.oversized or state.held_back,
                        synced=_synced(stream, state),
                    )
                )
        first = group[0]
        assert first.node is not None
        out.append(
            NodeStatus(node_id, first.node.cluster, first.group, len(group), tuple(sorted(types, key=lambda t: t.type)))
        )
    return out
