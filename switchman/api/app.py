"""The REST API application: routes, auth, and errors mapped in one place.

Bodies are limited to ``max_body_bytes`` (``switchman serve --max-body-bytes``,
8 MiB by default: a thousand Services with their routes take some 200 KiB of
YAML, and etcd refuses a revision over 1.5 MiB anyway); a larger one is
refused with 413 ``too_large`` before it is read whole.
"""

from __future__ import annotations

import logging
from typing import Final

from aiohttp import web

from switchman.api.auth import Handler, Tokens, auth_middleware
from switchman.api.errors import error_response, status_of
from switchman.api.events import end_event_streams, event_routes, events_ctx
from switchman.api.handlers import routes
from switchman.api.keys import CONTROLLER, DISCOVERY, MAX_BODY_BYTES, ROLLOUTS, XDS, DiscoveryStatus
from switchman.api.rollouts import rollout_routes
from switchman.api.whoami import TOKENS, whoami_routes
from switchman.control import Controller
from switchman.errors import ConfigError, SwitchmanError
from switchman.rollout import RolloutEngine
from switchman.xds import XdsServer

__all__ = ["DEFAULT_MAX_BODY_BYTES", "api_app"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES: Final = 8 * 1024 * 1024


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[MAX_BODY_BYTES]
        return error_response(
            413, "too_large", f"the body is over the limit of {limit} bytes ({limit / 1024**2:g} MiB;"
            " switchman serve --max-body-bytes)",
        )
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
    controller: Controller,
    xds: XdsServer,
    tokens: Tokens | None = None,
    rollouts: RolloutEngine | None = None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    discovery: DiscoveryStatus | None = None,
) -> web.Application:
    tokens = tokens or Tokens()
    app = web.Application(middlewares=[_errors, auth_middleware(tokens)], client_max_size=max_body_bytes)
    app[MAX_BODY_BYTES] = max_body_bytes
    app[CONTROLLER] = controller
    app[XDS] = xds
    app[TOKENS] = tokens
    if discovery is not None:
        app[DISCOVERY] = discovery
    app.add_routes(routes)
    app.add_routes(whoami_routes)
    app.add_routes(event_routes)
    app.cleanup_ctx.append(events_ctx)
    app.on_shutdown.append(end_event_streams)
    if rollouts is not None:
        app[ROLLOUTS] = rollouts
        app.add_routes(rollout_routes)
    return app
