"""What each connected node runs, as seen from the server: the status API's data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from switchman.xds import resources as rt
from switchman.xds.server.clients import ENVOY
from switchman.xds.server.state import TypeState
from switchman.xds.server.stream import Stream

__all__ = ["NodeStatus", "NodeSync", "SyncProblem", "TypeStatus", "node_statuses", "node_syncs"]


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


def _by_node(streams: Iterable[Stream]) -> dict[str, list[Stream]]:
    """The streams of each node that has sent its first request."""
    by_node: dict[str, list[Stream]] = {}
    for stream in streams:
        if stream.node is not None:
            by_node.setdefault(stream.node.id, []).append(stream)
    return by_node


def node_statuses(streams: Iterable[Stream]) -> list[NodeStatus]:
    """A status per connected node, sorted by node id."""
    by_node = _by_node(streams)
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


#: What :class:`NodeSync` says of a node, from done to not done.
SYNCED: Final = "synced"  # it runs what it is served now, of every type it asked for
NACKED: Final = "nacked"  # it rejected what it is served now: nothing more goes to it until the config changes
OVERSIZED: Final = "oversized"  # a response is over its client's receive limit: not sent
WAITING: Final = "waiting"  # a response is on its way, or held back until the client ACKs what it names


@dataclass(frozen=True, slots=True)
class SyncProblem:
    """Why one type of a node is not in sync: a NACK (Envoy's words, the resources it was sent) or an oversize."""

    type: str
    message: str
    resources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeSync:
    """Whether one node runs what it is served now, and if not, why (its streams merged).

    ``state`` is ``synced``, ``nacked`` or ``oversized`` (final: nothing changes until the config does),
    or ``waiting`` (``reason`` says for what).
    """

    node_id: str
    group: str
    state: str
    reason: str
    problems: tuple[SyncProblem, ...]


def _nacked_now(stream: Stream, state: TypeState) -> bool:
    """Did the client NACK what it is served now (not an older version, which a new response replaces)?"""
    if state.nack is None or state.pending is not None:
        return False
    snapshot = stream.ctx.cache.snapshot(stream.group)
    return snapshot is not None and state.nack.version.split("+", 1)[0] == snapshot.get(state.type_url).version


def _unasked(streams: list[Stream]) -> list[str]:
    """What the node runs names and it has not asked for yet: an Envoy asks for a listener's routes only
    once it has the listener (a gRPC client for a route's clusters once it has the route). Until it has
    them, it does not serve what it ACKed."""
    held: dict[str, set[str]] = {}
    for stream in streams:
        for state in stream.states.values():
            held.setdefault(state.type_url, set()).update(state.acked)
    snapshot = streams[0].ctx.cache.snapshot(streams[0].group)
    if snapshot is None:
        return []
    if any(stream.woken for stream in streams):
        return ["a change not yet sent"]
    if streams[0].kind == ENVOY:
        # Envoy asks for clusters, then (once they are warm) for listeners, wildcard: until it has, it does
        # not run the snapshot's (and an Envoy whose bootstrap asks for neither never will).
        for type_url in (rt.CLUSTER, rt.LISTENER):
            if type_url not in held and snapshot.get(type_url).resources:
                return [f"{rt.short_name(type_url)}: not yet asked for"]
    for stream in streams:
        for state in stream.states.values():
            for resource in state.acked.values():
                for ref_type, name in resource.references:
                    if name not in held.get(ref_type, ()) and name in snapshot.get(ref_type).resources:
                        return [f"{rt.short_name(ref_type)}/{name}: not yet asked for"]
    return []


def _sync(node_id: str, streams: list[Stream]) -> NodeSync:
    problems: list[SyncProblem] = []
    waiting: list[str] = []
    nacked = oversized = False
    for stream in streams:
        for state in stream.states.values():
            if _synced(stream, state):
                continue
            short = rt.short_name(state.type_url)
            if _nacked_now(stream, state):
                assert state.nack is not None
                nacked = True
                problems.append(SyncProblem(short, state.nack.message, state.nack.resources))
            elif state.oversized:
                oversized = True
                problems.append(SyncProblem(short, state.oversized))
            elif state.pending is not None:
                waiting.append(f"{short} version {state.pending.version} sent, not yet ACKed")
            else:
                waiting.append(f"{short}: {state.held_back or 'not yet sent'}")
    if not (nacked or oversized or waiting):
        waiting = _unasked(streams)
    if nacked or oversized:
        what = "; ".join(f"{p.type}: {p.message}" for p in problems)
        state_name, reason = (NACKED, f"NACKed {what}") if nacked else (OVERSIZED, what)
    elif waiting:
        state_name, reason = WAITING, "; ".join(waiting)
    else:
        state_name, reason = SYNCED, ""
    return NodeSync(node_id, streams[0].group, state_name, reason, tuple(problems))


def node_syncs(streams: Iterable[Stream]) -> list[NodeSync]:
    """Whether each connected node runs what it is served now, sorted by node id."""
    by_node = _by_node(streams)
    return [_sync(node_id, by_node[node_id]) for node_id in sorted(by_node)]
