"""``GET /v1/whoami``: what the caller's token (or certificate) may do, so a client can offer only that.

Open to all (it tells nothing about any token but the one presented):
``{"tokens": bool, "name": str | null, "role": "admin" | "read" | null}``.
``tokens`` is whether the API asks for tokens at all; ``role`` is null for
no token or an unknown one. Without tokens, everyone is ``admin``. The API
still judges every request on its own: this only saves a client from
offering what would be refused.
"""

from __future__ import annotations

from aiohttp import web

from switchman.api.auth import Tokens, authorize, request_names
from switchman.api.errors import ApiError

__all__ = ["TOKENS", "whoami_routes"]

TOKENS = web.AppKey("tokens", Tokens)
whoami_routes = web.RouteTableDef()


@whoami_routes.get("/v1/whoami")
async def whoami(request: web.Request) -> web.Response:
    tokens = request.app[TOKENS]
    authorization = request.headers.get("Authorization", "")
    names = request_names(request)
    name: str | None = None
    role: str | None = None
    for change, granted in ((True, "admin"), (False, "read")):
        try:
            caller = authorize(tokens, authorization, "", change=change, names=names)
        except ApiError:
            continue
        name, role = caller.author, granted
        break
    return web.json_response({"tokens": tokens.enabled, "name": name if tokens.enabled else None, "role": role})
