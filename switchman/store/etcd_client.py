"""How the etcd backend reaches etcd: TLS with a client certificate, user/password
authentication, and a reconnection that follows etcd promptly when it comes back.

aetcd (the asyncio client) opens only plaintext channels and fetches its auth
token once, at connect: :class:`EtcdClient` opens the channel itself (TLS when
:class:`EtcdTls` is given) and leaves the token to :class:`_Token`, a gRPC
interceptor that authenticates before the first call and again when etcd says
the token is no longer good (etcd's simple tokens live in its memory: a restart
forgets them all, and they expire after ``--auth-token-ttl`` unused), then
repeats the call once with the fresh token. So a replica on an etcd with auth
enabled goes on after etcd restarts, as one without does.

Reconnection. A gRPC channel whose server went away reconnects with an
exponential backoff, 1 s growing by 1.6 up to 120 s: after a 30 s outage the
next attempt could be 20 s after etcd is back, and every call fails fast
meanwhile. The channel here backs off from 0.1 s to at most 0.5 s
(:data:`RECONNECT_MAX`), a connection attempt that costs etcd nothing while it
is down and puts a replica back within half a second when it answers.

Certificates and keys are read by :meth:`EtcdTls.from_files` (checked there, so
a wrong file is a :class:`~switchman.errors.ConfigError` naming it before
anything starts); the client gets their bytes and touches no file.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aetcd  # type: ignore[import-untyped]  # aetcd ships no type information
import grpc
from aetcd import rpc, watcher

from switchman.errors import ConfigError

__all__ = ["RECONNECT_MAX", "EtcdAuth", "EtcdClient", "EtcdTls", "explain"]

#: The first and the largest delay, in seconds, between two attempts to reach an etcd that went away.
RECONNECT_FIRST: Final = 0.1
RECONNECT_MAX: Final = 0.5

_AUTHENTICATE: Final = "/etcdserverpb.Auth/Authenticate"
#: etcd's answers that mean "authenticate again": the token was forgotten (a restart) or expired, or the
#: users and roles changed since it was given.
_STALE_TOKEN: Final = ("invalid auth token", "revision of auth store is old")


@dataclass(frozen=True, slots=True)
class EtcdTls:
    """TLS to etcd: the CA that signed etcd's certificate, and this client's certificate and key (both or
    neither), as PEM bytes. The file names are kept for messages."""

    ca: bytes
    cert: bytes | None = None
    key: bytes | None = field(default=None, repr=False)
    ca_file: str = "the CA given"
    cert_file: str | None = None

    @classmethod
    def from_files(
        cls, ca_file: str, cert_file: str | None = None, key_file: str | None = None,
        *, names: tuple[str, str, str] = ("ca_file", "cert_file", "key_file"),
    ) -> EtcdTls:
        """Read and check the files; :class:`ConfigError` naming the option (``names``: CA, cert, key) that is wrong."""
        ca_name, cert_name, key_name = names
        if bool(cert_file) != bool(key_file):
            missing, given = (key_name, cert_name) if cert_file else (cert_name, key_name)
            raise ConfigError(missing, f"{given} needs it: a client certificate goes with its key")
        ca = _read(ca_file, ca_name)
        try:
            ssl.create_default_context(cadata=ca.decode("ascii", "replace"))
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigError(ca_name, f"{ca_file} holds no PEM CA certificate ({exc})") from None
        if not cert_file or not key_file:
            return cls(ca, ca_file=ca_file)
        cert, key = _read(cert_file, cert_name), _read(key_file, key_name)
        try:
            ssl.create_default_context().load_cert_chain(cert_file, key_file)
        except ssl.SSLError as exc:
            raise ConfigError(key_name, f"{key_file} is not the PEM key of {cert_file} ({exc.reason or exc})") from None
        return cls(ca, cert, key, ca_file=ca_file, cert_file=cert_file)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.ca, private_key=self.key,
                                            certificate_chain=self.cert)


@dataclass(frozen=True, slots=True)
class EtcdAuth:
    """etcd's user/password authentication (etcd must have it enabled: ``etcdctl auth enable``)."""

    user: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.user or not self.password:
            raise ValueError("etcd authentication needs a user and a password")


def _read(path: str, name: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(name, f"cannot read {path}: {exc.strerror}") from None


def _with_token(details: grpc.aio.ClientCallDetails, token: str) -> grpc.aio.ClientCallDetails:
    metadata = [(k, v) for k, v in (details.metadata or ()) if k != "token"]
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, grpc.aio.Metadata(("token", token), *metadata),
        details.credentials, details.wait_for_ready,
    )


def _stale(details: str | None) -> bool:
    return any(s in (details or "") for s in _STALE_TOKEN)


def _method(details: grpc.aio.ClientCallDetails) -> str:
    method: str | bytes = details.method
    return method.decode() if isinstance(method, bytes) else method


class _Token(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Puts etcd's auth token on every unary call, fetches a new one when etcd says it is stale (see the
    module), and gives it to the streams (watches, lease keep-alives) as they open.

    Not a stream interceptor: grpc.aio's intercepted stream-stream call delivered a watch's "created"
    answer and none of its events."""

    def __init__(self, auth: EtcdAuth, timeout: float | None) -> None:
        self._auth = auth
        self._timeout = timeout
        self._token: str | None = None
        self._lock = asyncio.Lock()
        self._stub: Any = None

    def bind(self, channel: grpc.aio.Channel) -> None:
        self._stub = rpc.AuthStub(channel)
        self._token = None

    @property
    def current(self) -> str | None:
        return self._token

    async def fresh(self, stale: str | None = None) -> str:
        """The token; a new one when there is none yet or it is ``stale`` (one Authenticate for all callers)."""
        async with self._lock:
            if self._token is None or self._token == stale:
                request = rpc.AuthenticateRequest(name=self._auth.user, password=self._auth.password)
                reply = await self._stub.Authenticate(request, timeout=self._timeout)
                self._token = str(reply.token)
            return self._token

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        if _method(details) == _AUTHENTICATE:
            return await continuation(details, request)
        token = await self.fresh()
        call = await continuation(_with_token(details, token), request)
        code = await call.code()
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT) and _stale(await call.details()):
            call = await continuation(_with_token(details, await self.fresh(token)), request)
        return call


class _Watcher(watcher.Watcher):  # type: ignore[misc]  # aetcd is untyped
    """aetcd's watcher, its stream opened with a good token (the watcher reads its metadata when it opens one)."""

    def __init__(self, stub: Any, timeout: float | None, token: _Token) -> None:
        super().__init__(stub, timeout=timeout, metadata=None)
        self._token = token

    async def setup(self) -> None:
        if self._request_handler is None:
            self._metadata = (("token", await self._token.fresh()),)
        await super().setup()


class EtcdClient(aetcd.Client):  # type: ignore[misc]  # aetcd is untyped
    """aetcd's client on a channel of our own: TLS, an auth token interceptor, prompt reconnection."""

    def __init__(
        self, host: str, port: int, *, timeout: float | None, options: dict[str, Any],
        tls: EtcdTls | None = None, auth: EtcdAuth | None = None,
    ) -> None:
        options = {
            "grpc.initial_reconnect_backoff_ms": int(RECONNECT_FIRST * 1000),
            "grpc.min_reconnect_backoff_ms": int(RECONNECT_FIRST * 1000),
            "grpc.max_reconnect_backoff_ms": int(RECONNECT_MAX * 1000),
            **options,
        }
        super().__init__(host=host, port=port, timeout=timeout, options=options)
        self._tls = tls
        self._token = None if auth is None else _Token(auth, timeout)
        self._is_connecting: bool = False

    @property
    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        """What aetcd sends with each call: the token as last fetched. The interceptor renews it on unary calls;
        a lease keep-alive (a stream) follows a read of the lease's key, so it goes out with a fresh one."""
        token = None if self._token is None else self._token.current
        return None if token is None else (("token", token),)

    @metadata.setter
    def metadata(self, value: object) -> None:
        pass  # aetcd resets it when it (re)initialises; the token lives in _Token

    async def connect(self) -> None:
        """Open the channel (no network yet: gRPC connects on the first call). aetcd's own connect, but with
        our channel and no token fetched here (the interceptor does it)."""
        if self._connected.is_set():
            return
        if self._is_connecting:  # another task is opening it
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return
        self._is_connecting = True
        try:
            target = f"{self._host}:{self._port}"
            interceptors = [] if self._token is None else [self._token]
            options = list(self._options.items())
            if self._tls is None:
                self.channel = grpc.aio.insecure_channel(target, options, interceptors=interceptors)
            else:
                self.channel = grpc.aio.secure_channel(target, self._tls.credentials(), options,
                                                       interceptors=interceptors)
            if self._token is not None:
                self._token.bind(self.channel)
            self.kvstub = rpc.KVStub(self.channel)
            self.clusterstub = rpc.ClusterStub(self.channel)
            self.leasestub = rpc.LeaseStub(self.channel)
            self.maintenancestub = rpc.MaintenanceStub(self.channel)
            stub = rpc.WatchStub(self.channel)
            self._watcher = (watcher.Watcher(stub, timeout=self._timeout, metadata=None) if self._token is None
                             else _Watcher(stub, self._timeout, self._token))
            self._connected.set()
        finally:
            self._is_connecting = False


def explain(text: str, tls: EtcdTls | None, auth: EtcdAuth | None) -> str | None:
    """What an operator should know about an etcd or gRPC error ``text`` caused by TLS or authentication
    settings (naming ``serve``'s options) or by etcd's full database, or None when it is not one of those."""
    lowered = text.lower()
    if tls is not None and "certificate_verify_failed" in lowered:
        return (f"etcd's TLS certificate is not signed by the CA in {tls.ca_file} (--etcd-ca), or does not name"
                " the host of the store URL")
    if tls is not None and any(s in lowered for s in ("unwrap failed", "bad_certificate", "certificate_required")):
        # etcd with --client-cert-auth ends the handshake when the client shows no certificate it trusts
        if tls.cert is None:
            return "etcd refused the TLS connection: it wants a client certificate (--etcd-cert, --etcd-key)"
        return (f"etcd refused the client certificate {tls.cert_file} (--etcd-cert): is it signed by a CA etcd"
                " trusts (its --trusted-ca-file)?")
    if tls is not None and ("wrong_version_number" in lowered or "handshake failed" in lowered):
        return "the TLS handshake failed: does etcd serve TLS on this port (https in its --listen-client-urls)?"
    if tls is None and "socket closed" in lowered:
        return "etcd closed the connection: does it serve TLS on this port (then give --etcd-ca)?"
    if auth is not None and "authentication failed" in lowered:
        return (f"etcd refused user {auth.user!r}: wrong user or password (--etcd-user, SWITCHMAN_ETCD_PASSWORD"
                " or --etcd-password-file)")
    if auth is not None and "authentication is not enabled" in lowered:
        return f"--etcd-user {auth.user!r} is given but etcd does not have authentication enabled"
    if "database space exceeded" in lowered:
        return ("etcd's database is over its quota (etcd's --quota-backend-bytes) and etcd refuses every write until "
                "an operator frees space and disarms the alarm: prune (serve --history-keep), compact, defragment, "
                "then `etcdctl alarm disarm` (docs/security.md, \"When etcd's quota is full\")")
    if "permission denied" in lowered or "user name is empty" in lowered:
        if auth is None:
            return ("etcd has authentication enabled: give --etcd-user and a password (or a client certificate"
                    " whose common name is an etcd user)")
        return f"user {auth.user!r} may not do this: its role needs readwrite on the store's key prefix"
    return None
