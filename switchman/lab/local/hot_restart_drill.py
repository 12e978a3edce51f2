"""The hot-restart drill: hot restart an Envoy under open-loop load and prove that no request failed.

A real Switchman runs in this process (port 0, a SQLite store in the work
folder) and configures, through its public API, a Service with two real
upstreams, its Routes and a Listener on a fixed port (a hot restart hands
listen sockets over by address; a port-0 listener would get a new port in
every epoch). A :class:`~switchman.lab.local.hot_restart.HotRestartFamily`
takes that config over ADS. While :func:`~switchman.lab.local.load.run_load`
sends requests at a fixed rate through the listener (HTTP/1.1 with a new
connection per request, HTTP/1.1 keep-alive and HTTP/2), the family is hot
restarted once or more. Each time, when the new epoch goes LIVE (the moment it
takes over) the drill compares what it runs with what Switchman serves.

The drill passes when, across every restart, no request got a non-2xx answer
or a connection error, ``server.hot_restart_generation`` rose by one each
time, the new epoch ran the current config before it took over, and the old
epoch drained and exited 0. Timings are measured and reported, not judged.

Then, unless told not to, two negative drills whose outcome is Envoy's to
tell: (a) an unrelated Envoy started with a base id a running family holds,
(b) epoch 1 started while epoch 0 is still initializing. Both are reported
with Envoy's own error line (:class:`~switchman.lab.report.hot_restart.BaseIdClash`,
:class:`~switchman.lab.report.hot_restart.EarlyRestart`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from switchman.app import ServeSettings, Switchman
from switchman.client import SwitchmanClient
from switchman.errors import LabError
from switchman.lab.local.envoy import EnvoyProcess, bootstrap
from switchman.lab.local.hot_restart import EnvoyStartError, Handover, HotRestartFamily, endpoints_of
from switchman.lab.local.load import ClientKind, LoadResult, run_load
from switchman.lab.local.supervisor import wait_synced
from switchman.lab.local.upstream import Upstream
from switchman.lab.report.hot_restart import (
    BaseIdClash,
    ConfigCheck,
    EarlyRestart,
    HotRestartReport,
    RestartFigures,
    load_figures,
    series,
)

__all__ = ["HotRestartDrillSettings", "run_hot_restart_drill"]

NODE = "hot-restart-drill"
GROUP = "hot-restart"  # the node cluster: Switchman serves the drill's Envoys as one group
LISTENER = "ingress"
XDS_TYPES = ("cds", "eds", "lds", "rds")


@dataclass(frozen=True, slots=True)
class HotRestartDrillSettings:
    """How the drill runs. ``run_dir``: where the report (report.json, report.html, requests.png),
    the store and the Envoys' logs go; None: a temporary folder, removed afterwards."""

    rate: float = 200.0  # requests per second, open loop
    duration_s: float = 6.0  # the load's length (and rate * duration_s its count)
    restarts: int = 1
    first_restart_s: float = 1.5  # into the load; each next restart follows the previous one's end
    restart_gap_s: float = 0.5  # between one old epoch's exit and the next restart
    drain_time_s: int = 2  # Envoy's --drain-time-s
    parent_shutdown_time_s: int = 3  # Envoy's --parent-shutdown-time-s
    clients: tuple[ClientKind, ...] = tuple(ClientKind)
    request_timeout_s: float = 5.0
    negative_drills: bool = True
    base_id: int | None = None  # None: a free one
    run_dir: Path | None = None
    xds_transport: str = "h2"
    startup_timeout_s: float = 20.0


def _free_port() -> int:
    """A TCP port free on loopback now (Envoy binds it a moment later; another process could take it
    in between, which would show as the family failing to start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def drill_documents(v1_port: int, v2_port: int, listener_port: int) -> list[dict[str, Any]]:
    """``checkout`` v1 and v2 at the upstreams, split 50/50, behind routes and a listener on ``listener_port``."""
    return [
        {
            "kind": "Service",
            "metadata": {"name": "checkout"},
            "spec": {
                "versions": {
                    "v1": {"endpoints": [{"address": "127.0.0.1", "port": v1_port}]},
                    "v2": {"endpoints": [{"address": "127.0.0.1", "port": v2_port}]},
                },
                "weights": {"v1": 50, "v2": 50},
                "connectTimeout": "500ms",
            },
        },
        {
            "kind": "Routes",
            "metadata": {"name": "ingress-routes"},
            "spec": {
                "virtualHosts": [
                    {"name": "shop", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "service": "checkout"}]}
                ]
            },
        },
        {
            "kind": "Listener",
            "metadata": {"name": LISTENER},
            "spec": {"address": "127.0.0.1", "port": listener_port, "routes": "ingress-routes"},
        },
    ]


@dataclass(frozen=True, slots=True)
class Served:
    """What Switchman serves a node now: its revision, per xDS type the version a synced stream of
    the node ACKed, and per cluster the endpoints (from ``/v1/render``)."""

    revision: int
    versions: dict[str, str]
    endpoints: dict[str, list[str]]


async def served_to(client: SwitchmanClient, node_id: str, timeout: float = 3.0) -> Served:
    """Ask Switchman's API what it serves ``node_id``.

    The status API merges the streams of one node id, and a family's epochs share it: a type
    counts once one of its streams is *synced* (ACKed exactly what is served now). During a
    hand-over the old epoch is; this asks again, for up to ``timeout``, until every type has one.
    """
    deadline = time.monotonic() + timeout
    while True:
        status = await client.status()
        versions: dict[str, str] = {}
        for node in status.get("nodes") or ():
            if node.get("node_id") == node_id:
                for entry in node.get("types") or ():
                    if entry.get("synced") and entry.get("acked_version"):
                        versions.setdefault(str(entry["type"]), str(entry["acked_version"]))
        if set(XDS_TYPES) <= versions.keys() or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    rendered = await client.render(node=node_id)
    endpoints = {
        str(assignment.get("clusterName", "")): endpoints_of(assignment)
        for assignment in (rendered.get("resources") or {}).get("eds") or ()
    }
    return Served(int(status.get("revision") or 0), dict(sorted(versions.items())), dict(sorted(endpoints.items())))


def check_config(handover: Handover, served: Served, applied_revision: int) -> ConfigCheck:
    """Did the new epoch of ``handover`` run, when it went LIVE, what Switchman served (``served``)?

    Listeners, clusters and routes by version (the ``version_info`` in its config_dump against
    the version ACKed by a synced stream); endpoints by content, since Envoy keeps no version for them.
    """
    versions_match = all(
        t in served.versions and handover.config_versions.get(t) == [served.versions[t]]
        for t in XDS_TYPES if t != "eds"
    )
    current = (
        served.revision == applied_revision and versions_match and bool(served.endpoints)
        and handover.config_endpoints == served.endpoints
    )
    return ConfigCheck(
        applied_revision=applied_revision, served_revision=served.revision,
        epoch_versions=handover.config_versions, served_versions=served.versions,
        epoch_endpoints=handover.config_endpoints, served_endpoints=served.endpoints, current=current,
    )


class XdsGate:
    """A TCP relay to Switchman's xDS port that holds every connection until :meth:`open`.

    An Envoy bootstrapped to the gate connects, sends its requests and hears nothing: it
    waits for its first config and stays initializing (until its initial fetch timeout,
    15 s), however fast the control plane behind would have answered.
    """

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = 0
        self._opened = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._connection, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def open(self) -> None:
        self._opened.set()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.append(writer)
        try:
            await self._opened.wait()
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
            self._writers.append(up_writer)
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        except OSError:
            pass
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()

    async def close(self) -> None:
        """Stop taking connections and end the ones it has (held or relayed)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        if self._server is not None:
            await self._server.wait_closed()


async def _answer(port: int) -> int:
    """The status of one GET through the listener on ``port``; 0 when nothing answered."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as session,
            session.get(f"http://127.0.0.1:{port}/") as resp,
        ):
            await resp.read()
            return resp.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def base_id_clash_drill(xds_port: int, listener_port: int, run_dir: Path, timeout: float) -> BaseIdClash:
    """(a) Start family A, then an unrelated family B with A's base id; see B fail and A carry on."""
    first = HotRestartFamily(
        bootstrap(f"{NODE}-clash-a", xds_port, cluster=GROUP), run_dir=run_dir, listener=LISTENER,
        drain_time_s=1, parent_shutdown_time_s=2,
    )
    try:
        await first.start(timeout)
        second = HotRestartFamily(
            bootstrap(f"{NODE}-clash-b", xds_port, cluster=GROUP), run_dir=run_dir, base_id=first.base_id,
            listener=LISTENER, drain_time_s=1, parent_shutdown_time_s=2,
        )
        started, code, error = False, None, ""
        t0 = time.monotonic()
        try:
            await second.start(timeout)
            started = True
        except EnvoyStartError as exc:
            code, error = exc.exit_code, exc.envoy_error
        failed_after = time.monotonic() - t0
        await second.stop()
        state = str((await first.current.admin_json("/server_info")).get("state", ""))
        answered = await _answer(listener_port)
        restart, restart_error = None, ""
        try:
            restart = await first.restart(timeout)
        except LabError as exc:
            restart_error = str(exc)
        return BaseIdClash(
            base_id=first.base_id, second_started=started, second_exit_code=code, envoy_error=error,
            failed_after_s=round(failed_after, 3), first_state_after=state, first_answered_after=answered,
            first_restart=restart, first_restart_error=restart_error,
        )
    finally:
        await first.stop()


async def early_restart_drill(xds_port: int, run_dir: Path, timeout: float) -> EarlyRestart:
    """(b) Start epoch 0 behind a closed :class:`XdsGate`, start epoch 1 at once, then open the gate."""
    gate = XdsGate(xds_port)
    await gate.start()
    family = HotRestartFamily(
        bootstrap(f"{NODE}-early", gate.port, cluster=GROUP), run_dir=run_dir, listener=LISTENER,
        drain_time_s=1, parent_shutdown_time_s=2,
    )
    try:
        parent = await family.start(timeout, wait_live=False)
        state_before = str((await parent.admin_json("/server_info")).get("state", ""))
        started, code, error = False, None, ""
        t0 = time.monotonic()
        try:
            await family.restart(timeout)
            started = True
        except EnvoyStartError as exc:
            code, error = exc.exit_code, exc.envoy_error
        failed_after = time.monotonic() - t0
        assert parent.proc is not None
        alive = parent.proc.returncode is None
        state_after = str((await parent.admin_json("/server_info")).get("state", "")) if alive else ""
        retry, retry_error, live_after = None, "", 0.0
        if not started and alive:
            t1 = time.monotonic()
            gate.open()
            await family.wait_live(parent, timeout, epoch=0)
            live_after = time.monotonic() - t1
            try:
                retry = await family.restart(timeout)
            except LabError as exc:
                retry_error = str(exc)
        return EarlyRestart(
            base_id=family.base_id, parent_state_before=state_before, child_started=started, child_exit_code=code,
            envoy_error=error, failed_after_s=round(failed_after, 3), parent_alive_after=alive,
            parent_state_after=state_after, parent_live_after_s=round(live_after, 3), retry=retry,
            retry_error=retry_error,
        )
    finally:
        await family.stop()
        await gate.close()


@dataclass(slots=True)
class _Run:
    """What the positive drill gathers as it goes."""

    restarts: list[tuple[Handover, ConfigCheck]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


async def _restart_under_load(
    family: HotRestartFamily, client: SwitchmanClient, revision: int, settings: HotRestartDrillSettings,
    load: asyncio.Task[LoadResult], run: _Run,
) -> None:
    served: list[Served] = []

    async def at_live(new: EnvoyProcess) -> None:
        served.append(await served_to(client, family.node_id))

    await asyncio.sleep(settings.first_restart_s)
    for i in range(settings.restarts):
        if load.done():
            run.problems.append(f"the load ended before restart {i + 1} of {settings.restarts}")
            return
        served.clear()
        handover = await family.restart(settings.startup_timeout_s, at_live=at_live)
        run.restarts.append((handover, check_config(handover, served[0], revision)))
        await asyncio.sleep(settings.restart_gap_s)


def _judge(report_restarts: Sequence[RestartFigures], load_failures: int, non_2xx: int, errors: int,
           wanted: int) -> list[str]:
    problems = []
    if non_2xx:
        problems.append(f"{non_2xx} requests answered with a status outside 2xx")
    if errors:
        problems.append(f"{errors} requests got no answer (connection or protocol errors, timeouts)")
    if len(report_restarts) != wanted:
        problems.append(f"{len(report_restarts)} of {wanted} restarts done")
    for r in report_restarts:
        h = r.handover
        if not h.generation_rose_by_one:
            problems.append(
                f"epoch {h.new_epoch}: hot_restart_generation went {h.generation_before} -> {h.generation_after}"
            )
        if not r.config.current:
            problems.append(f"epoch {h.new_epoch} took over without the current config: {asdict(r.config)}")
        if h.old_exit_code != 0:
            problems.append(f"epoch {h.old_epoch} exited with {h.old_exit_code}")
        if not h.socket_inherited:
            problems.append(f"epoch {h.new_epoch} did not take over epoch {h.old_epoch}'s listen socket")
    return problems


async def run_hot_restart_drill(settings: HotRestartDrillSettings) -> HotRestartReport:
    """Run the drill (and, with ``negative_drills``, the two negative ones); write the report when
    ``settings.run_dir`` is set; return it."""
    if settings.restarts < 1:
        raise LabError("the drill needs at least one restart")
    with contextlib.ExitStack() as stack:
        work = settings.run_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hot-restart-")))
        work.mkdir(parents=True, exist_ok=True)
        report = await _run(settings, work)
    if settings.run_dir is not None:
        # matplotlib, which the writer needs, takes a while to import: only when there is a report to write
        from switchman.lab.report.hot_restart_writer import write_hot_restart_report

        write_hot_restart_report(report, settings.run_dir)
    return report


async def _run(settings: HotRestartDrillSettings, work: Path) -> HotRestartReport:
    envoy_dir = work / "envoy"
    app = Switchman(
        ServeSettings(
            xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=str(work / "switchman.db"),
            xds_transport=settings.xds_transport,
        )
    )
    blue, green = Upstream("checkout", "v1"), Upstream("checkout", "v2")
    family: HotRestartFamily | None = None
    await app.start()
    try:
        await blue.start()
        await green.start()
        listener_port = _free_port()
        async with SwitchmanClient(f"http://127.0.0.1:{app.api_port}", author="hot-restart-drill") as client:
            applied = await client.apply(
                drill_documents(blue.port, green.port, listener_port), message="hot-restart drill"
            )
            revision = applied.revision or 0
            family = HotRestartFamily(
                bootstrap(NODE, app.xds_port, cluster=GROUP), run_dir=envoy_dir, base_id=settings.base_id,
                listener=LISTENER, drain_time_s=settings.drain_time_s,
                parent_shutdown_time_s=settings.parent_shutdown_time_s,
            )
            await family.start(settings.startup_timeout_s)
            await wait_synced(client, revision, {NODE}, settings.startup_timeout_s)
            envoy_version = str((await family.current.admin_json("/server_info")).get("version", ""))

            result = LoadResult()
            count = int(settings.rate * settings.duration_s)
            load = asyncio.create_task(
                run_load(
                    [f"http://127.0.0.1:{listener_port}/"], settings.rate, count,
                    max_seconds=settings.duration_s + 1.0, timeout=settings.request_timeout_s, into=result,
                    kinds=settings.clients,
                )
            )
            run = _Run()
            try:
                await _restart_under_load(family, client, revision, settings, load, run)
            except LabError as exc:
                run.problems.append(f"restart {len(run.restarts) + 1} failed: {exc}")
            await load
            base_id = family.base_id
            hot_restart_version = family.hot_restart_version
            await family.stop()
            family = None

            clash = early = None
            if settings.negative_drills:
                clash = await base_id_clash_drill(app.xds_port, listener_port, envoy_dir, settings.startup_timeout_s)
                early = await early_restart_drill(app.xds_port, envoy_dir, settings.startup_timeout_s)
    finally:
        if family is not None:
            await family.stop()
        await blue.stop()
        await green.stop()
        await app.stop(grace=0.5)

    samples = result.samples
    origin = samples[0].started if samples else time.time()
    restarts = []
    for handover, check in run.restarts:
        end = handover.started_at + handover.old_exited_s
        window = [s for s in samples if handover.started_at <= s.started <= end]
        restarts.append(
            RestartFigures(
                handover=handover, config=check, requests=len(window), failures=sum(1 for s in window if not s.ok),
                started_s=round(handover.started_at - origin, 3),
            )
        )
    figures = load_figures(samples, settings.rate, result.resent)
    problems = [*run.problems, *_judge(restarts, figures.requests - figures.successes, figures.non_2xx,
                                       figures.errors, settings.restarts)]
    failed = tuple(
        {"t_s": round(s.started - origin, 4), "client": s.client, "status": s.status, "error": s.error,
         "latency_ms": round(s.latency_ms, 2)}
        for s in samples if not s.ok
    )[:100]
    return HotRestartReport(
        passed=not problems,
        problems=tuple(problems),
        settings=_settings_json(settings),
        started_at=origin,
        envoy_version=envoy_version,
        hot_restart_version=hot_restart_version,
        base_id=base_id,
        node_id=NODE,
        listener_port=listener_port,
        applied_revision=revision,
        restarts=tuple(restarts),
        load=figures,
        failed_requests=failed,
        bin_s=0.1,
        series=series(samples, origin, 0.1),
        base_id_clash=clash,
        early_restart=early,
    )


def _settings_json(settings: HotRestartDrillSettings) -> dict[str, Any]:
    out = asdict(settings)
    out["clients"] = [kind.value for kind in settings.clients]
    out["run_dir"] = str(settings.run_dir) if settings.run_dir is not None else None
    return out
