"""The REST API application: routes, auth, and errors mapped in one place."""

from __future__ import annotations

import logging

from aiohttp import web

from switchman.api.auth import Handler, Tokens, auth_middleware
from switchman.api.errors import error_response, status_of
from switchman.api.handlers import routes
from switchman.api.keys import CONTROLLER, ROLLOUTS, XDS
from switchman.api.rollouts import rollout_routes
from switchman.control import Controller
from switchman.errors import ConfigError, SwitchmanError
from switchman.rollout import RolloutEngine
from switchman.xds import XdsServer

__all__ = ["api_app"]

log = logging.getLogger(__name__)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_response(exc.status, "not_found" if exc.status == 404 else "bad_request", exc.reason)
        raise
    except SwitchmanError as exc:
        status, code = status_of(exc)
        if status >= 500:
            log.error("%s %s: %s", request.method, request.path, exc)
        path = exc.path if isinstance(exc, ConfigError) else None
        return error_response(status, code, str(exc), path)
    except Exception:  # a bug: still answer in the API's error format
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal", "internal error; the server log has the details")


def api_app(
    controller: Controller, xds: XdsServer, tokens: Tokens | None = None, rollouts: RolloutEngine | None = None
) -> web.Application:
    app = web.Application(middlewares=[_errors, auth_middleware(tokens or Tokens())], client_max_size=64 * 1024**2)
    app[CONTROLLER] = controller
    app[XDS] = xds
    app.add_routes(routes)
    if rollouts is not None:
        app[ROLLOUTS] = rollouts
        app.add_routes(rollout_routes)
    return app
