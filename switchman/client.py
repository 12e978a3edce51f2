"""An async Python client of Switchman's REST API.

::

    async with SwitchmanClient("http://127.0.0.1:8080", token="s3cret") as client:
        result = await client.apply(documents, message="canary 10 %")
        await client.set_weights("checkout", {"v1": 90, "v2": 10})

Changes (apply, delete, set_weights, set_route_split, rollback) return an
:class:`ApplyResult`; reads return the API's JSON as dicts and lists. Each
change takes ``expected_revision=N``: it is made only if the store's head is
still revision N (sent as ``If-Match``), else :class:`Conflict` is raised
and nothing is stored; ``ApplyResult.head`` is the N to give the next one::

    result = await client.set_weights("checkout", {"v1": 90, "v2": 10}, expected_revision=7)
    await client.set_weights("checkout", {"v1": 50, "v2": 50}, expected_revision=result.head)
 Every refusal raises a
:class:`ClientError` (a :class:`~switchman.errors.SwitchmanError`) chosen by
the API's stable error ``code`` in one table; an API that cannot be reached
raises :class:`Unreachable`.

Documents are mappings (``kind``, ``metadata.name``, ``spec``). For
``kind: EnvoyResource`` a document may also be an Envoy protobuf message from
``xds-protos`` (a Listener, RouteConfiguration, Cluster, ClusterLoadAssignment
or Secret) or an ``envoy-data-plane`` (betterproto) message, either on its own
(it becomes a document named after the resource) or as the ``spec`` of a
mapping.
"""

from __future__ import annotations

import datetime
import io
import json
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, TypeAlias
from urllib.parse import quote

import aiohttp
from google.protobuf import json_format
from google.protobuf.message import Message

from switchman.errors import ConfigError, SwitchmanError
from switchman.tls import client_context, read_pem

__all__ = [
    "ApplyResult",
    "ClientError",
    "Conflict",
    "EnvoyChanges",
    "Forbidden",
    "InvalidConfig",
    "NotFound",
    "SwitchmanClient",
    "Unauthorized",
    "Unreachable",
    "Untrusted",
    "dumps",
    "to_document",
]

JsonObject: TypeAlias = dict[str, Any]
JsonList: TypeAlias = list[JsonObject]

_TYPE_PREFIX: Final = "type.googleapis.com/"
_BETTERPROTO_PACKAGES: Final = frozenset({"betterproto", "betterproto2"})
#: Request bodies larger than this are streamed.
_STREAMED_BODY: Final = 1024 * 1024
#: How much longer than its wait an apply that waits may take to answer.
_WAIT_MARGIN: Final = 15.0


# -- errors ------------------------------------------------------------------


class ClientError(SwitchmanError):
    """The API refused a request, or could not be reached.

    ``status`` is the HTTP status (0 when there was no answer), ``code`` the
    API's stable error code, ``path`` the document and field a config error
    names (``routes/shop: spec.virtualHosts[0]``), ``url`` the request's URL.
    """

    def __init__(self, status: int, code: str, message: str, path: str | None = None, url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.path = path
        self.url = url

    def with_message(self, message: str) -> ClientError:
        """The same error (same class, status, code, path) saying ``message``."""
        return type(self)(self.status, self.code, message, self.path, self.url)


class Unauthorized(ClientError):
    """401: no token, or a token the API does not know."""


class Forbidden(ClientError):
    """403: a read-only token asked for a change."""


class NotFound(ClientError):
    """404: no such document, revision, node or kind."""


class Conflict(ClientError):
    """409: another change was committed first; read again and retry."""


class InvalidConfig(ClientError):
    """422: the documents are wrong; ``path`` names the document and field."""


class Unreachable(ClientError):
    """No answer: the API is not listening at that address, or did not answer in time."""


class Untrusted(Unreachable):
    """The API's certificate is not one this client trusts (its CA is neither the system's nor ``ca_cert``)."""


# The API's error codes (switchman/api/errors.py, auth.py) -> the error raised.
# A code not listed (bad_request, store_unavailable, internal, ...) raises ClientError.
ERRORS: Final[Mapping[str, type[ClientError]]] = {
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "conflict": Conflict,
    "invalid_config": InvalidConfig,
}


# -- results -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnvoyChanges:
    """Envoy resources (``cds/checkout-v1``) a change adds, changes and removes."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What a change did (or, for a dry run, would do), by document id (``service/checkout``)."""

    revision: int | None  # None for a dry run, or when nothing changed
    created: tuple[str, ...]
    configured: tuple[str, ...]
    unchanged: tuple[str, ...]
    deleted: tuple[str, ...]
    envoy: EnvoyChanges  # for every node (the default group)
    dry_run: bool
    groups: Mapping[str, EnvoyChanges] = field(default_factory=dict)  # for each named node group
    # The store's head as the change left it (the new revision; for a dry run or no change, the head it
    # was checked against): what expected_revision takes next. None: an empty store.
    head: int | None = None
    # apply(wait=...): the API's wait report (synced, timeout, waited, revision, groups, nodes); None without one.
    wait: Mapping[str, Any] | None = None

    @property
    def changes(self) -> bool:
        """True when a document or an Envoy resource changes."""
        return bool(self.created or self.configured or self.deleted or self.envoy)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> ApplyResult:
        envoy = body.get("envoy") or {}
        revision = body.get("revision")
        head = body.get("head")

        def changes(entry: Mapping[str, Any]) -> EnvoyChanges:
            return EnvoyChanges(
                tuple(entry.get("added", ())), tuple(entry.get("changed", ())), tuple(entry.get("removed", ()))
            )

        return cls(
            revision=int(revision) if revision is not None else None,
            created=tuple(body.get("created", ())),
            configured=tuple(body.get("configured", ())),
            unchanged=tuple(body.get("unchanged", ())),
            deleted=tuple(body.get("deleted", ())),
            envoy=changes(envoy),
            dry_run=bool(body.get("dry_run", False)),
            groups={g: changes(c) for g, c in (body.get("groups") or {}).items()},
            head=int(head) if head is not None else None,
            wait=body.get("wait"),
        )


# -- documents ---------------------------------------------------------------


def _is_betterproto(obj: object) -> bool:
    return any(cls.__module__.split(".", 1)[0] in _BETTERPROTO_PACKAGES for cls in type(obj).__mro__)


def _from_betterproto(obj: object) -> Message:
    """A betterproto message as the matching xds-protos message, through its bytes.

    Its proto type name is its module and class name, without the package that
    wraps the generated code: ``envoy_data_plane.envoy.config.cluster.v3.Cluster``
    is ``envoy.config.cluster.v3.Cluster``.
    """
    from switchman.xds import resources as rt

    module, name = type(obj).__module__, type(obj).__name__
    candidates = [f"{module}.{name}"] + ([f"{module.split('.', 1)[1]}.{name}"] if "." in module else [])
    found = [c for c in candidates if _TYPE_PREFIX + c in rt.TYPE_URLS]
    if not found:
        raise TypeError(f"{candidates[-1]} is not a type Switchman serves ({_served_types()})")
    message = rt.message_class(_TYPE_PREFIX + found[0])()
    message.ParseFromString(bytes(obj))  # type: ignore[call-overload]
    return message


def _served_types() -> str:
    from switchman.xds import resources as rt

    return ", ".join(sorted(u.removeprefix(_TYPE_PREFIX) for u in rt.TYPE_URLS))


def _message_json(message: Message) -> JsonObject:
    """Envoy's JSON of ``message`` with its ``@type``; the modules of packed ``Any`` types are imported as needed."""
    from switchman.model.protos import import_package_of, missing_type
    from switchman.xds import resources as rt

    if type(message) not in rt.TYPE_URL_OF:
        raise TypeError(f"{message.DESCRIPTOR.full_name} is not a type Switchman serves ({_served_types()})")
    tried: set[str] = set()
    while True:
        try:
            body = json_format.MessageToDict(message)
            break
        except TypeError as exc:
            missing = missing_type(str(exc))
            if missing is None or missing in tried or not import_package_of(missing):
                raise
            tried.add(missing)
    return {"@type": _TYPE_PREFIX + message.DESCRIPTOR.full_name, **body}


def _as_message(obj: object) -> Message | None:
    if isinstance(obj, Message):
        return obj
    if _is_betterproto(obj):
        return _from_betterproto(obj)
    return None


def to_document(obj: object) -> JsonObject:
    """A document as the API takes it (a plain mapping).

    A mapping passes through (an ``EnvoyResource`` whose ``spec`` is a message
    gets the message's JSON); an Envoy message becomes an ``EnvoyResource``
    document named after the resource. Raises TypeError for anything else.
    """
    from switchman.xds import resources as rt

    if isinstance(obj, Mapping):
        doc = dict(obj)
        spec = doc.get("spec")
        message = _as_message(spec) if spec is not None and not isinstance(spec, Mapping) else None
        if message is not None:
            doc["spec"] = _message_json(message)
        return doc
    message = _as_message(obj)
    if message is None:
        raise TypeError(f"a document is a mapping or an Envoy protobuf message, not {type(obj).__name__}")
    body = _message_json(message)
    return {"kind": "EnvoyResource", "metadata": {"name": rt.resource_name(message)}, "spec": body}


def _json_default(value: object) -> Any:
    """What ``json.dumps`` cannot write itself: YAML dates, nested mappings and messages."""
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return list(value)
    message = _as_message(value)
    if message is not None:
        return _message_json(message)
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(value: object) -> str:
    """JSON for a request body (see :func:`_json_default`)."""
    return json.dumps(value, default=_json_default)


# -- the client --------------------------------------------------------------


class SwitchmanClient:
    """The REST API at ``base_url`` (``http://127.0.0.1:8080``, or ``https://...``), with a bearer ``token``
    if given.

    Use ``async with`` (or call :meth:`close`). ``author`` is whom the changes
    are made for (``X-Switchman-Author``): the history records it beside the
    token's name as ``on_behalf_of`` (with no tokens configured on the server,
    as the author). ``timeout`` bounds each request. Over HTTPS the server's
    certificate must be signed by a CA the system trusts or by ``ca_cert``
    (a PEM file); ``client_cert`` (certificate and key files) is presented
    to an API that asks for one (``--api-client-ca``). A file that cannot be
    used raises :class:`~switchman.errors.ConfigError` naming the argument.
    """

    def __init__(
        self, base_url: str, token: str | None = None, *, author: str | None = None, timeout: float = 30.0,
        ca_cert: str | None = None, client_cert: tuple[str, str] | None = None,
    ) -> None:
        base = base_url.strip().rstrip("/")
        self.base_url = base if "://" in base else f"http://{base}"
        self.token = token or None
        self.author = author or None
        self.timeout = timeout
        self._ssl = _ssl_context(ca_cert, client_cert) if ca_cert or client_cert else None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SwitchmanClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session; the client may be used again afterwards (it opens a new one)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- changes ---------------------------------------------------------------

    async def apply(
        self,
        documents: Iterable[object],
        message: str = "",
        dry_run: bool = False,
        *,
        expected_revision: int | None = None,
        prune: Mapping[str, str] | None = None,
        wait: float | None = None,
    ) -> ApplyResult:
        """Create or replace ``documents``, all or nothing (a dry run only says what would change).

        ``prune={"app": "shop"}``: also delete, in the same revision, the documents with those labels that
        ``documents`` does not hold (each of ``documents`` must carry them). ``wait=30``: answer once every
        Envoy the change concerns has ACKed it, or after that many seconds; ``ApplyResult.wait`` then says
        whether all did (``synced``) and, for each that did not, why. The request's timeout is stretched to
        cover the wait."""
        body: dict[str, Any] = {"documents": [to_document(d) for d in documents], "message": message,
                                "dryRun": dry_run}
        if prune is not None:
            body |= {"prune": True, "selector": dict(prune)}
        if wait is not None:
            if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait < float("inf"):
                raise ValueError(f"wait is a number of seconds, 0 or more (the API takes up to 600), not {wait!r}")
            body["wait"] = wait
        timeout = max(self.timeout, wait + _WAIT_MARGIN) if wait is not None else None
        return await self._change("POST", "/v1/apply", expected_revision, body=body, timeout=timeout)

    async def delete(
        self, kind: str, name: str, dry_run: bool = False, *, expected_revision: int | None = None
    ) -> ApplyResult:
        """Delete one document (refused while others refer to it)."""
        params = {"dryRun": "true"} if dry_run else None
        return await self._change("DELETE", _document_path(kind, name), expected_revision, params=params)

    async def set_weights(
        self, service: str, weights: Mapping[str, int], *, expected_revision: int | None = None
    ) -> ApplyResult:
        """Set a Service's split between its versions: ``{"v1": 90, "v2": 10}``."""
        path = f"/v1/services/{quote(service, safe='')}/weights"
        return await self._change("PATCH", path, expected_revision, body=dict(weights))

    async def set_route_split(
        self,
        routes: str,
        route: str,
        split: Iterable[Mapping[str, object]],
        dry_run: bool = False,
        *,
        expected_revision: int | None = None,
    ) -> ApplyResult:
        """Set the weighted split of the route named ``route`` in Routes ``routes``."""
        path = f"/v1/routes/{quote(routes, safe='')}/split"
        body = {"route": route, "split": [dict(s) for s in split]}
        params = {"dryRun": "true"} if dry_run else None
        return await self._change("PATCH", path, expected_revision, body=body, params=params)

    async def rollback(self, revision: int, *, expected_revision: int | None = None) -> ApplyResult:
        """A new revision with the documents of revision ``revision`` (NotFound: it does not exist, or was pruned)."""
        return await self._change("POST", "/v1/rollback", expected_revision, body={"revision": revision})

    async def _change(
        self,
        method: str,
        path: str,
        expected_revision: int | None,
        *,
        body: object = None,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> ApplyResult:
        headers: dict[str, str] = {}
        if expected_revision is not None:
            if isinstance(expected_revision, bool) or not isinstance(expected_revision, int) or expected_revision < 0:
                raise ValueError(f"expected_revision is a revision number (0 or more), not {expected_revision!r}")
            headers["If-Match"] = f'"{expected_revision}"'
        answer = await self._object(method, path, body=body, params=params, headers=headers, timeout=timeout)
        return ApplyResult.from_json(answer)

    # -- reads -----------------------------------------------------------------

    async def get(self, kind: str, name: str) -> JsonObject:
        """One document, as it was applied."""
        return await self._object("GET", _document_path(kind, name))

    async def list(self, kind: str | None = None) -> JsonList:
        """Every document (of ``kind``, if given), sorted by id."""
        params = {"kind": kind} if kind else None
        documents: JsonList = (await self._object("GET", "/v1/documents", params=params))["documents"]
        return documents

    async def history(self, limit: int = 50) -> JsonList:
        """The newest ``limit`` revisions, newest first: number, author, on_behalf_of, created_at, message,
        added/changed/removed, rollback_of."""
        revisions: JsonList = (await self._object("GET", "/v1/history", params={"limit": str(limit)}))["revisions"]
        return revisions

    async def revision(self, number: int) -> JsonObject:
        """``{"revision": summary, "documents": [...]}`` of revision ``number``."""
        return await self._object("GET", f"/v1/revisions/{int(number)}")

    async def render(self, node: str | None = None, group: str | None = None) -> JsonObject:
        """``{"group", "resources": {"cds": [...], ...}}``: what a node (or node group) is served, as Envoy JSON."""
        if node and group:
            raise ValueError("render takes a node or a group, not both")
        params = {"node": node} if node else {"group": group} if group else None
        return await self._object("GET", "/v1/render", params=params)

    async def status(self) -> JsonObject:
        """``{"revision", "store", "nodes": [...]}``: the revision served, how this replica follows the store
        (``store``: ready, reason, store_head, last_contact, last_error...), every connected Envoy, its ACKed
        version per type and last NACK."""
        return await self._object("GET", "/v1/status")

    # -- rollouts --------------------------------------------------------------

    async def rollouts(self) -> JsonList:
        """Every rollout in the configuration and where its run stands."""
        found: JsonList = (await self._object("GET", "/v1/rollouts"))["rollouts"]
        return found

    async def rollout(self, name: str) -> JsonObject:
        """Where rollout ``name`` stands: phase, stage, weight, last analysis with its numbers, events."""
        return await self._object("GET", f"/v1/rollouts/{quote(name, safe='')}")

    async def rollout_command(self, name: str, command: str, *, full: bool = False) -> JsonObject:
        """``pause``, ``resume``, ``promote`` (``full``: to the end), ``abort`` or ``retry`` rollout ``name``;
        returns its status with the command recorded (the driving replica carries it out next)."""
        path = f"/v1/rollouts/{quote(name, safe='')}/{quote(command, safe='')}"
        return await self._object("POST", path, body={"full": True} if full else {})

    # -- plumbing --------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.author:
            headers["X-Switchman-Author"] = self.author
        return headers

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl) if self._ssl is not None else None
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout),
                                                  connector=connector)
        return self._session

    async def _object(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> JsonObject:
        """``timeout``: this request's, when it needs longer than the client's (an apply that waits)."""
        url = self.base_url + path
        limit = self.timeout if timeout is None else timeout
        headers = {**self._headers(), **(headers or {})}
        data: bytes | io.BytesIO | None = None
        if body is not None:
            data = dumps(body).encode()
            if len(data) > _STREAMED_BODY:  # aiohttp would copy (and warn of) a large body given whole
                data = io.BytesIO(data)
            headers["Content-Type"] = "application/json"
        try:
            # Without a timeout of its own, the session's (passing None would mean none at all).
            session = self._open()
            request = (
                session.request(method, url, data=data, params=params, headers=headers)
                if timeout is None else
                session.request(method, url, data=data, params=params, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout))
            )
            async with request as resp:
                text = await resp.text()
                status = resp.status
        except aiohttp.InvalidURL:
            raise Unreachable(0, "unreachable", f"{self.base_url!r} is not a URL", url=url) from None
        except aiohttp.ClientConnectorCertificateError as exc:
            reason = getattr(exc.certificate_error, "verify_message", "") or str(exc.certificate_error)
            message = f"the API at {self.base_url} presented a certificate this client does not trust ({reason})"
            raise Untrusted(0, "unreachable", message, url=url) from None
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or str(exc.os_error) if exc.os_error else str(exc)
            raise Unreachable(0, "unreachable", f"cannot reach the API at {self.base_url}: {reason}", url=url) from None
        except aiohttp.ClientError as exc:
            raise Unreachable(0, "unreachable", f"the API at {self.base_url} failed: {exc}", url=url) from None
        except TimeoutError:
            message = f"the API at {self.base_url} did not answer within {limit:g}s"
            raise Unreachable(0, "unreachable", message, url=url) from None
        try:
            parsed = json.loads(text) if text else {}
        except json.JSONDecodeError:
            parsed = None
        if status >= 400:
            raise _error(status, parsed, text, url)
        if not isinstance(parsed, dict):
            raise ClientError(status, "bad_response", f"{method} {url}: the answer is not a JSON object", url=url)
        return parsed


def _ssl_context(ca_cert: str | None, client_cert: tuple[str, str] | None) -> ssl.SSLContext:
    context = client_context(ca_cert, "ca_cert")
    if client_cert is not None:
        cert, key = client_cert
        read_pem(cert, "client_cert")
        read_pem(key, "client_cert")
        try:
            context.load_cert_chain(cert, key)
        except ssl.SSLError as exc:
            raise ConfigError("client_cert", f"{cert} and {key} are not a PEM certificate and its key: "
                                             f"{exc.reason or exc}") from None
    return context


def _document_path(kind: str, name: str) -> str:
    return f"/v1/documents/{quote(kind, safe='')}/{quote(name, safe='')}"


def _error(status: int, parsed: object, text: str, url: str) -> ClientError:
    """The error for an HTTP error answer: the API's ``{"error": {...}}``, else the status and the first line."""
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        code = str(error["code"])
        message = str(error.get("message") or code)
        path = error.get("path")
        return ERRORS.get(code, ClientError)(status, code, message, str(path) if path else None, url)
    first = text.strip().splitlines()[0] if text.strip() else f"HTTP {status}"
    code = {401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(status, f"http_{status}")
    return ERRORS.get(code, ClientError)(status, code, f"HTTP {status} from {url}: {first[:200]}", None, url)
