"""The Load Reporting Service (``envoy.service.load_stats.v3.LoadReportingService/StreamLoadStats``) into a recorder.

Envoy opens the stream when its bootstrap has ``cluster_manager.load_stats_config``
(the lab's templates do) and sends a first request with its node alone. We
answer once: every cluster (``send_all_clusters``), every
``load_reporting_interval``. Envoy then sends one LoadStatsRequest per
interval, and each of its clusters' stats is recorded as it arrives.
:class:`LoadStatsStream` is the logic (a StreamHandler, as the HTTP/2
transport drives it); :func:`load_stats_method` serves it on that transport
and :class:`LoadReportingService` on grpc.aio.

What Envoy 1.40 sends (seen on this machine): every request carries the whole
``Node`` (``set_node_on_first_message_only`` is an ADS setting: some 61 KB a
second per Envoy, cheap to parse with upb); a report every interval (measured
``load_report_interval`` 0.9995-1.0013 s for 1 s), one ``cluster_stats`` per
cluster, its bootstrap clusters (``xds``) included; a cluster with no
traffic in the period has no ``upstream_locality_stats``; endpoints without a
locality report one entry with an empty locality. ``total_error_requests``
counts 5xx answers *and* requests that failed without one: a refused
connection is an error with no issued request, and an upstream that closed
mid-request is an issued request and an error. So successes + errors is
what the client got, and issued + refused. ``total_requests_in_progress``
is a gauge, the others count the period. A cluster enters the reports one
period after Envoy learns of it, and the load it took before that is never
reported (Envoy resets a cluster's load stats when it starts reporting it):
a test must wait until a report names the cluster before it sends traffic.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.load_stats.v3 import lrs_pb2, lrs_pb2_grpc
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

__all__ = ["LRS_PATH", "LoadReportingService", "LoadStatsStream", "load_stats_method"]

log = logging.getLogger(__name__)

LRS_PATH: Final = "/envoy.service.load_stats.v3.LoadReportingService/StreamLoadStats"
_ids = itertools.count(1)


class LoadStatsStream:
    """One StreamLoadStats call: the first request gets our one answer, every request's cluster stats are kept."""

    waker: Callable[[], None] | None = None

    def __init__(
        self, recorder: TrafficRecorder, group_of: NodeGrouper, metrics: TelemetryMetrics, interval: float = 1.0,
        peer: Peer = ANONYMOUS, refusal: ReportRefusal | None = None,
    ) -> None:
        self.id = next(_ids)
        self.recorder = recorder
        self.group_of = group_of
        self.metrics = metrics
        self.peer = peer  # the client as its connection knows it (its certificate)
        self.refusal = refusal
        self.interval = interval
        self.node: base_pb2.Node | None = None
        self.reporter = ""
        self._out: list[bytes] = []

    def opened(self) -> None:
        self.metrics.streams.labels("lrs").inc()

    def receive(self, request: Message) -> None:
        """Record one LoadStatsRequest; ProtocolError when the first has no node, PermissionDenied when its node
        is in a group the client may not claim."""
        assert isinstance(request, lrs_pb2.LoadStatsRequest)
        if self.node is None:
            if not request.HasField("node"):
                raise ProtocolError("the first load-stats request must carry the node")
            self.reporter = reporting_group(request.node, self.group_of, self.peer, self.refusal, self.metrics, "lrs")
            self.node = request.node
            log.info("load reports from node %r (group %r)", self.node.id, self.reporter)
            self._out.append(self.ask())
        if not request.cluster_stats:
            return
        self.metrics.reports.inc(len(request.cluster_stats))
        dropped = 0
        for stats in request.cluster_stats:
            successes = errors = issued = in_progress = 0
            for locality in stats.upstream_locality_stats:
                successes += locality.total_successful_requests
                errors += locality.total_error_requests
                issued += locality.total_issued_requests
                in_progress += locality.total_requests_in_progress
            if not (successes or errors or issued or in_progress or stats.total_dropped_requests):
                # Envoy reports every cluster it has (send_all_clusters), busy or not: an empty report adds
                # nothing to any window, and would take one of the recorder's bounded series for nothing.
                continue
            interval = stats.load_report_interval
            why = self.recorder.record_load(
                self.reporter, stats.cluster_name, successes=successes, errors=errors, issued=issued,
                in_progress=in_progress, dropped=stats.total_dropped_requests,
                interval=interval.seconds + interval.nanos / 1e9,
            )
            dropped += why is not None
        if dropped:
            self.metrics.reports_dropped.labels("series").inc(dropped)

    def ask(self) -> bytes:
        """Our answer: report every cluster, every ``interval`` seconds."""
        response = lrs_pb2.LoadStatsResponse(send_all_clusters=True)
        response.load_reporting_interval.FromNanoseconds(round(self.interval * 1e9))
        return bytes(response.SerializeToString())

    def responses(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def closed(self) -> None:
        self.metrics.streams.labels("lrs").dec()


def load_stats_method(open_stream: Callable[[Peer], LoadStatsStream]) -> StreamMethod:
    """StreamLoadStats for the HTTP/2 transport."""
    return StreamMethod(LRS_PATH, lrs_pb2.LoadStatsRequest.FromString, open_stream)


class LoadReportingService(lrs_pb2_grpc.LoadReportingServiceServicer):  # type: ignore[misc]
    """StreamLoadStats on grpc.aio: the same :class:`LoadStatsStream`, driven by the call's messages."""

    def __init__(self, open_stream: Callable[[Peer], LoadStatsStream]) -> None:
        self._open = open_stream

    async def StreamLoadStats(
        self, requests: AsyncIterator[lrs_pb2.LoadStatsRequest], context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[lrs_pb2.LoadStatsResponse]:
        stream = self._open(call_peer(context))
        stream.opened()
        try:
            async for request in requests:
                stream.receive(request)
                for data in stream.responses():
                    yield lrs_pb2.LoadStatsResponse.FromString(data)
        except PermissionDenied as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except ProtocolError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        finally:
            stream.closed()
