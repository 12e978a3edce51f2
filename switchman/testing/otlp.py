"""A tiny OpenTelemetry trace collector: OTLP over gRPC (``TraceService/Export``), spans kept in memory.

Envoy's OpenTelemetry tracer sends it what a real collector would get, so
a test (or the lab) can read the spans back: their names, trace ids and
attributes, and the ``service.name`` of the resource that sent them. The
protos come with ``xds-protos`` (``opentelemetry.proto``); there is no
generated service code, so the method is registered by hand. Their OTLP is
an older one: field 2 of ``ResourceSpans``, ``scope_spans`` today, is
``instrumentation_library_spans`` there, the same message on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import grpc
from grpc import aio
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp
from opentelemetry.proto.common.v1 import common_pb2

from switchman.lab.local.grpc_echo import start_server

__all__ = ["EXPORT_METHOD", "ReceivedSpan", "TraceCollector"]

_SERVICE: Final = "opentelemetry.proto.collector.trace.v1.TraceService"
EXPORT_METHOD: Final = f"/{_SERVICE}/Export"


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    """One span as the collector received it, with what is usually asserted on."""

    service_name: str
    name: str
    trace_id: str  # hex, as in a W3C traceparent header
    span_id: str
    parent_span_id: str
    attributes: dict[str, str]


def _text(value: common_pb2.AnyValue) -> str:
    kind = value.WhichOneof("value")
    return "" if kind is None else str(getattr(value, kind))


def _attributes(items: Any) -> dict[str, str]:
    return {item.key: _text(item.value) for item in items}


class TraceCollector:
    """A grpc.aio server on loopback that accepts OTLP trace exports; ``spans`` holds what arrived."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.spans: list[ReceivedSpan] = []
        self.exports = 0
        self._server: aio.Server | None = None

    async def _export(
        self, request: otlp.ExportTraceServiceRequest, context: aio.ServicerContext[Any, Any]
    ) -> otlp.ExportTraceServiceResponse:
        self.exports += 1
        for resource_spans in request.resource_spans:
            service = _attributes(resource_spans.resource.attributes).get("service.name", "")
            for scope_spans in resource_spans.instrumentation_library_spans:  # scope_spans (see above)
                for span in scope_spans.spans:
                    self.spans.append(ReceivedSpan(
                        service_name=service, name=span.name, trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(), parent_span_id=span.parent_span_id.hex(),
                        attributes=_attributes(span.attributes),
                    ))
        return otlp.ExportTraceServiceResponse()

    async def start(self, port: int = 0) -> int:
        """Bind and serve; returns the bound port."""
        export = grpc.unary_unary_rpc_method_handler(
            self._export,
            request_deserializer=otlp.ExportTraceServiceRequest.FromString,
            response_serializer=otlp.ExportTraceServiceResponse.SerializeToString,
        )
        self._server, self.port = await start_server(self.host, port, _SERVICE, {"Export": export}, "trace collector")
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
