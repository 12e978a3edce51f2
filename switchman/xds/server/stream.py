"""The life of one xDS stream, common to state-of-the-world and delta.

A stream reads requests in a task of its own and wakes on snapshot changes;
both arrive in one inbox, so the state machine runs in one coroutine and
needs no locks. After every batch of inbox items it reconciles: for each
subscribed type, in ADS order (secrets, clusters, endpoints, listeners,
routes), it asks the planner what the client should hold and sends it when
it differs from what was last sent. At most one response per type is in
flight; the next waits for its ACK or NACK, which keeps the bookkeeping
exact and is what makes make-before-break possible.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from envoy.config.core.v3 import base_pb2
from google.protobuf.message import Message

from switchman.errors import PermissionDenied, ProtocolError
from switchman.xds import resources as rt
from switchman.xds.cache import Resource, SnapshotCache
from switchman.xds.cache.groups import NodeGrouper
from switchman.xds.server.clients import ResponseLimits, client_kind
from switchman.xds.server.metrics import XdsMetrics
from switchman.xds.server.peer import ANONYMOUS, NodeIdentities, Peer
from switchman.xds.server.plan import Hold, Plan, plan
from switchman.xds.server.state import Nack, Pending, TypeState
from switchman.xds.server.warming import assignments_planned, clusters_sent

__all__ = ["Outgoing", "Stream", "StreamContext"]

log = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True)
class Outgoing:
    """An encoded response and what it will be once the client answers."""

    data: bytes
    pending: Pending


class Inbox:
    """A single-consumer queue: a list and one future.

    An ``asyncio.Queue`` carries four deques; with 10,000 streams the
    difference is tens of megabytes.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[object] = []
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: object) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def take_all(self) -> list[object]:
        """Everything queued, waiting for at least one item."""
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        items, self._items = self._items, []
        return items


def _kept(node: base_pb2.Node) -> base_pb2.Node:
    """What a stream keeps of its node: a copy of what status, CSDS and grouping read.

    A copy, so that the first request (its extension list, and anything else
    a client put in it) is not kept alive with it.
    """
    kept = base_pb2.Node(id=node.id, cluster=node.cluster, user_agent_name=node.user_agent_name)
    if node.HasField("metadata"):
        kept.metadata.CopyFrom(node.metadata)
    if node.HasField("locality"):
        kept.locality.CopyFrom(node.locality)
    version = node.WhichOneof("user_agent_version_type")
    if version == "user_agent_version":
        kept.user_agent_version = node.user_agent_version
    elif version == "user_agent_build_version":
        kept.user_agent_build_version.CopyFrom(node.user_agent_build_version)
    return kept


_NACK_KEPT: Final = 16 * 1024  # characters of a NACK's message kept: Envoy's run to a few hundred
_WAKE: Final = object()
_END: Final = object()
_ids = itertools.count(1)


@dataclass(slots=True)
class StreamContext:
    """What every stream of one server shares."""

    cache: SnapshotCache
    group_of: NodeGrouper
    metrics: XdsMetrics
    response_limits: ResponseLimits = field(default_factory=ResponseLimits)
    max_node_bytes: int = 64 * 1024
    streams: set[Stream] = field(default_factory=set)
    # (node group, client kind) -> node id -> its streams: who could receive a group's responses
    clients: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    on_change: Callable[[], None] | None = None
    node_identities: NodeIdentities = field(default_factory=lambda: NodeIdentities({}))

    def refusal(self, peer: Peer, group: str, secrets: bool) -> str | None:
        """Why ``peer`` may not be served ``group`` (``secrets``: its secrets); None when it may. Counted."""
        identity = peer.identity
        if not self.node_identities.allows(peer.names, group):
            self.metrics.refused("identity")
            who = f"identity {identity[:200]!r}" if identity is not None else "a client without a certificate identity"
            return f"{who} may not be served node group {group[:200]!r}"
        if secrets and not peer.certified:
            self.metrics.refused("secrets_without_certificate")
            return "secrets are served only to clients with a certificate (mutual TLS)"
        return None


class Stream(ABC):
    """One xDS stream's state machine, without I/O. Subclasses parse requests and encode responses.

    A transport drives it: :meth:`opened`, then :meth:`receive` for each
    request and :meth:`responses` after each batch of requests or wake-ups,
    sending what it returns in order, and :meth:`closed` at the end. The
    cache calls :meth:`wake` when the stream's snapshot changes; the
    transport's ``waker`` hears of it (once until the next :meth:`responses`).
    :meth:`run` is that loop for an async transport (grpc.aio).
    """

    mode: str = ""

    def __init__(self, ctx: StreamContext, service: str, only_type: str | None, peer: Peer = ANONYMOUS) -> None:
        self.ctx = ctx
        self.peer = peer  # who the transport says the client is (its certificate)
        self.id = next(_ids)
        self.service = service
        self.only_type = only_type
        self.node: base_pb2.Node | None = None
        self.group = ""
        self.kind = ""  # envoy, grpc or other (see switchman.xds.server.clients)
        self.response_limit: int | None = None
        self.states: dict[str, TypeState] = {}
        self.connected_at = time.time()
        self.waker: Callable[[], None] | None = None
        self._wake_queued = False
        self._nonces = itertools.count(1)
        self._unwatch: Callable[[], None] | None = None
        self._ignored_type = False  # a request for a type this server does not serve was logged
        self._ignored_secrets = False  # a request for secrets without a client certificate was logged

    # -- what a transport calls ----------------------------------------------

    def opened(self) -> None:
        """The stream is up: count it."""
        self.ctx.metrics.streams.labels(self.service, self.mode).inc()
        self.ctx.streams.add(self)

    def receive(self, request: Message) -> None:
        """Apply one request; ProtocolError when the client broke the protocol (end the stream with it)."""
        self._on_request(request)

    def responses(self) -> list[bytes]:
        """What to send now, in order (often nothing)."""
        self._wake_queued = False
        return self._reconcile()

    def closed(self) -> None:
        """The stream is gone: forget it."""
        self.ctx.metrics.streams.labels(self.service, self.mode).dec()
        self.ctx.streams.discard(self)
        for state in self.states.values():
            if state.subscription.started:
                self.ctx.metrics.of(state.type_url).subscriptions -= 1
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self.node is not None:
            key = (self.group, self.kind)
            nodes = self.ctx.clients.get(key, {})
            count = nodes.get(self.node.id, 0) - 1
            if count > 0:
                nodes[self.node.id] = count
            else:
                nodes.pop(self.node.id, None)
                if not nodes:
                    self.ctx.clients.pop(key, None)
        self._notify()

    @property
    def woken(self) -> bool:
        """Woken by a snapshot change that :meth:`responses` has not looked at yet."""
        return self._wake_queued

    def wake(self) -> None:
        """Called by the cache when this stream's snapshot changes."""
        if not self._wake_queued:
            self._wake_queued = True
            if self.waker is not None:
                self.waker()

    # -- the loop for an async transport ----------------------------------------

    async def run(self, requests: AsyncIterable[Message]) -> AsyncIterator[bytes]:
        """Serve the stream until the client ends it; yields encoded responses."""
        inbox = Inbox()
        self.waker = functools.partial(inbox.put, _WAKE)
        reader = asyncio.create_task(self._read(requests, inbox))
        self.opened()
        try:
            while True:
                for item in await inbox.take_all():
                    if item is _END:
                        return
                    if isinstance(item, BaseException):
                        raise item
                    if item is not _WAKE:
                        assert isinstance(item, Message)
                        self.receive(item)
                for response in self.responses():
                    yield response
                    # Drop our reference while idle: an idle stream must not
                    # pin its last response (10,000 streams x its size).
                    del response
        finally:
            reader.cancel()
            self.closed()

    async def _read(self, requests: AsyncIterable[Message], inbox: Inbox) -> None:
        try:
            async for request in requests:
                inbox.put(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the transport failed: end the stream
            log.debug("stream %s: read ended: %s", self.id, exc)
        inbox.put(_END)

    def _notify(self) -> None:
        if self.ctx.on_change is not None:
            self.ctx.on_change()

    # -- requests -------------------------------------------------------

    def _bind_node(self, node: base_pb2.Node | None, has_node: bool) -> None:
        if self.node is not None:
            return
        if not has_node or node is None:
            raise ProtocolError("the first request on a stream must carry the node")
        kept = _kept(node)
        size = kept.ByteSize()
        if size > self.ctx.max_node_bytes:
            self.ctx.metrics.refused("node_too_large")
            raise ProtocolError(
                f"the node is {size} bytes (id, cluster, metadata, locality, user agent), "
                f"over the limit of {self.ctx.max_node_bytes}"
            )
        group = self.ctx.group_of(kept)
        refusal = self.ctx.refusal(self.peer, group, secrets=self.only_type == rt.SECRET)
        if refusal is not None:
            log.warning("stream %s: node %r refused: %s", self.id, kept.id[:200], refusal)
            raise PermissionDenied(f"{refusal} (node {kept.id[:200]!r})")
        self.node = kept
        self.group = group
        self.kind = client_kind(kept)
        self.response_limit = self.ctx.response_limits.of(self.kind)
        nodes = self.ctx.clients.setdefault((group, self.kind), {})
        nodes[kept.id] = nodes.get(kept.id, 0) + 1
        self._unwatch = self.ctx.cache.watch(self.group, self.wake)
        self._notify()
        log.info("stream %s: node %r (group %r) on %s/%s", self.id, kept.id[:200], self.group[:200], self.service,
                 self.mode)

    def _state(self, type_url: str) -> TypeState | None:
        """The state of ``type_url`` on this stream; None for a type this server does not serve (ADS).

        Such a request gets no answer and leaves nothing behind (no state,
        no metric label), so any number of them costs nothing. The xDS
        protocol does not say what a server does with a type it does not
        serve; it does say that a client cannot tell a resource that does
        not exist from one that has not come yet, and waits for it
        ("Knowing When a Requested Resource Does Not Exist": 15 s, then it
        goes on without), which is what silence gives; a go-control-plane
        snapshot cache does the same (a watch that never fires). Ending the
        stream instead (INVALID_ARGUMENT) would cut an Envoy whose config
        names such a type (runtime, extension configs over ADS) off from
        every type it is served, and it would reconnect and ask again, in a
        loop.
        """
        if self.only_type is not None:
            type_url = type_url or self.only_type
            if type_url != self.only_type:
                raise ProtocolError(f"{self.service} serves {self.only_type}, not {type_url[:200]}")
        elif not type_url:
            raise ProtocolError("a request on an aggregated stream must name its type_url")
        elif type_url not in rt.TYPE_URLS:
            self.ctx.metrics.refused("unknown_type")
            if not self._ignored_type:
                self._ignored_type = True
                log.info("stream %s: ignoring requests for %r, a type this server does not serve (and any other)",
                         self.id, type_url[:200])
            return None
        elif type_url == rt.SECRET and not self.peer.certified:
            # Private keys go only to a client a certificate names. On ADS the request is left unanswered, as
            # for a type this server does not serve (above), rather than ending the stream: that would cut the
            # client off from every other type, and it would reconnect and ask again, in a loop.
            self.ctx.metrics.refused("secrets_without_certificate")
            if not self._ignored_secrets:
                self._ignored_secrets = True
                log.warning("stream %s: node %r asked for secrets without a client certificate: not served",
                            self.id, self.node.id[:200] if self.node is not None else "?")
            return None
        state = self.states.get(type_url)
        if state is None:
            state = self.states[type_url] = TypeState(type_url)
            self.ctx.metrics.of(type_url).subscriptions += 1
        return state

    def _ack(self, state: TypeState) -> None:
        pending = state.pending
        assert pending is not None
        state.pending = None
        self._apply_ack(state, pending.upserts, pending.removed)
        state.acked_version = pending.version
        state.nack = None
        state.last_update = time.time()
        metrics = self.ctx.metrics.of(state.type_url)
        metrics.acks += 1
        metrics.push_to_ack(time.monotonic() - pending.sent_at)
        self._notify()

    def _nack(self, state: TypeState, message: str) -> None:
        # The client keeps its last good config; we keep what we sent as
        # "sent", so the same contents are not sent again (no NACK loop).
        pending = state.pending
        assert pending is not None
        state.pending = None
        acked = state.acked
        suspects = tuple(
            sorted(n for n, r in pending.upserts.items() if (had := acked.get(n)) is None or had.version != r.version)
        )
        if len(message) > _NACK_KEPT:  # what status and CSDS show; a client's novel is not kept per stream
            message = f"{message[:_NACK_KEPT]}... ({len(message)} characters)"
        state.nack = Nack(pending.version, pending.nonce, message, time.time(), suspects)
        label = self.ctx.metrics.label(state.type_url)
        metrics = self.ctx.metrics.of(state.type_url)
        metrics.nacks += 1
        metrics.push_to_ack(time.monotonic() - pending.sent_at)
        node_id = self.node.id[:200] if self.node is not None else "?"
        log.warning("node %r NACKed %s version %s: %s", node_id, label, pending.version, message[:1000])
        self._notify()

    def next_nonce(self) -> str:
        return f"{self.id}-{next(self._nonces)}"

    # -- responses ------------------------------------------------------

    def _ordered_types(self) -> list[str]:
        return [t for t in rt.ORDERED_TYPES if t in self.states]

    def _reconcile(self) -> list[bytes]:
        snapshot = self.ctx.cache.snapshot(self.group) if self.node is not None else None
        if snapshot is None:
            return []
        out: list[bytes] = []
        for type_url in self._ordered_types():
            state = self.states[type_url]
            if state.pending is not None or not state.subscription.started:
                continue
            decision = plan(self.states, type_url, snapshot, state.sent_key)
            if decision is None:
                state.held_back = ""
                continue
            if isinstance(decision, Hold):
                state.held_back = decision.reason
                continue
            state.held_back = ""
            outgoing = self._encode(state, decision)
            if type_url == rt.ENDPOINT:
                assignments_planned(self.states)
            state.sent_key = decision.key
            state.oversized = ""
            if outgoing is None:
                state.planned = decision.basis  # the client already holds it
                continue
            metrics = self.ctx.metrics.of(type_url)
            size = len(outgoing.data)
            limit = self.response_limit
            if limit is not None and size > limit:
                # Sending it would end the stream with RESOURCE_EXHAUSTED on
                # the client, which then reconnects forever. Keep the stream
                # and the client's last config; say so in logs and metrics.
                # (An apply that would make such a response for a client
                # connected at the time is refused: see clients.oversized.)
                state.oversized = (
                    f"response of {size} bytes exceeds the limit of {limit} bytes of {self.kind} clients; not sent"
                )
                log.error("stream %s: %s %s", self.id, self.ctx.metrics.label(type_url), state.oversized)
                metrics.oversized += 1
                continue  # the client's state, and so state.planned, stay as they were
            if type_url == rt.CLUSTER and self.only_type is None:
                # Endpoints come after clusters in ADS order: their response, in this very pass when none
                # is in flight, carries the assignments the updated clusters wait for (see warming).
                clusters_sent(state, state.sent, outgoing.pending.upserts, decision.changed)
            state.pending = outgoing.pending
            state.sent = decision.resources
            state.planned = decision.basis
            self._committed(state, outgoing)
            metrics.responses += 1
            metrics.response_bytes += size
            out.append(outgoing.data)
        return out

    @abstractmethod
    def _on_request(self, request: Message) -> None:
        """Apply one request (subscription change, ACK or NACK) to the stream's state."""

    @abstractmethod
    def _encode(self, state: TypeState, decision: Plan) -> Outgoing | None:
        """Encode a response for ``decision``; None when the client needs none."""

    def _committed(self, state: TypeState, outgoing: Outgoing) -> None:  # noqa: B027 (an optional hook)
        """Called once ``outgoing`` is certain to be sent."""

    @abstractmethod
    def _apply_ack(self, state: TypeState, upserts: Mapping[str, Resource], removed: tuple[str, ...]) -> None:
        """Make ``state.acked`` what the client holds after ACKing a response."""
