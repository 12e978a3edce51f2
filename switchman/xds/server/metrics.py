"""Prometheus metrics of the xDS server, in a registry of its own.

Per-type counts are plain integers on the hot path (every response, ACK and
NACK of every stream touches them) and become Prometheus samples only when
the registry is collected: ``prometheus_client``'s counters take a lock and a
few microseconds per update, which at 10,000 streams is a visible share of a push.

Every label comes from a fixed set, whatever clients send: the types
Switchman serves (anything else would be ``other``, though streams ignore
other types and never count them), the services and modes, and the reasons
of :data:`REFUSALS`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Final, Protocol

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from switchman.xds import resources as rt

__all__ = ["REFUSALS", "TransportGauges", "TypeMetrics", "XdsMetrics"]

# Why a connection, stream or request was refused, ended or ignored by a limit (the label of switchman_xds_refused).
REFUSALS: Final = (
    "connections",  # over max_connections: GOAWAY ENHANCE_YOUR_CALM at once
    "connections_per_address",  # over max_connections_per_address: likewise
    "streams",  # over max_concurrent_streams: RST_STREAM REFUSED_STREAM
    "too_many_resets",  # streams reset (or refused) faster than allowed: GOAWAY ENHANCE_YOUR_CALM
    "too_many_pings",  # gRPC's ping policy: GOAWAY ENHANCE_YOUR_CALM
    "control_frame_flood",  # SETTINGS, PRIORITY, empty DATA, ...: GOAWAY ENHANCE_YOUR_CALM
    "header_list_size",  # a header block over max_header_list_bytes: GOAWAY ENHANCE_YOUR_CALM
    "protocol_error",  # any other HTTP/2 connection error: GOAWAY PROTOCOL_ERROR (or the code h2 names)
    "request_timeout",  # no first request, or a request not whole, in time: DEADLINE_EXCEEDED
    "send_buffer",  # the socket buffer of a client that does not read went over its bound: dropped
    "write_stall",  # a client took nothing for max_write_stall_seconds: dropped
    "idle",  # no calls for max_connection_idle_seconds: GOAWAY
    "node_too_large",  # a node over max_node_bytes: INVALID_ARGUMENT
    "unknown_type",  # a request for a type this server does not serve: ignored
    "identity",  # a node group the client's certificate identity may not claim: PERMISSION_DENIED
    "secrets_without_certificate",  # secrets asked for without a client certificate: SDS PERMISSION_DENIED, ADS ignored
)

LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class TypeMetrics:
    """The counts of one xDS type: bump the fields; they are read when the registry is collected."""

    __slots__ = (
        "acks", "label", "latency", "latency_sum", "nacks", "oversized", "response_bytes", "responses",
        "subscriptions",
    )

    def __init__(self, label: str) -> None:
        self.label = label
        self.responses = 0
        self.response_bytes = 0
        self.acks = 0
        self.nacks = 0
        self.oversized = 0
        self.subscriptions = 0
        self.latency = [0] * (len(LATENCY_BUCKETS) + 1)  # per bucket, not cumulative; the last is +Inf
        self.latency_sum = 0.0

    def push_to_ack(self, seconds: float) -> None:
        """Record the time from a response to the client's ACK or NACK."""
        self.latency[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds


class TransportGauges(Protocol):
    """What a transport tells of its connections (the h2 transport's server)."""

    def connection_count(self) -> int: ...

    def buffered_bytes(self) -> int: ...


class _TypeCollector(Collector):
    def __init__(self, metrics: XdsMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        refused = CounterMetricFamily(
            "switchman_xds_refused", "Connections, streams and requests a limit refused, ended or ignored",
            labels=["reason"],
        )
        for reason in REFUSALS:
            refused.add_metric([reason], self._metrics.refusals[reason])
        yield refused
        transport = self._metrics.transport
        if transport is not None:
            yield GaugeMetricFamily("switchman_xds_connections", "Open connections on the h2 transport",
                                    value=transport.connection_count())
            yield GaugeMetricFamily(
                "switchman_xds_buffered_bytes",
                "Bytes the h2 transport holds for its clients (responses not taken) and from them (requests not whole)",
                value=transport.buffered_bytes(),
            )
        types = list(self._metrics._by_type.values())
        subscriptions = GaugeMetricFamily(
            "switchman_xds_subscriptions", "Streams subscribed to a type", labels=["type"]
        )
        counters = [
            (CounterMetricFamily("switchman_xds_responses", "Discovery responses sent", labels=["type"]),
             "responses"),
            (CounterMetricFamily(
                "switchman_xds_response_bytes", "Bytes of discovery responses sent", labels=["type"]),
             "response_bytes"),
            (CounterMetricFamily("switchman_xds_acks", "Responses the client ACKed", labels=["type"]), "acks"),
            (CounterMetricFamily("switchman_xds_nacks", "Responses the client NACKed", labels=["type"]), "nacks"),
            (CounterMetricFamily(
                "switchman_xds_oversized_responses",
                "Responses not sent because they exceed the client's receive limit", labels=["type"]),
             "oversized"),
        ]
        latency = HistogramMetricFamily(
            "switchman_xds_push_to_ack_seconds", "Time from sending a response to the client's ACK or NACK",
            labels=["type"],
        )
        for tm in types:
            subscriptions.add_metric([tm.label], tm.subscriptions)
            for family, field in counters:
                family.add_metric([tm.label], getattr(tm, field))
            cumulative, running = [], 0
            for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), tm.latency, strict=True):
                running += count
                cumulative.append((bound, running))
            latency.add_metric([tm.label], cumulative, tm.latency_sum)
        yield subscriptions
        for family, _ in counters:
            yield family
        yield latency


class XdsMetrics:
    """Streams, pushes, ACKs, NACKs, push-to-ACK latency and bytes, labelled by xDS type."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._by_type: dict[str, TypeMetrics] = {}
        self.refusals: dict[str, int] = dict.fromkeys(REFUSALS, 0)
        self.transport: TransportGauges | None = None
        self.streams = Gauge(
            "switchman_xds_streams", "Connected xDS streams", ["service", "mode"], registry=self.registry
        )
        self.registry.register(_TypeCollector(self))

    def label(self, type_url: str) -> str:
        """``lds``, ``rds``, ``cds``, ``eds``, ``sds``; ``other`` for any type URL Switchman does not serve."""
        return rt.short_name(type_url) if type_url in rt.TYPE_URLS else "other"

    def of(self, type_url: str) -> TypeMetrics:
        """The counts of one type (all types Switchman does not serve share ``other``'s)."""
        found = self._by_type.get(type_url)
        if found is None:
            label = self.label(type_url)
            if label == "other":
                return self._other()
            found = self._by_type[type_url] = TypeMetrics(label)
        return found

    def _other(self) -> TypeMetrics:
        found = self._by_type.get("other")
        if found is None:
            found = self._by_type["other"] = TypeMetrics("other")
        return found

    def refused(self, reason: str) -> None:
        """Count one refusal; ``reason`` is one of :data:`REFUSALS`."""
        self.refusals[reason if reason in self.refusals else "protocol_error"] += 1
