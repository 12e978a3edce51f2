"""The composition root: the one place that wires the cache, the xDS server, the HTTP API and config sources."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from switchman.api import status_app
from switchman.errors import ConfigError, SwitchmanError
from switchman.model import load_resource_file
from switchman.xds import DEFAULT_GROUP, Snapshot, SnapshotCache, XdsServer, XdsSettings

__all__ = ["ServeSettings", "Switchman", "split_address"]

log = logging.getLogger(__name__)


def split_address(address: str, what: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6) -> ``(host, port)``; raises ConfigError naming ``what``."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(what, f"{address!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """What ``switchman serve`` runs with."""

    xds_address: str = "127.0.0.1:18000"
    api_address: str = "127.0.0.1:8080"
    resources: Path | None = None
    group_by: str = "cluster"
    reload_seconds: float = 1.0
    xds: XdsSettings | None = None


class Switchman:
    """A running control plane: ``start`` binds both ports and returns them; ``stop`` undoes it."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.cache = SnapshotCache()
        xds_settings = settings.xds or XdsSettings(group_by=settings.group_by)
        self.xds = XdsServer(self.cache, xds_settings)
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._loaded_mtime: float | None = None
        self.api_port = 0

    def load_resources(self) -> Snapshot | None:
        """Read the resource file into the default group's snapshot; a bad file changes nothing."""
        path = self.settings.resources
        if path is None:
            return None
        snapshot = Snapshot.build(load_resource_file(path))
        self.cache.set_snapshot(DEFAULT_GROUP, snapshot)
        log.info("loaded %s: %s", path, {k.rsplit(".", 1)[-1]: len(v.resources) for k, v in snapshot.types.items()})
        return snapshot

    async def start(self) -> tuple[int, int]:
        if self.settings.resources is not None:
            self._loaded_mtime = self.settings.resources.stat().st_mtime
            self.load_resources()
        xds_port = await self.xds.start(self.settings.xds_address)
        host, port = split_address(self.settings.api_address, "api address")
        self._runner = web.AppRunner(status_app(self.xds), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.api_port = int(sockets[0].getsockname()[1]) if sockets else port
        if self.settings.resources is not None:
            task = asyncio.create_task(self._watch_resources())
            self._tasks.add(task)
        return xds_port, self.api_port

    async def _watch_resources(self) -> None:
        path = self.settings.resources
        assert path is not None
        while True:
            await asyncio.sleep(self.settings.reload_seconds)
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            if mtime == self._loaded_mtime:
                continue
            self._loaded_mtime = mtime
            try:
                self.load_resources()
            except SwitchmanError as exc:
                log.error("%s not applied, the running config is unchanged: %s", path, exc)

    async def stop(self, grace: float = 5.0) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.xds.stop(grace)
