"""An Envoy run as a hot-restartable family: epoch 0, then epoch N+1 taking over from epoch N.

How Envoy's hot restart works, and why this module is shaped so:

* A family is keyed by its **base id**. Every epoch of it binds abstract Unix
  datagram sockets named ``@envoy_domain_socket_{parent|child}_{10 * base_id
  + epoch % 3}`` (the *hot-restart domain sockets*) and epoch 0 creates the
  shared memory ``/dev/shm/envoy_shared_memory_{10 * base_id}`` (it unlinks
  whatever had that name first); later epochs attach to it. Two unrelated
  Envoys with the same base id therefore clash: the second cannot bind its
  domain socket and exits. So every family picks a base id that no socket on
  this machine holds and no shared memory file names (:func:`free_base_id`),
  and tests that run side by side do not meet.
* Epoch N+1 (same base id, ``--restart-epoch N+1``) first asks epoch N, over
  the domain socket, to close its admin listener, then initializes like any
  Envoy: its bootstrap sends it to Switchman, and it is not *initialized*
  until the first listeners, clusters, routes and endpoints came over xDS.
  While it builds its listeners it asks the parent for each listen socket by
  address; the parent sends the file descriptor over the domain socket
  (``SCM_RIGHTS``). The child then accepts from the very socket the parent
  accepted from, so no connection waiting in the kernel's accept queue is
  lost. Binding a second socket instead, which ``SO_REUSEPORT`` (on by default
  for Envoy's listeners on Linux) would allow, splits new connections between
  two queues, and closing the parent's socket drops whatever waits in its queue.
  The hand-over is by address: a listener on port 0 gets a new port in every
  epoch, so a family's listeners need fixed ports.
* Once initialized, the child starts its workers, goes ``LIVE`` and tells the
  parent to drain: the parent stops accepting and, for ``--drain-time-s``,
  closes its connections as they finish requests (``connection: close`` on
  HTTP/1.1, GOAWAY on HTTP/2). ``--parent-shutdown-time-s`` after the child
  started, the child tells the parent to exit; the parent exits 0.
* A child started while its parent is itself still initializing fails at once
  (Envoy's "previous envoy process is still initializing", exit 1) and leaves
  the parent alone: try again, with the same epoch number, once the parent is LIVE.
* ``server.hot_restart_generation`` counts the epochs of the family (1 for
  epoch 0); the child inherits the parent's counters over the domain socket.

Every process is registered with the lab's :class:`~switchman.lab.local.watchdog.Watchdog`
(through :class:`~switchman.lab.local.envoy.EnvoyProcess`), so a family dies with
its parent process. Envoy also sets ``PR_SET_PDEATHSIG`` for itself when hot restart
is on, but that fires when the *thread* that started it ends, which is not what
"dies with us" means.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp

from switchman.errors import LabError
from switchman.lab.local.envoy import EnvoyProcess

__all__ = [
    "EnvoyStartError",
    "Handover",
    "HotRestartFamily",
    "config_endpoints",
    "config_versions",
    "connections_on",
    "endpoints_of",
    "envoy_error_line",
    "free_base_id",
    "listen_socket_inodes",
    "used_base_ids",
]

_DOMAIN_SOCKET: Final = re.compile(r"@envoy_domain_socket_(?:udp_)?(?:parent|child)_(\d+)")
_SHARED_MEMORY: Final = re.compile(r"envoy_shared_memory_(\d+)$")
# Envoy scales the base id by 10 (room for the epochs' sockets) in a signed 32-bit integer: above
# 214,748,364 it wraps (base id 391699835 named its socket base_id=18446744073331582670).
_BASE_ID_RANGE: Final = (10_000, 214_748_364)
_SHM_DIR: Final = Path("/dev/shm")
_BASE_ID_IN_USE: Final = "errno=98"  # EADDRINUSE binding the domain socket: another family holds the base id
_TYPES: Final = {
    "type.googleapis.com/envoy.admin.v3.ClustersConfigDump": "cds",
    "type.googleapis.com/envoy.admin.v3.ListenersConfigDump": "lds",
    "type.googleapis.com/envoy.admin.v3.RoutesConfigDump": "rds",
    "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump": "eds",
}


class EnvoyStartError(LabError):
    """An epoch that exited before it was up. ``envoy_error`` is Envoy's own words (its last stderr line)."""

    def __init__(self, message: str, *, epoch: int, exit_code: int | None, envoy_error: str) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.exit_code = exit_code
        self.envoy_error = envoy_error


@dataclass(frozen=True, slots=True)
class Handover:
    """One hot restart as measured. Durations are seconds from the moment epoch N+1 was spawned.

    ``generation_before`` is read from the old epoch before the new one starts (the new
    one closes the old one's admin API at once), ``generation_after`` from the new one
    once LIVE. ``config_versions`` and ``config_endpoints`` are what the new epoch ran
    when it went LIVE, i.e. when it told the old one to drain: per xDS type (``cds``,
    ``lds``, ``rds``) the ``version_info`` of its dynamic resources in ``/config_dump``,
    and per cluster the endpoints EDS gave it (Envoy keeps no version for those).
    ``socket_inherited``: its listen socket is the old epoch's own (the same socket
    inode in both processes), handed over the domain socket, not a second bind.
    ``drain``: ``(seconds, connections)``, the connections the old epoch still held on the
    listener's port (from ``/proc``), every 100 ms while it drained.
    ``old_exit_code`` is None when the old epoch had not exited in time and was stopped.
    """

    base_id: int
    old_epoch: int
    new_epoch: int
    old_pid: int
    new_pid: int
    started_at: float  # wall clock (time.time()) when the new epoch was spawned
    live_s: float  # spawned -> /server_info says LIVE
    serving_s: float  # spawned -> the listener answered with the new epoch LIVE and holding it
    old_exited_s: float  # spawned -> the old epoch exited
    drain_s: float  # LIVE -> the old epoch exited
    old_exit_code: int | None
    generation_before: int
    generation_after: int
    hot_restart_version: str
    listener_port_before: int
    listener_port_after: int
    socket_inherited: bool
    probe_status: int  # the answer to one GET through the listener once the new epoch was LIVE
    config_versions: dict[str, list[str]]
    config_endpoints: dict[str, list[str]]
    drain: list[tuple[float, int]]

    @property
    def generation_rose_by_one(self) -> bool:
        return self.generation_after == self.generation_before + 1

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["generation_rose_by_one"] = self.generation_rose_by_one
        return out


def used_base_ids(proc_net_unix: Path = Path("/proc/net/unix"), shm: Path = _SHM_DIR) -> set[int]:
    """Base ids that an Envoy of this network namespace holds (its hot-restart domain sockets), or that
    a shared memory file names (a live family in another namespace, or one that was killed)."""
    used: set[int] = set()
    with contextlib.suppress(OSError):
        used |= {int(m.group(1)) // 10 for m in _DOMAIN_SOCKET.finditer(proc_net_unix.read_text(errors="replace"))}
    with contextlib.suppress(OSError):
        used |= {int(m.group(1)) // 10 for p in shm.iterdir() if (m := _SHARED_MEMORY.match(p.name))}
    return used


def free_base_id(rng: random.Random | None = None) -> int:
    """A base id no Envoy here holds, drawn at random from a wide range, so that families started at the
    same moment (parallel tests) are unlikely to draw the same one; :meth:`HotRestartFamily.start`
    draws again if Envoy says the domain socket is taken after all."""
    rng = rng or random.SystemRandom()
    used = used_base_ids()
    while True:
        candidate = rng.randrange(*_BASE_ID_RANGE)
        if candidate not in used:
            return candidate


def _socket_inodes(pid: int, port: int, state: str) -> set[int]:
    """Inodes of the TCP sockets in ``state`` (``/proc/net/tcp``'s hex code) with local port ``port``
    that process ``pid`` holds open."""
    matching: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()  # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if len(fields) > 9 and fields[3] == state and int(fields[1].rsplit(":", 1)[1], 16) == port:
                matching.add(int(fields[9]))
    held: set[int] = set()
    with contextlib.suppress(OSError):
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError, ValueError):
                target = os.readlink(fd.path)
                if target.startswith("socket:[") and int(target[8:-1]) in matching:
                    held.add(int(target[8:-1]))
    return held


def listen_socket_inodes(pid: int, port: int) -> set[int]:
    """The inodes of the TCP sockets listening on ``port`` that process ``pid`` holds open.

    Two processes that show the same inode share one socket (one was handed the other's
    descriptor); two bound sockets on one port (``SO_REUSEPORT``) have different inodes.
    """
    return _socket_inodes(pid, port, "0A")  # LISTEN


def connections_on(pid: int, port: int) -> int:
    """How many connections accepted on ``port`` process ``pid`` holds open (ESTABLISHED or CLOSE_WAIT)."""
    return len(_socket_inodes(pid, port, "01") | _socket_inodes(pid, port, "08"))


def config_versions(dump: Any) -> dict[str, list[str]]:
    """Per xDS type, the versions (``version_info``) of the dynamic resources in an admin ``/config_dump``.

    Envoy leaves ``version_info`` empty for endpoints (EDS): :func:`config_endpoints` tells those.
    """
    out: dict[str, set[str]] = {}
    for config in dump.get("configs", []) if isinstance(dump, dict) else []:
        kind = _TYPES.get(str(config.get("@type", "")))
        if kind is None:
            continue
        found = out.setdefault(kind, set())
        if kind == "cds":
            found |= {str(c.get("version_info", "")) for c in config.get("dynamic_active_clusters", [])}
        elif kind == "lds":
            found |= {
                str(state.get("version_info", ""))
                for listener in config.get("dynamic_listeners", [])
                if (state := listener.get("active_state"))
            }
        elif kind == "rds":
            found |= {str(r.get("version_info", "")) for r in config.get("dynamic_route_configs", [])}
        else:
            found |= {str(e.get("version_info", "")) for e in config.get("dynamic_endpoint_configs", [])}
    return {kind: sorted(v for v in versions if v) for kind, versions in sorted(out.items()) if any(versions)}


def _get(obj: Any, snake: str) -> Any:
    """A field of Envoy JSON, as the admin API writes it (snake_case) or protobuf's JSON (camelCase)."""
    if not isinstance(obj, dict):
        return None
    if snake in obj:
        return obj[snake]
    head, *rest = snake.split("_")
    return obj.get(head + "".join(word.title() for word in rest))


def endpoints_of(assignment: Any) -> list[str]:
    """The ``address:port`` of every endpoint of a ClusterLoadAssignment (admin or protobuf JSON), sorted."""
    found = []
    for locality in _get(assignment, "endpoints") or ():
        for lb in _get(locality, "lb_endpoints") or ():
            socket_address = _get(_get(_get(lb, "endpoint"), "address"), "socket_address")
            if socket_address:
                found.append(f"{_get(socket_address, 'address')}:{_get(socket_address, 'port_value')}")
    return sorted(found)


def config_endpoints(dump: Any) -> dict[str, list[str]]:
    """Per cluster, the endpoints (``address:port``) an admin ``/config_dump?include_eds`` shows from EDS."""
    out: dict[str, list[str]] = {}
    for config in dump.get("configs", []) if isinstance(dump, dict) else []:
        if config.get("@type") == "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump":
            for entry in config.get("dynamic_endpoint_configs", []):
                assignment = entry.get("endpoint_config", {})
                out[str(assignment.get("cluster_name", ""))] = endpoints_of(assignment)
    return dict(sorted(out.items()))


def envoy_error_line(lines: Iterable[str]) -> str:
    """Envoy's own error among its stderr lines: the last line that is not a log line, else the last line."""
    lines = [line.strip() for line in lines if line.strip()]
    plain = [line for line in lines if not line.startswith("[")]
    return (plain or lines or [""])[-1]


async def _generation(envoy: EnvoyProcess) -> int:
    return (await envoy.stats("server.hot_restart_generation")).get("server.hot_restart_generation", 0)


class HotRestartFamily:
    """Epochs of one Envoy: the same bootstrap, the same base id, each taking over from the one before.

    ``listener`` names a listener (from xDS) on a fixed port: each epoch is *serving* once
    it answers there, and each hand-over checks that the new epoch holds the old one's socket.
    ``drain_time_s`` and ``parent_shutdown_time_s`` are Envoy's ``--drain-time-s`` and
    ``--parent-shutdown-time-s``: how long the old epoch closes connections gracefully, and
    when (counted from the new epoch's start) it is told to exit.
    """

    def __init__(
        self,
        config: dict[str, Any],
        *,
        run_dir: Path,
        base_id: int | None = None,
        listener: str | None = None,
        probe_path: str = "/",
        drain_time_s: int = 2,
        parent_shutdown_time_s: int = 3,
        concurrency: int = 1,
        log_level: str = "warning",
    ) -> None:
        if parent_shutdown_time_s <= drain_time_s:
            raise LabError("--parent-shutdown-time-s must be longer than --drain-time-s: the old epoch drains first")
        self.config = config
        self.run_dir = run_dir
        self.node_id = str(config["node"]["id"])
        self._base_id = base_id
        self._chosen_base_id = base_id is None
        self.listener = listener
        self.probe_path = probe_path
        self.drain_time_s = drain_time_s
        self.parent_shutdown_time_s = parent_shutdown_time_s
        self.concurrency = concurrency
        self.log_level = log_level
        self.epoch = -1  # the epoch that serves; -1 before start
        self._current: EnvoyProcess | None = None
        self._spawned: list[EnvoyProcess] = []
        self._attempts: dict[int, int] = {}
        self.hot_restart_version = ""

    @property
    def base_id(self) -> int:
        if self._base_id is None:
            raise LabError("the family has no base id before it starts")
        return self._base_id

    @property
    def current(self) -> EnvoyProcess:
        """The epoch that serves now."""
        if self._current is None:
            raise LabError(f"hot-restart family {self.node_id} is not running")
        return self._current

    def _process(self, epoch: int) -> EnvoyProcess:
        attempt = self._attempts[epoch] = self._attempts.get(epoch, 0) + 1
        name = f"{self.node_id}.epoch{epoch}" + (f".try{attempt}" if attempt > 1 else "")
        proc = EnvoyProcess(
            self.config, run_dir=self.run_dir, name=name, log_level=self.log_level, concurrency=self.concurrency,
            drain_time_s=self.drain_time_s, parent_shutdown_time_s=self.parent_shutdown_time_s, capture_stderr=True,
        )
        self._spawned.append(proc)
        return proc

    async def _spawn(self, epoch: int, timeout: float) -> EnvoyProcess:
        """Start epoch ``epoch`` and wait for its admin API; EnvoyStartError with Envoy's words if it exits."""
        proc = self._process(epoch)
        try:
            await proc.start(timeout, restart_epoch=epoch, base_id=self.base_id)
        except LabError as exc:
            code = proc.proc.returncode if proc.proc is not None else None
            error = envoy_error_line(proc.stderr_tail())
            await proc.stop()  # releases the watchdog's hold on an exited PID; stops one that hung
            raise EnvoyStartError(
                f"epoch {epoch} of {self.node_id} (base id {self.base_id}) did not start: {error or exc}",
                epoch=epoch, exit_code=code, envoy_error=error,
            ) from None
        return proc

    async def wait_live(self, proc: EnvoyProcess, timeout: float, epoch: int = -1) -> dict[str, Any]:
        """Poll ``/server_info`` until the state is LIVE (initialized: its first xDS config applied); its answer."""
        deadline = time.monotonic() + timeout
        info: dict[str, Any] = {}
        while True:
            if proc.proc is not None and proc.proc.returncode is not None:
                raise EnvoyStartError(
                    f"{proc.name} exited with {proc.proc.returncode} before it was LIVE: {proc.log_tail()}",
                    epoch=epoch, exit_code=proc.proc.returncode, envoy_error=envoy_error_line(proc.stderr_tail()),
                )
            with contextlib.suppress(aiohttp.ClientError, ValueError):
                info = await proc.admin_json("/server_info")
                if info.get("state") == "LIVE":
                    return info
            if time.monotonic() > deadline:
                raise LabError(f"{proc.name} not LIVE in {timeout}s (state {info.get('state')}): {proc.log_tail()}")
            await asyncio.sleep(0.01)

    async def _serving(self, proc: EnvoyProcess, timeout: float) -> tuple[int, int]:
        """Wait until ``proc`` has the family's listener and a request through it is answered: (port, status)."""
        if self.listener is None:
            return 0, 0
        port = await proc.wait_listener(self.listener, timeout=timeout)
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as session:
            while True:
                try:
                    async with session.get(f"http://127.0.0.1:{port}{self.probe_path}") as resp:
                        await resp.read()
                        return port, resp.status
                except (aiohttp.ClientError, TimeoutError):
                    if time.monotonic() > deadline:
                        raise
                await asyncio.sleep(0.02)

    async def start(self, timeout: float = 20.0, wait_live: bool = True) -> EnvoyProcess:
        """Start epoch 0 and wait until it is LIVE (and serving, with ``listener``).

        With no base id given, draw free ones (:func:`free_base_id`) until Envoy takes one:
        another family may have taken the same between our look and Envoy's bind.
        ``wait_live=False`` returns once its admin API answers: its hot-restart domain
        sockets and shared memory exist, but it may still be initializing.
        """
        if self._current is not None:
            raise LabError(f"hot-restart family {self.node_id} is already running")
        attempts = 5 if self._chosen_base_id else 1
        for attempt in range(1, attempts + 1):
            if self._chosen_base_id:
                self._base_id = free_base_id()
            try:
                proc = await self._spawn(0, timeout)
            except EnvoyStartError as exc:
                if attempt == attempts or _BASE_ID_IN_USE not in exc.envoy_error:
                    raise
                continue
            break
        self._current, self.epoch = proc, 0
        if wait_live:
            info = await self.wait_live(proc, timeout, epoch=0)
            self.hot_restart_version = str(info.get("hot_restart_version", ""))
            await self._serving(proc, timeout)
        return proc

    async def restart(
        self, timeout: float = 20.0, at_live: Callable[[EnvoyProcess], Awaitable[None]] | None = None
    ) -> Handover:
        """Start epoch N+1, wait until it is LIVE and serving, then until epoch N drained and exited.

        ``at_live(new)`` runs once the new epoch is LIVE (it took over) and serving; the
        handover's ``config_*`` fields hold what it ran the moment it was seen LIVE. Raises
        :class:`EnvoyStartError` when the new epoch exits at once (the family is unchanged:
        the old epoch serves on, and a later ``restart`` tries the same epoch number again).
        """
        old = self.current
        assert old.proc is not None
        generation_before = await _generation(old)
        port_before = await old.listener_port(self.listener) if self.listener else None
        inodes_before = listen_socket_inodes(old.pid, port_before) if port_before else set()
        epoch = self.epoch + 1
        started_at = time.time()
        t0 = time.monotonic()
        new = await self._spawn(epoch, timeout)
        info = await self.wait_live(new, timeout, epoch=epoch)
        live_s = time.monotonic() - t0
        dump = await new.admin_json("/config_dump?include_eds")
        port_after, probe_status = await self._serving(new, timeout)
        serving_s = time.monotonic() - t0
        if at_live is not None:
            await at_live(new)
        generation_after = await _generation(new)
        inodes_after = listen_socket_inodes(new.pid, port_after) if port_after else set()
        self._current, self.epoch = new, epoch
        self.hot_restart_version = str(info.get("hot_restart_version", self.hot_restart_version))

        # The old epoch drains, then exits when the new one tells it to (parent_shutdown_time_s after
        # the new one started). Its admin API is closed, and the new epoch's server.parent_connections
        # is only refreshed at stats flushes (5 s): count its connections on the listener in /proc instead.
        drain: list[tuple[float, int]] = []
        waiting = asyncio.ensure_future(old.proc.wait())
        deadline = t0 + self.parent_shutdown_time_s + 15.0
        while not waiting.done() and time.monotonic() < deadline:
            if port_after:
                drain.append((round(time.monotonic() - t0, 3), connections_on(old.pid, port_after)))
            await asyncio.wait({waiting}, timeout=0.1)
        exit_code: int | None = None
        if waiting.done():
            exit_code = waiting.result()
        else:
            waiting.cancel()
        old_exited_s = time.monotonic() - t0
        await old.stop()  # forgets the PID with the watchdog (or stops an old epoch that overstayed)
        return Handover(
            base_id=self.base_id, old_epoch=epoch - 1, new_epoch=epoch, old_pid=old.pid, new_pid=new.pid,
            started_at=started_at, live_s=round(live_s, 4), serving_s=round(serving_s, 4),
            old_exited_s=round(old_exited_s, 4), drain_s=round(old_exited_s - live_s, 4), old_exit_code=exit_code,
            generation_before=generation_before, generation_after=generation_after,
            hot_restart_version=self.hot_restart_version,
            listener_port_before=port_before or 0, listener_port_after=port_after,
            socket_inherited=bool(inodes_after) and inodes_after <= inodes_before,
            probe_status=probe_status, config_versions=config_versions(dump), config_endpoints=config_endpoints(dump),
            drain=drain,
        )

    async def stop(self) -> None:
        """Stop every epoch still running (SIGTERM, then SIGKILL), then remove the family's shared memory.

        Envoy leaves ``/dev/shm/envoy_shared_memory_*`` behind when it exits (a later epoch 0 with
        the same base id would unlink and recreate it). The file is removed only when this family's
        epoch 0 came up, i.e. created it: a family refused for a base id in use never touches the
        holder's memory.
        """
        for proc in reversed(self._spawned):
            with contextlib.suppress(Exception):
                await proc.stop()
        if self.epoch >= 0 and self._base_id is not None:
            (_SHM_DIR / f"envoy_shared_memory_{self._base_id * 10}").unlink(missing_ok=True)
        self._current = None
        self.epoch = -1
