"""What a real Envoy reports of its traffic (access logs, load reports) is what its client saw, on either transport.

One Switchman (in-process, SQLite in tmp_path), one Envoy from the lab's
template (``load_stats_config`` to the ``xds`` cluster) in node group
``front``, and ``checkout`` split 50/50 between two aiohttp upstreams: v1
answers 200, v2 answers 503 to about a third of its requests. The listener
logs to Switchman (``accessLogService``). A plain HTTP client sends 200
requests and counts, per version, what it got; the recorder must say the same.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from switchman.app import ServeSettings, Switchman
from switchman.client import SwitchmanClient
from switchman.lab.local import EnvoyProcess, bootstrap
from switchman.lab.local.upstream import VERSION_HEADER, Faults
from switchman.telemetry import TelemetrySettings, TrafficRecorder
from switchman.xds.server.server import TRANSPORTS
from tests.e2e.helpers import checkout_documents

pytestmark = pytest.mark.envoy

REQUESTS = 200
CLUSTERS = {"v1": "checkout-v1", "v2": "checkout-v2"}


async def _until(done: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what()}")
        await asyncio.sleep(0.05)


async def _send(port: int, count: int) -> tuple[Counter[str], Counter[str]]:
    """``count`` GETs through Envoy, four at a time; per version, the requests and the 5xx answers."""
    seen: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    left = count

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            async with session.get(f"http://127.0.0.1:{port}/") as resp:
                await resp.read()
                version = resp.headers[VERSION_HEADER]  # every answer comes from an upstream
                seen[version] += 1
                failed[version] += resp.status >= 500

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(4)))
    return seen, failed


def _lrs_total(recorder: TrafficRecorder, cluster: str, since: float) -> tuple[int, int]:
    reports = recorder.load_reports(cluster, since, time.time() + 1, reporter="front")
    return sum(r.successes for r in reports), sum(r.errors for r in reports)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_access_logs_and_load_reports_match_what_the_client_saw(
    tmp_path: Path, upstreams, transport: str
) -> None:
    blue, green = await upstreams("checkout", "v1"), await upstreams("checkout", "v2")
    green.faults = Faults(error_rate=0.35)
    app = Switchman(ServeSettings(
        xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=str(tmp_path / "s.db"), xds_transport=transport,
        telemetry=TelemetrySettings(load_reporting_interval=0.5),
    ))
    await app.start()
    envoy = EnvoyProcess(bootstrap("telemetry-front", app.xds_port, cluster="front"))
    try:
        service, routes, listener = checkout_documents(blue.port, green.port, {"v1": 50, "v2": 50})
        del service["spec"]["outlierDetection"]  # v2's 503s must not eject it: every answer names its version
        listener["spec"]["accessLogService"] = {"cluster": "xds", "bufferFlushInterval": "200ms"}
        async with SwitchmanClient(f"http://127.0.0.1:{app.api_port}") as api:
            await api.apply([service, routes, listener])
        await envoy.start()
        port = await envoy.wait_listener("ingress")
        recorder = app.telemetry

        # Envoy reports a cluster's load from the period after it starts reporting it, and drops what came
        # before: send a little until the reports name both versions (a cluster with no traffic is not
        # recorded), and until what came before is reported.
        async def reported() -> bool:
            await _send(port, 4)
            return all(recorder.load_reports(c, 0, time.time() + 1, reporter="front") for c in CLUSTERS.values())

        deadline = time.monotonic() + 10
        while not await reported():
            assert time.monotonic() < deadline, "load reports naming both versions"
            await asyncio.sleep(0.2)
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as resp:
            assert resp.status == 200  # a direct response: logged without an upstream cluster
        await asyncio.sleep(1.2)  # the warm-up's entries and reports are all before start, in earlier buckets
        start = time.time()
        seen, failed = await _send(port, REQUESTS)
        end = time.time()
        assert sum(seen.values()) == REQUESTS and set(seen) == {"v1", "v2"}, seen
        assert failed["v2"] > 0 and failed["v1"] == 0, failed

        await _until(lambda: sum(recorder.window(c, start, end, reporter="front").requests
                                 for c in CLUSTERS.values()) >= REQUESTS, 10, lambda: "every access-log entry")
        for version, cluster in CLUSTERS.items():
            stats = recorder.window(cluster, start, end, reporter="front")
            assert stats.source == "als"
            assert (stats.requests, stats.errors_5xx) == (seen[version], failed[version]), (version, stats)
            assert (stats.successes, stats.resets) == (seen[version] - failed[version], 0)
            assert stats.success_rate == pytest.approx(1 - failed[version] / seen[version])
            assert stats.p50_ms is not None and stats.p99_ms is not None
            assert 0 < stats.p50_ms <= stats.p99_ms < 5000, stats
            assert recorder.window(cluster, start, end, reporter="somebody-else").requests == 0

        wanted = {c: (seen[v] - failed[v], failed[v]) for v, c in CLUSTERS.items()}
        await _until(lambda: all(_lrs_total(recorder, c, start) == wanted[c] for c in CLUSTERS.values()), 10,
                     lambda: f"load reports adding up to {wanted}: {[_lrs_total(recorder, c, start) for c in wanted]}")
        for cluster in CLUSTERS.values():
            reports = recorder.load_reports(cluster, start, time.time() + 1, reporter="front")
            assert sum(r.issued for r in reports) == sum(wanted[cluster])
            assert all(0.3 < r.interval < 0.8 for r in reports), reports

        async with aiohttp.ClientSession() as session, \
                session.get(f"http://127.0.0.1:{app.api_port}/metrics") as resp:
            metrics = await resp.text()
        assert 'switchman_telemetry_streams{service="als"} 1.0' in metrics
        assert 'switchman_telemetry_streams{service="lrs"} 1.0' in metrics
        assert 'switchman_telemetry_access_log_entries_dropped_total{reason="unattributed"} 1.0' in metrics
        assert 'reason="rate"' not in metrics

        await envoy.stop()  # its streams end with it
        registry = app.xds.metrics.registry
        await _until(lambda: all(registry.get_sample_value("switchman_telemetry_streams", {"service": s}) == 0
                                 for s in ("als", "lrs")), 5, lambda: "the telemetry streams of a stopped Envoy end")
    finally:
        await envoy.stop()
        await app.stop(0.1)
