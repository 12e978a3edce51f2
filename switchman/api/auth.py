"""Bearer tokens with two roles: ``read`` (GET) and ``admin`` (everything).

No token -> 401; a read token on a change -> 403. Tokens are compared in
constant time and never logged. With no tokens configured, the API is open
(for a laptop); ``switchman serve`` says so in its log.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

from switchman.api.errors import error_response

__all__ = ["AUTHOR_KEY", "Tokens", "auth_middleware"]

AUTHOR_KEY = web.RequestKey("author", str)
_OPEN_PATHS = frozenset({"/healthz", "/v1/openapi.json"})


@dataclass(frozen=True, slots=True)
class Tokens:
    """Token secrets by the name they act under (the name is what the history records)."""

    admin: Mapping[str, str] = field(default_factory=dict)
    read: Mapping[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.admin or self.read)

    def who(self, secret: str) -> tuple[str, str] | None:
        """``(name, role)`` for a presented secret, or None."""
        for role, table in (("admin", self.admin), ("read", self.read)):
            for name, known in table.items():
                if hmac.compare_digest(known.encode(), secret.encode()):
                    return name, role
        return None

    @staticmethod
    def parse(spec: str) -> dict[str, str]:
        """``name=secret,name2=secret2`` (a bare secret is named after its role)."""
        out: dict[str, str] = {}
        for i, item in enumerate(filter(None, (p.strip() for p in spec.split(",")))):
            name, sep, secret = item.partition("=")
            out[name if sep else f"token{i + 1}"] = secret if sep else item
        return out


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def auth_middleware(tokens: Tokens) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        author = request.headers.get("X-Switchman-Author", "")
        if not tokens.enabled or request.path in _OPEN_PATHS:
            request[AUTHOR_KEY] = author or "anonymous"
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret:
            return error_response(401, "unauthorized", "a bearer token is required (Authorization: Bearer TOKEN)")
        found = tokens.who(secret.strip())
        if found is None:
            return error_response(401, "unauthorized", "the token is not known")
        name, role = found
        if role != "admin" and request.method not in ("GET", "HEAD", "OPTIONS"):
            return error_response(403, "forbidden", f"token {name!r} may only read")
        request[AUTHOR_KEY] = author or name
        return await handler(request)

    return middleware
