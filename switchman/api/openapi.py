"""The OpenAPI document the API serves at ``/v1/openapi.json``."""

from __future__ import annotations

from typing import Any, Final

__all__ = ["OPENAPI"]

_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {
                    "type": "string",
                    "enum": [
                        "invalid_config", "bad_request", "unauthorized", "forbidden", "not_found",
                        "conflict", "store_unavailable", "internal",
                    ],
                },
                "message": {"type": "string"},
                "path": {"type": "string", "description": "document and field, e.g. routes/shop: spec.virtualHosts[0]"},
            },
        }
    },
}
_RESULT = {
    "type": "object",
    "properties": {
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
    },
}


def _responses(ok: dict[str, Any], *codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {"schema": ok}}}}
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
                "summary": "Create or replace documents, all or nothing (dryRun: only show the change)",
                "parameters": [
                    {"name": "dryRun", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "message", "in": "query", "schema": {"type": "string"}},
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
                                },
                            }
                        },
                        "application/yaml": {"schema": {"type": "string"}},
                    },
                },
                "responses": _responses(_RESULT, 400, *_AUTH, 409, 422, 503),
            }
        },
        "/v1/documents": {
            "get": {
                "summary": "List documents",
                "parameters": [{"name": "kind", "in": "query", "schema": {"type": "string"}}],
                "responses": _responses(_ANY, *_AUTH),
            }
        },
        "/v1/documents/{kind}/{name}": {
            "parameters": [
                {"name": "kind", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "get": {"summary": "One document", "responses": _responses(_ANY, *_AUTH, 404)},
            "delete": {
                "summary": "Delete a document (refused while others refer to it)",
                "parameters": [{"name": "dryRun", "in": "query", "schema": {"type": "boolean"}}],
                "responses": _responses(_RESULT, *_AUTH, 404, 409, 422, 503),
            },
        },
        "/v1/services/{name}/weights": {
            "patch": {
                "summary": "Set a service's split between its versions",
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"type": "object", "additionalProperties": {"type": "integer"}}
                        }
                    },
                },
                "responses": _responses(_RESULT, 400, *_AUTH, 404, 409, 422, 503),
            }
        },
        "/v1/routes/{name}/split": {
            "patch": {
                "summary": "Set the weighted split of one named route of a Routes document",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "dryRun", "in": "query", "schema": {"type": "boolean"}},
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
                "responses": _responses(_RESULT, 400, *_AUTH, 404, 409, 422, 503),
            }
        },
        "/v1/history": {
            "get": {
                "summary": "Applied revisions, newest first: who, when, what changed",
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
                "summary": "A new revision with the documents of an earlier one",
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
                "responses": _responses(_RESULT, 400, *_AUTH, 404, 409, 422, 503),
            }
        },
        "/v1/render": {
            "get": {
                "summary": "The Envoy resources a node (or node group) is served, as JSON",
                "parameters": [
                    {"name": "node", "in": "query", "schema": {"type": "string"}},
                    {"name": "group", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": _responses(_ANY, *_AUTH, 404),
            }
        },
        "/v1/status": {
            "get": {
                "summary": "Every connected Envoy: ACKed version per type, last NACK and the documents it traces to",
                "responses": _responses(_ANY, *_AUTH),
            }
        },
        "/v1/openapi.json": {"get": {"summary": "This document", "security": [], "responses": _responses(_ANY)}},
        "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": _responses(_ANY)}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
    },
}
