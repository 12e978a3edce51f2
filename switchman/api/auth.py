"""Bearer tokens with two roles: ``read`` (GET) and ``admin`` (everything); who made a change.

No token -> 401; a read token on a change -> 403. Tokens are compared in
constant time and never logged. With no tokens configured, the API is open
(for a laptop); ``switchman serve`` says so in its log.

Every token has a name, and with tokens the history records the name of
the token that made a change as its author. ``X-Switchman-Author`` (gRPC:
``x-switchman-author``) is then what the caller says about whom it acts for
(a CI job's user, an on-call engineer): it is stored beside, as
``on_behalf_of``, never instead. With no tokens nobody is known, so the
header is all there is: it is the author (``anonymous`` without it) and
``on_behalf_of`` stays empty.

Client certificates: on a port that checks them (mutual TLS: the xDS
port with ``--xds-client-ca``, the API with ``--api-client-ca``), a
certificate whose identity (SPIFFE URI SAN, else DNS SAN) matches
``read_identities`` may read as a read token does, without a token; a
change still needs an admin token. Identities count only when tokens are
configured (without tokens everything is open anyway), and the node
identities that let Envoys claim node groups never grant reading.

Secrets are checked when the tokens are made (``switchman serve`` refuses to
start): a secret is printable ASCII without spaces (it travels in a header),
so an empty or blank one, which a blank bearer token could otherwise match,
can never be configured; names are unique across both roles (the history
must tell them apart) and so are secrets (one secret, one name and role).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Middleware

from switchman.api.errors import ApiError
from switchman.errors import ConfigError
from switchman.xds.server.peer import matches_any, names_of, parse_identity_patterns

__all__ = ["AUTHOR_KEY", "CALLER_KEY", "Caller", "Tokens", "auth_middleware", "authorize", "request_names"]

#: Open to all: health, the API's description, who a token is, and the web console's page and files (the
#: console reads everything else through the API, with the token its user gives it).
_OPEN_PATHS: Final = frozenset({"/healthz", "/readyz", "/v1/openapi.json", "/v1/whoami", "/"})
_OPEN_PREFIXES: Final = ("/console/",)
#: What a secret may be: printable ASCII, no spaces (an Authorization header carries it).
_SECRET: Final = re.compile(r"[\x21-\x7e]+")
#: A token's name: what the history shows.
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@/:+-]*")
#: The longest ``X-Switchman-Author`` kept in the history.
MAX_ON_BEHALF_OF: Final = 200


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes a request: ``author`` (the token's name, or without tokens what the caller says) and
    ``on_behalf_of`` (what the caller says, when a token names it)."""

    author: str
    on_behalf_of: str | None = None


AUTHOR_KEY = web.RequestKey("author", str)
CALLER_KEY = web.RequestKey("caller", Caller)


def _check(admin: Mapping[str, str], read: Mapping[str, str], admin_where: str, read_where: str) -> None:
    """Raises ConfigError naming ``*_where`` and the token (never its secret) for a token that cannot be used safely."""
    _check_role("admin", admin, admin_where)
    _check_role("read", read, read_where)
    for name in sorted(admin.keys() & read.keys()):
        raise ConfigError(read_where, f"token {name!r} is also an admin token: each token needs a name of its own")
    seen: dict[str, str] = {}
    for where, table in ((admin_where, admin), (read_where, read)):
        for name, secret in table.items():
            if secret in seen:
                raise ConfigError(where, f"tokens {seen[secret]!r} and {name!r} have the same secret")
            seen[secret] = name


def _check_role(role: str, table: Mapping[str, str], where: str) -> None:
    for name, secret in table.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(where, f"{name!r} is not a token name (letters, digits and ._@/:+-)")
        if not isinstance(secret, str) or not secret.strip():
            raise ConfigError(where, f"the {role} token {name!r} has an empty secret")
        if not _SECRET.fullmatch(secret):
            raise ConfigError(
                where, f"the secret of the {role} token {name!r} has spaces or characters that are not printable "
                "ASCII (it must fit an Authorization header as it is)"
            )


def _check_identities(identities: tuple[str, ...], has_tokens: bool, where: str) -> None:
    if identities and not has_tokens:
        raise ConfigError(where, "certificate identities may read only where tokens are required: give "
                                 "--admin-tokens or --read-tokens too (without tokens every port is open)")


@dataclass(frozen=True, slots=True)
class Tokens:
    """Token secrets by the name they act under (the name is what the history records), and the client
    certificate identities that may read without a token (patterns: exact, or a prefix with a trailing ``*``).

    Raises :class:`ConfigError` for a token that could not be used safely (the module's docstring), or for
    identities without tokens.
    """

    admin: Mapping[str, str] = field(default_factory=dict)
    read: Mapping[str, str] = field(default_factory=dict)
    read_identities: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check(self.admin, self.read, "admin tokens", "read tokens")
        _check_identities(self.read_identities, self.enabled, "read identities")

    @classmethod
    def from_flags(
        cls, admin: str, read: str, read_identities: str = "", *, admin_flag: str = "--admin-tokens",
        read_flag: str = "--read-tokens", identities_flag: str = "--read-identities",
    ) -> Tokens:
        """The tokens of ``serve``'s flags; errors name the flag and the token (never its secret)."""
        admin_tokens, read_tokens = cls.parse(admin, admin_flag), cls.parse(read, read_flag)
        _check(admin_tokens, read_tokens, admin_flag, read_flag)
        identities = parse_identity_patterns(read_identities, identities_flag)
        _check_identities(identities, bool(admin_tokens or read_tokens), identities_flag)
        return cls(admin=admin_tokens, read=read_tokens, read_identities=identities)

    @property
    def enabled(self) -> bool:
        return bool(self.admin or self.read)

    def who(self, secret: str) -> tuple[str, str] | None:
        """``(name, role)`` for a presented secret, or None (always for an empty or blank one)."""
        presented = secret.strip()
        if not presented:
            return None
        for role, table in (("admin", self.admin), ("read", self.read)):
            for name, known in table.items():
                if hmac.compare_digest(known.encode(), presented.encode()):
                    return name, role
        return None

    @staticmethod
    def parse(spec: str, flag: str = "tokens") -> dict[str, str]:
        """``name=secret,name2=secret2`` (a bare secret is named ``token1``, ``token2``... by its place).

        Raises :class:`ConfigError` naming ``flag`` for a name given twice or without a secret.
        """
        out: dict[str, str] = {}
        for i, item in enumerate(filter(None, (p.strip() for p in spec.split(",")))):
            name, sep, secret = item.partition("=")
            name, secret = (name.strip(), secret.strip()) if sep else (f"token{i + 1}", item)
            if not name:
                raise ConfigError(flag, f"token {i + 1} has no name before '=' (name=secret)")
            if name in out:
                raise ConfigError(flag, f"token {name!r} is given twice")
            if not secret:
                raise ConfigError(flag, f"token {name!r} has an empty secret")
            out[name] = secret
        return out


def authorize(
    tokens: Tokens,
    authorization: str,
    author: str,
    *,
    change: bool,
    names: Sequence[str] = (),
    token_header: str = "Authorization",
    author_header: str = "X-Switchman-Author",
) -> Caller:
    """Who calls, from the values of the token and author headers (named as the protocol spells them, for
    the messages) and the names of the client's verified certificate, if any; raises ApiError for no
    token (and no identity that may read), an unknown one, a read token or identity on a ``change``, or,
    on a change, an author that cannot go in the history."""
    said = author.strip()
    if change and (len(said) > MAX_ON_BEHALF_OF or not said.isprintable()):
        raise ApiError(
            400, "bad_request", f"{author_header} must be printable text of at most {MAX_ON_BEHALF_OF} characters"
        )
    if not tokens.enabled:
        return Caller(said or "anonymous")
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        if matches_any(tokens.read_identities, names):
            identity = names[0]
            if change:
                raise ApiError(403, "forbidden", f"certificate identity {identity[:200]!r} may only read "
                                                 "(a change needs an admin token)")
            return Caller(identity)
        raise ApiError(401, "unauthorized", f"a bearer token is required ({token_header}: Bearer TOKEN)")
    found = tokens.who(secret)
    if found is None:
        raise ApiError(401, "unauthorized", "the token is not known")
    name, role = found
    if change and role != "admin":
        raise ApiError(403, "forbidden", f"token {name!r} may only read")
    return Caller(name, said or None)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def request_names(request: web.Request) -> tuple[str, ...]:
    """The names in the client's certificate, when the API asks for one (``--api-client-ca``) and it came."""
    cert = request.transport.get_extra_info("peercert") if request.transport is not None else None
    return names_of(cert)


def auth_middleware(tokens: Tokens) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in _OPEN_PATHS or request.path.startswith(_OPEN_PREFIXES):
            caller = Caller("anonymous")
        else:
            caller = authorize(
                tokens, request.headers.get("Authorization", ""), request.headers.get("X-Switchman-Author", ""),
                change=request.method not in ("GET", "HEAD", "OPTIONS"), names=request_names(request),
            )
        request[CALLER_KEY] = caller
        request[AUTHOR_KEY] = caller.author
        return await handler(request)

    return middleware
