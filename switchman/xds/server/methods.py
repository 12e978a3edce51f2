"""The xDS methods a transport serves, without the transport: what to parse, and what answers.

ADS and the per-type services (LDS, RDS, CDS, EDS, SDS), each with its
state-of-the-world and delta stream and, per type, the unary fetch. Both
transports serve this one table: grpc.aio (:mod:`switchman.xds.server.services`)
and the HTTP/2 transport of :mod:`switchman.xds.h2`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Protocol

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import Message

from switchman.xds import resources as rt
from switchman.xds import wire
from switchman.xds.server.delta import DeltaStream
from switchman.xds.server.peer import Peer
from switchman.xds.server.sotw import SotwStream
from switchman.xds.server.stream import Stream, StreamContext

__all__ = [
    "AnyMethod",
    "AsyncUnaryMethod",
    "CallError",
    "Code",
    "FetchMethod",
    "Guard",
    "Metadata",
    "StreamHandler",
    "StreamMethod",
    "xds_methods",
]

Metadata = tuple[tuple[str, str], ...]
#: Who may make a call, checked when it opens (before any request): raises CallError when the call's
#: metadata (a bearer token) and client (its certificate) may not.
Guard = Callable[[Metadata, Peer], None]


class Code(IntEnum):
    """gRPC's status codes."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class CallError(Exception):
    """Raised when a call ends with a status other than OK; ``trailers`` is extra trailing metadata."""

    def __init__(self, code: Code, message: str, trailers: Metadata = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.trailers = trailers


class StreamHandler(Protocol):
    """One bidirectional call as a transport drives it (an xDS :class:`Stream` is one)."""

    id: int
    waker: Callable[[], None] | None  # the transport's: "call responses() soon"

    def opened(self) -> None: ...
    def receive(self, request: Message) -> None: ...
    def responses(self) -> list[bytes]: ...
    def closed(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StreamMethod:
    """A streaming call: each call gets a new handler (an xDS :class:`Stream`, CSDS's, a telemetry stream).

    ``stream(peer)`` makes it; ``peer`` is the client as the connection knows it (its certificate's identity).

    A bidirectional call ends when the client ends its side. A client-streaming
    call (``final`` set) then answers its one response, ``final``, and ends.
    ``guard``, if set, decides first who may open it.
    """

    path: str
    parse: Callable[[bytes], Message]
    stream: Callable[[Peer], StreamHandler]
    final: bytes | None = None
    guard: Guard | None = None


@dataclass(frozen=True, slots=True)
class FetchMethod:
    """A unary fetch: one request and the client (:class:`Peer`), one encoded response (or CallError).

    ``guard``, if set, decides first who may call it.
    """

    path: str
    parse: Callable[[bytes], Message]
    fetch: Callable[[Message, Peer], bytes]
    guard: Guard | None = None


@dataclass(frozen=True, slots=True)
class AsyncUnaryMethod:
    """A unary call answered by a coroutine, which gets the request, the call's metadata and its client.

    ``guard``, if set, decides first who may call it.
    """

    path: str
    parse: Callable[[bytes], Message]
    call: Callable[[Message, Metadata, Peer], Awaitable[bytes]]
    guard: Guard | None = None


AnyMethod = StreamMethod | FetchMethod | AsyncUnaryMethod

# service, its type (None: aggregated), the noun in its method names, the label in metrics
_SERVICES: Final = (
    ("envoy.service.discovery.v3.AggregatedDiscoveryService", None, "AggregatedResources", "ads"),
    ("envoy.service.listener.v3.ListenerDiscoveryService", rt.LISTENER, "Listeners", "lds"),
    ("envoy.service.route.v3.RouteDiscoveryService", rt.ROUTE, "Routes", "rds"),
    ("envoy.service.cluster.v3.ClusterDiscoveryService", rt.CLUSTER, "Clusters", "cds"),
    ("envoy.service.endpoint.v3.EndpointDiscoveryService", rt.ENDPOINT, "Endpoints", "eds"),
    ("envoy.service.secret.v3.SecretDiscoveryService", rt.SECRET, "Secrets", "sds"),
)


def _fetcher(ctx: StreamContext, type_url: str) -> Callable[[Message, Peer], bytes]:
    def fetch(request: Message, peer: Peer) -> bytes:
        assert isinstance(request, discovery_pb2.DiscoveryRequest)
        if request.type_url and request.type_url != type_url:
            raise CallError(Code.INVALID_ARGUMENT, f"this service serves {type_url}")
        group = ctx.group_of(request.node)
        refusal = ctx.refusal(peer, group, secrets=type_url == rt.SECRET)
        if refusal is not None:
            raise CallError(Code.PERMISSION_DENIED, refusal)
        snapshot = ctx.cache.snapshot(group)
        if snapshot is None:
            raise CallError(Code.UNAVAILABLE, "no configuration for this node yet")
        tsnap = snapshot.get(type_url)
        names = frozenset(request.resource_names) - {"*"}
        selection = tsnap.select(names or None)
        return wire.sotw_response(tsnap.version, selection.body, type_url, "")

    return fetch


def _opener(ctx: StreamContext, kind: type[Stream], label: str, only_type: str | None) -> Callable[[Peer], Stream]:
    def open_stream(peer: Peer) -> Stream:
        return kind(ctx, label, only_type, peer)

    return open_stream


def xds_methods(ctx: StreamContext) -> list[StreamMethod | FetchMethod]:
    """Every xDS method, for one server's streams."""
    parse_sotw = discovery_pb2.DiscoveryRequest.FromString
    parse_delta = discovery_pb2.DeltaDiscoveryRequest.FromString
    methods: list[StreamMethod | FetchMethod] = []
    for service, only_type, noun, label in _SERVICES:
        sotw, delta = _opener(ctx, SotwStream, label, only_type), _opener(ctx, DeltaStream, label, only_type)
        methods.append(StreamMethod(f"/{service}/Stream{noun}", parse_sotw, sotw))
        methods.append(StreamMethod(f"/{service}/Delta{noun}", parse_delta, delta))
        if only_type is not None:
            methods.append(FetchMethod(f"/{service}/Fetch{noun}", parse_sotw, _fetcher(ctx, only_type)))
    return methods
