"""What the model accepts, a real Envoy accepts: every example, and configurations drawn at random.

One Switchman (in-process, SQLite in tmp_path) and one real Envoy on ADS. Each configuration is
applied through the API (listeners on port 0, so nothing clashes), then the test waits until the
Envoy has ACKed the served version of every type the snapshot holds, and fails on any NACK with
Envoy's own message. Between configurations every document is deleted, listeners first.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from switchman.app import ServeSettings, Switchman
from switchman.lab.local import EnvoyProcess, bootstrap
from switchman.xds import resources as rt
from tests.certs import Authority
from tests.functional.api.docs import example
from tests.unit.model.docs import Raw, cluster, envoy_resource, listener, route, routes, service
from tests.unit.model.strategies import configs

pytestmark = pytest.mark.envoy

EXAMPLES = sorted(p.name for p in (Path(__file__).parents[2] / "examples").glob("*.yaml"))
NODE = "model-envoy"
_DELETE_ORDER = {"Listener": 0, "Routes": 1}


class Lab:
    """A running Switchman with one Envoy connected, and an HTTP session for its API."""

    def __init__(self, switchman: Switchman, envoy: EnvoyProcess, session: aiohttp.ClientSession) -> None:
        self.switchman, self.envoy, self.session = switchman, envoy, session
        self.base = f"http://127.0.0.1:{switchman.api_port}"

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, self.base + path, json=body) as resp:
            return resp.status, await resp.json()

    async def clear(self) -> None:
        status, listed = await self.call("GET", "/v1/documents")
        assert status == 200, listed
        for doc in sorted(listed["documents"], key=lambda d: _DELETE_ORDER.get(d["kind"], 2)):
            status, body = await self.call("DELETE", f"/v1/documents/{doc['kind']}/{doc['metadata']['name']}")
            assert status == 200, body

    async def apply_and_wait_for_acks(
        self, docs: list[dict[str, Any]], timeout: float = 15.0, may_refuse: bool = False
    ) -> None:
        """Apply ``docs`` and wait until the Envoy ACKed all of it; a NACK fails. With ``may_refuse``,
        Switchman refusing the documents (422) passes too."""
        await self.clear()
        status, body = await self.call("POST", "/v1/apply", {"documents": docs})
        if may_refuse and status == 422:
            return
        assert status == 200, f"Switchman refused a valid configuration: {body}\n{json.dumps(docs, indent=1)}"
        snapshot = self.switchman.cache.snapshot("demo")
        assert snapshot is not None
        wanted = {rt.short_name(t): snapshot.version(t) for t in rt.ORDERED_TYPES if snapshot.get(t).resources}
        deadline = time.monotonic() + timeout
        acked: dict[str, str] = {}
        while True:
            nodes = [n for n in self.switchman.xds.statuses() if n.node_id == NODE]
            types = {t.type: t for n in nodes for t in n.types}
            for t in types.values():
                assert t.nack_version is None, (
                    f"Envoy NACKed {t.type} version {t.nack_version}: {t.nack_message}\n{json.dumps(docs, indent=1)}"
                )
            acked = {name: types[name].acked_version for name in wanted if name in types}
            if acked == wanted and all(types[name].pending_version is None for name in wanted):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"Envoy did not ACK every type in {timeout}s: wanted {wanted}, acked {acked}\n"
                    f"{self.envoy.log_tail()}\n{json.dumps(docs, indent=1)}"
                )
            await asyncio.sleep(0.02)


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    switchman = Switchman(ServeSettings(xds_address="127.0.0.1:0", api_address="127.0.0.1:0",
                                        store=str(tmp_path / "s.db")))
    await switchman.start()
    envoy = EnvoyProcess(bootstrap(NODE, switchman.xds_port, cluster="demo"))
    session = aiohttp.ClientSession()
    try:
        await envoy.start()
        yield Lab(switchman, envoy, session)
    finally:
        await session.close()
        await envoy.stop()
        await switchman.stop(0.1)


@pytest.mark.parametrize("name", EXAMPLES)
async def test_envoy_accepts_every_example(lab: Lab, name: str) -> None:
    await lab.apply_and_wait_for_acks(example(name, port=0))


@settings(
    max_examples=10, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(docs=configs(port=0))
async def test_envoy_accepts_configurations_the_model_accepts(lab: Lab, docs: list[dict[str, Any]]) -> None:
    await lab.apply_and_wait_for_acks(docs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _raw_listener_on(port: int) -> Raw:
    return envoy_resource("raw", {
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "raw",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": "raw", "cluster": "c"}}]}],
    })


def _case(name: str) -> list[Raw]:
    """Documents the model accepts and Envoy rejects (each a bug pinned by a unit test too)."""
    r = routes  # a route configuration with one route, otherwise valid
    if name == "raw-listener-port-clash":
        port = _free_port()
        return [cluster(), r(), listener(port=port), _raw_listener_on(port)]
    docs: dict[str, list[Raw]] = {
        "listener-address": [cluster(), r(), listener(port=0, address="999.1.1.1")],
        "endpoint-host-name": [cluster(endpoints=[{"address": "example.com", "port": 80}]), r(), listener(port=0)],
        "regex": [cluster(), r("r", route(match={"regex": "(unclosed"})), listener(port=0)],
        "pseudo-header-rewrite": [cluster(), r("r", route(requestHeaders={"add": {":authority": "x"}})),
                                  listener(port=0)],
        "header-value-line-break": [cluster(), r("r", route(requestHeaders={"add": {"x-a": "a\nb"}})),
                                    listener(port=0)],
        "duration-beyond-protobuf": [cluster(), r("r", route(timeout=10**12)), listener(port=0)],
        "zero-fault-delay": [cluster(), r("r", route(fault={"delay": {"fixed": "0s", "percent": 5}})),
                             listener(port=0)],
        "direct-response-body-5000": [cluster(), r("r", route(directResponse={"status": 200, "body": "x" * 5000})),
                                      listener(port=0)],
        "domains-differing-in-case": [cluster(), r(hosts=[
            {"name": "a", "domains": ["A.example"], "routes": [route()]},
            {"name": "b", "domains": ["a.example"], "routes": [route()]},
        ]), listener(port=0)],
        "overlapping-server-names": [cluster(), r(), listener(port=0, filterChains=[
            {"routes": "r", "match": {"serverNames": ["a.example", "b.example"]}},
            {"routes": "r", "match": {"serverNames": ["b.example"]}},
        ])],
    }
    return docs[name]


KNOWN_GAPS = [
    "listener-address", "endpoint-host-name", "regex", "pseudo-header-rewrite", "header-value-line-break",
    "duration-beyond-protobuf", "zero-fault-delay", "direct-response-body-5000", "domains-differing-in-case",
    "overlapping-server-names", "raw-listener-port-clash",
]


@pytest.mark.parametrize("case", KNOWN_GAPS)
async def test_what_the_model_accepts_envoy_accepts(lab: Lab, case: str) -> None:
    await lab.apply_and_wait_for_acks(_case(case), timeout=5.0, may_refuse=True)


@pytest.mark.parametrize("log_cluster", ["xds", "not-in-the-bootstrap"])
async def test_envoy_accepts_a_listener_that_logs_to_switchman(lab: Lab, log_cluster: str) -> None:
    """Envoy 1.40 takes an access-log cluster it does not have too (its gRPC client fails when it logs)."""
    logs = {"cluster": log_cluster, "bufferFlushInterval": "100ms"}
    chains = [{"routes": "r", "match": {"serverNames": ["a.example"]}}, {"routes": "r"}]
    await lab.apply_and_wait_for_acks([cluster(), routes(), listener(port=0, accessLogService=logs),
                                       listener("l2", port=0, filterChains=chains, accessLogService=logs)])


async def test_envoy_accepts_rate_limits_tracing_and_upstream_protocols_and_tls(lab: Lab, tmp_path: Path) -> None:
    """Certificates from files here: Switchman serves SDS secrets only over mutual TLS (test_upstream_tls.py)."""
    ca = Authority(tmp_path)
    client = ca.issue("envoy-client", uris=("spiffe://lab/envoy",))
    files = {"caFile": str(ca.file), "certFile": str(client.cert_file), "keyFile": str(client.key_file)}
    sans = [{"dns": "checkout.internal"}, {"uri": "spiffe://lab/checkout"}, {"ip": "127.0.0.1"}]
    limit = {"maxTokens": 10, "tokensPerFill": 5, "fillInterval": "100ms", "status": 503, "rateLimitHeaders": True,
             "refusedHeaders": {"x-limited": "yes"}, "enabledPercent": 50, "enforcedPercent": 12.5}
    hosts = [
        {"name": "limited", "domains": ["limited.example"], "rateLimit": {"maxTokens": 1, "fillInterval": "1s"},
         "routes": [route(name="named", rateLimit=limit), route(match={"prefix": "/x"}, rateLimit=limit)]},
        {"name": "other", "domains": ["*"], "routes": [route(cluster="tls-auto"), route(service="s")]},
    ]
    tracing_by_cluster = {
        "collector": {"cluster": "otel", "timeout": "250ms"}, "serviceName": "front",
        "sampling": {"random": 10, "client": 100, "overall": 50}, "maxPathTagLength": 64, "spawnUpstreamSpan": True,
        "tags": {"env": "test", "user": {"header": "x-user", "default": "anonymous"}, "zone": {"literal": "a"}},
    }
    await lab.apply_and_wait_for_acks([
        cluster("c"),
        cluster("otel", protocol="GRPC", endpoints=[{"address": "127.0.0.1", "port": 4317}]),
        cluster("tls-auto", protocol="AUTO", tls={"sni": "checkout.internal", "subjectAltNames": sans, **files}),
        cluster("plain-tls", discovery="static", tls={"sni": "checkout.internal"}, idleTimeout="30s"),
        service("s", protocol="HTTP2", maxConcurrentStreams=100, idleTimeout="1m",
                tls={"sni": "checkout.internal", "subjectAltNames": sans, **files}),
        service("g", protocol="GRPC", tls={"caFile": str(ca.file)}),
        routes(hosts=hosts),
        listener(port=0, tracing=tracing_by_cluster,
                 http={"requestId": {"generate": False, "preserveExternal": True, "inResponse": True}}),
        listener("l2", port=0, tracing={"collector": {"address": "127.0.0.1", "port": 4317}}),
    ])
