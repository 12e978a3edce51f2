"""PrometheusSource against a real Prometheus scraping two real Envoys' ``/stats/prometheus``.

One scene for the module (about 12 s): two upstreams (``checkout-v1`` always
200, ``checkout-v2`` 503 on every fifth request), two Envoys routing to them
by path, a Prometheus scraping both admins every second. A warm-up creates
every series; a quiet window follows; then 300 requests a cluster over 3 s,
270 through Envoy A and 30 through Envoy B, so that only the sum over both
Envoys gives what the client sent.

How close the counts must be: ``increase`` takes the delta between the
first and last samples in the range (exact here: a quiet scrape of each
Envoy precedes the traffic and one follows it), then stretches it by
``(sampled + to_start + to_end) / sampled`` (Prometheus's extrapolatedRate).
The range ends on a scrape of Envoy A, so A's ``to_end`` is 0; ``to_start``
is cut where the counter would reach 0, which adds at most the counter's
value at its first sample (the warm-up); B's ``to_end`` is under 1.1 scrape
intervals over a sampled interval of at least the range less 2.2 s. So a
count is never below what was sent and above it by at most
:func:`extrapolation_allowance`: under 6 % here (+5 requests of 300 in our runs).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from switchman.lab.local import EnvoyProcess
from switchman.rollout.analysis import Measurement
from switchman.rollout.prometheus import MetricsUnavailable, PrometheusSource, queries, window_seconds
from switchman.testing.http import serve_http
from switchman.testing.prometheus import PrometheusServer, prometheus_binary

SCRAPE = 1.0  # Prometheus's scrape interval, seconds
FLUSH = 0.25  # Envoy's stats_flush_interval: histograms reach /stats/prometheus only at a flush
WARM_UP = 5  # requests per Envoy and cluster before the windows, so every series exists
TRAFFIC = {"a": 270, "b": 30}  # requests per cluster through each Envoy
SECONDS = 3.0  # the traffic's length

in_scene = pytest.mark.asyncio(loop_scope="module")
needs_prometheus = pytest.mark.skipif(
    prometheus_binary() is None, reason="no prometheus binary on PATH (apt-get install prometheus; .ci/run does)"
)


# -- the scene --------------------------------------------------------------------------------------


class CountingUpstream:
    """An aiohttp server on loopback; with ``fail_every`` n, its n-th, 2n-th... requests get a 503."""

    def __init__(self, fail_every: int = 0) -> None:
        self.fail_every = fail_every
        self.served = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _serve(self, request: web.Request) -> web.Response:
        self.served += 1
        if self.fail_every and self.served % self.fail_every == 0:
            return web.Response(status=503, text="failing\n")
        return web.Response(text="ok\n")

    async def start(self) -> int:
        self._runner, self.port = await serve_http(self._serve)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def static_bootstrap(node_id: str, clusters: dict[str, int]) -> dict[str, Any]:
    """An Envoy with no control plane: listener ``ingress`` on port 0 routing ``/NAME-SUFFIX`` to each cluster
    (``/v1`` to ``checkout-v1``), admin on 127.0.0.1 port 0."""

    def address(port: int) -> dict[str, Any]:
        return {"socket_address": {"address": "127.0.0.1", "port_value": port}}

    routes = [
        {"match": {"prefix": "/" + name.rsplit("-", 1)[1]}, "route": {"cluster": name}} for name in clusters
    ]
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
        ".HttpConnectionManager",
        "stat_prefix": "ingress",
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]},
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
            }
        ],
    }
    return {
        "node": {"id": node_id, "cluster": "edge"},
        "admin": {"address": address(0)},
        "stats_flush_interval": f"{FLUSH}s",
        "static_resources": {
            "listeners": [
                {
                    "name": "ingress",
                    "address": address(0),
                    "filter_chains": [
                        {"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                      "typed_config": manager}]}
                    ],
                }
            ],
            "clusters": [
                {
                    "name": name,
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": name,
                        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address(port)}}]}],
                    },
                }
                for name, port in clusters.items()
            ],
        },
    }


@dataclass
class Sent:
    """What the client sent through each Envoy to one cluster, and the 503s it got back."""

    warm: Counter[str] = field(default_factory=Counter)
    warm_errors: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class Scene:
    prometheus: PrometheusServer
    envoy_admin: str
    quiet: tuple[float, float]  # after the warm-up, before the traffic: two scrapes of each Envoy, nothing sent
    busy: tuple[float, float]  # from the quiet window's start to a scrape of Envoy A after the traffic
    sent: dict[str, Sent]  # by cluster


async def _send(session: aiohttp.ClientSession, url: str, count: int, seconds: float, into: Sent, envoy: str,
                warm: bool) -> None:
    """``count`` requests one after the other, spread over ``seconds``."""
    begin = time.monotonic()
    for i in range(count):
        await asyncio.sleep(max(0.0, begin + i * seconds / count - time.monotonic()))
        async with session.get(url) as resp:
            await resp.read()
            assert resp.status in (200, 503), f"{url}: HTTP {resp.status}"
        (into.warm if warm else into.requests)[envoy] += 1
        if resp.status == 503:
            (into.warm_errors if warm else into.errors)[envoy] += 1


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scene(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scene]:
    run_dir: Path = tmp_path_factory.mktemp("prometheus-source")
    ok, flaky = CountingUpstream(), CountingUpstream(fail_every=5)
    envoys: dict[str, EnvoyProcess] = {}
    prometheus: PrometheusServer | None = None
    try:
        clusters = {"checkout-v1": await ok.start(), "checkout-v2": await flaky.start(), "checkout-v3": ok.port}
        envoys = {
            name: EnvoyProcess(static_bootstrap(f"edge-{name}", clusters), run_dir=run_dir / name)
            for name in ("a", "b")
        }
        await asyncio.gather(*(e.start() for e in envoys.values()))
        ports = dict(zip(envoys, await asyncio.gather(*(e.wait_listener("ingress") for e in envoys.values())),
                         strict=True))
        admin = {name: e.admin_url.removeprefix("http://") for name, e in envoys.items()}
        prometheus = PrometheusServer(list(admin.values()), run_dir / "prometheus", scrape_interval=SCRAPE)
        await prometheus.start()
        await prometheus.wait_scraped_after(time.time())
        sent = {"checkout-v1": Sent(), "checkout-v2": Sent()}

        async def scrape_of_a(after: float) -> float:
            """When Envoy A was scraped after ``after``, once every Envoy's scrapes up to then are stored: a
            sample is stamped when its scrape starts, and B's may still be under way when A's is stored."""
            at = (await prometheus.wait_scraped_after(after))[admin["a"]]
            await prometheus.wait_scraped_after(at - 0.001)
            return at

        async with aiohttp.ClientSession() as session:
            # Warm-up, one request after the other: each Envoy's 5 to checkout-v2 hold exactly one fifth 503.
            for envoy in envoys:
                for cluster in sent:
                    url = f"http://127.0.0.1:{ports[envoy]}/{cluster.rsplit('-', 1)[1]}"
                    await _send(session, url, WARM_UP, 0.0, sent[cluster], envoy, warm=True)
            # Windows start on a scrape of Envoy A that saw the warm-up's histograms flushed.
            quiet_start = await scrape_of_a(time.time() + 2 * FLUSH)
            quiet_end = await scrape_of_a(quiet_start + 2 * SCRAPE)
            await asyncio.gather(*(
                _send(session, f"http://127.0.0.1:{ports[envoy]}/{cluster.rsplit('-', 1)[1]}", count, SECONDS,
                      sent[cluster], envoy, warm=False)
                for envoy, count in TRAFFIC.items()
                for cluster in sent
            ))
        busy_end = await scrape_of_a(time.time() + 2 * FLUSH)
        yield Scene(prometheus, envoys["a"].admin_url, (quiet_start, quiet_end), (quiet_start, busy_end), sent)
    finally:
        if prometheus is not None:
            await prometheus.stop()
        await asyncio.gather(*(e.stop() for e in envoys.values()))
        await ok.stop()
        await flaky.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def source(scene: Scene) -> AsyncIterator[PrometheusSource]:
    measuring = PrometheusSource(scene.prometheus.url)
    yield measuring
    await measuring.close()


def extrapolation_allowance(warm: Counter[str], through_b: int, window: float) -> float:
    """How far above the exact count ``increase`` may go (the module's docstring says why)."""
    return sum(warm.values()) + through_b * 1.1 * SCRAPE / (window - 2.2 * SCRAPE)


# -- the tests --------------------------------------------------------------------------------------


@needs_prometheus
@in_scene
@pytest.mark.envoy
@pytest.mark.parametrize("cluster", ["checkout-v1", "checkout-v2"])
async def test_requests_and_errors_add_up_over_both_envoys(
    scene: Scene, source: PrometheusSource, cluster: str
) -> None:
    start, end = scene.busy
    sent = scene.sent[cluster]
    measured = await source.measure(cluster, start, end, None)
    window = window_seconds(start, end)
    requests, errors = sum(sent.requests.values()), sum(sent.errors.values())
    assert requests == 300
    assert errors == (60 if cluster == "checkout-v2" else 0)
    slack = extrapolation_allowance(sent.warm, sent.requests["b"], window)
    assert requests <= measured.requests <= requests + slack, (measured, slack)
    error_slack = extrapolation_allowance(sent.warm_errors, sent.errors["b"], window)
    assert errors <= measured.errors <= errors + error_slack, (measured, error_slack)
    assert measured.success_rate is not None
    assert abs(measured.success_rate - 100.0 * (requests - errors) / requests) <= 2.0
    assert measured.p50_ms is not None and measured.p99_ms is not None
    assert measured.p99_ms >= measured.p50_ms > 0
    assert measured.source == "prometheus"


@needs_prometheus
@in_scene
@pytest.mark.envoy
async def test_a_cluster_nobody_called_has_no_requests_and_no_latency(scene: Scene, source: PrometheusSource) -> None:
    start, end = scene.busy
    assert await source.measure("checkout-v3", start, end, None) == Measurement(0, 0, None, None, "prometheus")
    assert await source.measure("no-such-cluster", start, end, None) == Measurement(0, 0, None, None, "prometheus")


@needs_prometheus
@in_scene
@pytest.mark.envoy
async def test_a_quiet_window_has_no_requests_and_no_latency(scene: Scene, source: PrometheusSource) -> None:
    """Series that exist but stand still: increase 0, and histogram_quantile over zero rates is NaN."""
    start, end = scene.quiet
    buckets = await source.value('count(envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="checkout-v1"})', end)
    assert buckets  # the series are there (the warm-up made them), with nothing new in them
    measured = await source.measure("checkout-v1", start, end, None)
    assert measured == Measurement(0, 0, None, None, "prometheus")


@needs_prometheus
@in_scene
@pytest.mark.envoy
async def test_cluster_names_are_escaped_into_valid_promql(scene: Scene, source: PrometheusSource) -> None:
    asked = queries('check"out\\v1\n', 5)
    for query in (asked.requests, asked.errors, asked.p50, asked.p99):
        assert await source.value(query, time.time()) is None  # parsed, and matched nothing


@needs_prometheus
@in_scene
@pytest.mark.envoy
async def test_a_query_prometheus_refuses_raises(scene: Scene, source: PrometheusSource) -> None:
    with pytest.raises(MetricsUnavailable, match="bad_data"):
        await source.value("sum(", time.time())


@needs_prometheus
@in_scene
@pytest.mark.envoy
async def test_something_that_is_not_prometheus_raises(scene: Scene) -> None:
    elsewhere = PrometheusSource(scene.envoy_admin)  # Envoy's admin: no /api/v1/query there
    try:
        with pytest.raises(MetricsUnavailable, match="HTTP 404"):
            await elsewhere.measure("checkout-v1", time.time() - 10, time.time(), None)
    finally:
        await elsewhere.close()


# -- without a Prometheus ---------------------------------------------------------------------------


async def test_nothing_listening_raises() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        source = PrometheusSource(f"http://127.0.0.1:{port}", timeout=2.0)
        try:
            with pytest.raises(MetricsUnavailable, match="cannot be reached"):
                await source.measure("checkout-v1", time.time() - 10, time.time(), None)
        finally:
            await source.close()


async def test_a_prometheus_that_never_answers_raises_within_the_timeout() -> None:
    held: list[asyncio.StreamWriter] = []

    async def accept_and_hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept_and_hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    source = PrometheusSource(f"http://127.0.0.1:{port}", timeout=0.5)
    began = time.monotonic()
    try:
        with pytest.raises(MetricsUnavailable, match=r"did not answer in 0\.5s"):
            await source.measure("checkout-v1", time.time() - 10, time.time(), None)
        assert time.monotonic() - began < 1.5
    finally:
        await source.close()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_cluster_name_with_a_dot_cannot_be_measured() -> None:
    source = PrometheusSource("http://127.0.0.1:9")
    with pytest.raises(MetricsUnavailable, match="has a dot"):
        await source.measure("checkout.eu-v2", 0.0, 60.0, None)


def test_the_queries() -> None:
    asked = queries("checkout-v2", 30)
    name = 'envoy_cluster_name="checkout-v2"'
    assert asked.requests == f"sum(increase(envoy_cluster_upstream_rq_completed{{{name}}}[30s]))"
    assert asked.errors == (
        f'sum(increase(envoy_cluster_upstream_rq_xx{{{name},envoy_response_code_class="5"}}[30s]))'
    )
    assert asked.p99 == (
        f"histogram_quantile(0.99, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket{{{name}}}[30s])))"
    )
    assert queries('a"b\\c', 1).requests == (
        'sum(increase(envoy_cluster_upstream_rq_completed{envoy_cluster_name="a\\"b\\\\c"}[1s]))'
    )


@pytest.mark.parametrize(("start", "end", "seconds"), [(0.0, 0.2, 1), (0.0, 2.5, 3), (10.0, 13.0000001, 3),
                                                        (5.0, 5.0, 1), (0.0, 60.0, 60)])
def test_the_window_is_whole_seconds_rounded_up(start: float, end: float, seconds: int) -> None:
    assert window_seconds(start, end) == seconds
