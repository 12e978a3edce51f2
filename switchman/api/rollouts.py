"""The REST handlers of rollouts: where each stands, and the commands people give them.

``GET /v1/rollouts``, ``GET /v1/rollouts/{name}``, and ``POST
/v1/rollouts/{name}/{command}`` with command ``pause``, ``resume``,
``promote`` (``{"full": true}`` skips the remaining stages), ``abort`` or
``retry``. Any replica answers: commands are written to the run's state in
the store, and the replica that drives the rollout carries them out.
"""

from __future__ import annotations

import json

from aiohttp import web

from switchman.api.auth import CALLER_KEY
from switchman.api.errors import ApiError
from switchman.api.keys import ROLLOUTS

__all__ = ["ROLLOUT_VERBS", "rollout_routes"]

rollout_routes = web.RouteTableDef()
ROLLOUT_VERBS = ("pause", "resume", "promote", "abort", "retry")


@rollout_routes.get("/v1/rollouts")
async def list_rollouts(request: web.Request) -> web.Response:
    engine = request.app[ROLLOUTS]
    return web.json_response({"rollouts": [await engine.status(name) for name in await engine.names()]})


@rollout_routes.get("/v1/rollouts/{name}")
async def get_rollout(request: web.Request) -> web.Response:
    return web.json_response(await request.app[ROLLOUTS].status(request.match_info["name"]))


@rollout_routes.post("/v1/rollouts/{name}/{verb}")
async def rollout_command(request: web.Request) -> web.Response:
    verb = request.match_info["verb"]
    if verb not in ROLLOUT_VERBS:
        raise ApiError(404, "not_found", f"there is no rollout command {verb!r} (commands: {', '.join(ROLLOUT_VERBS)})")
    body: object = {}
    if request.can_read_body:
        try:
            body = await request.json()
        except json.JSONDecodeError as exc:
            raise ApiError(400, "bad_request", f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", 'the body, if any, must be a JSON object such as {"full": true}')
    full = body.get("full", False)
    if not isinstance(full, bool) or (full and verb != "promote"):
        raise ApiError(400, "bad_request", "full is true or false, and goes with promote only")
    command = "promote-full" if full else verb
    caller = request[CALLER_KEY]
    by = caller.author + (f" for {caller.on_behalf_of}" if caller.on_behalf_of else "")
    status = await request.app[ROLLOUTS].command(request.match_info["name"], command, by)
    return web.json_response(status)
