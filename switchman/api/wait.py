"""``apply --wait``: after a change, wait until every Envoy it concerns runs it, or say which does not and why.

The Envoys a change concerns are the connected nodes whose served snapshot
it changed: the nodes of each named node group whose Envoy resources
changed, and those served the default group's when that changed (a change
that changed nothing concerns every node). The wait ends when each of them
has ACKed what it is served now (``synced``), NACKed it (final: Switchman
does not send the same config again, and the node keeps its last good
one), cannot be sent it (``oversized``), or when the time is up (the
node's state is then ``waiting``, with what it waits for). A node that
disconnects before it ACKed is ``disconnected``. A node group the change
concerns that has no Envoy connected is listed with ``connected: 0``: it
has nothing to wait for (its Envoys get the config when they connect), so it
does not make ``synced`` false.

The change is committed before the wait starts, whatever the wait finds:
the answer is 200 (gRPC OK) with ``wait.synced`` false, never an error
status, which would tell a client (or a retrying proxy) that the change
failed. The CLI exits 7 for it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Final

from switchman.control import ApplyResult, Controller
from switchman.xds import DEFAULT_GROUP, XdsServer
from switchman.xds.server import NodeSync
from switchman.xds.server.status import SYNCED, WAITING

__all__ = [
    "DISCONNECTED", "GroupReport", "NackReport", "NodeReport", "WaitReport", "wait_for_envoys",
]

#: The longest between two looks at the nodes, for nodes that connect meanwhile (no ACK tells of them).
_LOOK_EVERY: Final = 0.25
DISCONNECTED: Final = "disconnected"


@dataclass(frozen=True, slots=True)
class NackReport:
    """One type a node rejected (or could not be sent): Envoy's message, the resources, their documents."""

    type: str
    message: str
    resources: tuple[str, ...]
    documents: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NodeReport:
    """One node the change concerns: ``synced``, ``nacked``, ``oversized``, ``waiting`` or ``disconnected``."""

    node_id: str
    group: str
    state: str
    reason: str
    nacks: tuple[NackReport, ...] = ()


@dataclass(frozen=True, slots=True)
class GroupReport:
    """A node group (as served: ``*`` for the default) the change concerns: its nodes connected and synced."""

    group: str
    connected: int
    synced: int


@dataclass(frozen=True, slots=True)
class WaitReport:
    synced: bool  # every node the change concerns ACKed it
    timeout: float
    waited: float
    revision: int | None  # the revision served when the wait ended
    groups: tuple[GroupReport, ...]
    nodes: tuple[NodeReport, ...]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _served_group(group: str, own: frozenset[str]) -> str:
    return group if group in own else DEFAULT_GROUP


def _concerned(result: ApplyResult, own: frozenset[str]) -> set[str]:
    """The served groups (``*`` for the default) whose Envoy resources the change changed."""
    if result.revision is None:  # nothing changed: every node should run what it is served
        return set(own) | {DEFAULT_GROUP}
    groups = {g for g, diff in result.groups.items() if diff.added or diff.changed or diff.removed}
    envoy = result.envoy
    if envoy.added or envoy.changed or envoy.removed:
        groups.add(DEFAULT_GROUP)
    return {_served_group(g, own) for g in groups} | (groups & own)


def _report(node: NodeSync, controller: Controller) -> NodeReport:
    nacks = tuple(
        NackReport(
            p.type, p.message, p.resources,
            tuple(sorted({d for name in p.resources if (d := controller.document_of_short(p.type, name))})),
        )
        for p in node.problems
    )
    return NodeReport(node.node_id, node.group, node.state, node.reason, nacks)


async def wait_for_envoys(xds: XdsServer, controller: Controller, result: ApplyResult, timeout: float) -> WaitReport:
    """Wait up to ``timeout`` seconds until every node ``result`` concerns has ACKed, NACKed or cannot be sent
    what it is served; report each."""
    start = time.monotonic()
    deadline = start + timeout
    seen: dict[str, NodeSync] = {}
    while True:
        own = frozenset(xds.cache.groups())
        concerned = _concerned(result, own)
        now = {n.node_id: n for n in xds.syncs() if _served_group(n.group, own) in concerned}
        seen.update(now)
        left = deadline - time.monotonic()
        if left <= 0 or all(n.state != WAITING for n in now.values()):
            break
        await xds.changed(min(left, _LOOK_EVERY))
    nodes = [_report(n, controller) for n in now.values()]
    for node_id in sorted(seen.keys() - now.keys()):
        gone = seen[node_id]
        if gone.state != SYNCED:
            reason = f"disconnected before it ACKed ({gone.reason})" if gone.reason else "disconnected before it ACKed"
            nodes.append(NodeReport(node_id, gone.group, DISCONNECTED, reason))
    counts: dict[str, list[int]] = {g: [0, 0] for g in concerned}
    for node in now.values():
        count = counts[_served_group(node.group, own)]
        count[0] += 1
        count[1] += node.state == SYNCED
    return WaitReport(
        synced=all(n.state == SYNCED for n in nodes),
        timeout=timeout,
        waited=round(time.monotonic() - start, 3),
        revision=controller.served_revision,
        groups=tuple(GroupReport(g, c, s) for g, (c, s) in sorted(counts.items())),
        nodes=tuple(sorted(nodes, key=lambda n: n.node_id)),
    )
