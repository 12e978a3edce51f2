"""The lab supervisor: one process that owns a whole local lab, and the helpers ``switchman lab`` uses.

Run as ``python -m switchman.lab.local.supervisor --run-dir DIR --envoys N``
(``switchman lab up`` starts it detached). It starts, each as its own process:

1. ``switchman serve`` with its own SQLite store in the run dir, xDS and API on free loopback ports;
2. the demo upstreams ``checkout`` v1 and v2 (:mod:`switchman.lab.local.upstream_main`);
3. N Envoys (node ids ``lab-envoy-0`` ..., cluster ``lab``) bootstrapped to the serve process's xDS port;

then pushes the routing config through the public API, waits until every
Envoy runs it, and writes ``lab.json`` in the run dir. Every child is
registered with the :class:`~switchman.lab.local.watchdog.Watchdog`, so
killing the supervisor, even with SIGKILL, stops them all. On SIGTERM or
SIGINT it stops them in order (Envoys, upstreams, serve) and removes
``lab.json``. Every log goes to the run dir.

With ``--netns`` (root only) each upstream runs in its own network namespace
with a veth link to the host, as a pod would (:mod:`switchman.lab.local.netns`),
and the Service's endpoints are the namespaces' addresses. The namespaces are
recorded in ``netns.json`` (before each is created) and in ``lab.json``; a
clean stop deletes them, and since a SIGKILLed supervisor cannot, the next
``lab up`` or ``lab down`` in the same run dir deletes what it left.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, TypeVar

from switchman.client import SwitchmanClient
from switchman.errors import LabError
from switchman.lab.local.envoy import EnvoyProcess, bootstrap
from switchman.lab.local.netns import Pod, create_pod, delete_pods, free_slots, new_run_id, require_netns
from switchman.lab.local.upstream_main import write_atomically
from switchman.lab.local.watchdog import Watchdog

__all__ = [
    "LAB_FILE",
    "NETNS_FILE",
    "cleanup_netns",
    "lab_documents",
    "main",
    "pid_alive",
    "read_lab",
    "recorded_netns",
    "recorded_pids",
    "run_supervisor",
    "start_lab",
    "stop_lab",
]

log = logging.getLogger("switchman.lab")

LAB_FILE: Final = "lab.json"
SUPERVISOR_LOG: Final = "supervisor.log"
NETNS_FILE: Final = "netns.json"
LISTENER: Final = "ingress"
T = TypeVar("T")
_SERVING: Final = re.compile(r"serving: xDS on port (\d+), API on port (\d+)")


# -- processes -----------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Is ``pid`` a running process? A zombie (dead, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    # The state follows the command name, which is in parentheses and may hold anything.
    state = stat.rpartition(")")[2].split()[:1]
    return state != ["Z"] and state != ["X"]


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass(slots=True)
class Child:
    """A Python child process (serve, an upstream) whose output goes to a log file in the run dir."""

    name: str
    args: list[str]
    log_path: Path
    proc: asyncio.subprocess.Process | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def start(self) -> None:
        """Start the process, register it with the watchdog."""
        with self.log_path.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.args, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out
            )
        Watchdog.shared().guard(self.proc.pid)
        log.info("started %s (pid %d): %s", self.name, self.proc.pid, " ".join(self.args))

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise LabError(f"{self.name} is not running")
        return self.proc.pid

    def exited(self) -> int | None:
        """The exit code if the process ended, else None."""
        return None if self.proc is None else self.proc.returncode

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                log.warning("%s did not stop in %.0fs: SIGKILL", self.name, timeout)
                proc.kill()
                await proc.wait()
        Watchdog.shared().release(proc.pid)
        log.info("stopped %s (pid %d, exit %s)", self.name, proc.pid, proc.returncode)


# -- the supervisor --------------------------------------------------------------


def lab_documents(ports: dict[str, int], addresses: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The lab's initial routing config: ``checkout`` v1 and v2, all traffic to v1, a listener on port 0.

    Each version's endpoint is ``addresses[version]`` (default 127.0.0.1) at ``ports[version]``.
    """
    hosts = addresses or {}
    return [
        {
            "kind": "Service",
            "metadata": {"name": "checkout"},
            "spec": {
                "versions": {
                    v: {"endpoints": [{"address": hosts.get(v, "127.0.0.1"), "port": p}]} for v, p in ports.items()
                },
                "weights": {"v1": 100, "v2": 0},
            },
        },
        {
            "kind": "Routes",
            "metadata": {"name": "checkout-routes"},
            "spec": {
                "virtualHosts": [
                    {
                        "name": "checkout",
                        "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"}, "service": "checkout", "timeout": "5s"}],
                    }
                ]
            },
        },
        {"kind": "Listener", "metadata": {"name": LISTENER}, "spec": {"port": 0, "routes": "checkout-routes"}},
    ]


async def _wait_for(what: str, child: Child, timeout: float, probe: Callable[[], T | None]) -> T:
    """Poll ``probe()`` until it returns something; fail if ``child`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if child.exited() is not None:
            raise LabError(f"{child.name} exited with {child.exited()} before {what}: {_tail(child.log_path)}")
        if time.monotonic() > deadline:
            raise LabError(f"{child.name}: no {what} within {timeout}s: {_tail(child.log_path)}")
        await asyncio.sleep(0.05)


def _read_port(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _serving_ports(path: Path) -> tuple[int, int] | None:
    match = _SERVING.search(path.read_text(errors="replace")) if path.exists() else None
    return (int(match.group(1)), int(match.group(2))) if match else None


async def _wait_synced(client: SwitchmanClient, revision: int, node_ids: set[str], timeout: float) -> None:
    """Wait until ``GET /v1/status`` says every node in ``node_ids`` runs ``revision`` (or later)."""
    deadline = time.monotonic() + timeout
    while True:
        status = await client.status()
        synced = {str(n.get("node_id")) for n in status.get("nodes") or () if n.get("synced")}
        if (status.get("revision") or 0) >= revision and node_ids <= synced:
            return
        if time.monotonic() > deadline:
            raise LabError(f"the Envoys did not all run revision {revision} within {timeout}s: {status}")
        await asyncio.sleep(0.05)


class Supervisor:
    """Starts the lab's processes, records them in ``lab.json``, stops them in order."""

    def __init__(self, run_dir: Path, envoys: int, startup_timeout: float = 60.0, netns: bool = False) -> None:
        self.run_dir = run_dir.resolve()
        self.envoy_count = envoys
        self.startup_timeout = startup_timeout
        self.netns = netns
        self.serve: Child | None = None
        self.upstreams: list[Child] = []
        self.envoys: list[EnvoyProcess] = []
        self.pods: dict[str, Pod] = {}
        self.netns_names: list[str] = []
        self.lab_file = self.run_dir / LAB_FILE
        self.netns_file = self.run_dir / NETNS_FILE

    def _create_pods(self, versions: list[str]) -> None:
        """One namespace per upstream version, each recorded in ``netns.json`` before it is created."""
        ip = require_netns()
        log.info("--netns: using %s", ip)
        cleanup_netns(self.run_dir)  # whatever a killed supervisor left in this run dir
        run_id = new_run_id()
        for index, (version, slot) in enumerate(zip(versions, free_slots(len(versions)), strict=True)):
            name = f"checkout-{version}"
            self.netns_names.append(f"swm-{run_id}-{name}")
            write_atomically(self.netns_file, json.dumps({"pid": os.getpid(), "netns": self.netns_names}) + "\n")
            self.pods[version] = create_pod(run_id, name, index, slot)

    async def start(self) -> dict[str, Any]:
        """Start everything, push the config, wait for the Envoys; write and return ``lab.json``'s content."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        serve_log = self.run_dir / "serve.log"
        serve_log.unlink(missing_ok=True)
        self.serve = Child(
            "serve",
            [
                sys.executable, "-m", "switchman", "serve",
                "--store", str(self.run_dir / "switchman.db"),
                "--xds-address", "127.0.0.1:0", "--api-address", "127.0.0.1:0",
                "--group-by", "cluster", "--admin-tokens", "", "--read-tokens", "",
            ],
            serve_log,
        )
        await self.serve.start()
        versions = ["v1", "v2"]
        if self.netns:
            self._create_pods(versions)
        for version in versions:
            name = f"upstream-checkout-{version}"
            port_file = self.run_dir / f"{name}.port"
            port_file.unlink(missing_ok=True)
            args = [sys.executable, "-m", "switchman.lab.local.upstream_main", "checkout", version, str(port_file)]
            pod = self.pods.get(version)
            host = "127.0.0.1"
            if pod is not None:
                # ip netns exec execs the command in place: the PID is the upstream's own.
                ip = require_netns()
                args = [ip, "netns", "exec", pod.netns, *args, "--host", pod.address]
                host = pod.address
            child = Child(
                name,
                args,
                self.run_dir / f"{name}.log",
                extra={"service": "checkout", "version": version, "port_file": port_file, "host": host},
            )
            self.upstreams.append(child)
            await child.start()
        xds_port, api_port = await _wait_for(
            "serving ports", self.serve, self.startup_timeout, lambda: _serving_ports(serve_log)
        )
        ports: dict[str, int] = {}
        for child in self.upstreams:
            port_file = child.extra["port_file"]
            ports[child.extra["version"]] = await _wait_for(
                "port", child, self.startup_timeout, functools.partial(_read_port, port_file)
            )
            child.extra["port"] = ports[child.extra["version"]]
        api_url = f"http://127.0.0.1:{api_port}"
        log.info("serve: xDS on %d, API %s; upstreams %s", xds_port, api_url, ports)
        async with SwitchmanClient(api_url, author="lab") as client:
            addresses = {c.extra["version"]: str(c.extra["host"]) for c in self.upstreams}
            applied = await client.apply(lab_documents(ports, addresses), message="lab: checkout on v1")
            for i in range(self.envoy_count):
                envoy = EnvoyProcess(bootstrap(f"lab-envoy-{i}", xds_port, cluster="lab"), run_dir=self.run_dir)
                self.envoys.append(envoy)
                await envoy.start(timeout=self.startup_timeout)
                log.info("started envoy %s (pid %d), admin %s", envoy.node_id, envoy.pid, envoy.admin_url)
            listeners = [await e.wait_listener(LISTENER, timeout=self.startup_timeout) for e in self.envoys]
            await _wait_synced(
                client, applied.revision or 0, {e.node_id for e in self.envoys}, self.startup_timeout
            )
        state: dict[str, Any] = {
            "run_dir": str(self.run_dir),
            "api_url": api_url,
            "xds_port": xds_port,
            "supervisor": {"name": "supervisor", "pid": os.getpid(), "log": str(self.run_dir / SUPERVISOR_LOG)},
            "serve": {
                "name": "serve", "pid": self.serve.pid, "log": str(serve_log), "xds_port": xds_port,
                "api_port": api_port, "store": str(self.run_dir / "switchman.db"),
            },
            "upstreams": [
                {
                    "name": c.name, "pid": c.pid, "log": str(c.log_path), "service": c.extra["service"],
                    "version": c.extra["version"], "host": c.extra["host"], "port": c.extra["port"],
                    "url": f"http://{c.extra['host']}:{c.extra['port']}/",
                    **({"netns": self.pods[c.extra["version"]].netns} if c.extra["version"] in self.pods else {}),
                }
                for c in self.upstreams
            ],
            "netns": [pod.to_json() for pod in self.pods.values()],
            "envoys": [
                {
                    "name": e.node_id, "node_id": e.node_id, "pid": e.pid, "log": str(e.log_path),
                    "admin_url": e.admin_url, "listener_port": port, "listener_url": f"http://127.0.0.1:{port}/",
                }
                for e, port in zip(self.envoys, listeners, strict=True)
            ],
        }
        write_atomically(self.lab_file, json.dumps(state, indent=2) + "\n")
        log.info("lab up: %s", self.lab_file)
        return state

    async def stop(self) -> None:
        """Stop the children in order (Envoys, upstreams, serve) and remove ``lab.json``."""
        self.lab_file.unlink(missing_ok=True)
        for envoy in self.envoys:
            with contextlib.suppress(Exception):
                await envoy.stop()
                log.info("stopped envoy %s", envoy.node_id)
        for child in self.upstreams:
            await child.stop()
        if self.netns_names:
            left = delete_pods(self.netns_names)
            if left:
                log.error("could not delete network namespaces: %s", ", ".join(left))
            else:
                self.netns_file.unlink(missing_ok=True)
        if self.serve is not None:
            await self.serve.stop(timeout=10.0)  # a longer grace: serve closes its streams and store
        log.info("lab down")


async def run_supervisor(run_dir: Path, envoys: int, startup_timeout: float = 60.0, netns: bool = False) -> int:
    """Start the lab and keep it up until SIGTERM or SIGINT; 0 on a clean stop, 1 when startup failed."""
    supervisor = Supervisor(run_dir, envoys, startup_timeout, netns)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.create_task(supervisor.start())
    stopping = asyncio.create_task(stop.wait())
    code = 0
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # raises when startup failed
            await stop.wait()
        else:
            log.info("stopped while starting")
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
    except Exception:
        log.exception("the lab did not start")
        code = 1
    finally:
        stopping.cancel()
        await supervisor.stop()
    return code


# -- what ``switchman lab`` uses ----------------------------------------------------


def read_lab(run_dir: Path) -> dict[str, Any]:
    """The run dir's ``lab.json``; LabError when there is none."""
    path = run_dir / LAB_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LabError(f"no lab in {run_dir} ({LAB_FILE} not found): switchman lab up --run-dir {run_dir}") from None
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise LabError(f"{path} is not a JSON object")
    return data


def recorded_pids(lab: dict[str, Any]) -> list[tuple[str, int]]:
    """``(name, pid)`` of every process in ``lab.json``: supervisor, serve, upstreams, Envoys."""
    entries = [lab.get("supervisor"), lab.get("serve"), *lab.get("upstreams", ()), *lab.get("envoys", ())]
    return [(str(e["name"]), int(e["pid"])) for e in entries if isinstance(e, dict) and "pid" in e]


def _owner_alive(pid: object) -> bool:
    """Is ``pid`` (as recorded) another process that is still running?"""
    return isinstance(pid, int) and pid > 0 and pid != os.getpid() and pid_alive(pid)


def recorded_netns(run_dir: Path) -> list[str]:
    """The lab namespaces recorded in the run dir's ``netns.json`` and ``lab.json`` by a supervisor that is gone."""
    names: list[str] = []
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((run_dir / NETNS_FILE).read_text())
        if isinstance(data, dict) and not _owner_alive(data.get("pid")):
            names.extend(str(n) for n in data.get("netns") or ())
    with contextlib.suppress(OSError, ValueError):
        lab = json.loads((run_dir / LAB_FILE).read_text())
        if isinstance(lab, dict) and not _owner_alive((lab.get("supervisor") or {}).get("pid")):
            names.extend(str(p["netns"]) for p in lab.get("netns") or () if isinstance(p, dict) and "netns" in p)
    return [n for n in dict.fromkeys(names) if n.startswith("swm-")]


def cleanup_netns(run_dir: Path) -> list[str]:
    """Delete the namespaces recorded in ``run_dir`` (left by a killed supervisor); the names recorded.

    LabError when some could not be deleted (not root, no ``ip``).
    """
    names = recorded_netns(run_dir)
    if not names:
        return []
    require_netns()
    left = delete_pods(names)
    if left:
        raise LabError(f"could not delete the network namespaces {', '.join(left)} recorded in {run_dir}")
    (run_dir / NETNS_FILE).unlink(missing_ok=True)
    return names


def start_lab(run_dir: Path, envoys: int, timeout: float = 90.0, netns: bool = False) -> dict[str, Any]:
    """Start a detached supervisor for ``run_dir``; return ``lab.json`` once the lab is up.

    Refuses when a lab in ``run_dir`` is still running. On failure or timeout
    the supervisor is stopped and LabError carries the end of its log. With
    ``netns`` each upstream runs in its own network namespace (root and ``ip`` needed).
    """
    if envoys < 1:
        raise LabError("a lab needs at least one Envoy")
    if netns:
        require_netns()
    run_dir.mkdir(parents=True, exist_ok=True)
    lab_file = run_dir / LAB_FILE
    if lab_file.exists():
        try:
            pid = int(read_lab(run_dir).get("supervisor", {}).get("pid", 0))
        except (LabError, ValueError, TypeError):
            pid = 0
        if pid and pid_alive(pid):
            raise LabError(f"a lab is already running in {run_dir} (supervisor pid {pid}): switchman lab down")
        cleanup_netns(run_dir)  # namespaces a killed supervisor could not delete
        lab_file.unlink(missing_ok=True)  # left by a supervisor that was killed
    elif (run_dir / NETNS_FILE).exists():
        cleanup_netns(run_dir)  # killed before lab.json was written
    log_path = run_dir / SUPERVISOR_LOG
    out: IO[bytes]
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "switchman.lab.local.supervisor",
                "--run-dir", str(run_dir), "--envoys", str(envoys), *(["--netns"] if netns else []),
            ],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while True:
        if lab_file.exists():
            with contextlib.suppress(LabError):
                lab = read_lab(run_dir)
                if lab.get("supervisor", {}).get("pid") == proc.pid:
                    return lab
        code = proc.poll()
        if code is not None:
            raise LabError(f"the lab supervisor exited with {code}; {log_path}:\n{_tail(log_path)}")
        if time.monotonic() > deadline:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise LabError(f"the lab was not up within {timeout}s; {log_path}:\n{_tail(log_path)}")
        time.sleep(0.1)


def stop_lab(run_dir: Path, timeout: float = 20.0) -> tuple[list[str], list[str]]:
    """SIGTERM the supervisor; wait until every recorded PID is gone, SIGKILL what is left after ``timeout``.

    Returns the names of the processes that stopped, and of those that had to be killed.
    """
    lab = read_lab(run_dir)
    pids = recorded_pids(lab)
    supervisor = int(lab.get("supervisor", {}).get("pid", 0))
    if supervisor and pid_alive(supervisor):
        os.kill(supervisor, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(pid) for _, pid in pids):
        time.sleep(0.05)
    killed = []
    for name, pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed.append(name)
    end = time.monotonic() + 5.0
    while time.monotonic() < end and any(pid_alive(pid) for _, pid in pids):
        time.sleep(0.05)
    left = [name for name, pid in pids if pid_alive(pid)]
    if left:
        raise LabError(f"still running after SIGKILL: {', '.join(left)}")
    cleanup_netns(run_dir)  # the supervisor deletes its namespaces; not when it was killed
    (run_dir / LAB_FILE).unlink(missing_ok=True)
    return [name for name, _ in pids if name not in killed], killed


def main(argv: list[str] | None = None) -> None:
    """The supervisor process's entry point."""
    parser = argparse.ArgumentParser(prog="python -m switchman.lab.local.supervisor")
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--envoys", type=int, default=2)
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument("--netns", action="store_true", help="run each upstream in its own network namespace")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(run_supervisor(args.run_dir, args.envoys, args.startup_timeout, args.netns)))


if __name__ == "__main__":
    main()
