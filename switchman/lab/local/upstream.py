"""A demo upstream service: answers with its name and version, and can be told to misbehave."""

from __future__ import annotations

import asyncio
import random
import ssl
from dataclasses import asdict, dataclass

import aiohttp
from aiohttp import web

__all__ = ["Faults", "Upstream", "set_faults"]

VERSION_HEADER = "x-upstream-version"


@dataclass(slots=True)
class Faults:
    """What the upstream does wrong, changeable at run time (``POST /_faults``)."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    reset_rate: float = 0.0


class Upstream:
    """An aiohttp server on loopback; ``start`` returns the bound port."""

    def __init__(self, service: str, version: str, host: str = "127.0.0.1") -> None:
        self.service = service
        self.version = version
        self.host = host
        self.faults = Faults()
        self.requests = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/_faults", self._set_faults)
        # Readiness (a Kubernetes probe through the sidecar): answered whatever faults are set.
        app.router.add_get("/_healthz", self._healthz)
        app.router.add_route("*", "/{tail:.*}", self._serve)
        return app

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"service": self.service, "version": self.version})

    async def _set_faults(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.faults = Faults(
            latency_ms=float(body.get("latency_ms", 0)),
            error_rate=float(body.get("error_rate", 0)),
            reset_rate=float(body.get("reset_rate", 0)),
        )
        return web.json_response({"ok": True})

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        faults = self.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.reset_rate and random.random() < faults.reset_rate:
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPInternalServerError()
        headers = {VERSION_HEADER: self.version, "x-upstream-service": self.service}
        if faults.error_rate and random.random() < faults.error_rate:
            return web.Response(status=503, text=f"{self.service} {self.version} failing\n", headers=headers)
        return web.Response(text=f"{self.service} {self.version}\n", headers=headers)

    async def start(self, port: int = 0, ssl_context: ssl.SSLContext | None = None) -> int:
        """Bind and serve (HTTPS with ``ssl_context``); returns the bound port."""
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port, ssl_context=ssl_context)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def set_faults(url: str, faults: Faults) -> None:
    """Tell the upstream at ``url`` (directly, or through the sidecar in front of it) to misbehave so."""
    target = url.rstrip("/") + "/_faults"
    async with aiohttp.ClientSession() as session, session.post(target, json=asdict(faults)) as resp:
        resp.raise_for_status()
