"""A listener's tracing, through a real Switchman and a real Envoy to a real OTLP/gRPC collector.

The collector (switchman.testing.otlp) is reached by a Cluster document or
by an address. Each request through Envoy becomes a span sent to it, with
the listener's service name and tags; the upstream gets the span's trace
context in ``traceparent`` and Envoy's ``x-request-id``, which the client
gets back too (``http.requestId.inResponse``) and the span carries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from switchman.client import SwitchmanClient
from switchman.lab.local import EnvoyProcess
from switchman.testing.otlp import TraceCollector
from tests.e2e.helpers import Recorder, switchman_and_envoy, until

pytestmark = pytest.mark.envoy

REQUESTS = 10


@dataclass
class Lab:
    api: SwitchmanClient
    envoy: EnvoyProcess
    collector: TraceCollector
    upstream: Recorder


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    collector, upstream = TraceCollector(), Recorder("v1")
    await collector.start()
    await upstream.start()
    try:
        async with switchman_and_envoy(tmp_path, "traced-envoy") as (api, envoy):
            yield Lab(api, envoy, collector, upstream)
    finally:
        await upstream.stop()
        await collector.stop()


def _documents(lab: Lab, by: str) -> list[dict[str, Any]]:
    endpoint = {"address": "127.0.0.1", "port": lab.collector.port}
    collector: dict[str, Any] = {"cluster": "otel"} if by == "cluster" else endpoint
    tracing = {"collector": collector, "serviceName": "front",
               "tags": {"env": "test", "user": {"header": "x-user", "default": "anonymous"}}}
    return [
        {"kind": "Cluster", "metadata": {"name": "otel"}, "spec": {"endpoints": [endpoint], "protocol": "GRPC"}},
        {"kind": "Cluster", "metadata": {"name": "app"},
         "spec": {"endpoints": [{"address": "127.0.0.1", "port": lab.upstream.port}]}},
        {"kind": "Routes", "metadata": {"name": "ingress-routes"}, "spec": {"virtualHosts": [
            {"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "cluster": "app"}]}]}},
        {"kind": "Listener", "metadata": {"name": "ingress"}, "spec": {
            "port": 0, "routes": "ingress-routes", "tracing": tracing, "http": {"requestId": {"inResponse": True}}}},
    ]


@pytest.mark.parametrize("by", ["cluster", "address"])
async def test_envoy_sends_a_span_of_every_request_to_the_collector(lab: Lab, by: str) -> None:
    await lab.api.apply(_documents(lab, by), message=f"tracing to a collector by {by}")
    port = await lab.envoy.wait_listener("ingress", timeout=15)
    request_ids: list[str] = []
    async with aiohttp.ClientSession() as session:

        async def serving() -> bool:
            async with session.get(f"http://127.0.0.1:{port}/warm") as resp:
                await resp.read()
                return resp.status == 200

        await until(serving, 10, "the listener serving")
        first = len(lab.upstream.headers)
        for i in range(REQUESTS):
            headers = {"x-user": "alice"} if i % 2 else {}
            async with session.get(f"http://127.0.0.1:{port}/orders/{i}", headers=headers) as resp:
                await resp.read()
                assert resp.status == 200
                request_ids.append(resp.headers["x-request-id"])

    received = lab.upstream.headers[first:]
    assert [h["x-request-id"] for h in received] == request_ids  # Envoy made one and passed it on
    # The trace context the upstream got (W3C traceparent: version-traceid-spanid-flags), sampled.
    contexts = [h["traceparent"].split("-") for h in received]
    assert all(flags == "01" for _, _, _, flags in contexts)

    async def every_span() -> bool:  # Envoy sends spans by 5, and the rest after 5 s
        return {s.attributes.get("guid:x-request-id") for s in lab.collector.spans} >= set(request_ids)

    await until(every_span, 15, "a span of every request at the collector")
    by_request = {s.attributes.get("guid:x-request-id"): s for s in lab.collector.spans}
    for i, (request_id, (_, trace_id, span_id, _)) in enumerate(zip(request_ids, contexts, strict=True)):
        span = by_request[request_id]
        assert (span.trace_id, span.span_id) == (trace_id, span_id)
        assert span.service_name == "front"
        assert span.attributes["env"] == "test"
        assert span.attributes["user"] == ("alice" if i % 2 else "anonymous")
        assert span.attributes["http.url"].endswith(f"/orders/{i}")
        assert span.attributes["http.status_code"] == "200"
