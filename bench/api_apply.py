"""The API path: applying a large config, and one route change through the API to real Envoys.

1. 1,000 Clusters and 1,000 routes (10 Routes documents of 100 routes) and a
   Listener: time to check the documents, translate them, build the
   snapshot and commit to SQLite — and the whole ``POST /v1/apply``.
2. ``POST /v1/apply`` of a one-route change -> all of N real Envoys ACKed it,
   over 20 pushes: p50 and p99.

    python bench/api_apply.py                   # 1,000 + 1,000, 10 Envoys
    python bench/api_apply.py --envoys 50 --pushes 30

Prints a table and, last, one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from typing import Any

import aiohttp

from switchman.app import ServeSettings, Switchman
from switchman.lab.local import EnvoyProcess, Upstream, bootstrap
from switchman.model.config import build_config, parse_document
from switchman.store import open_store
from switchman.translate import translate
from switchman.xds import Snapshot
from switchman.xds import resources as rt


def large_config(clusters: int, routes_per_doc: int, upstream_port: int) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = [
        {
            "kind": "Cluster",
            "metadata": {"name": f"svc-{i}"},
            "spec": {"endpoints": [{"address": "127.0.0.1", "port": upstream_port}], "connectTimeout": "1s"},
        }
        for i in range(clusters)
    ]
    route_docs = max(1, clusters // routes_per_doc)
    for d in range(route_docs):
        docs.append(
            {
                "kind": "Routes",
                "metadata": {"name": f"routes-{d}"},
                "spec": {
                    "virtualHosts": [
                        {
                            "name": f"vh-{d}",
                            "domains": [f"host-{d}.example.com"] if d else ["*"],
                            "routes": [
                                {"match": {"prefix": f"/svc-{i}/"}, "cluster": f"svc-{i}", "timeout": "5s"}
                                for i in range(d * routes_per_doc, (d + 1) * routes_per_doc)
                            ],
                        }
                    ]
                },
            }
        )
    docs.append({"kind": "Listener", "metadata": {"name": "ingress"}, "spec": {"port": 0, "routes": "routes-0"}})
    return docs


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


async def phases(docs: list[dict[str, Any]]) -> dict[str, float]:
    t0 = time.perf_counter()
    parsed = [parse_document(d, f"bench[{i}]") for i, d in enumerate(docs)]
    config = build_config(parsed)
    t1 = time.perf_counter()
    resources = translate(config)
    t2 = time.perf_counter()
    Snapshot.build(resources)
    t3 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"{tmp}/bench.db")
        await store.commit(docs, author="bench", message="", expected_head=None)
        t4 = time.perf_counter()
        await store.close()
    return {
        "validate_ms": ms(t1 - t0), "translate_ms": ms(t2 - t1), "snapshot_ms": ms(t3 - t2), "store_ms": ms(t4 - t3),
    }


async def whole_apply(docs: list[dict[str, Any]]) -> tuple[float, float]:
    """The whole POST /v1/apply, and the longest the server's event loop could not run anything else meanwhile
    (what a push to any other Envoy, or a keepalive, would have waited)."""
    with tempfile.TemporaryDirectory() as tmp:
        app = Switchman(ServeSettings(xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=f"{tmp}/s.db"))
        _, api = await app.start()
        stalls: list[float] = []
        done = asyncio.Event()

        async def heartbeat() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                stalls.append(now - last - 0.001)
                last = now

        beat = asyncio.create_task(heartbeat())
        try:
            async with aiohttp.ClientSession() as s:
                t0 = time.perf_counter()
                async with s.post(f"http://127.0.0.1:{api}/v1/apply", json={"documents": docs}) as r:
                    assert r.status == 200, await r.text()
                whole = ms(time.perf_counter() - t0)
            done.set()
            await beat
            return whole, ms(max(stalls, default=0.0))
        finally:
            done.set()
            await app.stop(0)


def small_config(upstream_port: int, push: int) -> list[dict[str, Any]]:
    return [
        {"kind": "Cluster", "metadata": {"name": "checkout"},
         "spec": {"endpoints": [{"address": "127.0.0.1", "port": upstream_port}]}},
        {"kind": "Routes", "metadata": {"name": "ingress-routes"},
         "spec": {"virtualHosts": [{"name": "all", "domains": ["*"], "routes": [
             {"match": {"prefix": "/"}, "cluster": "checkout",
              "responseHeaders": {"add": {"x-switchman-push": str(push)}}}]}]}},
        {"kind": "Listener", "metadata": {"name": "ingress"}, "spec": {"port": 0, "routes": "ingress-routes"}},
    ]


async def push_to_envoys(n: int, pushes: int) -> dict[str, Any]:
    upstream = Upstream("checkout", "v1")
    await upstream.start()
    with tempfile.TemporaryDirectory() as tmp:
        app = Switchman(ServeSettings(xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=f"{tmp}/s.db"))
        xds_port, api = await app.start()
        envoys = [EnvoyProcess(bootstrap(f"api-bench-{i}", xds_port)) for i in range(n)]
        acked = asyncio.Event()
        target = ""

        def check() -> None:
            done = sum(
                1 for s in app.xds.context.streams
                if (st := s.states.get(rt.ROUTE)) is not None and st.acked_version == target
            )
            if done >= n:
                acked.set()

        app.xds.context.on_change = check
        try:
            async with aiohttp.ClientSession() as s:
                first = {"documents": small_config(upstream.port, 0)}
                async with s.post(f"http://127.0.0.1:{api}/v1/apply", json=first) as r:
                    assert r.status == 200
                for i, envoy in enumerate(envoys):
                    await envoy.start()
                    print(f"\r  starting Envoys: {i + 1}/{n}", end="", file=sys.stderr, flush=True)
                for envoy in envoys:
                    await envoy.wait_listener("ingress", timeout=60)
                print(file=sys.stderr)
                latencies = []
                for push in range(1, pushes + 1):
                    acked.clear()
                    t0 = time.perf_counter()
                    async with s.post(
                        f"http://127.0.0.1:{api}/v1/apply", json={"documents": small_config(upstream.port, push)}
                    ) as r:
                        assert r.status == 200, await r.text()
                    snapshot = app.cache.snapshot("*")
                    assert snapshot is not None
                    target = snapshot.version(rt.ROUTE)
                    check()
                    await asyncio.wait_for(acked.wait(), 30)
                    latencies.append((time.perf_counter() - t0) * 1000)
                    print(f"\r  push {push}/{pushes}: {latencies[-1]:.1f} ms", end="", file=sys.stderr, flush=True)
                    await asyncio.sleep(0.05)
                print(file=sys.stderr)
            ordered = sorted(latencies)
            return {
                "envoys": n, "pushes": pushes, "p50_ms": round(statistics.median(latencies), 1),
                "p99_ms": round(ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))], 1),
            }
        finally:
            for envoy in envoys:
                await envoy.stop()
            await app.stop(0)
            await upstream.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=1000, help="clusters and routes (default 1000)")
    parser.add_argument("--envoys", type=int, default=10, help="real Envoys for the push (default 10)")
    parser.add_argument("--pushes", type=int, default=20, help="pushes (default 20)")
    args = parser.parse_args()
    docs = large_config(args.clusters, 100, 9)
    print(f"applying {args.clusters} clusters and {args.clusters} routes", file=sys.stderr)
    timings = await phases(docs)
    timings["api_apply_ms"], timings["loop_stall_ms"] = await whole_apply(docs)
    print(f"one-route change through POST /v1/apply -> {args.envoys} Envoys ACKed", file=sys.stderr)
    push = await push_to_envoys(args.envoys, args.pushes)
    print(f"\n{'measure':<52} {'value':>10}   target")
    rows = [
        (f"check {len(docs)} documents (parse + cross-checks)", timings["validate_ms"], "ms", ""),
        ("translate to Envoy resources", timings["translate_ms"], "ms", ""),
        ("build the snapshot", timings["snapshot_ms"], "ms", ""),
        ("commit to SQLite", timings["store_ms"], "ms", ""),
        ("POST /v1/apply, whole", timings["api_apply_ms"], "ms", "<= 1000 ms"),
        ("  its longest event-loop stall (pushes to others wait)", timings["loop_stall_ms"], "ms", "<= 50 ms"),
        (f"one-route apply -> {push['envoys']} Envoys ACKed, p50", push["p50_ms"], "ms", "<= 60 ms"),
        (f"one-route apply -> {push['envoys']} Envoys ACKed, p99", push["p99_ms"], "ms", ""),
    ]
    for name, value, unit, target in rows:
        print(f"{name:<52} {value:>7} {unit}   {target}")
    print(json.dumps({"benchmark": "api_apply", "clusters": args.clusters, **timings, "push": push}))


if __name__ == "__main__":
    asyncio.run(main())
