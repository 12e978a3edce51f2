"""Prometheus metrics of the xDS server, in a registry of its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from switchman.xds import resources as rt

__all__ = ["TypeMetrics", "XdsMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class TypeMetrics:
    """The labelled children of one xDS type."""

    responses: Any
    response_bytes: Any
    acks: Any
    nacks: Any
    oversized: Any
    push_to_ack: Any
    subscriptions: Any


class XdsMetrics:
    """Streams, pushes, ACKs, NACKs, push-to-ACK latency and bytes, labelled by xDS type."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._by_type: dict[str, TypeMetrics] = {}
        r = self.registry
        self.streams = Gauge(
            "switchman_xds_streams", "Connected xDS streams", ["service", "mode"], registry=r
        )
        self.subscriptions = Gauge(
            "switchman_xds_subscriptions", "Streams subscribed to a type", ["type"], registry=r
        )
        self.responses = Counter(
            "switchman_xds_responses", "Discovery responses sent", ["type"], registry=r
        )
        self.response_bytes = Counter(
            "switchman_xds_response_bytes", "Bytes of discovery responses sent", ["type"], registry=r
        )
        self.acks = Counter("switchman_xds_acks", "Responses the client ACKed", ["type"], registry=r)
        self.nacks = Counter("switchman_xds_nacks", "Responses the client NACKed", ["type"], registry=r)
        self.oversized = Counter(
            "switchman_xds_oversized_responses",
            "Responses not sent because they exceed the client's receive limit",
            ["type"],
            registry=r,
        )
        self.push_to_ack = Histogram(
            "switchman_xds_push_to_ack_seconds",
            "Time from sending a response to the client's ACK or NACK",
            ["type"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def label(self, type_url: str) -> str:
        return rt.short_name(type_url)

    def of(self, type_url: str) -> TypeMetrics:
        """The metrics of one type, labelled once (``labels()`` is costly on hot paths)."""
        found = self._by_type.get(type_url)
        if found is None:
            label = self.label(type_url)
            found = self._by_type[type_url] = TypeMetrics(
                responses=self.responses.labels(label),
                response_bytes=self.response_bytes.labels(label),
                acks=self.acks.labels(label),
                nacks=self.nacks.labels(label),
                oversized=self.oversized.labels(label),
                push_to_ack=self.push_to_ack.labels(label),
                subscriptions=self.subscriptions.labels(label),
            )
        return found
