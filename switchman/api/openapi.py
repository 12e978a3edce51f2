"""The OpenAPI document the API serves at ``/v1/openapi.json``."""

from __future__ import annotations

from typing import Any, Final

from switchman.api.errors import CODES

__all__ = ["OPENAPI"]

_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "enum": list(CODES)},
                "message": {"type": "string"},
                "path": {"type": "string", "description": "document and field, e.g. routes/shop: spec.virtualHosts[0]"},
            },
        }
    },
}
_RESULT_PROPERTIES: dict[str, Any] = {
    "revision": {"type": ["integer", "null"]},
    "created": {"type": "array", "items": {"type": "string"}},
    "configured": {"type": "array", "items": {"type": "string"}},
    "unchanged": {"type": "array", "items": {"type": "string"}},
    "deleted": {"type": "array", "items": {"type": "string"}},
    "envoy": {
        "type": "object",
        "description": "Envoy resources (type/name) the change adds, changes, removes",
        "properties": {k: {"type": "array", "items": {"type": "string"}} for k in ("added", "changed", "removed")},
    },
    "dry_run": {"type": "boolean"},
    "groups": {"type": "object", "description": "the same as envoy, for each named node group"},
    "head": {
        "type": ["integer", "null"],
        "description": "the store's head as the change leaves it (also the ETag): the new revision, or for a "
        "dry run or a change that changed nothing, the head it was checked against",
    },
}
_RESULT = {"type": "object", "properties": _RESULT_PROPERTIES}
_WAIT = {
    "type": "object",
    "description": "with wait: whether every Envoy the change concerns (each node whose served snapshot it "
    "changed; every node when it changed nothing) ACKed it. The change is stored whatever the wait finds.",
    "properties": {
        "synced": {"type": "boolean", "description": "every Envoy concerned ACKed it"},
        "timeout": {"type": "number"},
        "waited": {"type": "number"},
        "revision": {"type": ["integer", "null"], "description": "the revision served when the wait ended"},
        "groups": {
            "type": "array",
            "description": "node groups concerned (* for the default); connected 0: nothing to wait for",
            "items": {"type": "object", "properties": {"group": {"type": "string"}, "connected": {"type": "integer"},
                                                       "synced": {"type": "integer"}}},
        },
        "nodes": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "node_id": {"type": "string"},
                    "group": {"type": "string"},
                    "state": {"type": "string", "enum": ["synced", "nacked", "oversized", "waiting", "disconnected"]},
                    "reason": {"type": "string"},
                    "nacks": {"type": "array", "items": {"type": "object", "properties": {
                        "type": {"type": "string"}, "message": {"type": "string"},
                        "resources": {"type": "array", "items": {"type": "string"}},
                        "documents": {"type": "array", "items": {"type": "string"}},
                    }}},
                },
            },
        },
    },
}
_ETAG = {
    "ETag": {
        "description": 'the store\'s head revision, "N": what If-Match takes to change from here',
        "schema": {"type": "string"},
    }
}
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "description": 'a revision number, "N" or N: change only if the store\'s head is still that revision '
    "(else 409 conflict, and nothing is stored)",
    "schema": {"type": "string"},
}
_HEALTH = {
    "type": "object",
    "properties": {
        "ready": {"type": "boolean"},
        "reason": {"type": ["string", "null"], "description": "why not ready: the store unreachable, behind its head"},
        "served_revision": {"type": ["integer", "null"]},
        "store_head": {"type": ["integer", "null"], "description": "the store's head revision as last seen"},
        "last_contact": {"type": ["number", "null"], "description": "when the store last answered (Unix time)"},
        "last_error": {"type": ["string", "null"]},
        "last_error_at": {"type": ["number", "null"]},
        "store": {"type": "string"},
    },
}


def _responses(ok: dict[str, Any], *codes: int, etag: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {"schema": ok}}}}
    if etag:
        out["200"]["headers"] = _ETAG
    for code in codes:
        out[str(code)] = {"description": "error", "content": {"application/json": {"schema": _ERROR}}}
    return out


_ANY = {"type": "object"}
_AUTH = (401, 403)

OPENAPI: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {"title": "Switchman", "version": "1", "description": "Push routing config to Envoy; see what it runs."},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "security": [{"bearer": []}],
    "paths": {
        "/v1/apply": {
            "post": {
                "summary": "Create or replace documents, all or nothing (dryRun: only show the change; prune: also "
                "delete, in the same revision, what selector picks and the body does not hold; wait: answer once "
                "the Envoys concerned ACKed it, with a wait report)",
                "parameters": [
                    {"name": "dryRun", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "message", "in": "query", "schema": {"type": "string"}},
                    {"name": "prune", "in": "query", "schema": {"type": "boolean"},
                     "description": "needs selector; every document applied must carry its labels"},
                    {"name": "selector", "in": "query", "schema": {"type": "string"},
                     "description": "KEY=VALUE,...: the labels (metadata.labels) of the documents the apply owns"},
                    {"name": "wait", "in": "query", "schema": {"type": "string"},
                     "description": "5s, 250ms, 2m, seconds, or true (30s); at most 600s. The answer is 200 with "
                     "wait.synced false when an Envoy did not ACK"},
                    _IF_MATCH,
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["documents"],
                                "properties": {
                                    "documents": {"type": "array", "items": _ANY},
                                    "message": {"type": "string"},
                                    "dryRun": {"type": "boolean"},
                                    "prune": {"type": "boolean"},
                                    "selector": {"oneOf": [{"type": "string"}, {"type": "object"}]},
                                    "wait": {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]},
                                },
                            }
                        },
                        "application/yaml": {"schema": {"type": "string"}},
                    },
                },
                "responses": _responses(
                    {"type": "object", "properties": {**_RESULT_PROPERTIES, "wait": _WAIT}},
                    400, *_AUTH, 409, 413, 422, 503, etag=True,
                ),
            }
        },
        "/v1/documents": {
            "get": {
                "summary": "List documents (ETag: the head revision they were read at)",
                "parameters": [{"name": "kind", "in": "query", "schema": {"type": "string"}}],
                "responses": _responses(_ANY, *_AUTH, etag=True),
            }
        },
        "/v1/documents/{kind}/{name}": {
            "parameters": [
                {"name": "kind", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "get": {
                "summary": "One document (ETag: the head revision it was read at)",
                "responses": _responses(_ANY, *_AUTH, 404, etag=True),
            },
            "delete": {
                "summary": "Delete a document (refused while others refer to it)",
                "parameters": [{"name": "dryRun", "in": "query", "schema": {"type": "boolean"}}, _IF_MATCH],
                "responses": _responses(_RESULT, 400, *_AUTH, 404, 409, 422, 503, etag=True),
            },
        },
        "/v1/services/{name}/weights": {
            "patch": {
                "summary": "Set a service's split between its versions",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    _IF_MATCH,
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"type": "object", "additionalProperties": {"type": "integer"}}
                        }
                    },
                },
                "responses": _responses(_RESULT, 400, *_AUTH, 404, 409, 413, 422, 503, etag=True),
            }
        },
        "/v1/routes/{name}/split": {
            "patch": {
                "summary": "Set the weighted split of one named route of a Routes document",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "dryRun", "in": "query", "schema": {"type": "boolean"}},
                    _IF_MATCH,
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["route", "split"],
                                "properties": {"route": {"type": "string"}, "split": {"type": "array", "items": _ANY}},
                            }
                        }
                    },
                },
                "responses": _responses(_RESULT, 400, *_AUTH, 404, 409, 413, 422, 503, etag=True),
            }
        },
        "/v1/history": {
            "get": {
                "summary": "Applied revisions, newest first: who (author: the token's name; on_behalf_of: what "
                "X-Switchman-Author said), when, what changed",
                "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer"}}],
                "responses": _responses(_ANY, 400, *_AUTH),
            }
        },
        "/v1/revisions/{number}": {
            "get": {
                "summary": "The documents of one revision",
                "parameters": [{"name": "number", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": _responses(_ANY, 400, *_AUTH, 404),
            }
        },
        "/v1/rollback": {
            "post": {
                "summary": "A new revision with the documents of an earlier one (404 when it was pruned)",
                "parameters": [_IF_MATCH],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["revision"],
                                "properties": {"revision": {"type": "integer"}},
                            }
                        }
                    },
                },
                "responses": _responses(_RESULT, 400, *_AUTH, 404, 409, 413, 422, 503, etag=True),
            }
        },
        "/v1/render": {
            "get": {
                "summary": "The Envoy resources a node (or node group) is served, as JSON, and every endpoint by "
                "cluster with its health, zone and source (a document, or a Kubernetes EndpointSlice)",
                "parameters": [
                    {"name": "node", "in": "query", "schema": {"type": "string"}},
                    {"name": "group", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": _responses(_ANY, *_AUTH, 404),
            }
        },
        "/v1/status": {
            "get": {
                "summary": "The revision served and the store's (store: as /readyz), endpoint discovery (with serve "
                "--kubernetes: current or stale, endpoints per source), and every connected Envoy: "
                "ACKed version per type, last NACK and the documents it traces to",
                "responses": _responses(_ANY, *_AUTH),
            }
        },
        "/v1/whoami": {
            "get": {
                "summary": "What the presented token (or client certificate) may do: {tokens, name, role}, role "
                "admin, read or null (none or unknown); without tokens everyone is admin",
                "security": [],
                "responses": _responses(_ANY),
            }
        },
        "/v1/events": {
            "get": {
                "summary": "Server-sent events (text/event-stream) that say when to read again: hello "
                "(data: {revision}), revision (data: the revision now served), status (what the Envoys ACKed "
                "or NACKed changed), rollouts (a rollout's run changed), tick (every 5 s); at most 64 streams",
                "responses": {
                    "200": {"description": "an event stream", "content": {"text/event-stream": {}}},
                    **{k: v for k, v in _responses(_ANY, *_AUTH, 503).items() if k != "200"},
                },
            }
        },
        "/v1/openapi.json": {"get": {"summary": "This document", "security": [], "responses": _responses(_ANY)}},
        "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": _responses(_ANY)}},
        "/readyz": {
            "get": {
                "summary": "Readiness: 200 while this replica follows the store and serves its head, else 503; "
                "with serve --kubernetes, discovery says whether endpoint discovery is current (a stale one "
                "keeps the last endpoints and does not make the replica unready)",
                "security": [],
                "responses": {
                    "200": {"description": "ready", "content": {"application/json": {"schema": _HEALTH}}},
                    "503": {"description": "not ready; reason says why", "content": {
                        "application/json": {"schema": _HEALTH}}},
                },
            }
        },
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
    },
}
