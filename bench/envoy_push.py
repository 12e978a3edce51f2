"""Snapshot set -> all real Envoys ACKed and serving it.

Starts Switchman's xDS server, one upstream and N real Envoys (state-of-the-
world ADS), then pushes a route change (a response header carrying the push
number) over and over. For each push it records the time from
``cache.set_snapshot`` until every Envoy has ACKed the new routes, then checks
that every Envoy serves them (one request each carries the new header).

    python bench/envoy_push.py                 # 10 and 50 Envoys, 20 pushes each
    python bench/envoy_push.py --envoys 10 --pushes 50

Prints a table per size and, last, one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from typing import Any

import aiohttp
from envoy.config.core.v3 import base_pb2

from switchman.lab.local import EnvoyProcess, Upstream, bootstrap
from switchman.testing.builders import eds_cluster, http_listener, load_assignment, route_config
from switchman.xds import Snapshot, SnapshotCache, XdsServer, XdsSettings
from switchman.xds import resources as rt


def snapshot(push: int, upstream_port: int) -> Snapshot:
    routes = route_config("ingress-routes", "checkout")
    header = routes.virtual_hosts[0].routes[0].response_headers_to_add.add()
    header.header.key = "x-switchman-push"
    header.header.value = str(push)
    header.append_action = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    return Snapshot.build(
        [
            http_listener("ingress", "ingress-routes"),
            routes,
            eds_cluster("checkout"),
            load_assignment("checkout", [("127.0.0.1", upstream_port)]),
        ]
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def serving(session: aiohttp.ClientSession, port: int, push: int) -> bool:
    async with session.get(f"http://127.0.0.1:{port}/") as resp:
        await resp.read()
        return resp.status == 200 and resp.headers.get("x-switchman-push") == str(push)


async def run_size(n: int, pushes: int, transport: str = "grpc") -> dict[str, Any]:
    cache = SnapshotCache()
    server = XdsServer(cache, XdsSettings(group_by="cluster", transport=transport))
    xds_port = await server.start("127.0.0.1:0")
    upstream = Upstream("checkout", "v1")
    await upstream.start()
    envoys = [EnvoyProcess(bootstrap(f"bench-{i}", xds_port, cluster="bench")) for i in range(n)]
    target = ""
    all_acked = asyncio.Event()

    def check() -> None:
        acked = 0
        for stream in server.context.streams:
            state = stream.states.get(rt.ROUTE)
            if state is not None and state.acked_version == target:
                acked += 1
        if acked >= n:
            all_acked.set()

    server.context.on_change = check
    try:
        cache.set_snapshot("bench", snapshot(0, upstream.port))
        started = time.monotonic()
        for i, envoy in enumerate(envoys):
            await envoy.start()
            print(f"\r  starting Envoys: {i + 1}/{n}", end="", file=sys.stderr, flush=True)
        ports = [await envoy.wait_listener("ingress", timeout=60) for envoy in envoys]
        print(f"\r  {n} Envoys up in {time.monotonic() - started:.1f}s" + " " * 20, file=sys.stderr)
        latencies: list[float] = []
        async with aiohttp.ClientSession() as session:
            for push in range(1, pushes + 1):
                new = snapshot(push, upstream.port)
                target = new.version(rt.ROUTE)
                all_acked.clear()
                t0 = time.perf_counter()
                cache.set_snapshot("bench", new)
                await asyncio.wait_for(all_acked.wait(), 30)
                latencies.append((time.perf_counter() - t0) * 1000)
                ok = await asyncio.gather(*(serving(session, p, push) for p in ports))
                if not all(ok):
                    raise SystemExit(f"push {push}: {ok.count(False)} Envoys ACKed but do not serve it")
                print(f"\r  push {push}/{pushes}: {latencies[-1]:.1f} ms", end="", file=sys.stderr, flush=True)
                await asyncio.sleep(0.05)
        print(file=sys.stderr)
        return {
            "envoys": n,
            "transport": transport,
            "pushes": pushes,
            "p50_ms": round(statistics.median(latencies), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "max_ms": round(max(latencies), 1),
        }
    finally:
        for envoy in envoys:
            await envoy.stop()
        await upstream.stop()
        await server.stop(0)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envoys", type=int, nargs="*", default=[10, 50], help="fleet sizes (default 10 50)")
    parser.add_argument("--pushes", type=int, default=20, help="pushes per size (default 20)")
    parser.add_argument("--transport", choices=("grpc", "h2"), nargs="*", default=["grpc", "h2"],
                        help="xDS transports to measure (default both: grpc.aio and switchman/xds/h2)")
    args = parser.parse_args()
    rows = []
    for transport in args.transport:
        for n in args.envoys:
            print(f"{n} Envoys, {args.pushes} pushes, {transport} transport", file=sys.stderr)
            rows.append(await run_size(n, args.pushes, transport))
    print(f"\nsnapshot set -> all Envoys ACKed and serving ({platform.node()}, {platform.python_version()})")
    print(f"{'transport':>9} {'envoys':>7} {'pushes':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for r in rows:
        print(f"{r['transport']:>9} {r['envoys']:>7} {r['pushes']:>7} {r['p50_ms']:>8} {r['p99_ms']:>8} "
              f"{r['max_ms']:>8}")
    print(json.dumps({"benchmark": "envoy_push", "results": rows}))


if __name__ == "__main__":
    asyncio.run(main())
