"""The REST handlers: documents, apply, delete, weights, history, rollback, render and status."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import yaml
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from switchman.api.auth import AUTHOR_KEY
from switchman.api.errors import ApiError
from switchman.api.keys import CONTROLLER, XDS
from switchman.api.openapi import OPENAPI
from switchman.control import ApplyResult
from switchman.xds import DEFAULT_GROUP

__all__ = ["routes"]

routes = web.RouteTableDef()
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


async def _documents_from(request: web.Request) -> tuple[list[Any], str, bool]:
    """Documents, message and dry-run from a JSON body or a YAML stream (query: message, dryRun)."""
    text = await request.text()
    message, dry_run = request.query.get("message", ""), _flag(request, "dryRun")
    if request.content_type in _YAML_TYPES:
        try:
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as exc:
            raise ApiError(400, "bad_request", f"the body is not YAML: {exc}") from None
        return docs, message, dry_run
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(400, "bad_request", f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("documents"), list):
        raise ApiError(400, "bad_request", 'the body must be {"documents": [...]} (or YAML documents)')
    return body["documents"], str(body.get("message", message)), bool(body.get("dryRun", dry_run))


def _result(result: ApplyResult) -> web.Response:
    return web.json_response(asdict(result))


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[XDS].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


@routes.post("/v1/apply")
async def apply(request: web.Request) -> web.Response:
    docs, message, dry_run = await _documents_from(request)
    result = await request.app[CONTROLLER].apply(
        docs, author=request[AUTHOR_KEY], message=message, dry_run=dry_run, source="request"
    )
    return _result(result)


@routes.get("/v1/documents")
async def list_documents(request: web.Request) -> web.Response:
    kind = request.query.get("kind")
    return web.json_response({"documents": await request.app[CONTROLLER].documents(kind)})


@routes.get("/v1/documents/{kind}/{name}")
async def get_document(request: web.Request) -> web.Response:
    doc = await request.app[CONTROLLER].document(request.match_info["kind"], request.match_info["name"])
    return web.json_response(doc)


@routes.delete("/v1/documents/{kind}/{name}")
async def delete_document(request: web.Request) -> web.Response:
    kind = _kind(request.match_info["kind"])
    result = await request.app[CONTROLLER].delete(
        kind, request.match_info["name"], author=request[AUTHOR_KEY], dry_run=_flag(request, "dryRun")
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
    try:
        weights = await request.json()
    except json.JSONDecodeError as exc:
        raise ApiError(400, "bad_request", f"the body is not JSON: {exc}") from None
    if not isinstance(weights, dict):
        raise ApiError(400, "bad_request", 'the body must map versions to weights: {"v1": 90, "v2": 10}')
    result = await request.app[CONTROLLER].set_weights(
        request.match_info["name"], weights, author=request[AUTHOR_KEY]
    )
    return _result(result)


@routes.patch("/v1/routes/{name}/split")
async def set_route_split(request: web.Request) -> web.Response:
    """Body: {"route": NAME, "split": [{"service": "checkout", "version": "v2", "weight": 10}, ...]}."""
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise ApiError(400, "bad_request", f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("route"), str) or not isinstance(body.get("split"), list):
        raise ApiError(400, "bad_request", 'the body must be {"route": NAME, "split": [{..., "weight": N}, ...]}')
    if not all(isinstance(item, dict) for item in body["split"]):
        raise ApiError(400, "bad_request", "each split entry must be a mapping")
    result = await request.app[CONTROLLER].set_route_split(
        request.match_info["name"], body["route"], body["split"], author=request[AUTHOR_KEY],
        dry_run=_flag(request, "dryRun"),
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
    try:
        body = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError as exc:
        raise ApiError(400, "bad_request", f"the body is not JSON: {exc}") from None
    number = body.get("revision") if isinstance(body, dict) else None
    if not isinstance(number, int) or isinstance(number, bool):
        raise ApiError(400, "bad_request", 'the body must be {"revision": N}')
    return _result(await request.app[CONTROLLER].rollback(number, author=request[AUTHOR_KEY]))


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
    return web.json_response(
        {"group": group or DEFAULT_GROUP, "resources": request.app[CONTROLLER].render(group or DEFAULT_GROUP)}
    )


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
    return web.json_response({"revision": controller.served_revision, "nodes": nodes})
