"""Serves the console's files: ``/`` is the page, ``/console/NAME`` its styles and scripts.

The files are read from the package once, when the console is added, and
only those names are served (no path ever reaches the file system). Every
answer carries a Content-Security-Policy that lets the page load and
connect to this origin only, with no inline script, and may not be framed.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Final

from aiohttp import web

__all__ = ["CONSOLE_PREFIX", "add_console", "console_files"]

CONSOLE_PREFIX: Final = "/console/"
_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}
_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    content_type: str


def console_files() -> dict[str, _File]:
    """The console's files by name, as the package holds them."""
    folder = resources.files("switchman.console").joinpath("static")
    out = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _TYPES:
            out[entry.name] = _File(entry.read_bytes(), _TYPES[suffix])
    return out


def add_console(app: web.Application) -> None:
    """Route ``/`` and ``/console/{name}`` of ``app`` to the console's files."""
    files = console_files()

    def answer(name: str) -> web.Response:
        found = files.get(name)
        if found is None:
            raise web.HTTPNotFound(reason=f"the console has no file {name!r}")
        return web.Response(body=found.body, content_type=found.content_type.split(";")[0], charset="utf-8",
                            headers=_HEADERS)

    async def page(request: web.Request) -> web.Response:
        return answer("index.html")

    async def file(request: web.Request) -> web.Response:
        return answer(request.match_info["name"])

    app.router.add_get("/", page)
    app.router.add_get(CONSOLE_PREFIX + "{name}", file)
