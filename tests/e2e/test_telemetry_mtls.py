"""Real Envoys reporting access logs (ALS) and load (LRS) over mutual TLS, on either transport: only a client
whose certificate may claim the node group gets its reports recorded for it.

``front`` is an Envoy whose certificate (``spiffe://lab/front``) may claim node group ``front``: it gets its
listener from Switchman and sends checkout's traffic to v1; its reports land in the recorder for ``front``.
``intruder`` claims node group ``front`` too, with a certificate of the same CA whose identity may only claim
``checkout-*``: Switchman would refuse it config, so it runs a listener of its own (static, in its
bootstrap) to v2, logging to Switchman and reporting its load there. Its report streams end with PERMISSION_DENIED, and
nothing of v2's traffic is recorded.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from switchman.app import ServeSettings, Switchman
from switchman.client import SwitchmanClient
from switchman.lab.local import EnvoyProcess, XdsClientTls, bootstrap
from switchman.telemetry import TelemetrySettings, TrafficRecorder
from switchman.tls import TlsSettings
from switchman.xds.server.server import TRANSPORTS
from tests.certs import Authority
from tests.e2e.helpers import checkout_documents, until

pytestmark = pytest.mark.envoy

REQUESTS = 40
IDENTITIES = {"spiffe://lab/front": ("front",), "spiffe://lab/pod-*": ("checkout-*",)}


def _own_listener(upstream_port: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A listener (on a free port) to cluster ``checkout-v2`` at ``upstream_port``, logging to Switchman."""
    als = {
        "name": "envoy.access_loggers.http_grpc",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig",
            "common_config": {"log_name": "forged", "transport_api_version": "V3", "buffer_flush_interval": "0.2s",
                              "grpc_service": {"envoy_grpc": {"cluster_name": "xds"}}},
        },
    }
    route = {"match": {"prefix": "/"}, "route": {"cluster": "checkout-v2"}}
    router = {"name": "envoy.filters.http.router",
              "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                 "HttpConnectionManager",
        "stat_prefix": "forged",
        "access_log": [als],
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [route]}]},
        "http_filters": [router],
    }
    listener = {
        "name": "forged",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                        "typed_config": manager}]}],
    }
    cluster = {
        "name": "checkout-v2", "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "checkout-v2", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream_port}}}}]}]},
    }
    return listener, cluster


async def _send(port: int, count: int) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            async with session.get(f"http://127.0.0.1:{port}/") as resp:
                assert resp.status == 200, resp.status
                await resp.read()


def _recorded(recorder: TrafficRecorder, cluster: str, since: float) -> tuple[int, int]:
    """Requests to ``cluster`` recorded for node group ``front`` since ``since``: by access logs, by load reports."""
    now = time.time() + 1
    logged = recorder.window(cluster, since, now, reporter="front")
    loads = recorder.load_reports(cluster, since, now, reporter="front")
    return (logged.requests if logged.source == "als" else 0), sum(r.issued for r in loads)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_reports_over_mtls_count_only_for_a_group_the_certificate_may_claim(
    tmp_path: Path, upstreams: Any, transport: str,
) -> None:
    blue, green = await upstreams("checkout", "v1"), await upstreams("checkout", "v2")
    ca = Authority(tmp_path)
    server = ca.issue("xds-server", ips=("127.0.0.1",), server=True)
    app = Switchman(ServeSettings(
        xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=str(tmp_path / "s.db"), xds_transport=transport,
        xds_tls=TlsSettings(str(server.cert_file), str(server.key_file), str(ca.file)), node_identities=IDENTITIES,
        telemetry=TelemetrySettings(load_reporting_interval=0.5),
    ))
    await app.start()
    envoys: list[EnvoyProcess] = []

    def envoy(name: str, identity: str) -> EnvoyProcess:
        client = ca.issue(name, uris=(identity,))
        config = bootstrap(name, app.xds_port, cluster="front",
                           tls=XdsClientTls(str(client.cert_file), str(client.key_file), str(ca.file)))
        envoys.append(EnvoyProcess(config))
        return envoys[-1]

    try:
        service, routes, listener = checkout_documents(blue.port, green.port, {"v1": 100, "v2": 0})
        listener["spec"]["accessLogService"] = {"cluster": "xds", "bufferFlushInterval": "200ms"}
        async with SwitchmanClient(f"http://127.0.0.1:{app.api_port}") as api:
            await api.apply([service, routes, listener])
        front = envoy("front-1", "spiffe://lab/front")
        intruder = envoy("intruder-1", "spiffe://lab/pod-9")
        forged, own_cluster = _own_listener(green.port)
        del intruder.config["dynamic_resources"]  # no config from Switchman (it would be refused): its own
        intruder.config["static_resources"]["listeners"] = [forged]
        intruder.config["static_resources"]["clusters"].append(own_cluster)
        await front.start()
        await intruder.start()
        front_port = await front.wait_listener("ingress", timeout=15)
        intruder_port = await intruder.wait_listener("forged")
        recorder = app.telemetry

        # Envoy reports a cluster's load from when Switchman's answer on the LRS stream arrives, not before: send
        # a little until front's reports name v1, then let what came before be reported, in earlier buckets.
        async def reporting() -> bool:
            await _send(front_port, 2)
            return bool(recorder.load_reports("checkout-v1", 0, time.time() + 1, reporter="front"))

        await until(reporting, 15, "front's load reports naming checkout-v1")
        await asyncio.sleep(1.2)
        start = time.time()

        await _send(front_port, REQUESTS)
        await _send(intruder_port, REQUESTS)

        async def front_reported() -> bool:
            return _recorded(recorder, "checkout-v1", start) == (REQUESTS, REQUESTS)

        await until(front_reported, 15, f"front's {REQUESTS} requests in its access logs and its load reports")

        registry = app.xds.metrics.registry

        async def intruder_refused() -> bool:
            refused = [registry.get_sample_value("switchman_telemetry_streams_refused_total", {"service": s})
                       for s in ("als", "lrs")]
            return all(refused) and "StreamLoadStats gRPC config stream closed: 7, identity" in intruder.log_tail(100)

        await until(intruder_refused, 15, "the intruder's report streams ended with PERMISSION_DENIED")
        await _send(intruder_port, REQUESTS)  # more, after its streams were refused: still nothing recorded
        await _send(front_port, 1)

        async def front_again() -> bool:
            return _recorded(recorder, "checkout-v1", start) == (REQUESTS + 1, REQUESTS + 1)

        await until(front_again, 10, "front's last request, in its access logs and its load reports")
        assert _recorded(recorder, "checkout-v2", start) == (0, 0)
        assert recorder.window("checkout-v2", start, time.time() + 1).requests == 0  # by no group at all
        stats = await intruder.stats("cluster.checkout-v2.upstream_rq_completed")
        assert stats["cluster.checkout-v2.upstream_rq_completed"] == 2 * REQUESTS, stats  # it did send them
    finally:
        for proc in envoys:
            await proc.stop()
        await app.stop(0.1)

