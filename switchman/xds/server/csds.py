"""The standard Client Status Discovery Service (envoy.service.status.v3).

For every connected node: each resource it was sent, with the version, the
client's status (ACKED, NACKED, REQUESTED) and, after a NACK, Envoy's error.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from envoy.admin.v3 import config_dump_shared_pb2 as dump_pb2
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc
from envoy.type.matcher.v3 import node_pb2
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from grpc import aio

from switchman.xds.cache import SnapshotCache
from switchman.xds.server.methods import FetchMethod, StreamMethod
from switchman.xds.server.state import TypeState
from switchman.xds.server.stream import Stream, StreamContext

__all__ = ["ClientStatusService", "CsdsStream", "csds_methods"]

_Status = dump_pb2.ClientResourceStatus


def _matches_text(matcher: Any, text: str) -> bool:
    kind = matcher.WhichOneof("match_pattern")
    if kind == "exact":
        return bool(text == matcher.exact)
    if kind == "prefix":
        return text.startswith(matcher.prefix)
    if kind == "suffix":
        return text.endswith(matcher.suffix)
    if kind == "contains":
        return matcher.contains in text
    if kind == "safe_regex":
        return re.fullmatch(matcher.safe_regex.regex, text) is not None
    return True


def _selected(stream: Stream, matchers: Iterable[node_pb2.NodeMatcher]) -> bool:
    matchers = list(matchers)
    if not matchers:
        return True
    node_id = stream.node.id if stream.node is not None else ""
    return any(not m.HasField("node_id") or _matches_text(m.node_id, node_id) for m in matchers)


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
    streams: Iterable[Stream], cache: SnapshotCache, request: csds_pb2.ClientStatusRequest
) -> csds_pb2.ClientStatusResponse:
    """The CSDS answer for ``request``: one ClientConfig per matching node."""
    response = csds_pb2.ClientStatusResponse()
    by_node: dict[str, csds_pb2.ClientConfig] = {}
    for stream in sorted(streams, key=lambda s: s.id):
        if stream.node is None or not _selected(stream, request.node_matchers):
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


def status_now(ctx: StreamContext, request: csds_pb2.ClientStatusRequest) -> csds_pb2.ClientStatusResponse:
    """The CSDS answer for ``request`` over the streams of one server, as they are now."""
    return client_configs(tuple(ctx.streams), ctx.cache, request)


class CsdsStream:
    """CSDS's bidirectional stream for a transport that drives calls itself: each request gets the status now."""

    waker: Callable[[], None] | None = None

    def __init__(self, ctx: StreamContext) -> None:
        self.ctx = ctx
        self.id = 0
        self._out: list[bytes] = []

    def opened(self) -> None:
        """Nothing to count: CSDS clients are not xDS streams."""

    def receive(self, request: Message) -> None:
        assert isinstance(request, csds_pb2.ClientStatusRequest)
        self._out.append(status_now(self.ctx, request).SerializeToString())

    def responses(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def closed(self) -> None:
        """Nothing to forget."""


def csds_methods(ctx: StreamContext) -> list[StreamMethod | FetchMethod]:
    """CSDS as methods for the HTTP/2 transport (grpc.aio serves :class:`ClientStatusService`)."""
    service = "/envoy.service.status.v3.ClientStatusDiscoveryService"
    parse = csds_pb2.ClientStatusRequest.FromString

    def fetch(request: Message) -> bytes:
        assert isinstance(request, csds_pb2.ClientStatusRequest)
        return bytes(status_now(ctx, request).SerializeToString())

    return [
        StreamMethod(f"{service}/StreamClientStatus", parse, lambda: CsdsStream(ctx)),
        FetchMethod(f"{service}/FetchClientStatus", parse, fetch),
    ]


class ClientStatusService(csds_pb2_grpc.ClientStatusDiscoveryServiceServicer):  # type: ignore[misc]
    """CSDS over the streams of one xDS server."""

    def __init__(self, ctx: StreamContext) -> None:
        self._ctx = ctx

    async def FetchClientStatus(
        self, request: csds_pb2.ClientStatusRequest, context: aio.ServicerContext[Any, Any]
    ) -> csds_pb2.ClientStatusResponse:
        return status_now(self._ctx, request)

    async def StreamClientStatus(
        self,
        requests: AsyncIterator[csds_pb2.ClientStatusRequest],
        context: aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[csds_pb2.ClientStatusResponse]:
        async for request in requests:
            yield status_now(self._ctx, request)
