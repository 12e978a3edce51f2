"""The lab's control plane: ``switchman serve`` on a SQLite store, or replicas of it on one etcd.

By default one ``serve`` with its own SQLite file in the run dir, exactly
as the lab has always run it. With :class:`ControlPlaneSettings` the lab
runs ``replicas`` of it, named ``a``, ``b``, ... (their names in the
rollout leases: what ``rollout status`` shows as the driver), on SQLite (one
replica) or on an etcd: the lab's own on loopback
(:class:`~switchman.lab.local.etcd.EtcdProcess`) or one at a given address.
Each replica serves xDS and the API on ports of its own; every Envoy's
bootstrap lists every replica's xDS port (:func:`with_xds_endpoints`), so
an Envoy whose replica dies connects to another.

:meth:`ControlPlane.kill` kills a replica with SIGKILL and
:meth:`ControlPlane.revive` starts it again on the same store and the same ports. The new process is a new
replica as the leases see it (``a-2``, ``a-3``, ...): like any other, it
takes a rollout over only once the dead process's lease ran out.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from switchman.client import ClientError, SwitchmanClient
from switchman.errors import LabError
from switchman.lab.local.child import Child, wait_for
from switchman.lab.local.etcd import EtcdProcess

__all__ = ["REPLICA_NAMES", "ControlPlane", "ControlPlaneSettings", "Replica", "Restart", "with_xds_endpoints"]

REPLICA_NAMES: Final = ("a", "b", "c", "d", "e")
_SERVING: Final = re.compile(r"serving: xDS on port (\d+), API on port (\d+)")


@dataclass(frozen=True, slots=True)
class ControlPlaneSettings:
    """How many ``serve`` replicas the lab runs, and on which store."""

    replicas: int = 1
    store: Literal["sqlite", "etcd"] = "sqlite"
    etcd: str | None = None  # host:port of an etcd to use; None: the lab starts its own (store etcd)
    lease_seconds: float | None = None  # serve's --rollout-lease-seconds; None: its default

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= len(REPLICA_NAMES):
            raise LabError(f"the lab runs 1 to {len(REPLICA_NAMES)} replicas of serve, not {self.replicas}")
        if self.replicas > 1 and self.store != "etcd":
            raise LabError("replicas of serve share an etcd: store etcd")


@dataclass(slots=True)
class Replica:
    """One replica of ``serve``: its name, the process running it now, and its ports (the same across restarts)."""

    name: str
    child: Child
    xds_host: str
    xds_port: int = 0
    api_port: int = 0
    incarnation: int = 1

    @property
    def process(self) -> str:
        """The running process's name in the leases: ``a``, then ``a-2`` once restarted, ..."""
        return self.name if self.incarnation == 1 else f"{self.name}-{self.incarnation}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "process": self.process, "pid": self.child.pid, "log": str(self.child.log_path),
            "xds_port": self.xds_port, "api_port": self.api_port, "api_url": self.api_url,
        }


@dataclass(frozen=True, slots=True)
class Restart:
    """A replica killed with SIGKILL and started again; times are wall clock (``time.time()``)."""

    replica: str
    killed: str  # the process killed (its name in the leases)
    started: str  # the process started in its place
    killed_at: float  # SIGKILL sent
    gone_at: float  # the process had exited
    started_at: float  # the new process was started
    serving_at: float  # it serves xDS and the API on the same ports again

    @property
    def down_s(self) -> float:
        """From SIGKILL until the replica served again."""
        return self.serving_at - self.killed_at

    @property
    def ready_s(self) -> float:
        """From the new process's start until it served: its time to ready."""
        return self.serving_at - self.started_at


def with_xds_endpoints(config: dict[str, Any], endpoints: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """An Envoy bootstrap whose ``xds`` cluster (ADS, load reports, access logs) lists every replica.

    Envoy picks one per connection (round robin): when its replica dies, the
    stream is re-established to another on the next attempt.
    """
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] == "xds":
            cluster["load_assignment"]["endpoints"] = [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
                for host, port in endpoints
            ]}]
    return config


def _serving_ports(path: Path) -> tuple[int, int] | None:
    match = _SERVING.search(path.read_text(errors="replace")) if path.exists() else None
    return (int(match.group(1)), int(match.group(2))) if match else None


async def _status(url: str) -> Mapping[str, Any] | None:
    """A replica's ``/v1/status``, or None when it does not answer."""
    try:
        async with SwitchmanClient(url, timeout=2.0) as client:
            return await client.status()
    except ClientError:
        return None


async def _envoys_on_head(urls: Sequence[tuple[str, str]]) -> tuple[int, dict[str, str], dict[str, str]]:
    """Ask every replica (``(process, API URL)``) which Envoys it serves: the head revision (the newest any
    replica knows), the nodes that run it (node -> replica process), and the others (node -> what they run)."""
    statuses = await asyncio.gather(*(_status(url) for _, url in urls))
    answered = [(process, s) for (process, _), s in zip(urls, statuses, strict=True) if s is not None]
    head = max((max(int(s.get("revision") or 0), int((s.get("store") or {}).get("store_head") or 0))
                for _, s in answered), default=0)
    on_head: dict[str, str] = {}
    behind: dict[str, str] = {}
    for process, s in answered:
        current = int(s.get("revision") or 0) == head
        for node in s.get("nodes") or ():
            name = str(node.get("node_id"))
            if current and node.get("synced"):
                on_head[name] = process
            else:
                behind.setdefault(name, f"revision {s.get('revision')} of {process}"
                                  + ("" if node.get("synced") else ", not synced"))
    return head, on_head, {n: w for n, w in behind.items() if n not in on_head}


@dataclass(slots=True)
class ControlPlane:
    """The lab's ``serve`` replicas (and the etcd they share, when the lab starts one)."""

    run_dir: Path
    settings: ControlPlaneSettings | None = None  # None: the lab's one serve on SQLite, unnamed
    startup_timeout: float = 60.0
    replicas: list[Replica] = field(default_factory=list)
    etcd: EtcdProcess | None = None
    store: str = ""

    @property
    def first(self) -> Replica:
        if not self.replicas:
            raise LabError("the control plane is not running")
        return self.replicas[0]

    @property
    def xds_endpoints(self) -> list[tuple[str, int]]:
        return [(r.xds_host, r.xds_port) for r in self.replicas]

    def replica(self, name: str) -> Replica:
        for replica in self.replicas:
            if replica.name == name:
                return replica
        raise LabError(f"the lab has no replica {name!r} (it runs {', '.join(r.name for r in self.replicas)})")

    async def _store(self) -> str:
        settings = self.settings
        if settings is None or settings.store == "sqlite":
            return str(self.run_dir / "switchman.db")
        address = settings.etcd
        if address is None:
            self.etcd = EtcdProcess(self.run_dir)
            address = await self.etcd.start(self.startup_timeout)
        # a prefix of its own: a given etcd may hold other labs' keys
        return f"etcd://{address}/switchman-lab-{uuid.uuid4().hex[:8]}"

    def _args(self, replica: Replica) -> list[str]:
        args = [
            sys.executable, "-m", "switchman", "serve",
            "--store", self.store,
            "--xds-address", f"{replica.xds_host}:{replica.xds_port}",
            "--api-address", f"127.0.0.1:{replica.api_port}",
            "--group-by", "cluster", "--admin-tokens", "", "--read-tokens", "",
            # A request's access log reaches Switchman up to its own time plus the front's 250 ms flush
            # (topology.py) after it started; the drills slow a version by up to 300 ms: a second covers both.
            "--analysis-lag", "1",
        ]
        if self.settings is not None:
            args += ["--replica-name", replica.process]
            if self.settings.lease_seconds is not None:
                args += ["--rollout-lease-seconds", f"{self.settings.lease_seconds:g}"]
        return args

    def _log(self, replica: Replica) -> Path:
        return self.run_dir / ("serve.log" if self.settings is None else f"serve-{replica.process}.log")

    async def _run(self, replica: Replica) -> None:
        """Start ``replica``'s process; return once it says where it serves."""
        log_path = self._log(replica)
        log_path.unlink(missing_ok=True)
        replica.child = Child(f"serve-{replica.process}" if self.settings else "serve", self._args(replica), log_path)
        await replica.child.start()
        replica.xds_port, replica.api_port = await wait_for(
            "serving ports", replica.child, self.startup_timeout, lambda: _serving_ports(log_path)
        )

    async def start(self, xds_host: str) -> None:
        """Start the store (an etcd of the lab's own) and every replica, one after the other."""
        self.store = await self._store()
        count = self.settings.replicas if self.settings is not None else 1
        for name in REPLICA_NAMES[:count]:
            replica = Replica(name, Child("", [], Path()), xds_host)
            self.replicas.append(replica)
            await self._run(replica)

    async def kill(self, name: str) -> tuple[float, float]:
        """SIGKILL replica ``name``; when the signal was sent and when the process was gone (wall clock)."""
        replica = self.replica(name)
        killed_at = time.time()
        await replica.child.kill()
        return killed_at, time.time()

    async def revive(self, name: str) -> float:
        """Start killed replica ``name`` again, a new process on the same store and ports; when it was started
        (it serves on return)."""
        replica = self.replica(name)
        if replica.child.exited() is None:
            raise LabError(f"replica {name} of serve still runs (pid {replica.child.pid})")
        replica.incarnation += 1
        started_at = time.time()
        await self._run(replica)
        return started_at

    async def envoys(self, down: Collection[str] = ()) -> tuple[int, dict[str, str], dict[str, str]]:
        """Which Envoys the replicas (but those named in ``down``) serve: the head revision (the newest any
        knows), the nodes that run it (node -> replica process) and the others (node -> what they run)."""
        return await _envoys_on_head([(r.process, r.api_url) for r in self.replicas if r.name not in down])

    async def wait_synced(self, revision: int, nodes: set[str], timeout: float) -> None:
        """Wait until every node in ``nodes`` runs ``revision`` or a later head, whichever replica it is on."""
        deadline = time.monotonic() + timeout
        while True:
            head, on_head, behind = await self.envoys()
            if head >= revision and nodes <= set(on_head):
                return
            if time.monotonic() > deadline:
                raise LabError(f"the Envoys did not all run revision {revision} within {timeout}s: "
                               f"on it: {sorted(on_head)}; behind: {behind}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Stop every replica (SIGTERM, with a grace for closing streams and the store), then the etcd."""
        try:
            for replica in self.replicas:
                await replica.child.stop(timeout=10.0)
        finally:
            if self.etcd is not None:
                await self.etcd.stop()

    def to_json(self) -> dict[str, Any]:
        """The replicas and the store, as ``lab.json`` records them (with ``settings`` only)."""
        return {
            "store": self.store, "replicas": [r.to_json() for r in self.replicas],
            **({"etcd": {"name": "etcd", "pid": self.etcd.child.pid, "log": str(self.etcd.child.log_path),
                         "address": self.etcd.address}} if self.etcd is not None and self.etcd.child else {}),
        }
