"""The lab supervisor: one process that owns a whole local lab (``switchman lab up`` starts it detached).

Run as ``python -m switchman.lab.local.supervisor --run-dir DIR --sidecars N``.
It builds the topology of :mod:`switchman.lab.topology`, each part its
own process:

1. ``switchman serve`` with its own SQLite store in the run dir, xDS and API on free ports;
2. N pods, the versions of ``checkout`` taking turns: each the demo app
   (:mod:`switchman.lab.local.upstream_main`) on the pod's loopback and a
   sidecar Envoy (node cluster = the pod's name) in front of it;
3. the front Envoy (node cluster ``front``) that splits ``checkout`` between the pods' sidecars;

and configures every Envoy through the public API, in the order traffic
needs it: the sidecars' documents first, then, once each sidecar tells the
port its inbound listener got, the front's. It waits until every Envoy runs
the config and writes ``lab.json`` in the run dir. Every child is registered
with the :class:`~switchman.lab.local.watchdog.Watchdog`, so killing the
supervisor, even with SIGKILL, stops them all. On SIGTERM or SIGINT it stops
them in order (front, sidecars, apps, serve) and removes ``lab.json``. Every
log goes to the run dir.

With ``--netns`` (root only) each pod, app and sidecar, runs in its own
network namespace with a veth link to the host (:mod:`switchman.lab.local.netns`):
the app listens on the pod's loopback, the sidecar on the pod's address, and
``serve`` takes xDS on the first pod's host-side address, which every pod
reaches through its default route. The namespaces are recorded in
``netns.json`` (before each is created) and in ``lab.json``; a clean stop
deletes them, and since a SIGKILLed supervisor cannot, the next ``lab up`` or
``lab down`` in the same run dir deletes what it left.
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
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from switchman.client import SwitchmanClient
from switchman.errors import LabError
from switchman.lab.local.child import Child, wait_for
from switchman.lab.local.control_plane import ControlPlane, ControlPlaneSettings, with_xds_endpoints
from switchman.lab.local.envoy import EnvoyProcess, bootstrap
from switchman.lab.local.launcher import (
    LAB_FILE,
    LOCK_FILE,
    NETNS_FILE,
    SUPERVISOR_LOG,
    cleanup_netns,
    try_lock,
)
from switchman.lab.local.netns import Pod, create_pod, delete_pods, free_slots, new_run_id, require_netns
from switchman.lab.local.upstream_main import write_atomically
from switchman.lab.topology import (
    FRONT_GROUP,
    FRONT_LISTENER,
    FRONT_NODE,
    PodSpec,
    front_documents,
    pod_specs,
    sidecar_documents,
)

__all__ = ["Supervisor", "main", "run_supervisor"]

log = logging.getLogger("switchman.lab")

_SERVING: Final = re.compile(r"serving: xDS on port (\d+), API on port (\d+)")


@dataclass(slots=True)
class RunningPod:
    """A pod of the running lab: its app, its sidecar, and its namespace when it has one."""

    spec: PodSpec
    app: Child
    address: str = "127.0.0.1"
    netns: Pod | None = None
    app_port: int = 0
    sidecar: EnvoyProcess | None = None
    sidecar_port: int = 0

    def wrapper(self) -> list[str]:
        """The command prefix that runs a process inside the pod (nothing without a namespace)."""
        return [require_netns(), "netns", "exec", self.netns.netns] if self.netns else []

    def to_json(self) -> dict[str, Any]:
        """The pod as ``lab.json`` records it."""
        sidecar = self.sidecar
        url = f"http://{self.address}:{self.sidecar_port}/"
        return {
            "name": self.spec.name, "service": self.spec.service, "version": self.spec.version,
            "address": self.address, **({"netns": self.netns.netns} if self.netns else {}),
            "app": {"name": self.app.name, "pid": self.app.pid, "log": str(self.app.log_path), "port": self.app_port},
            "sidecar": {
                "name": sidecar.node_id if sidecar else "", "node_id": sidecar.node_id if sidecar else "",
                "pid": sidecar.pid if sidecar else 0, "log": str(sidecar.log_path) if sidecar else "",
                "admin_url": sidecar.admin_url if sidecar else "", "listener_port": self.sidecar_port, "url": url,
            },
        }


def _read_port(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _serving_ports(path: Path) -> tuple[int, int] | None:
    match = _SERVING.search(path.read_text(errors="replace")) if path.exists() else None
    return (int(match.group(1)), int(match.group(2))) if match else None


async def wait_synced(client: SwitchmanClient, revision: int, node_ids: set[str], timeout: float) -> None:
    """Wait until ``GET /v1/status`` says every node in ``node_ids`` runs ``revision`` (or later)."""
    deadline = time.monotonic() + timeout
    while True:
        status = await client.status()
        synced = {str(n.get("node_id")) for n in status.get("nodes") or () if n.get("synced")}
        if (status.get("revision") or 0) >= revision and node_ids <= synced:
            return
        if time.monotonic() > deadline:
            raise LabError(f"the Envoys did not all run revision {revision} within {timeout}s: {status}")
        await asyncio.sleep(0.02)


class Supervisor:
    """Starts the lab's processes, records them in ``lab.json``, stops them in order.

    The demo runs one in its own process; ``switchman lab up`` runs one detached.
    """

    def __init__(
        self, run_dir: Path, sidecars: int, startup_timeout: float = 60.0, netns: bool = False,
        control_plane: ControlPlaneSettings | None = None,
    ) -> None:
        try:
            self.specs = pod_specs(sidecars)
        except ValueError as exc:
            raise LabError(str(exc)) from None
        self.run_dir = run_dir.resolve()
        self.startup_timeout = startup_timeout
        self.netns = netns
        self.control_plane = ControlPlane(self.run_dir, control_plane, startup_timeout)
        self.pods: list[RunningPod] = []
        self.front: EnvoyProcess | None = None
        self.netns_names: list[str] = []
        self.lab_file = self.run_dir / LAB_FILE
        self.netns_file = self.run_dir / NETNS_FILE
        self._lock_fd: int | None = None

    @property
    def description(self) -> str:
        """The lab in one line, for the demo's report."""
        where = "each in its own network namespace" if self.netns else "on loopback"
        return (
            f"Lab: clients → front Envoy → {len(self.specs)} pods ({', '.join(s.name for s in self.specs)}), "
            f"{where}, each app behind its sidecar Envoy; every Envoy configured by Switchman through its API"
        )

    @property
    def node_ids(self) -> set[str]:
        """Every Envoy of the lab: the front and the sidecars."""
        return {FRONT_NODE, *(spec.sidecar_node for spec in self.specs)}

    def _create_namespaces(self) -> list[Pod]:
        """One namespace per pod, each recorded in ``netns.json`` before it is created."""
        ip = require_netns()
        log.info("--netns: using %s", ip)
        cleanup_netns(self.run_dir)  # whatever a killed supervisor left in this run dir
        run_id = new_run_id()
        made = []
        for spec, slot in zip(self.specs, free_slots(len(self.specs)), strict=True):
            self.netns_names.append(f"swm-{run_id}-{spec.name}")
            write_atomically(self.netns_file, json.dumps({"pid": os.getpid(), "netns": self.netns_names}) + "\n")
            made.append(create_pod(run_id, spec.name, spec.index, slot))
        return made

    def _bootstrap(self, node: str, cluster: str, xds_host: str, admin_host: str = "127.0.0.1") -> dict[str, Any]:
        """An Envoy's bootstrap to the control plane: its one serve, or every replica."""
        config = bootstrap(node, self.control_plane.first.xds_port, cluster=cluster, xds_host=xds_host,
                           admin_host=admin_host)
        replicas = self.control_plane.replicas
        return with_xds_endpoints(config, self.control_plane.xds_endpoints) if len(replicas) > 1 else config

    async def _start_apps(self, namespaces: Sequence[Pod]) -> None:
        for i, spec in enumerate(self.specs):
            netns = namespaces[i] if namespaces else None
            name = f"app-{spec.name}"
            port_file = self.run_dir / f"{name}.port"
            port_file.unlink(missing_ok=True)
            main = "switchman.lab.local.upstream_main"
            args = [sys.executable, "-m", main, spec.service, spec.version, "--port-file", str(port_file)]
            app = Child(name, args, self.run_dir / f"{name}.log", extra={"port_file": port_file})
            pod = RunningPod(spec, app, address=netns.address if netns else "127.0.0.1", netns=netns)
            app.args = [*pod.wrapper(), *args]  # ip netns exec execs in place: the PID is the app's own
            self.pods.append(pod)
            await app.start()
        for pod in self.pods:
            read = functools.partial(_read_port, pod.app.extra["port_file"])
            pod.app_port = await wait_for("port", pod.app, self.startup_timeout, read)

    async def _start_sidecar(self, pod: RunningPod, xds_host: str) -> None:
        config = self._bootstrap(pod.spec.sidecar_node, pod.spec.name, xds_host, admin_host=pod.address)
        pod.sidecar = EnvoyProcess(config, run_dir=self.run_dir, wrapper=pod.wrapper())
        await pod.sidecar.start(timeout=self.startup_timeout)
        log.info("started sidecar %s (pid %d), admin %s", pod.spec.sidecar_node, pod.sidecar.pid, pod.sidecar.admin_url)
        pod.sidecar_port = await pod.sidecar.wait_listener(pod.spec.listener, timeout=self.startup_timeout)

    async def start(self) -> dict[str, Any]:
        """Start everything, configure it, wait for the Envoys; write and return ``lab.json``'s content."""
        self._lock()
        namespaces = self._create_namespaces() if self.netns else []
        xds_host = namespaces[0].host_address if namespaces else "127.0.0.1"
        await self.control_plane.start(xds_host)
        serve = self.control_plane.first
        xds_port, api_port = serve.xds_port, serve.api_port
        await self._start_apps(namespaces)
        api_url = f"http://127.0.0.1:{api_port}"
        log.info("serve: xDS on %s:%d, API %s", xds_host, xds_port, api_url)
        async with SwitchmanClient(api_url, author="lab") as client:
            sidecar_docs = [
                doc for pod in self.pods for doc in sidecar_documents(pod.spec, pod.app_port, pod.address)
            ]
            await client.apply(sidecar_docs, message="lab: a sidecar in front of each app")
            async with asyncio.TaskGroup() as sidecars:  # one failing cancels the others
                for pod in self.pods:
                    sidecars.create_task(self._start_sidecar(pod, xds_host))
            endpoints: dict[str, list[tuple[str, int]]] = {}
            for pod in self.pods:
                endpoints.setdefault(pod.spec.version, []).append((pod.address, pod.sidecar_port))
            applied = await client.apply(front_documents(endpoints), message="lab: checkout on v1 through the front")
            self.front = EnvoyProcess(
                self._bootstrap(FRONT_NODE, FRONT_GROUP, xds_host), run_dir=self.run_dir
            )
            await self.front.start(timeout=self.startup_timeout)
            front_port = await self.front.wait_listener(FRONT_LISTENER, timeout=self.startup_timeout)
            # with replicas, each Envoy is served by one of them: ask them all
            await self.control_plane.wait_synced(applied.revision or 0, self.node_ids, self.startup_timeout)
        state: dict[str, Any] = {
            "run_dir": str(self.run_dir),
            "api_url": api_url,
            "xds_address": f"{xds_host}:{xds_port}",
            "supervisor": {"name": "supervisor", "pid": os.getpid(), "log": str(self.run_dir / SUPERVISOR_LOG)},
            "serve": {
                "name": "serve", "pid": serve.child.pid, "log": str(serve.child.log_path), "xds_port": xds_port,
                "api_port": api_port, "store": self.control_plane.store,
            },
            # with several replicas (and an etcd of the lab's own): each of them; "serve" is the first
            **({"control_plane": self.control_plane.to_json()} if self.control_plane.settings is not None else {}),
            "front": {
                "name": FRONT_NODE, "node_id": FRONT_NODE, "pid": self.front.pid, "log": str(self.front.log_path),
                "admin_url": self.front.admin_url, "listener_port": front_port,
                "listener_url": f"http://127.0.0.1:{front_port}/",
            },
            "pods": [pod.to_json() for pod in self.pods],
            "netns": [pod.to_json() for pod in namespaces],
        }
        write_atomically(self.lab_file, json.dumps(state, indent=2) + "\n")
        log.info("lab up: %s", self.lab_file)
        return state

    async def stop(self) -> None:
        """Stop the children in order (front, sidecars, apps, serve), delete the namespaces, remove ``lab.json``.

        Every step runs whatever the one before it raised; the lock goes last.
        """
        try:
            self._remove_lab_file()
            for envoy in [self.front, *(pod.sidecar for pod in self.pods)]:
                if envoy is not None:
                    with contextlib.suppress(Exception):
                        await envoy.stop()
                        log.info("stopped envoy %s", envoy.node_id)
            for pod in self.pods:
                with contextlib.suppress(Exception):
                    await pod.app.stop()
        finally:
            try:
                if self.netns_names:
                    left = delete_pods(self.netns_names)
                    if left:
                        log.error("could not delete network namespaces: %s", ", ".join(left))
                    else:
                        self.netns_file.unlink(missing_ok=True)
            finally:
                try:
                    await self.control_plane.stop()  # a longer grace: serve closes its streams and store
                finally:
                    self._unlock()
                    log.info("lab down")

    def _remove_lab_file(self) -> None:
        """Remove ``lab.json`` if this supervisor wrote it (never another lab's)."""
        with contextlib.suppress(OSError, ValueError):
            if json.loads(self.lab_file.read_text()).get("supervisor", {}).get("pid") == os.getpid():
                self.lab_file.unlink(missing_ok=True)

    def _lock(self) -> None:
        """Hold ``lab.lock`` in the run dir for the supervisor's life: one lab per run dir."""
        fd = try_lock(self.run_dir)
        if fd is None:
            raise LabError(f"another lab is starting or running in {self.run_dir} ({LOCK_FILE} is held)")
        self._lock_fd = fd

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing releases the lock


async def run_supervisor(run_dir: Path, sidecars: int, startup_timeout: float = 60.0, netns: bool = False) -> int:
    """Start the lab and keep it up until SIGTERM or SIGINT; 0 on a clean stop, 1 when startup failed."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        supervisor = Supervisor(run_dir, sidecars, startup_timeout, netns)
    except LabError:
        log.exception("the lab did not start")
        return 1
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


def main(argv: list[str] | None = None) -> None:
    """The supervisor process's entry point."""
    parser = argparse.ArgumentParser(prog="python -m switchman.lab.local.supervisor")
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--sidecars", type=int, default=2)
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument("--netns", action="store_true", help="run each pod in its own network namespace")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(run_supervisor(args.run_dir, args.sidecars, args.startup_timeout, args.netns)))


if __name__ == "__main__":
    main()
