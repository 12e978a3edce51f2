"""A catch-all HTTP server on loopback, for upstreams that tests write as one handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

__all__ = ["serve_http"]


async def serve_http(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]], host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, int]:
    """Serve every method and path with ``handler``; returns the runner (``cleanup()`` stops it) and the bound port."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, int(runner.addresses[0][1])
