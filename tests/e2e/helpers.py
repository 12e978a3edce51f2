"""Shared pieces of the end-to-end tests: snapshots of a listener -> route -> clusters chain, and traffic."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from google.protobuf.message import Message

from switchman.app import ServeSettings, Switchman
from switchman.client import SwitchmanClient
from switchman.lab.local import EnvoyMode, EnvoyProcess, XdsClientTls, bootstrap
from switchman.testing.builders import eds_cluster, grpc_source, http_listener, load_assignment, route_config
from switchman.testing.http import serve_http
from switchman.testing.wait import until as until  # the e2e tests' own name for it
from switchman.tls import TlsSettings
from switchman.xds import Snapshot
from tests.functional.cli.conftest import Result


def chain(
    cluster_ports: dict[str, int],
    route_to: str | list[tuple[str, int]],
    mode: EnvoyMode = EnvoyMode.ADS,
    extra: list[Message] | None = None,
) -> Snapshot:
    """Listener ``ingress`` -> routes ``ingress-routes`` -> the clusters, each with one endpoint."""
    source = grpc_source() if mode is EnvoyMode.PER_TYPE else None
    items: list[Message] = [
        http_listener("ingress", "ingress-routes", source=source),
        route_config("ingress-routes", route_to),
    ]
    for name, port in cluster_ports.items():
        items += [eds_cluster(name, source=source), load_assignment(name, [("127.0.0.1", port)])]
    return Snapshot.build([*items, *(extra or [])])


async def get_version(session: aiohttp.ClientSession, port: int) -> str:
    async with session.get(f"http://127.0.0.1:{port}/") as resp:
        body = await resp.text()
        if resp.status != 200:
            raise AssertionError(f"HTTP {resp.status}: {body.strip()}")
        return resp.headers["x-upstream-version"]


async def wait_for_version(port: int, version: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                last = await get_version(session, port)
                if last == version:
                    return
            except (AssertionError, aiohttp.ClientError) as exc:
                last = repr(exc)
            await asyncio.sleep(0.05)
    raise AssertionError(f"still {last!r}, wanted {version!r}")


@dataclass
class Traffic:
    """Requests sent in a loop until stopped: versions that answered, failures with their reason."""

    port: int
    versions: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, concurrency: int = 4, limit: int = 20_000, seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        sent = 0

        async def worker(session: aiohttp.ClientSession) -> None:
            nonlocal sent
            while not self._stop.is_set() and sent < limit and time.monotonic() < deadline:
                sent += 1
                try:
                    self.versions[await get_version(session, self.port)] += 1
                except (AssertionError, aiohttp.ClientError) as exc:
                    self.failures.append(repr(exc))

        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))

    def stop(self) -> None:
        self._stop.set()

    @property
    def total(self) -> int:
        return sum(self.versions.values()) + len(self.failures)


CHECKOUT_EXAMPLE = Path(__file__).parents[2] / "examples" / "checkout.yaml"


def checkout_documents(v1_port: int, v2_port: int, weights: dict[str, int]) -> list[dict[str, Any]]:
    """examples/checkout.yaml pointed at our upstreams, its listener on a free port."""
    service, routes, listener = yaml.safe_load_all(CHECKOUT_EXAMPLE.read_text())
    service["spec"]["versions"]["v1"]["endpoints"][0]["port"] = v1_port
    service["spec"]["versions"]["v2"]["endpoints"][0]["port"] = v2_port
    service["spec"]["weights"] = weights
    listener["spec"]["port"] = 0
    return [service, routes, listener]


async def history_numbers(api_port: int, limit: int = 1000) -> list[int]:
    """The revision numbers ``GET /v1/history`` lists (newest first), as an operator reads them."""
    url = f"http://127.0.0.1:{api_port}/v1/history?limit={limit}"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200, await resp.text()
        return [int(entry["number"]) for entry in (await resp.json())["revisions"]]


@asynccontextmanager
async def switchman_and_envoy(
    tmp_path: Path, node_id: str, *, xds_tls: TlsSettings | None = None, envoy_tls: XdsClientTls | None = None,
) -> AsyncIterator[tuple[SwitchmanClient, EnvoyProcess]]:
    """A Switchman (SQLite in ``tmp_path``, ports 0) and one Envoy of node group ``demo`` on it (over mutual TLS
    with ``xds_tls`` and ``envoy_tls``), and a client of Switchman's API; both stopped on the way out."""
    app = Switchman(ServeSettings(xds_address="127.0.0.1:0", api_address="127.0.0.1:0",
                                  store=str(tmp_path / "s.db"), xds_tls=xds_tls))
    await app.start()
    envoy = EnvoyProcess(bootstrap(node_id, app.xds_port, cluster="demo", tls=envoy_tls))
    try:
        await envoy.start()
        async with SwitchmanClient(f"http://127.0.0.1:{app.api_port}") as api:
            yield api, envoy
    finally:
        await envoy.stop()
        await app.stop(grace=0.5)


@dataclass
class Recorder:
    """An HTTP upstream that answers with its version and remembers the Host and path, and the headers, of every
    request."""

    version: str
    seen: list[tuple[str, str]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)  # lowercase names
    port: int = 0
    _runner: web.AppRunner | None = None

    async def _serve(self, request: web.Request) -> web.Response:
        self.seen.append((request.headers.get("Host", ""), request.path))
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        return web.Response(text=f"{self.version}\n", headers={"x-upstream-version": self.version})

    async def start(self) -> None:
        self._runner, self.port = await serve_http(self._serve)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def paths(self, prefix: str, shadow: bool) -> Counter[str]:
        """Requests under ``prefix`` this upstream received, shadow copies or not."""
        return Counter(p for host, p in self.seen if p.startswith(prefix) and host.endswith("-shadow") == shadow)


# Routes Switchman accepts and Envoy rejects (RE2 cannot compile the regex), behind a listener of their own.
REJECTED_ROUTES = """
kind: EnvoyResource
metadata: {name: regex-routes}
spec:
  "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: regex-routes
  virtual_hosts:
    - name: regex
      domains: ["*"]
      routes:
        - match: {safe_regex: {regex: "(unclosed"}}
          direct_response: {status: 200}
---
kind: Listener
metadata: {name: regex-ingress}
spec: {port: 0, routes: regex-routes}
"""


async def run_switchman(api: str, home: Path, *args: str) -> Result:
    """``switchman ARGS`` in a subprocess, as a user runs it, pointed at the API ``api`` (and at no user config:
    ``home`` is its home)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHMAN_") and k != "XDG_CONFIG_HOME"}
    env |= {"HOME": str(home), "SWITCHMAN_API": api}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchman", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())
