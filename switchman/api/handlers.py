"""The REST handlers: documents, apply, delete, weights, history, rollback, render and status; health.

Changes take ``If-Match: "N"`` (or ``N``): the revision the change was
made against. When the store's head is another one the change is refused,
409 ``conflict``, and nothing is stored. Their answer names the head they
leave, in the body (``head``) and as ``ETag: "N"``; document reads send the
head they read as their ``ETag`` too, so read, change, then apply with
``If-Match`` is a change nobody else's can slip under.

Parsing a body takes time in proportion to its size: 1 to 2 ms per KiB of
YAML with libyaml's events (PyYAML's own parser is ten times slower; 8 MiB,
the default limit, is 8 to 16 s of CPU) and about 10 ms per MiB of JSON.
Bodies above :data:`INLINE_YAML_BYTES` of YAML or :data:`INLINE_JSON_BYTES`
of JSON are parsed on a worker thread, so the event loop (and every xDS
stream on it) keeps running meanwhile: at most a few milliseconds of parsing
happen on it. YAML aliases are bounded by :mod:`switchman.model.loader`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final, TypeVar

import yaml
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from switchman.api.auth import CALLER_KEY, Caller
from switchman.api.errors import ApiError
from switchman.api.keys import CONTROLLER, DISCOVERY, XDS
from switchman.api.openapi import OPENAPI
from switchman.api.options import prune_selector, truth, wait_seconds
from switchman.api.wait import wait_for_envoys
from switchman.control import ApplyResult
from switchman.model.loader import load_documents, yaml_problem
from switchman.xds import DEFAULT_GROUP

__all__ = ["INLINE_JSON_BYTES", "INLINE_YAML_BYTES", "routes"]

routes = web.RouteTableDef()
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
#: Bodies up to these sizes are parsed on the event loop (a few ms at most); larger ones on a thread.
INLINE_YAML_BYTES: Final = 4 * 1024
INLINE_JSON_BYTES: Final = 256 * 1024
#: ``"N"`` or ``N``: a revision number as If-Match gives it.
_REVISION_TAG: Final = re.compile(r'"([0-9]{1,18})"|([0-9]{1,18})')

_T = TypeVar("_T")


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


async def _parse(parse: Callable[[str], _T], text: str, inline_up_to: int) -> _T:
    return parse(text) if len(text) <= inline_up_to else await asyncio.to_thread(parse, text)


async def _json(request: web.Request) -> Any:
    """The body as JSON (an empty body: None); 400 when it is not."""
    text = await request.text()
    if not text:
        return None
    try:
        return await _parse(json.loads, text, INLINE_JSON_BYTES)
    except json.JSONDecodeError as exc:
        raise ApiError(400, "bad_request", f"the body is not JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "bad_request", "the body is not JSON this API takes: it nests too deeply") from None


@dataclass(frozen=True, slots=True)
class _ApplyRequest:
    """What ``POST /v1/apply`` asks for: the documents and the query's (or JSON body's) options."""

    documents: list[Any]
    message: str
    dry_run: bool
    prune: Mapping[str, str] | None  # the selector of documents to prune; None: no prune
    wait: float | None  # seconds to wait for the Envoys' ACKs; None: do not wait


def _option(request: web.Request, body: Mapping[str, Any], name: str) -> Any:
    """An option from the JSON body, else the query (None when neither has it)."""
    return body[name] if body.get(name) is not None else request.query.get(name)


async def _apply_request(request: web.Request) -> _ApplyRequest:
    """Documents and options from a JSON body or a YAML stream (query: message, dryRun, prune, selector, wait)."""
    query: Mapping[str, Any] = {}
    if request.content_type in _YAML_TYPES:
        text = await request.text()
        try:
            loaded = await _parse(load_documents, text, INLINE_YAML_BYTES)
        except yaml.YAMLError as exc:
            raise ApiError(400, "bad_request", f"the body is not YAML: {yaml_problem(exc)}") from None
        docs = [d for d in loaded if d is not None]
    else:
        body = await _json(request)
        if body is None:
            raise ApiError(400, "bad_request", "the body is not JSON: it is empty")
        if not isinstance(body, dict) or not isinstance(body.get("documents"), list):
            raise ApiError(400, "bad_request", 'the body must be {"documents": [...]} (or YAML documents)')
        docs, query = body["documents"], body
    return _ApplyRequest(
        docs,
        str(_option(request, query, "message") or ""),
        truth(_option(request, query, "dryRun"), "dryRun"),
        prune_selector(_option(request, query, "prune"), _option(request, query, "selector")),
        wait_seconds(_option(request, query, "wait")),
    )


def _expected_revision(request: web.Request) -> int | None:
    """The revision ``If-Match`` names (``"N"`` or ``N``), or None without one; 400 for anything else."""
    values = request.headers.getall("If-Match", [])
    if not values:
        return None
    match = _REVISION_TAG.fullmatch(values[0].strip()) if len(values) == 1 else None
    if match is None:
        shown = ", ".join(values)
        raise ApiError(
            400, "bad_request",
            f'If-Match must be one revision number, "N" or N (a change\'s ETag), not {shown[:40]!r}',
        )
    return int(match.group(1) or match.group(2))


def _etag(head: int | None) -> dict[str, str]:
    return {"ETag": f'"{head}"'} if head is not None else {}


def _result_json(result: ApplyResult) -> dict[str, Any]:
    """A change's result as the API shows it: all but when this replica began serving it (its own clock)."""
    shown = asdict(result)
    del shown["served_at"]
    return shown


def _result(result: ApplyResult) -> web.Response:
    return web.json_response(_result_json(result), headers=_etag(result.head))


def _caller(request: web.Request) -> Caller:
    return request[CALLER_KEY]


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers. Whether it serves the store's head is /readyz."""
    return web.json_response({"ok": True})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 while this replica follows the store and serves its head, else 503 with the reason.
    With endpoint discovery, ``discovery`` says whether it is current; a stale discovery does not make the
    replica unready: it still serves the last endpoints known, and an unready control plane helps no Envoy."""
    health = request.app[CONTROLLER].health()
    body = health.as_json()
    discovery = request.app.get(DISCOVERY)
    if discovery is not None:
        body["discovery"] = discovery()
    return web.json_response(body, status=200 if health.ready else 503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[XDS].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


@routes.post("/v1/apply")
async def apply(request: web.Request) -> web.Response:
    """Create or replace documents; ``prune`` deletes what the selector picks and the apply does not name,
    ``wait`` answers once the Envoys concerned have ACKed (or the time is up) with a ``wait`` report."""
    expected = _expected_revision(request)
    asked = await _apply_request(request)
    caller = _caller(request)
    result = await request.app[CONTROLLER].apply(
        asked.documents, author=caller.author, message=asked.message, dry_run=asked.dry_run, source="request",
        expected_revision=expected, on_behalf_of=caller.on_behalf_of, prune=asked.prune,
    )
    if asked.wait is None or result.dry_run:
        return _result(result)
    report = await wait_for_envoys(request.app[XDS], request.app[CONTROLLER], result, asked.wait)
    return web.json_response({**_result_json(result), "wait": report.as_json()}, headers=_etag(result.head))


@routes.get("/v1/documents")
async def list_documents(request: web.Request) -> web.Response:
    kind = request.query.get("kind")
    head, docs = await request.app[CONTROLLER].documents_at(kind)
    return web.json_response({"documents": docs}, headers=_etag(head))


@routes.get("/v1/documents/{kind}/{name}")
async def get_document(request: web.Request) -> web.Response:
    head, doc = await request.app[CONTROLLER].document_at(request.match_info["kind"], request.match_info["name"])
    return web.json_response(doc, headers=_etag(head))


@routes.delete("/v1/documents/{kind}/{name}")
async def delete_document(request: web.Request) -> web.Response:
    expected = _expected_revision(request)
    kind = _kind(request.match_info["kind"])
    caller = _caller(request)
    result = await request.app[CONTROLLER].delete(
        kind, request.match_info["name"], author=caller.author, dry_run=_flag(request, "dryRun"),
        expected_revision=expected, on_behalf_of=caller.on_behalf_of,
    )
    return _result(result)


def _kind(text: str) -> str:
    from switchman.model.document import KINDS

    for kind in KINDS:
        if kind.lower() == text.lower():
            return kind
    raise ApiError(404, "not_found", f"there is no kind {text!r} (kinds: {', '.join(KINDS)})")


@routes.patch("/v1/services/{name}/weights")
async def set_weights(request: web.Request) -> web.Response:
    expected = _expected_revision(request)
    weights = await _json(request)
    if not isinstance(weights, dict):
        raise ApiError(400, "bad_request", 'the body must map versions to weights: {"v1": 90, "v2": 10}')
    caller = _caller(request)
    result = await request.app[CONTROLLER].set_weights(
        request.match_info["name"], weights, author=caller.author, expected_revision=expected,
        on_behalf_of=caller.on_behalf_of,
    )
    return _result(result)


@routes.patch("/v1/routes/{name}/split")
async def set_route_split(request: web.Request) -> web.Response:
    """Body: {"route": NAME, "split": [{"service": "checkout", "version": "v2", "weight": 10}, ...]}."""
    expected = _expected_revision(request)
    body = await _json(request)
    if not isinstance(body, dict) or not isinstance(body.get("route"), str) or not isinstance(body.get("split"), list):
        raise ApiError(400, "bad_request", 'the body must be {"route": NAME, "split": [{..., "weight": N}, ...]}')
    if not all(isinstance(item, dict) for item in body["split"]):
        raise ApiError(400, "bad_request", "each split entry must be a mapping")
    caller = _caller(request)
    result = await request.app[CONTROLLER].set_route_split(
        request.match_info["name"], body["route"], body["split"], author=caller.author,
        dry_run=_flag(request, "dryRun"), expected_revision=expected, on_behalf_of=caller.on_behalf_of,
    )
    return _result(result)


@routes.get("/v1/history")
async def history(request: web.Request) -> web.Response:
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        raise ApiError(400, "bad_request", "limit must be a whole number") from None
    entries = await request.app[CONTROLLER].history(max(1, min(limit, 1000)))
    return web.json_response({"revisions": [asdict(e) for e in entries]})


@routes.get("/v1/revisions/{number}")
async def revision(request: web.Request) -> web.Response:
    try:
        number = int(request.match_info["number"])
    except ValueError:
        raise ApiError(400, "bad_request", "a revision is a whole number") from None
    found = await request.app[CONTROLLER].store.get(number)
    return web.json_response({"revision": asdict(found.summary), "documents": list(found.documents)})


@routes.post("/v1/rollback")
async def rollback(request: web.Request) -> web.Response:
    expected = _expected_revision(request)
    body = await _json(request)
    number = body.get("revision") if isinstance(body, dict) else None
    if not isinstance(number, int) or isinstance(number, bool):
        raise ApiError(400, "bad_request", 'the body must be {"revision": N}')
    caller = _caller(request)
    result = await request.app[CONTROLLER].rollback(
        number, author=caller.author, expected_revision=expected, on_behalf_of=caller.on_behalf_of
    )
    return _result(result)


@routes.get("/v1/render")
async def render(request: web.Request) -> web.Response:
    group = request.query.get("group", "")
    node = request.query.get("node", "")
    xds = request.app[XDS]
    if node:
        matches = [s for s in xds.statuses() if s.node_id == node]
        if not matches:
            raise ApiError(404, "not_found", f"no node {node!r} is connected")
        group = matches[0].group
    controller = request.app[CONTROLLER]
    return web.json_response({
        "group": group or DEFAULT_GROUP,
        "resources": controller.render(group or DEFAULT_GROUP),
        "endpoints": controller.endpoints(group or DEFAULT_GROUP),
    })


@routes.get("/v1/status")
async def status(request: web.Request) -> web.Response:
    """Every connected node; ``synced`` when it has ACKed what it is served now, for every type it asked for."""
    controller = request.app[CONTROLLER]
    nodes = []
    for node in request.app[XDS].statuses():
        entry = asdict(node)
        for t in entry["types"]:
            t["documents"] = sorted(
                {d for name in t["nacked_resources"] if (d := controller.document_of_short(t["type"], name))}
            )
        entry["synced"] = all(t["synced"] for t in entry["types"])
        nodes.append(entry)
    health = controller.health().as_json()
    body: dict[str, Any] = {"revision": controller.served_revision, "store": health, "nodes": nodes}
    discovery = request.app.get(DISCOVERY)
    if discovery is not None:
        body["discovery"] = discovery()
    return web.json_response(body)
