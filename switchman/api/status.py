"""An aiohttp app: ``/healthz``, ``/metrics`` (Prometheus) and ``/v1/status`` (what each node ACKed)."""

from __future__ import annotations

from dataclasses import asdict

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from switchman.xds import XdsServer

__all__ = ["status_app"]

XDS_KEY = web.AppKey("xds", XdsServer)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[XDS_KEY].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _status(request: web.Request) -> web.Response:
    nodes = [asdict(node) for node in request.app[XDS_KEY].statuses()]
    return web.json_response({"nodes": nodes})


def status_app(xds: XdsServer) -> web.Application:
    app = web.Application()
    app[XDS_KEY] = xds
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/v1/status", _status)
    return app
