"""Large-snapshot benchmark: 10k clusters, 10k routes, 100k endpoints, 100 ADS streams.

Design targets checked here:

* ``Snapshot.build`` of 10,000 clusters / 10,000 routes / 100,000 endpoints in <= 2 s;
* one endpoint change reaches 100 streams in <= 100 ms, without rebuilding everything.

The server (XdsServer on 127.0.0.1, one asyncio loop) runs in this process;
the simulated Envoys run in a separate process (multiprocessing spawn), one
gRPC channel (one HTTP/2 connection) per stream, each behaving like Envoy on
ADS: CDS wildcard, EDS for every cluster, LDS wildcard, RDS for the route
configurations, ACKing every response. State of the world first, then delta.

"change -> all streams" runs from just before ``Snapshot.with_changes`` to the
moment the last client received the EDS response carrying the change (client
clock, ``time.time()``; same machine). The load average at start and end is
recorded: other work on the CPUs skews every figure.

Run: ``python bench/large_snapshot.py`` (options: ``--help``). Progress and a
table go to stdout; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import multiprocessing as mp
import os
import pstats
import queue
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as MpEvent
from typing import Any, Final

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import Message

from switchman.testing import builders
from switchman.xds import Snapshot, SnapshotCache, XdsServer, XdsSettings
from switchman.xds import resources as rt
from switchman.xds.server.clients import ResponseLimits

MIB: Final = 1024 * 1024
GROUP: Final = "bench"
SOTW_METHOD: Final = (
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
)
DELTA_METHOD: Final = (
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
)
BUILD_TARGET_S: Final = 2.0
PUSH_TARGET_MS: Final = 100.0
WAIT_TIMEOUT_S: Final = 120.0

Report = tuple[Any, ...]


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# -- resources (the user's side) ----------------------------------------------


def cluster_name(i: int) -> str:
    return f"cluster-{i:06d}"


def route_config_name(i: int) -> str:
    return f"routes-{i:04d}"


def endpoints_of(i: int, per_cluster: int, change: int = 0) -> list[tuple[str, int]]:
    """Cluster ``i``'s endpoints: unique (127.0.0.x, port) pairs; ``change`` moves the first."""
    out = []
    for j in range(per_cluster):
        k = i * per_cluster + j
        out.append((f"127.0.0.{1 + k % 250}", 1024 + k // 250))
    if change:
        host, _ = out[0]
        out[0] = (host, 60000 + change)
    return out


def route_configuration(index: int, first: int, count: int) -> route_pb2.RouteConfiguration:
    """One route configuration, one virtual host, ``count`` routes each to its own cluster."""
    name = route_config_name(index)
    return route_pb2.RouteConfiguration(
        name=name,
        virtual_hosts=[
            route_components_pb2.VirtualHost(
                name=name,
                domains=["*"],
                routes=[
                    route_components_pb2.Route(
                        match=route_components_pb2.RouteMatch(prefix=f"/svc-{c}/"),
                        route=route_components_pb2.RouteAction(cluster=cluster_name(c)),
                    )
                    for c in range(first, first + count)
                ],
            )
        ],
    )


@dataclass(slots=True)
class Protos:
    clusters: list[Message]
    assignments: list[Message]
    routes: list[Message]
    listeners: list[Message]
    route_names: list[str]
    route_count: int

    def all(self) -> list[Message]:
        return [*self.clusters, *self.assignments, *self.routes, *self.listeners]


def build_protos(clusters: int, per_cluster: int, routes_per_config: int) -> Protos:
    cds = [builders.eds_cluster(cluster_name(i)) for i in range(clusters)]
    eds = [
        builders.load_assignment(cluster_name(i), endpoints_of(i, per_cluster))
        for i in range(clusters)
    ]
    rds: list[Message] = []
    names: list[str] = []
    for index, first in enumerate(range(0, clusters, routes_per_config)):
        rds.append(route_configuration(index, first, min(routes_per_config, clusters - first)))
        names.append(route_config_name(index))
    lds = [
        builders.http_listener(f"listener-{i:04d}", name, port=10000 + i)
        for i, name in enumerate(names)
    ]
    return Protos(cds, eds, rds, lds, names, clusters)


# -- the simulated Envoys (client process) ------------------------------------


@dataclass(frozen=True, slots=True)
class ClientConfig:
    port: int
    mode: str  # "sotw" or "delta"
    first: int
    count: int
    clusters: int
    route_names: tuple[str, ...]


def _encoded(message: Message) -> bytes:
    return bytes(message.SerializeToString())


def _node(mode: str, index: int) -> base_pb2.Node:
    return base_pb2.Node(id=f"bench-{mode}-{index:04d}", cluster=GROUP)


class _Sotw:
    """What a state-of-the-world ADS stream sends: whole subscriptions; ACKs with version, nonce."""

    def __init__(
        self, node: base_pb2.Node, eds_names: list[str], route_names: Sequence[str]
    ) -> None:
        def base(type_url: str, names: Sequence[str]) -> bytes:
            return _encoded(
                discovery_pb2.DiscoveryRequest(
                    node=node, type_url=type_url, resource_names=list(names)
                )
            )

        # Pre-encoded once: an ACK is this plus version_info and response_nonce
        # (a protobuf message's encoding is the concatenation of its fields).
        self.base = {
            rt.CLUSTER: base(rt.CLUSTER, []),
            rt.ENDPOINT: base(rt.ENDPOINT, eds_names),
            rt.LISTENER: base(rt.LISTENER, []),
            rt.ROUTE: base(rt.ROUTE, route_names),
        }

    def subscribe(self, type_url: str) -> bytes:
        return self.base[type_url]

    def ack(self, type_url: str, version: str, nonce: str) -> bytes:
        extra = discovery_pb2.DiscoveryRequest(version_info=version, response_nonce=nonce)
        return self.base[type_url] + _encoded(extra)


class _Delta:
    """What one delta ADS stream sends: subscriptions once, ACKs with the nonce only."""

    def __init__(
        self, node: base_pb2.Node, eds_names: list[str], route_names: Sequence[str]
    ) -> None:
        self.node = node
        self.names = {
            rt.CLUSTER: [],
            rt.ENDPOINT: eds_names,
            rt.LISTENER: [],
            rt.ROUTE: list(route_names),
        }

    def subscribe(self, type_url: str) -> bytes:
        return _encoded(
            discovery_pb2.DeltaDiscoveryRequest(
                node=self.node, type_url=type_url, resource_names_subscribe=self.names[type_url]
            )
        )

    def ack(self, type_url: str, version: str, nonce: str) -> bytes:
        return _encoded(
            discovery_pb2.DeltaDiscoveryRequest(type_url=type_url, response_nonce=nonce)
        )


_NEXT: Final = {rt.CLUSTER: rt.ENDPOINT, rt.ENDPOINT: rt.LISTENER, rt.LISTENER: rt.ROUTE}


async def _one_stream(cfg: ClientConfig, index: int, reports: mp.Queue[Report]) -> None:
    eds_names = [cluster_name(i) for i in range(cfg.clusters)]
    node = _node(cfg.mode, index)
    requests: _Sotw | _Delta
    if cfg.mode == "sotw":
        requests, method, parse = _Sotw(node, eds_names, cfg.route_names), SOTW_METHOD, _parse_sotw
    else:
        requests, method, parse = (
            _Delta(node, eds_names, cfg.route_names),
            DELTA_METHOD,
            _parse_delta,
        )
    options = [
        ("grpc.max_receive_message_length", 64 * MIB),
        ("grpc.max_send_message_length", 64 * MIB),
        ("grpc.use_local_subchannel_pool", 1),  # one connection per stream, like one Envoy each
    ]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{cfg.port}", options=options) as channel:
        call: Any = channel.stream_stream(method)()  # bytes in, bytes out
        await call.write(requests.subscribe(rt.CLUSTER))
        requested = {rt.CLUSTER}
        synced = False
        while True:
            raw = await call.read()
            arrived = time.time()
            if raw is grpc.aio.EOF:
                return
            type_url, version, nonce, count = parse(raw)
            parsed = time.time()
            await call.write(requests.ack(type_url, version, nonce))
            following = _NEXT.get(type_url)
            if following is not None and following not in requested:
                requested.add(following)
                await call.write(requests.subscribe(following))
            if synced:
                reports.put(("push", index, type_url, version, arrived, len(raw), count, parsed))
            elif type_url == rt.ROUTE:
                synced = True
                reports.put(("synced", index, arrived))


def _parse_sotw(raw: bytes) -> tuple[str, str, str, int]:
    response = discovery_pb2.DiscoveryResponse.FromString(raw)
    return response.type_url, response.version_info, response.nonce, len(response.resources)


def _parse_delta(raw: bytes) -> tuple[str, str, str, int]:
    response = discovery_pb2.DeltaDiscoveryResponse.FromString(raw)
    return response.type_url, response.system_version_info, response.nonce, len(response.resources)


async def _client(cfg: ClientConfig, reports: mp.Queue[Report], stop: MpEvent) -> None:
    tasks = [
        asyncio.create_task(_one_stream(cfg, i, reports))
        for i in range(cfg.first, cfg.first + cfg.count)
    ]
    parent = os.getppid()
    finished = threading.Event()

    def watch() -> None:
        # Ends on the parent's stop, when the parent is gone, or when the streams ended.
        while not stop.wait(0.2):
            if finished.is_set() or os.getppid() != parent:
                return

    stopper = asyncio.create_task(asyncio.to_thread(watch))
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task is not stopper and not task.cancelled() and task.exception() is not None:
            reports.put(("error", repr(task.exception())))
    finished.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await stopper


def client_main(cfg: ClientConfig, reports: mp.Queue[Report], stop: MpEvent) -> None:
    """Entry point of a client process."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_client(cfg, reports, stop))


# -- the server side ----------------------------------------------------------


@dataclass(slots=True)
class ModeResult:
    mode: str
    streams: int
    initial_sync_s: float = 0.0
    with_changes_ms: list[float] = field(default_factory=list)
    set_snapshot_ms: list[float] = field(default_factory=list)
    all_streams_ms: list[float] = field(default_factory=list)  # change start -> last stream got it
    per_stream_ms: list[float] = field(default_factory=list)  # change start -> each stream got it
    eds_response_bytes: list[int] = field(default_factory=list)
    eds_response_resources: list[int] = field(default_factory=list)
    client_parse_ms: list[float] = field(default_factory=list)  # per response, client side
    gc_ms: list[float] = field(default_factory=list)  # server's GC pauses per change
    reencoded_resources: list[int] = field(default_factory=list)
    shared_types: list[int] = field(default_factory=list)
    other_pushes: int = 0

    def summary(self) -> dict[str, Any]:
        def ms(values: list[float]) -> dict[str, float]:
            if not values:
                return {"p50": float("nan"), "max": float("nan")}
            return {"p50": round(statistics.median(values), 2), "max": round(max(values), 2)}

        return {
            "streams": self.streams,
            "initial_sync_s": round(self.initial_sync_s, 3),
            "with_changes_ms": ms(self.with_changes_ms),
            "set_snapshot_ms": ms(self.set_snapshot_ms),
            "all_streams_ms": ms(self.all_streams_ms),
            "per_stream_ms": ms(self.per_stream_ms),
            "all_streams_ms_each": [round(v, 2) for v in self.all_streams_ms],
            "eds_response_bytes": max(self.eds_response_bytes, default=0),
            "eds_response_resources": max(self.eds_response_resources, default=0),
            "client_parse_ms": ms(self.client_parse_ms),
            "server_gc_ms_per_change": ms(self.gc_ms),
            "reencoded_resources_per_change": max(self.reencoded_resources, default=0),
            "types_shared_with_previous": min(self.shared_types, default=0),
            "unexpected_pushes": self.other_pushes,
            "target_ms": PUSH_TARGET_MS,
            "target_met": bool(self.all_streams_ms) and max(self.all_streams_ms) <= PUSH_TARGET_MS,
        }


def _drain(
    reports: mp.Queue[Report],
    want: Callable[[Report], bool],
    count: int,
    procs: Sequence[BaseProcess],
) -> list[Report]:
    """Block (in a thread) until ``count`` reports satisfy ``want``; raise on client errors."""
    got: list[Report] = []
    others: list[Report] = []
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while len(got) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(
                f"got {len(got)} of {count} client reports in {WAIT_TIMEOUT_S:.0f} s"
            )
        try:
            item = reports.get(timeout=min(left, 0.5))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode is not None]
            if dead:
                raise RuntimeError(f"a client process exited early (exit codes {dead})") from None
            continue
        if item[0] == "error":
            raise RuntimeError(f"client stream failed: {item[1]}")
        (got if want(item) else others).append(item)
    return got + [("other", o) for o in others]


def _is_eds_push(version: str) -> Callable[[Report], bool]:
    def want(report: Report) -> bool:
        return bool(report[0] == "push" and report[2] == rt.ENDPOINT and report[3] == version)

    return want


def _quiet(server: XdsServer, mode: str, streams: int) -> bool:
    """Every stream of ``mode`` is connected and has nothing in flight (all ACKed)."""
    mine = [s for s in server.context.streams if s.mode == mode]
    return (
        len(mine) == streams
        and all(
            state.pending is None and state.subscription.started
            for s in mine
            for state in s.states.values()
        )
        and all(len(s.states) == 4 for s in mine)
    )


async def _until_quiet(server: XdsServer, mode: str, streams: int) -> None:
    """Poll (the server runs on this loop) until every stream of ``mode`` has ACKed everything."""
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while True:
        if _quiet(server, mode, streams):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{mode} streams did not settle in {WAIT_TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.01)


class GcClock:
    """Total time this process spent in the garbage collector (gc.callbacks)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.collections = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._started
            self.collections += 1


gc_clock = GcClock()


async def run_mode(
    mode: str,
    args: argparse.Namespace,
    server: XdsServer,
    cache: SnapshotCache,
    protos: Protos,
    snapshot: Snapshot,
    profiler: cProfile.Profile | None,
) -> tuple[ModeResult, Snapshot]:
    ctx = mp.get_context("spawn")
    reports: mp.Queue[Report] = ctx.Queue()
    stop = ctx.Event()
    result = ModeResult(mode, args.streams)
    per_proc = -(-args.streams // args.client_procs)
    procs: list[BaseProcess] = []
    for first in range(0, args.streams, per_proc):
        cfg = ClientConfig(
            server.port,
            mode,
            first,
            min(per_proc, args.streams - first),
            args.clusters,
            tuple(protos.route_names),
        )
        procs.append(ctx.Process(target=client_main, args=(cfg, reports, stop), daemon=True))
    try:
        started = time.time()
        for proc in procs:
            proc.start()
        log(f"{mode}: {len(procs)} client process(es) started, {args.streams} streams syncing ...")
        await asyncio.to_thread(_drain, reports, lambda r: r[0] == "synced", args.streams, procs)
        await _until_quiet(server, mode, args.streams)
        result.initial_sync_s = time.time() - started
        log(f"{mode}: all {args.streams} streams synced and ACKed in {result.initial_sync_s:.2f} s")

        for rep in range(1, args.repeats + 1):
            target = (rep * 7919 + (0 if mode == "sotw" else 3331)) % args.clusters
            name = cluster_name(target)
            change = rep + (0 if mode == "sotw" else 100)
            changed = builders.load_assignment(name, endpoints_of(target, args.endpoints, change))
            gc_before = gc_clock.total
            if profiler is not None:
                profiler.enable()
            t0 = time.time()
            new = snapshot.with_changes(upsert=[changed])
            t1 = time.time()
            cache.set_snapshot(GROUP, new)
            t2 = time.time()
            version = new.version(rt.ENDPOINT)
            got = await asyncio.to_thread(
                _drain,
                reports,
                _is_eds_push(version),
                args.streams,
                procs,
            )
            await _until_quiet(server, mode, args.streams)
            if profiler is not None:
                profiler.disable()
            result.gc_ms.append((gc_clock.total - gc_before) * 1000)
            pushes = [r for r in got if r[0] == "push"]
            result.client_parse_ms.extend((r[7] - r[4]) * 1000 for r in pushes)
            result.other_pushes += len(got) - len(pushes)
            arrivals = [r[4] for r in pushes]
            result.with_changes_ms.append((t1 - t0) * 1000)
            result.set_snapshot_ms.append((t2 - t1) * 1000)
            result.all_streams_ms.append((max(arrivals) - t0) * 1000)
            result.per_stream_ms.extend((a - t0) * 1000 for a in arrivals)
            result.eds_response_bytes.append(max(r[5] for r in pushes))
            result.eds_response_resources.append(max(r[6] for r in pushes))
            old_eds, new_eds = snapshot.get(rt.ENDPOINT).resources, new.get(rt.ENDPOINT).resources
            result.reencoded_resources.append(
                sum(1 for n, r in new_eds.items() if old_eds.get(n) is not r)
            )
            result.shared_types.append(
                sum(1 for t in rt.TYPE_URLS if t != rt.ENDPOINT and new.get(t) is snapshot.get(t))
            )
            snapshot = new
            log(
                f"{mode}: change {rep}/{args.repeats} ({name}): with_changes "
                f"{result.with_changes_ms[-1]:.1f} ms, all {args.streams} streams got it after "
                f"{result.all_streams_ms[-1]:.1f} ms (median stream "
                f"{statistics.median((a - t0) * 1000 for a in arrivals):.1f} ms), "
                f"EDS response {result.eds_response_bytes[-1]:,} bytes"
            )
    finally:
        stop.set()
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        reports.close()
        reports.join_thread()
    # The streams end with their clients; wait until the server has let them go.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not any(s.mode == mode for s in server.context.streams):
            break
        await asyncio.sleep(0.05)
    return result, snapshot


def _profile_text(profiler: cProfile.Profile, limit: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(limit)
    return out.getvalue()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "clusters": args.clusters,
        "endpoints": args.clusters * args.endpoints,
        "routes": args.clusters,
        "streams": args.streams,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "profiled": bool(args.profile),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
    }
    log(
        f"building protos: {args.clusters:,} clusters, "
        f"{args.clusters * args.endpoints:,} endpoints, {args.clusters:,} routes in "
        f"{-(-args.clusters // args.routes_per_config)} route configs ..."
    )
    t0 = time.perf_counter()
    protos = build_protos(args.clusters, args.endpoints, args.routes_per_config)
    figures["build_protos_s"] = round(time.perf_counter() - t0, 3)
    log(f"protos built in {figures['build_protos_s']:.2f} s (user side)")

    build_profiler = cProfile.Profile() if args.profile else None
    items = protos.all()
    t0 = time.perf_counter()
    if build_profiler is not None:
        build_profiler.enable()
    snapshot = Snapshot.build(items)
    if build_profiler is not None:
        build_profiler.disable()
    build_s = time.perf_counter() - t0
    figures["snapshot_build_s"] = round(build_s, 3)
    figures["snapshot_build_target_s"] = BUILD_TARGET_S
    figures["snapshot_build_target_met"] = build_s <= BUILD_TARGET_S
    figures["resources"] = {
        rt.short_name(t): len(snapshot.get(t).resources) for t in sorted(rt.TYPE_URLS)
    }
    log(
        f"Snapshot.build: {build_s:.2f} s for {len(items):,} resources "
        f"(target <= {BUILD_TARGET_S} s)"
    )
    if build_profiler is not None:
        print(_profile_text(build_profiler, args.profile_lines), flush=True)

    gc.callbacks.append(gc_clock)
    cache = SnapshotCache()
    # As switchman serve runs it: collect-then-freeze rounds (switchman.xds.server.collector).
    settings = XdsSettings(
        group_by="cluster", response_limits=ResponseLimits(grpc=64 * MIB, other=64 * MIB), max_request_bytes=64 * MIB,
        gc_freeze_seconds=0.0 if args.python_gc else 1.0, transport=args.transport,
    )
    server = XdsServer(cache, settings)
    await server.start("127.0.0.1:0")
    log(f"xDS server on 127.0.0.1:{server.port}")
    cache.set_snapshot(GROUP, snapshot)
    results: dict[str, ModeResult] = {}
    try:
        for mode in args.modes:
            profiler = cProfile.Profile() if args.profile else None
            results[mode], snapshot = await run_mode(
                mode, args, server, cache, protos, snapshot, profiler
            )
            if profiler is not None:
                log(
                    f"{mode}: server-side profile of the {args.repeats} changes "
                    "(sorted by own time):"
                )
                print(_profile_text(profiler, args.profile_lines), flush=True)
    finally:
        await server.stop(0)
    for mode, result in results.items():
        figures[mode] = result.summary()
    return figures


def print_table(figures: dict[str, Any], modes: Sequence[str]) -> None:
    rows: list[tuple[str, str, str]] = [
        ("protos built (user side)", f"{figures['build_protos_s']:.2f} s", ""),
        (
            "Snapshot.build",
            f"{figures['snapshot_build_s']:.2f} s",
            f"<= {BUILD_TARGET_S:.0f} s: "
            + ("met" if figures["snapshot_build_target_met"] else "MISSED"),
        ),
    ]
    for mode in modes:
        s = figures.get(mode)
        if s is None:
            continue
        rows += [
            (f"{mode}: initial sync, {s['streams']} streams", f"{s['initial_sync_s']:.2f} s", ""),
            (
                f"{mode}: with_changes p50 / max",
                f"{s['with_changes_ms']['p50']:.1f} / {s['with_changes_ms']['max']:.1f} ms",
                f"re-encoded {s['reencoded_resources_per_change']}, "
                f"{s['types_shared_with_previous']} other types shared",
            ),
            (
                f"{mode}: set_snapshot p50 / max",
                f"{s['set_snapshot_ms']['p50']:.1f} / {s['set_snapshot_ms']['max']:.1f} ms",
                "",
            ),
            (
                f"{mode}: change -> all streams p50 / max",
                f"{s['all_streams_ms']['p50']:.1f} / {s['all_streams_ms']['max']:.1f} ms",
                f"<= {PUSH_TARGET_MS:.0f} ms: {'met' if s['target_met'] else 'MISSED'}",
            ),
            (
                f"{mode}: change -> one stream p50 / max",
                f"{s['per_stream_ms']['p50']:.1f} / {s['per_stream_ms']['max']:.1f} ms",
                "",
            ),
            (
                f"{mode}: EDS response carrying it",
                f"{s['eds_response_bytes']:,} B",
                f"{s['eds_response_resources']:,} resources",
            ),
            (
                f"{mode}: client parse per response p50 / max",
                f"{s['client_parse_ms']['p50']:.2f} / {s['client_parse_ms']['max']:.2f} ms",
                "client process, after arrival",
            ),
            (
                f"{mode}: server GC pauses per change p50 / max",
                f"{s['server_gc_ms_per_change']['p50']:.1f} / "
                f"{s['server_gc_ms_per_change']['max']:.1f} ms",
                "until every stream ACKed",
            ),
        ]
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print(flush=True)
    print(f"{'figure'.ljust(width)}  {'value'.rjust(value_width)}  note")
    print(f"{'-' * width}  {'-' * value_width}  ----")
    for label, value, note in rows:
        print(f"{label.ljust(width)}  {value.rjust(value_width)}  {note}")
    print(flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--clusters", type=int, default=10_000, help="EDS clusters, load assignments and routes"
    )
    parser.add_argument("--endpoints", type=int, default=10, help="endpoints per cluster")
    parser.add_argument(
        "--routes-per-config", type=int, default=100, help="routes per RouteConfiguration"
    )
    parser.add_argument("--streams", type=int, default=100, help="simulated Envoys (ADS streams)")
    parser.add_argument("--repeats", type=int, default=5, help="endpoint changes measured per mode")
    parser.add_argument("--modes", default="sotw,delta", help="comma-separated: sotw, delta")
    parser.add_argument(
        "--client-procs", type=int, default=1, help="client processes the streams are spread over"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile Snapshot.build and the server during changes",
    )
    parser.add_argument("--profile-lines", type=int, default=30, help="functions shown per profile")
    parser.add_argument("--transport", choices=("grpc", "h2"), default="h2",
                        help="the xDS transport: grpc.aio, or switchman/xds/h2")
    parser.add_argument(
        "--python-gc", action="store_true",
        help="leave Python's garbage collector as it is (default: collect-then-freeze rounds, as switchman serve)",
    )
    args = parser.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in args.modes if m not in ("sotw", "delta")]
    if bad or args.clusters < 1 or args.streams < 1 or args.repeats < 1 or args.client_procs < 1:
        parser.error(f"invalid options (modes {bad})" if bad else "counts must be positive")
    args.client_procs = min(args.client_procs, args.streams)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    load = os.getloadavg()[0]
    if load > 0.5:
        log(f"note: load average {load:.2f} before start: other processes compete for the CPUs")
    started = time.perf_counter()
    figures = asyncio.run(main_async(args))
    figures["wall_s"] = round(time.perf_counter() - started, 1)
    figures["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    print_table(figures, args.modes)
    print(json.dumps(figures, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
