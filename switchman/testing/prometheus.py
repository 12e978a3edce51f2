"""A real Prometheus for tests: Debian's ``prometheus`` binary, scraping given targets, stopped by PID.

Prometheus cannot listen on port 0 and say which port it got, so it is
given a free port and started again on another if that one was taken
meanwhile. Its process dies with ours (:mod:`switchman.lab.local.watchdog`).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from switchman.errors import LabError
from switchman.lab.local.child import terminate
from switchman.lab.local.watchdog import Watchdog

__all__ = ["PrometheusServer", "prometheus_binary"]


def prometheus_binary() -> str | None:
    """The ``prometheus`` binary on PATH (Debian's package puts it in /usr/bin), or None."""
    return shutil.which("prometheus")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrometheusServer:
    """One Prometheus on 127.0.0.1 scraping ``targets`` (``host:port``) every ``scrape_interval`` seconds
    at ``metrics_path``, job ``job``; its config, data and log in ``run_dir``."""

    def __init__(
        self,
        targets: Sequence[str],
        run_dir: Path,
        *,
        scrape_interval: float = 1.0,
        metrics_path: str = "/stats/prometheus",
        job: str = "envoy",
    ) -> None:
        self.targets = list(targets)
        self.run_dir = run_dir
        self.scrape_interval = scrape_interval
        self.metrics_path = metrics_path
        self.job = job
        self.url = ""
        self.log_path = run_dir / "prometheus.log"
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise LabError("prometheus is not running")
        return self.proc.pid

    def _write_config(self) -> Path:
        interval = f"{int(self.scrape_interval * 1000)}ms"
        config = {
            "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": "1m"},
            "scrape_configs": [
                {
                    "job_name": self.job,
                    "metrics_path": self.metrics_path,
                    "static_configs": [{"targets": self.targets}],
                }
            ],
        }
        path = self.run_dir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        return path

    async def start(self, timeout: float = 20.0) -> str:
        """Start Prometheus and wait until it is ready; returns its base URL."""
        binary = prometheus_binary()
        if binary is None:
            raise LabError("prometheus binary not found: apt-get install prometheus")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        for _ in range(3):
            port = _free_port()
            with self.log_path.open("ab") as log:
                self.proc = await asyncio.create_subprocess_exec(
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.run_dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                )
            Watchdog.shared().guard(self.proc.pid)
            self.url = f"http://127.0.0.1:{port}"
            if await self._wait_ready(timeout):
                return self.url
            Watchdog.shared().release(self.proc.pid)
            if "address already in use" not in self.log_tail():
                break
        raise LabError(f"prometheus did not become ready: {self.log_tail()}")

    async def _wait_ready(self, timeout: float) -> bool:
        """True once ``/-/ready`` answers 200; False when the process ended first."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
            while self.proc.returncode is None:
                try:
                    async with session.get(self.url + "/-/ready") as resp:
                        if resp.status == 200:
                            return True
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    await self.stop()
                    raise LabError(f"prometheus not ready in {timeout}s: {self.log_tail()}")
                await asyncio.sleep(0.1)
        return False

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """The result of an instant query (a vector's samples), now or at ``at``."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        async with aiohttp.ClientSession() as session, session.get(self.url + "/api/v1/query", params=params) as resp:
            body: dict[str, Any] = await resp.json()
        if body.get("status") != "success":
            raise LabError(f"prometheus refused {expr!r}: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def last_scrapes(self) -> dict[str, float]:
        """When each target was last scraped (its ``up`` sample's timestamp), by ``instance``."""
        up = f'up{{job="{self.job}"}}'
        # timestamp() gives a sample's own time only when applied to a selector (else the evaluation time).
        found = await self.query(f"timestamp({up}) and ({up} == 1)")
        return {str(s["metric"]["instance"]): float(s["value"][1]) for s in found}

    async def wait_scraped_after(self, moment: float, timeout: float = 10.0) -> dict[str, float]:
        """Wait until every target has been scraped (successfully) after ``moment``; their latest scrapes."""
        deadline = time.monotonic() + timeout
        while True:
            last = await self.last_scrapes()
            if len(last) == len(self.targets) and min(last.values()) > moment:
                return last
            if time.monotonic() > deadline:
                raise LabError(f"targets not all scraped after {moment:.3f} in {timeout}s: {last}")
            await asyncio.sleep(self.scrape_interval / 10)

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        if self.proc is not None:
            await terminate(self.proc, "prometheus", timeout)
        self.proc = None
