"""The Access Log Service (``envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs``) into a recorder.

A client-streaming call: Envoy's ``envoy.access_loggers.http_grpc`` logger
(a Listener's ``accessLogService``) opens it when it first has entries and
sends a batch every ``buffer_flush_interval``; the one response would come
when Envoy ended its side, which it does not do while it runs. :class:`AccessLogStream` is the
logic (a StreamHandler, as the HTTP/2 transport drives it);
:func:`access_log_method` serves it on that transport and
:class:`AccessLogService` on grpc.aio.

What Envoy 1.40 sends (seen on this machine, one worker, flush 0.5 s): the
``identifier`` (the whole ``Node``, some 61 KB with its 516 extensions, and
``log_name``) on the first message of a stream only; then ``http_logs``
entries, about 100 requests in three messages. Per entry,
``common_properties`` has ``start_time`` (wall clock),
``time_to_last_downstream_tx_byte`` and ``duration``, ``upstream_cluster``
(set also when no connection was made: a refused connection logs the cluster
with ``response_flags.upstream_connection_failure`` and Envoy's own 503; an
upstream that closes mid-request logs ``upstream_connection_termination``
and a 503), and ``response_flags`` only when a flag is set;
``response.response_code`` is what the client got. A request that matched
no cluster (a direct response) has an empty ``upstream_cluster``: it is not
recorded.

Bounded: the transport bounds each message (4 MiB by default); a stream
records at most ``max_entries_per_second`` entries (a token bucket holding
one second's worth) and counts the rest in
``switchman_telemetry_access_log_entries_dropped{reason="rate"}``; the
recorder bounds what it keeps. An entry costs about 3 us to parse and
record here (the default 5,000 a second: under 2 % of a core per stream).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.data.accesslog.v3 import accesslog_pb2
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from google.protobuf.message import Message
from grpc import aio

from switchman.errors import PermissionDenied, ProtocolError
from switchman.telemetry.metrics import TelemetryMetrics
from switchman.telemetry.recorder import TrafficRecorder
from switchman.telemetry.reporter import ReportRefusal, reporting_group
from switchman.xds.cache import NodeGrouper
from switchman.xds.server.aio_calls import call_peer
from switchman.xds.server.methods import StreamMethod
from switchman.xds.server.peer import ANONYMOUS, Peer

__all__ = ["ALS_PATH", "AccessLogService", "AccessLogStream", "access_log_method"]

log = logging.getLogger(__name__)

ALS_PATH: Final = "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs"
# The upstream failed rather than answered: reset, refused, closed, overflowed (Envoy answers 503 for most).
FAILURE_FLAGS: Final = (
    "upstream_remote_reset", "upstream_connection_failure", "upstream_connection_termination",
    "upstream_overflow", "local_reset", "upstream_protocol_error",
)
_ids = itertools.count(1)


class _Allowance:
    """A token bucket: ``rate`` entries a second, at most one second's worth at once."""

    __slots__ = ("at", "rate", "tokens")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.at = now

    def take(self, wanted: int, now: float) -> int:
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        granted = min(wanted, int(self.tokens))
        self.tokens -= granted
        return granted


def _seconds(stamp: Any) -> float:
    return float(stamp.seconds + stamp.nanos / 1e9)


def _failed(common: accesslog_pb2.AccessLogCommon) -> bool:
    if not common.HasField("response_flags"):
        return False
    flags = common.response_flags
    return any(getattr(flags, name) for name in FAILURE_FLAGS)


class AccessLogStream:
    """One StreamAccessLogs call: the reporter from the first message's identifier, then every entry recorded."""

    waker: Callable[[], None] | None = None

    def __init__(
        self, recorder: TrafficRecorder, group_of: NodeGrouper, metrics: TelemetryMetrics,
        max_entries_per_second: float = 5000.0, clock: Callable[[], float] = time.monotonic,
        peer: Peer = ANONYMOUS, refusal: ReportRefusal | None = None,
    ) -> None:
        self.id = next(_ids)
        self.recorder = recorder
        self.group_of = group_of
        self.metrics = metrics
        self.peer = peer  # the client as its connection knows it (its certificate)
        self.refusal = refusal
        self.node: base_pb2.Node | None = None
        self.reporter = ""
        self._clock = clock
        self._allowance = _Allowance(max_entries_per_second, clock())

    def opened(self) -> None:
        self.metrics.streams.labels("als").inc()

    def receive(self, request: Message) -> None:
        """Record the entries of one StreamAccessLogsMessage; ProtocolError when the first has no identifier,
        PermissionDenied when its node is in a group the client may not claim."""
        assert isinstance(request, als_pb2.StreamAccessLogsMessage)
        if self.node is None:
            if not request.HasField("identifier"):
                raise ProtocolError("the first message of an access-log stream must carry its identifier")
            self.reporter = reporting_group(request.identifier.node, self.group_of, self.peer, self.refusal,
                                            self.metrics, "als")
            self.node = request.identifier.node
            log.info("access logs from node %r (group %r), log %r", self.node.id, self.reporter,
                     request.identifier.log_name)
        entries = request.http_logs.log_entry
        received = len(entries) + len(request.tcp_logs.log_entry)
        if not received:
            return
        self.metrics.entries.inc(received)
        if len(request.tcp_logs.log_entry):
            self.metrics.dropped.labels("unattributed").inc(len(request.tcp_logs.log_entry))
        allowed = self._allowance.take(len(entries), self._clock())
        if allowed < len(entries):
            self.metrics.dropped.labels("rate").inc(len(entries) - allowed)
        dropped: dict[str, int] = {}
        for entry in entries[:allowed]:
            why = self._record(entry)
            if why is not None:
                dropped[why] = dropped.get(why, 0) + 1
        for why, count in dropped.items():
            self.metrics.dropped.labels(why).inc(count)

    def _record(self, entry: accesslog_pb2.HTTPAccessLogEntry) -> str | None:
        common = entry.common_properties
        cluster = common.upstream_cluster
        if not cluster:
            return "unattributed"
        latency = None  # no byte went back to the client
        if common.HasField("time_to_last_downstream_tx_byte"):
            latency = _seconds(common.time_to_last_downstream_tx_byte) * 1000
        return self.recorder.record_request(
            self.reporter, cluster, _seconds(common.start_time), entry.response.response_code.value,
            failed=_failed(common), latency_ms=latency,
        )

    def responses(self) -> list[bytes]:
        return []  # the one response goes at the end (StreamMethod.final); Envoy never asks for it

    def closed(self) -> None:
        self.metrics.streams.labels("als").dec()


def access_log_method(open_stream: Callable[[Peer], AccessLogStream]) -> StreamMethod:
    """StreamAccessLogs for the HTTP/2 transport."""
    final = als_pb2.StreamAccessLogsResponse().SerializeToString()
    return StreamMethod(ALS_PATH, als_pb2.StreamAccessLogsMessage.FromString, open_stream, final=final)


class AccessLogService(als_pb2_grpc.AccessLogServiceServicer):  # type: ignore[misc]
    """StreamAccessLogs on grpc.aio: the same :class:`AccessLogStream`, driven by the call's messages."""

    def __init__(self, open_stream: Callable[[Peer], AccessLogStream]) -> None:
        self._open = open_stream

    async def StreamAccessLogs(
        self, requests: AsyncIterator[als_pb2.StreamAccessLogsMessage], context: aio.ServicerContext[Any, Any]
    ) -> als_pb2.StreamAccessLogsResponse:
        stream = self._open(call_peer(context))
        stream.opened()
        try:
            async for request in requests:
                stream.receive(request)
        except PermissionDenied as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except ProtocolError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        finally:
            stream.closed()
        return als_pb2.StreamAccessLogsResponse()
