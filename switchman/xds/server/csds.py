"""The standard Client Status Discovery Service (envoy.service.status.v3).

For every connected node: each resource it was sent, with the version, the
client's status (ACKED, NACKED, REQUESTED) and, after a NACK, Envoy's error.

A request's node matchers are the caller's: a ``safe_regex`` runs on RE2
(``google-re2``), as Envoy's own, whose matching takes time linear in the
text whatever the pattern; Python's ``re`` backtracks, and ``(a+)+$``
against a 26-character node id stalled the event loop for 1.4 s. What RE2
refuses (backreferences, lookaround, programs over ``_MAX_PROGRAM``
instructions) is refused with INVALID_ARGUMENT, as are more than
``_MAX_MATCHERS`` matchers.

Who may ask is the ``guard``'s to say (the composition root's: read or admin
tokens, or a certificate identity allowed to read), on both transports,
before any request is read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Final

import grpc
import re2
from envoy.admin.v3 import config_dump_shared_pb2 as dump_pb2
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc
from envoy.type.matcher.v3 import node_pb2
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from grpc import aio

from switchman.errors import ProtocolError
from switchman.xds.cache import SnapshotCache
from switchman.xds.server.aio_calls import check_guard
from switchman.xds.server.methods import CallError, Code, FetchMethod, Guard, StreamMethod
from switchman.xds.server.peer import Peer
from switchman.xds.server.state import TypeState
from switchman.xds.server.stream import Stream, StreamContext

__all__ = ["ClientStatusService", "CsdsStream", "csds_methods"]

_Status = dump_pb2.ClientResourceStatus
_MAX_MATCHERS: Final = 100
_MAX_PATTERN: Final = 4096  # bytes of one regex
_MAX_PROGRAM: Final = 1000  # RE2 instructions (Envoy refuses over 100 by default)
_MAX_MEM: Final = 256 * 1024  # RE2's memory for one pattern, its DFAs included (its default is 8 MiB)
_RE2_OPTIONS: Final = re2.Options()
_RE2_OPTIONS.max_mem = _MAX_MEM
_RE2_OPTIONS.log_errors = False

Selector = Callable[[str], bool]


def _text_matcher(matcher: Any, where: str) -> Selector:
    """``envoy.type.matcher.v3.StringMatcher`` as a predicate; ProtocolError (naming ``where``) when refused."""
    kind = matcher.WhichOneof("match_pattern")
    fold = bool(matcher.ignore_case) and kind != "safe_regex"

    def text(value: str) -> str:
        return value.lower() if fold else value

    if kind == "exact":
        exact = text(matcher.exact)
        return lambda s: text(s) == exact
    if kind == "prefix":
        prefix = text(matcher.prefix)
        return lambda s: text(s).startswith(prefix)
    if kind == "suffix":
        suffix = text(matcher.suffix)
        return lambda s: text(s).endswith(suffix)
    if kind == "contains":
        part = text(matcher.contains)
        return lambda s: part in text(s)
    if kind == "safe_regex":
        pattern = matcher.safe_regex.regex
        if len(pattern.encode()) > _MAX_PATTERN:
            raise ProtocolError(f"{where}.safe_regex: longer than {_MAX_PATTERN} bytes")
        try:
            compiled = re2.compile(pattern, _RE2_OPTIONS)
        except re2.error as exc:
            detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
            raise ProtocolError(f"{where}.safe_regex: RE2 refuses {pattern[:100]!r}: {detail}") from None
        if compiled.programsize > _MAX_PROGRAM:
            raise ProtocolError(
                f"{where}.safe_regex: a program of {compiled.programsize} instructions, over {_MAX_PROGRAM}"
            )
        return lambda s: compiled.fullmatch(s) is not None
    return lambda s: True


def node_selector(matchers: Iterable[node_pb2.NodeMatcher]) -> Selector:
    """Which node ids a request's ``node_matchers`` select (all when there are none).

    Raises ProtocolError when a matcher is refused (INVALID_ARGUMENT at the edges).
    """
    matchers = list(matchers)
    if len(matchers) > _MAX_MATCHERS:
        raise ProtocolError(f"node_matchers: {len(matchers)}, more than {_MAX_MATCHERS}")
    if not matchers:
        return lambda node_id: True
    tests = [
        _text_matcher(m.node_id, f"node_matchers[{i}].node_id") if m.HasField("node_id") else (lambda s: True)
        for i, m in enumerate(matchers)
    ]
    return lambda node_id: any(test(node_id) for test in tests)


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _differs(state: TypeState, name: str) -> bool:
    acked = state.acked.get(name)
    return acked is None or acked.version != state.sent[name].version


def _type_configs(
    state: TypeState, current: dict[str, str], contents: bool
) -> list[csds_pb2.ClientConfig.GenericXdsConfig]:
    configs = []
    pending = state.pending.upserts if state.pending else {}
    nacked = state.nack is not None
    names = sorted(set(state.acked) | set(state.sent) | set(pending))
    for name in names:
        resource = state.acked.get(name) or state.sent.get(name) or pending[name]
        config = csds_pb2.ClientConfig.GenericXdsConfig(type_url=state.type_url, name=name)
        config.version_info = resource.version
        if name in pending:
            config.client_status = _Status.REQUESTED
            config.config_status = csds_pb2.NOT_SENT
        elif nacked and name in state.sent and _differs(state, name):
            config.client_status = _Status.NACKED
            config.config_status = csds_pb2.ERROR
            assert state.nack is not None
            config.error_state.details = state.nack.message
            config.error_state.version_info = state.nack.version
            config.error_state.last_update_attempt.CopyFrom(_timestamp(state.nack.at))
        elif name in state.acked:
            config.client_status = _Status.ACKED
            synced = current.get(name) == state.acked[name].version
            config.config_status = csds_pb2.SYNCED if synced else csds_pb2.STALE
        if state.last_update:
            config.last_updated.CopyFrom(_timestamp(state.last_update))
        if contents:
            any_msg = any_pb2.Any()
            any_msg.ParseFromString(resource.any_bytes)
            config.xds_config.CopyFrom(any_msg)
        configs.append(config)
    return configs


def client_configs(
    streams: Iterable[Stream], cache: SnapshotCache, request: csds_pb2.ClientStatusRequest,
    selected: Selector | None = None,
) -> csds_pb2.ClientStatusResponse:
    """The CSDS answer for ``request``: one ClientConfig per matching node.

    ``selected`` is :func:`node_selector` of the request's matchers, when the caller has it already.
    """
    if selected is None:
        selected = node_selector(request.node_matchers)
    response = csds_pb2.ClientStatusResponse()
    by_node: dict[str, csds_pb2.ClientConfig] = {}
    for stream in sorted(streams, key=lambda s: s.id):
        if stream.node is None or not selected(stream.node.id):
            continue
        config = by_node.get(stream.node.id)
        if config is None:
            config = by_node[stream.node.id] = response.config.add()
            config.node.CopyFrom(stream.node)
        snapshot = cache.snapshot(stream.group)
        for state in stream.states.values():
            current = (
                {n: r.version for n, r in snapshot.get(state.type_url).resources.items()}
                if snapshot is not None
                else {}
            )
            config.generic_xds_configs.extend(
                _type_configs(state, current, not request.exclude_resource_contents)
            )
    return response


def status_now(
    ctx: StreamContext, request: csds_pb2.ClientStatusRequest, selected: Selector | None = None
) -> csds_pb2.ClientStatusResponse:
    """The CSDS answer for ``request`` over the streams of one server, as they are now.

    Raises ProtocolError when the request's node matchers are refused.
    """
    return client_configs(tuple(ctx.streams), ctx.cache, request, selected)


_MAX_WAITING: Final = 16


class CsdsStream:
    """CSDS's bidirectional stream for a transport that drives calls itself: each request gets the status.

    A request is checked when it comes and answered when the transport asks
    for responses (when its client has taken the previous ones); at most
    ``_MAX_WAITING`` wait, or the call ends with RESOURCE_EXHAUSTED.
    """

    def __init__(self, ctx: StreamContext) -> None:
        self.ctx = ctx
        self.id = 0
        self.waker: Callable[[], None] | None = None
        self._waiting: list[tuple[csds_pb2.ClientStatusRequest, Selector]] = []

    def opened(self) -> None:
        """Nothing to count: CSDS clients are not xDS streams."""

    def receive(self, request: Message) -> None:
        assert isinstance(request, csds_pb2.ClientStatusRequest)
        if len(self._waiting) >= _MAX_WAITING:
            raise CallError(Code.RESOURCE_EXHAUSTED, f"more than {_MAX_WAITING} CSDS requests wait for an answer")
        self._waiting.append((request, node_selector(request.node_matchers)))

    def responses(self) -> list[bytes]:
        waiting, self._waiting = self._waiting, []
        return [status_now(self.ctx, request, selected).SerializeToString() for request, selected in waiting]

    def closed(self) -> None:
        """Nothing to forget."""


def csds_methods(ctx: StreamContext, guard: Guard | None = None) -> list[StreamMethod | FetchMethod]:
    """CSDS as methods for the HTTP/2 transport (grpc.aio serves :class:`ClientStatusService`)."""
    service = "/envoy.service.status.v3.ClientStatusDiscoveryService"
    parse = csds_pb2.ClientStatusRequest.FromString

    def fetch(request: Message, peer: Peer) -> bytes:
        assert isinstance(request, csds_pb2.ClientStatusRequest)
        try:
            return bytes(status_now(ctx, request).SerializeToString())
        except ProtocolError as exc:
            raise CallError(Code.INVALID_ARGUMENT, str(exc)) from None

    return [
        StreamMethod(f"{service}/StreamClientStatus", parse, lambda peer: CsdsStream(ctx), guard=guard),
        FetchMethod(f"{service}/FetchClientStatus", parse, fetch, guard=guard),
    ]


class ClientStatusService(csds_pb2_grpc.ClientStatusDiscoveryServiceServicer):  # type: ignore[misc]
    """CSDS over the streams of one xDS server."""

    def __init__(self, ctx: StreamContext, guard: Guard | None = None) -> None:
        self._ctx = ctx
        self._guard = guard

    async def FetchClientStatus(
        self, request: csds_pb2.ClientStatusRequest, context: aio.ServicerContext[Any, Any]
    ) -> csds_pb2.ClientStatusResponse:
        await check_guard(self._guard, context)
        try:
            return status_now(self._ctx, request)
        except ProtocolError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise AssertionError("unreachable") from None

    async def StreamClientStatus(
        self,
        requests: AsyncIterator[csds_pb2.ClientStatusRequest],
        context: aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[csds_pb2.ClientStatusResponse]:
        await check_guard(self._guard, context)
        async for request in requests:
            try:
                response = status_now(self._ctx, request)
            except ProtocolError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            yield response
