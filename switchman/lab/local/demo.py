"""The demo: upstreams, real Envoys and Switchman on loopback; a canary ramped live; retries shown.

1. ``checkout`` v1 (blue) and v2 (green) upstreams, N Envoys on ADS.
2. A canary ramp 0 -> 10 -> 50 -> 100 % to v2. Each step waits until every
   Envoy has ACKed it, then sends a bounded, open-loop load and compares the
   measured split with the requested weight (binomial 3 sigma).
3. v2 starts failing 20 % of requests: first without retries, then with a
   retry policy that hides the failures.

The verdict: every split within 3 sigma, and no failed request while
traffic moved.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from envoy.config.route.v3 import route_components_pb2
from google.protobuf import duration_pb2
from google.protobuf.message import Message

from switchman.lab.local.envoy import EnvoyProcess, bootstrap
from switchman.lab.local.load import LoadResult, run_load
from switchman.lab.local.upstream import Faults, Upstream
from switchman.testing.builders import eds_cluster, http_listener, load_assignment, route_config
from switchman.xds import Snapshot, SnapshotCache, XdsServer, XdsSettings
from switchman.xds import resources as rt

__all__ = ["DemoSettings", "StepResult", "run_demo"]


@dataclass(frozen=True, slots=True)
class DemoSettings:
    envoys: int = 2
    rate: float = 200.0
    requests_per_step: int = 600
    steps: tuple[int, ...] = (0, 10, 50, 100)
    run_dir: Path = Path("runs")


@dataclass(frozen=True, slots=True)
class StepResult:
    name: str
    requested_v2: float
    requests: int
    measured_v2: float
    within_3_sigma: bool
    success_rate: float
    p99_ms: float
    failures: int
    counts_against_verdict: bool


def _snapshot(ports: dict[str, int], v2_percent: int, retries: bool) -> Snapshot:
    routes = route_config(
        "checkout-routes",
        [(c, w) for c, w in (("checkout-v1", 100 - v2_percent), ("checkout-v2", v2_percent)) if w > 0],
    )
    if retries:
        policy = routes.virtual_hosts[0].routes[0].route.retry_policy
        policy.CopyFrom(
            route_components_pb2.RetryPolicy(
                retry_on="5xx,reset,connect-failure",
                per_try_timeout=duration_pb2.Duration(seconds=1),
            )
        )
        # 0.2 ** 7: about one request in 80,000 still fails after six retries.
        policy.num_retries.value = 6
    items: list[Message] = [http_listener("ingress", "checkout-routes"), routes]
    for name, port in ports.items():
        cluster = eds_cluster(name)
        # Envoy allows 3 concurrent retries per cluster by default; at 200
        # requests/s with 20 % failing that overflows now and then.
        cluster.circuit_breakers.thresholds.add().max_retries.value = 1000
        items += [cluster, load_assignment(name, [("127.0.0.1", port)])]
    return Snapshot.build(items)


def within_3_sigma(hits: int, n: int, p: float) -> bool:
    """Is ``hits`` out of ``n`` within three binomial standard deviations of ``n * p``?"""
    sigma = math.sqrt(n * p * (1 - p))
    return abs(hits - n * p) <= 3 * sigma


async def _all_acked(server: XdsServer, version: str, n: int, timeout: float = 10.0) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        done = sum(
            1
            for stream in tuple(server.context.streams)
            if (s := stream.states.get(rt.ROUTE)) is not None and s.acked_version == version
        )
        if done >= n:
            return (time.perf_counter() - t0) * 1000
        await asyncio.sleep(0.005)
    raise TimeoutError(f"not every Envoy ACKed routes {version} in {timeout}s")


def _row(r: StepResult) -> str:
    mark = "ok " if r.within_3_sigma else "OFF"
    return (
        f"{r.name:<28} {r.requested_v2:>7.0%} {r.measured_v2:>8.1%} {mark:>4} "
        f"{r.requests:>6} {r.success_rate:>8.2%} {r.p99_ms:>7.1f}"
    )


async def run_demo(settings: DemoSettings, out: TextIO = sys.stdout) -> bool:
    """Run the demo; True when every split was within 3 sigma and nothing failed in a transition."""
    cache = SnapshotCache()
    server = XdsServer(cache, XdsSettings(group_by="cluster"))
    xds_port = await server.start("127.0.0.1:0")
    blue, green = Upstream("checkout", "v1"), Upstream("checkout", "v2")
    envoys = [EnvoyProcess(bootstrap(f"demo-envoy-{i}", xds_port, cluster="demo")) for i in range(settings.envoys)]
    results: list[StepResult] = []
    try:
        ports = {"checkout-v1": await blue.start(), "checkout-v2": await green.start()}
        print(f"upstreams: checkout v1 on :{ports['checkout-v1']}, v2 on :{ports['checkout-v2']}", file=out)
        cache.set_snapshot("demo", _snapshot(ports, 0, retries=False))
        for envoy in envoys:
            await envoy.start()
        listeners = [await e.wait_listener("ingress") for e in envoys]
        print(f"Switchman xDS on :{xds_port}; {len(envoys)} Envoys listening on {listeners}", file=out)
        targets = [f"http://127.0.0.1:{p}/" for p in listeners]
        header = f"{'step':<28} {'want v2':>7} {'got v2':>8} {'3σ':>4} {'reqs':>6} {'success':>8} {'p99 ms':>7}"
        print("\n" + header + "\n" + "-" * len(header), file=out)

        async def step(name: str, v2: int, retries: bool, counts: bool) -> None:
            snapshot = _snapshot(ports, v2, retries)
            cache.set_snapshot("demo", snapshot)
            await _all_acked(server, snapshot.version(rt.ROUTE), len(envoys))
            load: LoadResult = await run_load(targets, settings.rate, settings.requests_per_step)
            n = len(load.samples)
            hits = load.versions.get("v2", 0)
            ok = len(load.samples) - len(load.failures)
            result = StepResult(
                name=name,
                requested_v2=v2 / 100,
                requests=n,
                measured_v2=hits / ok if ok else 0.0,
                within_3_sigma=within_3_sigma(hits, ok, v2 / 100) if counts else True,
                success_rate=load.success_rate(),
                p99_ms=load.p99_ms(),
                failures=len(load.failures),
                counts_against_verdict=counts,
            )
            results.append(result)
            print(_row(result), file=out, flush=True)

        for v2 in settings.steps:
            await step(f"canary {v2}% to v2", v2, retries=False, counts=True)
        green.faults = Faults(error_rate=0.2)
        await step("v2 fails 20%, no retries", 100, retries=False, counts=False)
        await step("v2 fails 20%, retries on", 100, retries=True, counts=True)
    finally:
        for envoy in envoys:
            await envoy.stop()
        await blue.stop()
        await green.stop()
        await server.stop(0.5)

    passed = all(r.within_3_sigma and (r.failures == 0 or not r.counts_against_verdict) for r in results)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    report = settings.run_dir / f"demo-{time.strftime('%Y%m%d-%H%M%S')}.json"
    report.write_text(json.dumps({"passed": passed, "steps": [asdict(r) for r in results]}, indent=2))
    verdict = "PASS" if passed else "FAIL"
    print(f"\n{verdict}: splits within 3σ and no failed request while traffic moved. Report: {report}", file=out)
    return passed
