"""ADS state-of-the-world streams at scale: connect storm, change propagation, memory per stream.

    python bench/ads_streams.py                  # 10,000 streams, 3 changes (about 1.5 minutes)
    python bench/ads_streams.py --streams 1000   # a quick run
    python bench/ads_streams.py --profile change # cProfile of the server during the changes
    python bench/ads_streams.py --trace-memory   # where the server's Python memory goes
    python bench/ads_streams.py --bare           # grpc.aio alone, without Switchman: the floor
    python bench/ads_streams.py --bare-h2        # asyncio + h2 alone, no grpc.aio: that floor
    python bench/ads_streams.py --server-option grpc.server.max_pending_requests=20000 \
        --server-option grpc.server.max_pending_requests_hard_limit=20000   # try a tuning
    python bench/ads_streams.py --server-gc python|freeze|off   # the garbage collector's share

Three kinds of process, all started by this file (the driver):

* the **server**: ``XdsServer(SnapshotCache(), XdsSettings(group_by="cluster"))`` on
  127.0.0.1 with a small snapshot (1 listener, 1 route configuration, 2 EDS
  clusters and their endpoints; ``--clusters`` for more) for
  :data:`DEFAULT_GROUP`. It reads commands (JSON lines) on stdin and answers
  on stdout: its RSS, CPU and GC time; "set the next snapshot now" (it records
  the time); "tell me when the response and ACK counters reach N" (its own
  view of a push); cProfile on/off;
* the **load generators** (``--clients``, 2 by default): each opens its share of
  the streams over several channels (``--per-channel`` streams on one HTTP/2
  connection), subscribes to CDS, ACKs every response and records, per stream,
  when each new version arrived. A stream that fails reconnects with Envoy's
  backoff (jittered, exponential, 0.5 s base), as a real Envoy would;
* the **driver**, which sets the pace and prints the figures: a table and, as
  the last line, one JSON object.

Times are ``time.time()`` on one machine, compared across processes. Every
child also exits when its stdin closes, so none outlives the driver. The load
generators are Python too and need about as much CPU as the server: on a
2-core machine they compete with it, which makes the times pessimistic.

Targets (from the design): one change reaches all of 10,000 streams in <= 1 s;
a connect storm of 10,000 streams completes in <= 10 s; <= 20 KB of server RSS
per stream.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import functools
import gc
import io
import json
import math
import os
import pstats
import random
import resource
import sys
import threading
import time
import traceback
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

CDS: Final = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ADS_METHOD: Final = (
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
)
SELF: Final = os.path.abspath(__file__)
NODE_CLUSTER: Final = "bench"

TARGET_CHANGE_S: Final = 1.0
TARGET_CONNECT_S: Final = 10.0
TARGET_RSS_KB: Final = 20.0

Event = dict[str, Any]


# -- shared helpers ---------------------------------------------------------


def _emit(event: Event) -> None:
    """One protocol line from a child to the driver (children write nothing else to stdout)."""
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _commands(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[Event | None]:
    """The driver's commands, read on a thread; None when stdin closes (the driver is gone)."""
    queue: asyncio.Queue[Event | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            if line.strip():
                loop.call_soon_threadsafe(queue.put_nowait, json.loads(line))
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, name="commands", daemon=True).start()
    return queue


_BASELINE: list[tracemalloc.Snapshot] = []


def _memory(top: int) -> Event:
    """Python memory by allocation site since the baseline (``tracemalloc`` must be on)."""
    if not tracemalloc.is_tracing():
        return {"traced_kb": 0, "text": ""}
    current = tracemalloc.take_snapshot()
    traced = tracemalloc.get_traced_memory()[0] // 1024
    if not _BASELINE:
        _BASELINE.append(current)
        return {"traced_kb": traced, "text": ""}
    baseline = _BASELINE[0]
    lines = [f"{'KiB':>9} {'blocks':>8}  allocated at"]
    for stat in current.compare_to(baseline, "lineno")[:top]:
        frame = stat.traceback[0]
        lines.append(f"{stat.size_diff / 1024:9.0f} {stat.count_diff:8d}  "
                     f"{frame.filename.removeprefix(sys.prefix)}:{frame.lineno}")
    return {"traced_kb": traced, "text": "\n".join(lines)}


class _GcClock:
    """Time the server spends in the garbage collector, per generation."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = info["generation"]
            self.seconds[generation] += time.perf_counter() - self._started
            self.collections[generation] += 1

    def report(self) -> Event:
        return {"gc_s": sum(self.seconds), "gc_full": self.collections[2],
                "gc_full_s": self.seconds[2]}


def _rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def _percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values`` (q in 0..100)."""
    if not values:
        return float("nan")
    rank = max(1, min(len(values), round(q / 100 * len(values) + 0.5)))
    return values[rank - 1]


# -- the server process -----------------------------------------------------


def _snapshot(generation: int, clusters: int = 2) -> Any:
    """1 listener, 1 route configuration, ``clusters`` EDS clusters (2 by default) and endpoints.

    Each generation changes cluster ``bench-a``'s connect timeout, so the CDS
    version changes and every stream gets one new CDS response.
    """
    from switchman.testing.builders import eds_cluster, http_listener, load_assignment, route_config
    from switchman.xds import Snapshot

    extra = [f"bench-{i}" for i in range(max(0, clusters - 2))]
    return Snapshot.build(
        [
            http_listener("ingress", "ingress-routes"),
            route_config("ingress-routes", [("bench-a", 90), ("bench-b", 10)]),
            eds_cluster("bench-a", connect_timeout=1.0 + 0.25 * generation),
            load_assignment("bench-a", [("127.0.0.1", 9001)]),
            eds_cluster("bench-b"),
            load_assignment("bench-b", [("127.0.0.1", 9002)]),
            *(eds_cluster(name) for name in extra),
            *(load_assignment(name, [("127.0.0.1", 9003)]) for name in extra),
        ]
    )


class _Switchman:
    """The server under test: Switchman's XdsServer, with a snapshot for DEFAULT_GROUP."""

    def __init__(self, args: argparse.Namespace) -> None:
        from switchman.xds import DEFAULT_GROUP, SnapshotCache, XdsServer, XdsSettings

        self._group = DEFAULT_GROUP
        self._snapshots = [_snapshot(g, args.clusters) for g in range(args.changes + 1)]
        self._cache = SnapshotCache()
        self._cache.set_snapshot(DEFAULT_GROUP, self._snapshots[0])
        # As switchman serve runs it: collect-then-freeze rounds (switchman.xds.server.collector).
        # Every load generator connects from 127.0.0.1: no limit per address (--per-channel 1 opens 10,000).
        settings = XdsSettings(
            group_by="cluster", gc_freeze_seconds=1.0 if args.server_gc == "serve" else 0.0, transport=args.transport,
            max_connections_per_address=None,
        )
        if args.server_option:
            settings = _with_options(settings, args.server_option)
        self._server = XdsServer(self._cache, settings)

    async def start(self) -> int:
        return await self._server.start("127.0.0.1:0")

    async def stop(self) -> None:
        await self._server.stop(0)

    def set(self, generation: int) -> str:
        snapshot = self._snapshots[generation]
        self._cache.set_snapshot(self._group, snapshot)
        return str(snapshot.version(CDS))

    def streams(self) -> int:
        return len(self._server.context.streams)

    def responses(self) -> float:
        return float(self._server.metrics.of(CDS).responses)

    def acks(self) -> float:
        return float(self._server.metrics.of(CDS).acks)


def _cds_bodies(args: argparse.Namespace) -> list[tuple[str, bytes]]:
    """(version, encoded CDS resources) of every generation the run will set: the bytes Switchman would send."""
    bodies = []
    for generation in range(args.changes + 1):
        tsnap = _snapshot(generation, args.clusters).get(CDS)
        bodies.append((str(tsnap.version), tsnap.select(None).body))
    return bodies


class _Counted:
    """A floor server's own counts of streams, responses and ACKs (what the driver asks for)."""

    _streams = _responses = _acks = 0

    def streams(self) -> int:
        return self._streams

    def responses(self) -> float:
        return self._responses

    def acks(self) -> float:
        return self._acks


class _Bare(_Counted):
    """Not Switchman: the least a grpc.aio server can do for the same streams (``--bare``).

    One coroutine per stream reads with ``context.read()``, writes with
    ``context.write()`` and waits on one future shared by all streams; the
    responses are the same bytes Switchman would send. What this costs is
    grpc.aio's share, the floor under any design on grpc.aio.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        from switchman.xds import wire

        self._options = [(k, int(v)) for k, _, v in (o.partition("=") for o in args.server_option)]
        self._bodies = _cds_bodies(args)
        self._sotw = wire.sotw_response
        self._generation = 0
        self._changed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._streams = self._responses = self._acks = 0
        self._server: Any = None

    async def start(self) -> int:
        import grpc
        from grpc import aio

        from switchman.xds.server.server import XdsSettings

        server = aio.server(options=XdsSettings().grpc_options() + self._options)
        method = grpc.stream_stream_rpc_method_handler(
            self._handle, request_deserializer=_parse_request, response_serializer=bytes)
        service = ADS_METHOD.split("/")[1]
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(service, {"StreamAggregatedResources": method})])
        port = int(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        self._server = server
        return port

    async def stop(self) -> None:
        await self._server.stop(0)

    def set(self, generation: int) -> str:
        self._generation = generation
        changed, self._changed = self._changed, asyncio.get_running_loop().create_future()
        changed.set_result(None)
        return self._bodies[generation][0]

    async def _handle(self, requests: Any, context: Any) -> None:
        from grpc import aio

        self._streams += 1
        try:
            if await context.read() is aio.EOF:
                return
            nonce = 0
            while True:
                generation, changed = self._generation, self._changed
                version, body = self._bodies[generation]
                nonce += 1
                await context.write(self._sotw(version, body, CDS, str(nonce)))
                self._responses += 1
                if await context.read() is aio.EOF:
                    return
                self._acks += 1
                if generation == self._generation:
                    await changed
        finally:
            self._streams -= 1



class _BareH2(_Counted):
    """Not Switchman, not grpc.aio: the least an asyncio + ``h2`` server can do (``--bare-h2``).

    gRPC's framing spoken directly over HTTP/2 with prior knowledge: one
    ``asyncio.Protocol`` and one ``h2.connection.H2Connection`` per TCP
    connection, no task per stream. A stream's first request gets the current
    version (the same bytes ``--bare`` sends, with the stream's own nonce),
    each ACK either the next version or a place on its connection's waiting
    list; :meth:`set` wakes the waiting lists, one callback per connection.
    DATA goes out only within the peer's flow-control windows, the rest is
    queued until a WINDOW_UPDATE (or a SETTINGS that widens the windows); h2
    itself ACKs PINGs and SETTINGS. A client's half-close gets ``grpc-status:
    0`` trailers, another path trailers-only ``grpc-status: 12``. What a
    production transport needs beyond this is listed in the bench's report.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        from switchman.xds import wire

        self._bodies = _cds_bodies(args)
        self._sotw = wire.sotw_response
        self._generation = 0
        self._connections: set[_H2Connection] = set()
        self._streams = self._responses = self._acks = 0
        self._errors: Counter[str] = Counter()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _H2Connection(self), "127.0.0.1", 0,
                                                backlog=4096)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self._connections):
                connection.close()

    def set(self, generation: int) -> str:
        self._generation = generation
        loop = asyncio.get_running_loop()
        for connection in self._connections:
            if connection.waiting:
                loop.call_soon(connection.wake)
        return self._bodies[generation][0]



class _H2Stream:
    """One ADS stream of a :class:`_H2Connection`."""

    __slots__ = ("generation", "id", "inbox", "nonce", "outbox", "started")

    def __init__(self, stream_id: int) -> None:
        self.id = stream_id
        self.nonce = 0
        self.generation = -1  # of the last response sent; -1: none yet
        self.started = False  # response headers sent
        self.inbox = b""  # request bytes not yet a whole gRPC message
        self.outbox = b""  # response bytes waiting for flow-control window


_H2_RESPONSE_HEADERS: Final = ((b":status", b"200"), (b"content-type", b"application/grpc"))
_H2_OK: Final = ((b"grpc-status", b"0"),)


class _H2Connection(asyncio.Protocol):
    """One HTTP/2 connection of :class:`_BareH2`: gRPC framing over ``h2``, callbacks only."""

    def __init__(self, server: _BareH2) -> None:
        import h2.config
        import h2.connection
        import h2.events
        import h2.exceptions

        self._server = server
        self._h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding=None,
            validate_inbound_headers=False, normalize_inbound_headers=False,
            validate_outbound_headers=False, normalize_outbound_headers=False))
        self._events = h2.events
        self._protocol_error = h2.exceptions.ProtocolError
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, _H2Stream] = {}
        self.waiting: list[_H2Stream] = []  # ACKed the current version: wait for the next
        self._blocked: dict[int, _H2Stream] = {}  # streams with an outbox

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server._connections.add(self)
        self._h2.initiate_connection()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._connections.discard(self)
        self._server._streams -= len(self._streams)
        self._streams.clear()
        self.waiting.clear()
        self._blocked.clear()

    def data_received(self, data: bytes) -> None:
        events = self._events
        try:
            received = self._h2.receive_data(data)
        except self._protocol_error as exc:  # h2 has queued a GOAWAY
            self._server._errors[type(exc).__name__] += 1
            self._flush()
            self.close()
            return
        event: Any
        for event in received:
            kind = type(event)
            if kind is events.DataReceived:
                self._data(event)
            elif kind is events.RequestReceived:
                self._request(event)
            elif kind is events.WindowUpdated:
                self._window(event.stream_id)
            elif kind is events.StreamEnded:
                self._half_closed(event.stream_id)
            elif kind is events.StreamReset:
                self._gone(event.stream_id)
            elif kind is events.RemoteSettingsChanged:
                self._window(0)  # SETTINGS_INITIAL_WINDOW_SIZE may have grown every window
            elif kind is events.ConnectionTerminated:
                self._flush()
                self.close()
                return
        self._flush()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _flush(self) -> None:
        out = self._h2.data_to_send()
        if out and self._transport is not None:
            self._transport.write(out)

    # -- HTTP/2 events

    def _request(self, event: Any) -> None:
        stream_id = event.stream_id
        path = next((value for name, value in event.headers if name == b":path"), b"")
        if path != ADS_METHOD.encode():
            self._h2.send_headers(stream_id, (*_H2_RESPONSE_HEADERS, (b"grpc-status", b"12")),
                                  end_stream=True)
            return
        self._streams[stream_id] = _H2Stream(stream_id)
        self._server._streams += 1

    def _data(self, event: Any) -> None:
        stream_id = event.stream_id
        # Hand the window back at once: a bare server never holds requests unread.
        self._h2.acknowledge_received_data(event.flow_controlled_length, stream_id)
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        inbox = stream.inbox + event.data if stream.inbox else event.data
        while len(inbox) >= 5:
            size = int.from_bytes(inbox[1:5], "big")
            if len(inbox) < 5 + size:
                break
            message, inbox = inbox[5:5 + size], inbox[5 + size:]
            self._message(stream, message)
        stream.inbox = inbox

    def _message(self, stream: _H2Stream, message: bytes) -> None:
        _parse_request(message)  # what --bare's request_deserializer does
        server = self._server
        if stream.generation >= 0:
            server._acks += 1
            if stream.generation == server._generation:
                self.waiting.append(stream)
                return
        self._respond(stream)

    def _respond(self, stream: _H2Stream) -> None:
        server = self._server
        generation = server._generation
        version, body = server._bodies[generation]
        stream.nonce += 1
        stream.generation = generation
        message = server._sotw(version, body, CDS, str(stream.nonce))
        if not stream.started:
            self._h2.send_headers(stream.id, _H2_RESPONSE_HEADERS)
            stream.started = True
        stream.outbox += b"\0" + len(message).to_bytes(4, "big") + message
        self._send(stream)

    def _send(self, stream: _H2Stream) -> None:
        """As much of the outbox as the windows allow; the rest waits for a WINDOW_UPDATE."""
        h2 = self._h2
        outbox = stream.outbox
        while outbox:
            size = min(len(outbox), h2.local_flow_control_window(stream.id), h2.max_outbound_frame_size)
            if size <= 0:
                self._blocked[stream.id] = stream
                stream.outbox = outbox
                return
            h2.send_data(stream.id, outbox[:size])
            outbox = outbox[size:]
        stream.outbox = b""
        self._blocked.pop(stream.id, None)
        self._server._responses += 1  # counted once the whole message is with h2

    def _window(self, stream_id: int) -> None:
        if stream_id == 0:
            for stream in list(self._blocked.values()):
                self._send(stream)
        elif (blocked := self._blocked.get(stream_id)) is not None:
            self._send(blocked)

    def _half_closed(self, stream_id: int) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        self._server._streams -= 1
        self._blocked.pop(stream_id, None)
        if not stream.started:
            self._h2.send_headers(stream_id, (*_H2_RESPONSE_HEADERS, *_H2_OK), end_stream=True)
        else:
            self._h2.send_headers(stream_id, _H2_OK, end_stream=True)

    def _gone(self, stream_id: int) -> None:
        if self._streams.pop(stream_id, None) is not None:
            self._server._streams -= 1
            self._blocked.pop(stream_id, None)

    # -- a new version

    def wake(self) -> None:
        waiting, self.waiting = self.waiting, []
        for stream in waiting:
            if self._streams.get(stream.id) is stream:
                self._respond(stream)
        self._flush()


def _parse_request(data: bytes) -> Any:
    from envoy.service.discovery.v3 import discovery_pb2

    return discovery_pb2.DiscoveryRequest.FromString(data)


async def _watch(target: _Switchman | _Bare | _BareH2, tag: str, responses: int, acks: int, since: float,
                 limit_s: float) -> None:
    """Report when the counters reach ``responses`` and ``acks`` (totals), seen from the server."""
    t_responses = t_acks = None
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        now = time.time()
        if t_responses is None and target.responses() >= responses:
            t_responses = now
        if t_acks is None and target.acks() >= acks:
            t_acks = now
        if t_responses is not None and t_acks is not None:
            break
        await asyncio.sleep(0.01)
    _emit({"ev": "watched", "tag": tag,
           "responses_s": None if t_responses is None else t_responses - since,
           "acks_s": None if t_acks is None else t_acks - since,
           "responses": target.responses(), "acks": target.acks()})


def _with_options(settings: Any, options: Sequence[str]) -> Any:
    """``settings`` whose gRPC options end with ``options`` (``KEY=INT``): to try server tunings."""
    from switchman.xds import XdsSettings

    extra = [(key, int(value)) for key, _, value in (o.partition("=") for o in options)]

    class Tuned(XdsSettings):
        __slots__ = ()

        def grpc_options(self) -> list[tuple[str, int]]:
            return [*XdsSettings.grpc_options(self), *extra]

    return Tuned(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)})


async def _serve(args: argparse.Namespace) -> None:
    _raise_nofile(1 << 20)
    if os.environ.get("BENCH_GC_LOG"):  # the collector rounds, on stderr
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.trace_memory:
        tracemalloc.start(1)
    if args.server_gc == "off":
        gc.disable()
    target: _Switchman | _Bare | _BareH2
    if args.bare_h2:
        target = _BareH2(args)
    elif args.bare:
        target = _Bare(args)
    else:
        target = _Switchman(args)
    port = await target.start()
    gc_clock = _GcClock()
    commands = _commands(asyncio.get_running_loop())
    profiler: cProfile.Profile | None = None
    watches: set[asyncio.Task[None]] = set()

    def watch(tag: str, responses: int, acks: int, since: float, limit_s: float) -> None:
        task = asyncio.create_task(_watch(target, tag, responses, acks, since, limit_s))
        watches.add(task)
        task.add_done_callback(watches.discard)

    _emit({"ev": "ready", "port": port, "pid": os.getpid(), "rss_kb": _rss_kb()})
    try:
        while (command := await commands.get()) is not None:
            op = command["op"]
            if op == "quit":
                break
            if op == "rss":
                _emit({"ev": "rss", "rss_kb": _rss_kb(), "streams": target.streams(),
                       "cpu_s": time.process_time(), **gc_clock.report(),
                       "errors": dict(getattr(target, "_errors", {})),
                       # frozen objects (the collector rounds) are tracked too, just not listed
                       "objects": len(gc.get_objects()) + gc.get_freeze_count() if command.get("objects") else 0})
            elif op == "watch":
                watch(command["tag"], command["responses"], command["acks"], command["since"],
                      command["timeout"])
            elif op == "set":
                gc_before = sum(gc_clock.seconds)
                t_set = time.time()
                version = target.set(command["generation"])
                t_woken = time.time()
                _emit({"ev": "set", "t_set": t_set, "wake_s": t_woken - t_set,
                       "wake_gc_s": sum(gc_clock.seconds) - gc_before, "version": version})
                watch(f"set-{command['generation']}", command["responses"], command["acks"],
                      t_set, command["timeout"])
            elif op == "memory":
                _emit({"ev": "memory", **_memory(command["top"])})
            elif op == "gc_freeze":
                gc.collect()
                gc.freeze()
                _emit({"ev": "gc_freeze", "frozen": gc.get_freeze_count()})
            elif op == "profile_on":
                profiler = cProfile.Profile()
                profiler.enable()
                _emit({"ev": "profile_on"})
            elif op == "profile_off":
                text = ""
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(command["path"])
                    out = io.StringIO()
                    stats = pstats.Stats(profiler, stream=out)
                    stats.sort_stats("tottime").print_stats(command.get("top", 25))
                    text = out.getvalue()
                    profiler = None
                _emit({"ev": "profile_off", "text": text})
    finally:
        for task in watches:
            task.cancel()
        await target.stop()


# -- a load-generator process -----------------------------------------------


@dataclass
class _Load:
    """The streams of one load generator and what they saw."""

    count: int
    arrivals: dict[str, list[float]] = field(default_factory=dict)
    first: int = 0
    responses: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    t_all_first: float | None = None
    _complete: dict[str, asyncio.Event] = field(default_factory=dict)

    def complete(self, version: str) -> asyncio.Event:
        """Set once every stream has received ``version``."""
        return self._complete.setdefault(version, asyncio.Event())

    def arrived(self, version: str, at: float) -> None:
        times = self.arrivals.setdefault(version, [])
        times.append(at)
        if len(times) == self.count:
            self.complete(version).set()

    def failed(self, why: str) -> None:
        self.failures[" ".join(why.split())[:120]] += 1

    def report(self) -> Event:
        return {"first": self.first, "responses": self.responses,
                "failures": sum(self.failures.values()), "failure_kinds": dict(self.failures)}


def _backoff(attempt: int) -> float:
    """Envoy's xDS retry: jittered exponential backoff, 0.5 s base, 30 s at most."""
    return random.uniform(0, min(30.0, 0.5 * 2**attempt))


async def _stream(load: _Load, call_factory: Any, node_id: str, retry: bool) -> None:
    """One simulated Envoy: subscribe to CDS, ACK every response, reconnect like Envoy."""
    from envoy.config.core.v3 import base_pb2
    from envoy.service.discovery.v3 import discovery_pb2
    from grpc import aio

    hello = discovery_pb2.DiscoveryRequest(
        type_url=CDS, node=base_pb2.Node(id=node_id, cluster=NODE_CLUSTER)
    ).SerializeToString()
    version: str | None = None  # the last version received, across reconnects
    attempt = 0
    while True:
        call = call_factory()
        try:
            await call.write(hello)
            while True:
                response = await call.read()
                if response is aio.EOF:
                    raise ConnectionError("the server ended the stream")
                now = time.time()
                attempt = 0
                load.responses += 1
                if version is None:
                    load.first += 1
                    if load.first == load.count:
                        load.t_all_first = now
                if response.version_info != version:
                    version = response.version_info
                    load.arrived(version, now)
                ack = discovery_pb2.DiscoveryRequest(
                    type_url=CDS, version_info=version, response_nonce=response.nonce
                )
                await call.write(ack.SerializeToString())
        except asyncio.CancelledError:
            call.cancel()
            raise
        except Exception as exc:  # the stream failed: note why, then reconnect (or give up)
            call.cancel()
            if isinstance(exc, aio.AioRpcError):
                load.failed(f"{exc.code().name}: {exc.details()}")
            else:
                load.failed(f"{type(exc).__name__}: {exc}")
            if not retry:
                return
        attempt += 1
        await asyncio.sleep(_backoff(attempt))


class _H2Client(asyncio.Protocol):
    """One load-generator connection speaking gRPC over ``h2`` itself (``--client h2``).

    grpcio's client costs the load generators about as much CPU as the server
    spends, and on two cores they share it: this one is several times
    lighter, so the figures say more about the server. Each stream sends its
    node's first request, ACKs every response and records each new version;
    windows are wide, as Envoy's are. No reconnects: a failure is counted.
    """

    def __init__(self, load: _Load, node_ids: list[str]) -> None:
        import h2.config
        import h2.connection
        import h2.events

        self._events = h2.events
        self._h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None,
            validate_inbound_headers=False, normalize_inbound_headers=False,
            validate_outbound_headers=False, normalize_outbound_headers=False))
        self._load = load
        self._node_ids = node_ids
        self._streams: dict[int, list[Any]] = {}  # stream id -> [unparsed bytes, last version]
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        import h2.settings
        from envoy.config.core.v3 import base_pb2
        from envoy.service.discovery.v3 import discovery_pb2

        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        h2c = self._h2
        h2c.initiate_connection()
        h2c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 24})
        h2c.increment_flow_control_window(1 << 24)
        headers = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", ADS_METHOD.encode()),
                   (b":authority", b"xds"), (b"content-type", b"application/grpc"), (b"te", b"trailers")]
        for node_id in self._node_ids:
            hello = discovery_pb2.DiscoveryRequest(
                type_url=CDS, node=base_pb2.Node(id=node_id, cluster=NODE_CLUSTER)).SerializeToString()
            stream_id = h2c.get_next_available_stream_id()
            h2c.send_headers(stream_id, headers)
            h2c.send_data(stream_id, b"\0" + len(hello).to_bytes(4, "big") + hello)
            self._streams[stream_id] = [b"", None]
        transport.write(h2c.data_to_send())

    def data_received(self, data: bytes) -> None:
        from envoy.service.discovery.v3 import discovery_pb2

        events = self._events
        load = self._load
        h2c = self._h2
        for event in h2c.receive_data(data):
            if isinstance(event, events.DataReceived):
                h2c.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                state = self._streams.get(event.stream_id)
                if state is None:
                    continue
                buffer = state[0] + event.data if state[0] else event.data
                while len(buffer) >= 5 and len(buffer) >= 5 + (size := int.from_bytes(buffer[1:5], "big")):
                    response = discovery_pb2.DiscoveryResponse.FromString(buffer[5:5 + size])
                    buffer = buffer[5 + size:]
                    now = time.time()
                    load.responses += 1
                    if state[1] is None:
                        load.first += 1
                        if load.first == load.count:
                            load.t_all_first = now
                    if response.version_info != state[1]:
                        state[1] = response.version_info
                        load.arrived(state[1], now)
                    ack = discovery_pb2.DiscoveryRequest(
                        type_url=CDS, version_info=state[1], response_nonce=response.nonce).SerializeToString()
                    h2c.send_data(event.stream_id, b"\0" + len(ack).to_bytes(4, "big") + ack)
                state[0] = buffer
            elif isinstance(event, (events.StreamEnded, events.StreamReset)):
                if self._streams.pop(event.stream_id, None) is not None:
                    load.failed(f"{type(event).__name__}")
            elif isinstance(event, events.ConnectionTerminated):
                load.failed(f"GOAWAY {event.error_code}")
        if self._transport is not None:
            self._transport.write(h2c.data_to_send())

    def connection_lost(self, exc: Exception | None) -> None:
        for _ in self._streams:
            self._load.failed(f"connection lost: {exc}")
        self._streams.clear()
        self._transport = None


async def _wait_version(load: _Load, version: str, limit_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit_s):
            await load.complete(version).wait()
    times = load.arrivals.get(version, [])
    _emit({"ev": "arrivals", "version": version, "times": times,
           "missing": load.count - len(times), "cpu_s": time.process_time()})


async def _progress(load: _Load) -> None:
    while True:
        _emit({"ev": "progress", **load.report()})
        if load.t_all_first is not None:
            _emit({"ev": "connected", "t_all": load.t_all_first, "cpu_s": time.process_time()})
            return
        await asyncio.sleep(0.5)


async def _generate(args: argparse.Namespace) -> None:
    from envoy.service.discovery.v3 import discovery_pb2
    from grpc import aio

    _raise_nofile(1 << 20)
    commands = _commands(asyncio.get_running_loop())
    load = _Load(args.count)
    channels: list[aio.Channel] = []
    connections: list[asyncio.BaseTransport] = []
    streams: list[asyncio.Task[None]] = []
    background: list[asyncio.Task[None]] = []
    _emit({"ev": "ready", "pid": os.getpid(), "cpu_s": time.process_time()})
    try:
        while (command := await commands.get()) is not None:
            op = command["op"]
            if op == "quit":
                break
            if op == "go" and args.client == "h2":
                loop = asyncio.get_running_loop()
                per = args.per_channel
                for start in range(0, args.count, per):
                    ids = [f"bench-{args.index}-{i}" for i in range(start, min(start + per, args.count))]
                    transport, _ = await loop.create_connection(
                        functools.partial(_H2Client, load, ids), "127.0.0.1", args.port)
                    connections.append(transport)
                background.append(asyncio.create_task(_progress(load)))
            elif op == "go":
                target = f"127.0.0.1:{args.port}"
                per = args.per_channel
                # A local subchannel pool: every channel gets its own TCP connection.
                options = [("grpc.use_local_subchannel_pool", 1)]
                for start in range(0, args.count, per):
                    channel = aio.insecure_channel(target, options=options)
                    channels.append(channel)
                    factory = channel.stream_stream(
                        ADS_METHOD,
                        request_serializer=bytes,
                        response_deserializer=discovery_pb2.DiscoveryResponse.FromString,
                    )
                    for i in range(start, min(start + per, args.count)):
                        node_id = f"bench-{args.index}-{i}"
                        streams.append(asyncio.create_task(
                            _stream(load, factory, node_id, not args.no_retry)))
                background.append(asyncio.create_task(_progress(load)))
            elif op == "wait":
                background.append(asyncio.create_task(
                    _wait_version(load, command["version"], command["timeout"])))
            elif op == "status":
                _emit({"ev": "status", "cpu_s": time.process_time(), **load.report()})
    finally:
        for task in (*background, *streams):
            task.cancel()
        await asyncio.gather(*background, *streams, return_exceptions=True)
        for channel in channels:
            await channel.close()
        for connection in connections:
            connection.close()


# -- the driver -------------------------------------------------------------


class _Child:
    """A child process of this file, spoken to in JSON lines."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self.queues: dict[str, asyncio.Queue[Event]] = {}
        self.progress: Event = {}
        self.cpu_at_ready = 0.0
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, name: str, role_args: list[str]) -> _Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, SELF, *role_args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,
        )
        return cls(name, proc)

    def has(self, ev: str) -> bool:
        queue = self.queues.get(ev)
        return queue is not None and not queue.empty()

    def _queue(self, ev: str) -> asyncio.Queue[Event]:
        return self.queues.setdefault(ev, asyncio.Queue())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                event = json.loads(line)
            except ValueError:
                sys.stderr.write(f"[{self.name}] {line.decode(errors='replace')}")
                continue
            if event.get("ev") == "progress":
                self.progress = event
            else:
                self._queue(event["ev"]).put_nowait(event)

    async def send(self, command: Event) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self.proc.stdin.drain()

    async def expect(self, ev: str, limit_s: float) -> Event:
        """The next event ``ev``; fails if the child exits or ``limit_s`` passes first."""
        wanted = asyncio.ensure_future(self._queue(ev).get())
        gone = asyncio.ensure_future(self.proc.wait())
        try:
            done, _ = await asyncio.wait({wanted, gone}, timeout=limit_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if gone in done and wanted not in done:
            # Its last lines may still be on their way through the pipe.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(wanted), 2)
        if wanted.done():
            return wanted.result()
        wanted.cancel()
        if gone in done:
            raise RuntimeError(
                f"{self.name} exited ({self.proc.returncode}) while waiting for {ev!r}")
        raise TimeoutError(f"{self.name}: no {ev!r} within {limit_s:.0f} s")

    async def stop(self) -> None:
        """Ask it to quit; kill it by PID if it does not within a few seconds."""
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.send({"op": "quit"})
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()  # SIGKILL to this child's PID
                await self.proc.wait()
        self._reader.cancel()


@dataclass
class _Change:
    generation: int
    version: str
    wake_s: float
    wake_gc_s: float
    p50_s: float
    p99_s: float
    all_s: float
    missing: int
    server_responses_s: float | None
    server_acks_s: float | None
    server_cpu_s: float
    server_gc_s: float
    server_gc_full: int
    server_gc_full_s: float


def _shares(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


@dataclass
class _Storm:
    seconds: float | None  # None: not every stream had its first response in time
    first: int
    server: Event
    server_cpu_s: float
    server_gc_s: float
    load_cpu_s: float


def _failure_kinds(events: Sequence[Event]) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for event in events:
        kinds.update(event.get("failure_kinds", {}))
    return kinds


def _failures(events: Sequence[Event], top: int = 1) -> tuple[int, str]:
    """Failed stream attempts in all, and the most common reasons."""
    kinds = _failure_kinds(events)
    why = "; ".join(f"{kind} (x{count})" for kind, count in kinds.most_common(top))
    return sum(kinds.values()), why


async def _connect_storm(args: argparse.Namespace, server: _Child, loads: list[_Child]) -> _Storm:
    n = args.streams
    before = await _rss(server)
    t_go = time.time()
    await server.send({"op": "watch", "tag": "connect", "responses": n, "acks": n,
                       "since": t_go, "timeout": args.timeout})
    for load in loads:
        await load.send({"op": "go"})
    connected: dict[str, Event] = {}
    deadline = time.monotonic() + args.timeout
    next_line = time.monotonic()
    while len(connected) < len(loads) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        for load in loads:
            if load.name not in connected and load.has("connected"):
                connected[load.name] = await load.expect("connected", 1)
            if load.proc.returncode is not None:
                raise RuntimeError(f"{load.name} exited ({load.proc.returncode})")
        now = time.monotonic()
        if now >= next_line or len(connected) == len(loads):
            first = sum(load.progress.get("first", 0) for load in loads)
            failed, why = _failures([load.progress for load in loads])
            print(f"  connect storm: {first:>6}/{n} streams have their first response "
                  f"({time.time() - t_go:5.1f} s; {failed} failed attempts{', ' + why if why else ''})",
                  flush=True)
            next_line = now + 1.0
    seconds = None
    if len(connected) == len(loads):
        seconds = max(event["t_all"] for event in connected.values()) - t_go
    else:
        print(f"  connect storm: not every stream connected within {args.timeout:.0f} s", flush=True)
    watched = await server.expect("watched", args.timeout + 30)
    after = await _rss(server)
    load_cpu = 0.0
    for load in loads:
        await load.send({"op": "status"})
        load_cpu += (await load.expect("status", 60))["cpu_s"] - load.cpu_at_ready
    return _Storm(seconds, sum(load.progress.get("first", 0) for load in loads), watched,
                  after["cpu_s"] - before["cpu_s"], after["gc_s"] - before["gc_s"], load_cpu)


async def _change(args: argparse.Namespace, server: _Child, loads: list[_Child], generation: int
                  ) -> _Change:
    n = args.streams
    total = n * (generation + 1)
    before = await _rss(server)
    # The server watches its counters from its own set time.
    await server.send({"op": "set", "generation": generation, "responses": total,
                       "acks": total, "timeout": args.change_timeout})
    done = await server.expect("set", 60)
    t_set, version = done["t_set"], done["version"]
    for load in loads:
        await load.send({"op": "wait", "version": version, "timeout": args.change_timeout})
    times: list[float] = []
    missing = 0
    for load in loads:
        event = await load.expect("arrivals", args.change_timeout + 30)
        times.extend(t - t_set for t in event["times"])
        missing += event["missing"]
    watched = await server.expect("watched", args.change_timeout + 30)
    after = await _rss(server)
    times.sort()
    return _Change(
        generation, version, done["wake_s"], done["wake_gc_s"],
        _percentile(times, 50), _percentile(times, 99), times[-1] if times else float("nan"),
        missing, watched["responses_s"], watched["acks_s"], after["cpu_s"] - before["cpu_s"],
        after["gc_s"] - before["gc_s"], after["gc_full"] - before["gc_full"],
        after["gc_full_s"] - before["gc_full_s"],
    )


async def _memory_report(server: _Child, args: argparse.Namespace) -> Event:
    if not args.trace_memory:
        return {"traced_kb": 0, "text": ""}
    await server.send({"op": "memory", "top": 25})
    return await server.expect("memory", 300)


async def _rss(server: _Child, objects: bool = False) -> Event:
    await server.send({"op": "rss", "objects": objects})
    return await server.expect("rss", 120)


def _fmt(value: float | None, unit: str = "s") -> str:
    return "-" if value is None else f"{value:.3f} {unit}"


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


async def _profile(server: _Child, on: bool, path: str = "") -> str:
    if on:
        await server.send({"op": "profile_on"})
        await server.expect("profile_on", 60)
        return ""
    await server.send({"op": "profile_off", "path": path, "top": 30})
    return str((await server.expect("profile_off", 120))["text"])


async def _drive(args: argparse.Namespace) -> int:
    nofile = _raise_nofile(1 << 20)
    children: list[_Child] = []
    profile_text = ""
    try:
        server_args = ["--serve", "--changes", str(args.changes), "--clusters", str(args.clusters)]
        for option in args.server_option:
            server_args += ["--server-option", option]
        if args.trace_memory:
            server_args.append("--trace-memory")
        if args.bare:
            server_args.append("--bare")
        if args.bare_h2:
            server_args.append("--bare-h2")
        server_args += ["--server-gc", args.server_gc, "--transport", args.transport]
        server = await _Child.start("server", server_args)
        children.append(server)
        ready = await server.expect("ready", 60)
        port = ready["port"]
        loads: list[_Child] = []
        for index, count in enumerate(_shares(args.streams, args.clients)):
            role = ["--load", "--port", str(port), "--index", str(index), "--count", str(count),
                    "--per-channel", str(args.per_channel), "--client", args.client]
            load = await _Child.start(f"load-{index}", role + (["--no-retry"] if args.no_retry else []))
            children.append(load)
            loads.append(load)
        for load in loads:
            load.cpu_at_ready = (await load.expect("ready", 60))["cpu_s"]
        extra = f"; extra server options {args.server_option}" if args.server_option else ""
        if args.bare:
            extra += "; BARE grpc.aio server (not Switchman)"
        if args.bare_h2:
            extra += "; BARE asyncio + h2 server (neither Switchman nor grpc.aio)"
        if args.server_gc != "serve":
            extra += f"; server GC: {args.server_gc}"
        print(f"ads_streams: {args.streams} ADS SotW streams (CDS) from {args.clients} load "
              f"generators, {args.per_channel} streams per channel; server pid {ready['pid']} "
              f"on 127.0.0.1:{port}; fd limit {nofile}{extra}", flush=True)

        rss_before = await _rss(server, objects=True)
        memory_before = await _memory_report(server, args)
        if args.profile in ("connect", "all"):
            await _profile(server, True)
        storm = await _connect_storm(args, server, loads)
        if args.profile == "connect":
            profile_text = await _profile(server, False, args.profile_out)
        await asyncio.sleep(args.settle)
        rss_streams = await _rss(server, objects=True)
        memory_streams = await _memory_report(server, args)
        if args.server_gc == "freeze":
            await server.send({"op": "gc_freeze"})
            frozen = await server.expect("gc_freeze", 120)
            print(f"  server: gc.freeze() moved {frozen['frozen']} objects out of the collector's "
                  "reach", flush=True)
        print(f"  connect storm: {_fmt(storm.seconds)}; server RSS {rss_before['rss_kb']} kB -> "
              f"{rss_streams['rss_kb']} kB with {rss_streams['streams']} streams", flush=True)

        if args.profile == "change":
            await _profile(server, True)
        changes: list[_Change] = []
        for generation in range(1, args.changes + 1):
            change = await _change(args, server, loads, generation)
            changes.append(change)
            print(f"  change {generation}: version {change.version} on all streams after "
                  f"{change.all_s:.3f} s (p50 {change.p50_s:.3f} s, missing {change.missing})",
                  flush=True)
            await asyncio.sleep(args.settle)
        if args.profile in ("change", "all"):
            profile_text = await _profile(server, False, args.profile_out)
        rss_after = await _rss(server)
        statuses = []
        for load in loads:
            await load.send({"op": "status"})
            statuses.append(await load.expect("status", 60))
    finally:
        for child in reversed(children):
            await child.stop()

    n = args.streams
    served = rss_streams["streams"] or n  # per stream the server holds (all of them, normally)
    rss_per_stream = (rss_streams["rss_kb"] - rss_before["rss_kb"]) / served
    objects_per_stream = (rss_streams["objects"] - rss_before["objects"]) / served
    python_per_stream = (memory_streams["traced_kb"] - memory_before["traced_kb"]) / served
    failed, why = _failures(statuses, top=3)
    change_all = [c.all_s if c.missing == 0 else float("inf") for c in changes]
    storm_ok = storm.seconds is not None and storm.seconds <= TARGET_CONNECT_S
    storm_wall = storm.seconds or args.timeout
    rows = [
        ("streams (server-side count)", f"{rss_streams['streams']}", ""),
        ("connect storm: all first responses", _fmt(storm.seconds),
         f"<= {TARGET_CONNECT_S:.0f} s: {_verdict(storm_ok)}"
         + ("" if storm.seconds is not None else f" ({storm.first}/{n} in {args.timeout:.0f} s)")),
        ("  server: all sent / all ACKed",
         f"{_fmt(storm.server['responses_s'])} / {_fmt(storm.server['acks_s'])}", ""),
        ("  CPU: server / load generators", f"{storm.server_cpu_s:.2f} s / {storm.load_cpu_s:.2f} s",
         f"server CPU/wall {storm.server_cpu_s / storm_wall:.0%}, GC {storm.server_gc_s:.2f} s"),
        ("server RSS before / with streams / end",
         f"{rss_before['rss_kb'] / 1024:.1f} / {rss_streams['rss_kb'] / 1024:.1f} / "
         f"{rss_after['rss_kb'] / 1024:.1f} MiB", ""),
        ("server RSS per stream", f"{rss_per_stream:.1f} KB",
         f"<= {TARGET_RSS_KB:.0f} KB: {_verdict(rss_per_stream <= TARGET_RSS_KB)}"),
        ("  Python objects per stream (gc-tracked)", f"{objects_per_stream:.0f}", ""),
        *([("  Python heap per stream (tracemalloc)", f"{python_per_stream:.1f} KB", "")]
          if args.trace_memory else []),
    ]
    for c in changes:
        rows.append((f"change {c.generation}: all streams have it", f"{c.all_s:.3f} s",
                     f"<= {TARGET_CHANGE_S:.0f} s: {_verdict(c.all_s <= TARGET_CHANGE_S and not c.missing)}"))
        rows.append(("  p50 / p99 / max", f"{c.p50_s:.3f} / {c.p99_s:.3f} / {c.all_s:.3f} s",
                     f"missing {c.missing}"))
        rows.append(("  server: wake all / all sent / all ACKed",
                     f"{c.wake_s:.3f} / {_fmt(c.server_responses_s)} / {_fmt(c.server_acks_s)}",
                     f"server CPU {c.server_cpu_s:.2f} s, GC {c.server_gc_s:.2f} s "
                     f"({c.server_gc_full} full: {c.server_gc_full_s:.2f} s; "
                     f"{c.wake_gc_s:.2f} s while waking)"))
    rows.append(("failed stream attempts (reconnected)", str(failed), why))
    if rss_after.get("errors"):
        rows.append(("server protocol errors", str(sum(rss_after["errors"].values())),
                     json.dumps(rss_after["errors"])))
    width = max(len(r[0]) for r in rows) + 2
    vwidth = max(len(r[1]) for r in rows) + 2
    print()
    print(f"{'measure':<{width}}{'value':<{vwidth}}target")
    print("-" * (width + vwidth + 24))
    for name, value, note in rows:
        print(f"{name:<{width}}{value:<{vwidth}}{note}")
    if args.trace_memory:
        print(f"\nserver Python allocations made while the streams connected (tracemalloc):\n"
              f"{memory_streams['text']}")
    if args.profile != "none":
        print(f"\nserver cProfile ({args.profile}), saved to {args.profile_out}:\n{profile_text}")
    figures = {
        "streams": n,
        "clients": args.clients,
        "per_channel": args.per_channel,
        "clusters": args.clusters,
        "server": "bare h2" if args.bare_h2 else "bare grpc.aio" if args.bare else f"switchman ({args.transport})",
        "client": args.client,
        "server_options": args.server_option,
        "server_gc": args.server_gc,
        "connect_storm_s": _round(storm.seconds),
        "connect_first_responses": storm.first,
        "connect_server_sent_s": _round(storm.server["responses_s"]),
        "connect_server_acked_s": _round(storm.server["acks_s"]),
        "connect_server_cpu_s": round(storm.server_cpu_s, 3),
        "connect_server_gc_s": round(storm.server_gc_s, 3),
        "connect_load_cpu_s": round(storm.load_cpu_s, 3),
        "change_all_s": [_round(c.all_s) for c in changes],
        "change_p50_s": [_round(c.p50_s) for c in changes],
        "change_p99_s": [_round(c.p99_s) for c in changes],
        "change_server_sent_s": [_round(c.server_responses_s) for c in changes],
        "change_server_cpu_s": [round(c.server_cpu_s, 3) for c in changes],
        "change_server_gc_s": [round(c.server_gc_s, 3) for c in changes],
        "change_wake_s": [round(c.wake_s, 3) for c in changes],
        "change_missing": [c.missing for c in changes],
        "rss_before_kb": rss_before["rss_kb"],
        "rss_streams_kb": rss_streams["rss_kb"],
        "rss_per_stream_kb": round(rss_per_stream, 2),
        "objects_per_stream": round(objects_per_stream, 1),
        "failed_attempts": failed,
        "failure_kinds": dict(_failure_kinds(statuses).most_common(5)),
        "server_errors": rss_after.get("errors", {}),
        "targets_met": {
            "connect_storm": storm_ok,
            "change": bool(changes) and max(change_all) <= TARGET_CHANGE_S,
            "rss_per_stream": rss_per_stream <= TARGET_RSS_KB,
        },
    }
    print(json.dumps(figures))
    return 0


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 4)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--streams", type=int, default=10_000,
                        help="streams in all (default 10000)")
    parser.add_argument("--clients", type=int, default=2,
                        help="load-generator processes (default 2)")
    parser.add_argument("--per-channel", type=int, default=100,
                        help="streams per channel, i.e. per HTTP/2 connection (default 100)")
    parser.add_argument("--changes", type=int, default=3,
                        help="snapshot changes to time (default 3)")
    parser.add_argument("--clusters", type=int, default=2,
                        help="EDS clusters in the snapshot, i.e. the size of a CDS response "
                             "(default 2)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for the connect storm (default 120)")
    parser.add_argument("--change-timeout", type=float, default=30.0,
                        help="seconds to wait for a change to reach every stream (default 30)")
    parser.add_argument("--no-retry", action="store_true",
                        help="a failed stream stays down (default: reconnect with backoff like Envoy)")
    parser.add_argument("--server-option", action="append", default=[], metavar="KEY=INT",
                        help="an extra gRPC server option, e.g. "
                             "grpc.server.max_pending_requests=20000 (repeatable)")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds of quiet between phases (default 1)")
    parser.add_argument("--profile", choices=("none", "connect", "change", "all"), default="none",
                        help="cProfile the server's event loop during this phase")
    parser.add_argument("--bare", action="store_true",
                        help="serve with a minimal grpc.aio handler instead of Switchman, "
                             "to see grpc.aio's own share")
    parser.add_argument("--bare-h2", action="store_true",
                        help="serve with a minimal asyncio + h2 (python-hyper) server speaking gRPC's "
                             "framing instead of grpc.aio: that transport's floor")
    parser.add_argument("--client", choices=("grpc", "h2"), default="grpc",
                        help="the load generators' client: grpcio's, or gRPC over h2 directly (lighter, "
                             "no reconnects)")
    parser.add_argument("--transport", choices=("grpc", "h2"), default="h2",
                        help="Switchman's xDS transport: grpc.aio, or its own HTTP/2 one (switchman/xds/h2)")
    parser.add_argument("--server-gc", choices=("serve", "python", "freeze", "off"), default="serve",
                        help="the server's garbage collector: as switchman serve runs it (collect-then-freeze "
                             "rounds every 1 s; the floors leave it as is); Python's as is; gc.freeze() once "
                             "after the connect storm; or off (to see its share)")
    parser.add_argument("--trace-memory", action="store_true",
                        help="tracemalloc in the server: Python's share of the memory per stream "
                             "and where it is allocated (slows the server down)")
    parser.add_argument("--profile-out", default="/tmp/ads_streams_server.prof",
                        help="where the server's cProfile stats go")
    role = parser.add_mutually_exclusive_group()
    role.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    role.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.profile_out = os.path.abspath(args.profile_out)
    if args.streams < 1 or args.clients < 1 or args.per_channel < 1:
        parser.error("--streams, --clients and --per-channel must be positive")
    if args.bare and args.bare_h2:
        parser.error("--bare and --bare-h2 exclude each other")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.serve:
        asyncio.run(_serve(args))
        return 0
    if args.load:
        asyncio.run(_generate(args))
        return 0
    try:
        return asyncio.run(_drive(args))
    except Exception as exc:  # the figures are incomplete: say why, still as one JSON line
        traceback.print_exc()
        print(json.dumps({"streams": args.streams, "error": f"{type(exc).__name__}: {exc}"}))
        return 1


if __name__ == "__main__":
    sys.exit(main())
