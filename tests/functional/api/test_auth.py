"""Bearer tokens: read may GET, admin may change; the token's name is the author; secrets never logged."""

from __future__ import annotations

import logging

import pytest

from switchman.api import Tokens
from tests.functional.api.conftest import Api, Start
from tests.functional.api.docs import checkout

ADMIN, READ = "s3cret", "r3ad"
TOKENS = Tokens(admin={"ci": ADMIN}, read={"viewer": READ})


@pytest.fixture
async def secured(start: Start) -> Api:
    return await start(tokens=TOKENS)


async def test_no_token_is_401(secured: Api) -> None:
    for method, path in (("GET", "/v1/documents"), ("POST", "/v1/apply"), ("GET", "/v1/status"), ("GET", "/metrics")):
        reply = await secured.call(method, path)
        assert (reply.status, reply.error["code"]) == (401, "unauthorized"), path


@pytest.mark.parametrize("header", ["Bearer nope", "Basic czNjcmV0", "Bearer", "s3cret"])
async def test_a_wrong_or_malformed_token_is_401(secured: Api, header: str) -> None:
    reply = await secured.get("/v1/documents", headers={"Authorization": header})
    assert (reply.status, reply.error["code"]) == (401, "unauthorized")


@pytest.mark.parametrize("header", ["Bearer \u00a0", "Bearer \u00a0\u00a0", "Bearer \t", "Bearer  "])
async def test_a_blank_bearer_token_never_authenticates(secured: Api, header: str) -> None:
    for method, path in (("GET", "/v1/documents"), ("POST", "/v1/apply")):
        reply = await secured.call(method, path, headers={"Authorization": header}, json_body={"documents": []})
        assert (reply.status, reply.error["code"]) == (401, "unauthorized"), (header, path)


async def test_an_author_header_the_history_cannot_keep_is_400(secured: Api) -> None:
    reply = await secured.as_token(ADMIN).apply(checkout(), headers={"X-Switchman-Author": "x" * 201})
    assert (reply.status, reply.error["code"]) == (400, "bad_request")
    assert "X-Switchman-Author" in reply.error["message"]
    assert await secured.as_token(ADMIN).history() == []


async def test_a_read_token_may_not_change_anything(secured: Api) -> None:
    reader = secured.as_token(READ)
    reply = await reader.apply(checkout())
    assert (reply.status, reply.error["code"]) == (403, "forbidden")
    assert "viewer" in reply.error["message"]
    for method, path in (("DELETE", "/v1/documents/service/checkout"), ("PATCH", "/v1/services/checkout/weights"),
                         ("POST", "/v1/rollback")):
        assert (await reader.call(method, path, json_body={})).status == 403, path
    assert await secured.as_token(ADMIN).history() == []


async def test_a_read_token_may_read(secured: Api) -> None:
    await secured.as_token(ADMIN).apply(checkout())
    reader = secured.as_token(READ)
    for path in ("/v1/documents", "/v1/documents/service/checkout", "/v1/history", "/v1/render", "/v1/status",
                 "/v1/revisions/1", "/metrics"):
        assert (await reader.get(path)).status == 200, path


async def test_an_admin_token_applies_under_its_name(secured: Api) -> None:
    admin = secured.as_token(ADMIN)
    reply = await admin.apply(checkout())
    assert (reply.status, reply.body["revision"]) == (200, 1)
    await admin.delete("listener", "ingress", headers={"X-Switchman-Author": "alice@ci"})
    # The token's name is the author; what the caller says about whom it acts for is kept beside it.
    assert [(e["author"], e["on_behalf_of"]) for e in await admin.history()] == [("ci", "alice@ci"), ("ci", None)]


async def test_health_and_openapi_are_open(secured: Api) -> None:
    assert (await secured.get("/healthz")).status == 200
    assert (await secured.get("/v1/openapi.json")).status == 200


async def test_tokens_never_appear_in_logs(secured: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    admin, reader = secured.as_token(ADMIN), secured.as_token(READ)
    await admin.apply(checkout())
    await admin.apply([{"kind": "Nope"}])
    await admin.call("POST", "/v1/rollback", data="{", content_type="application/json")  # a 500 logs a traceback
    await reader.apply(checkout())
    await reader.get("/v1/history")
    await secured.get("/v1/status", headers={"Authorization": f"Bearer {ADMIN}x"})
    await secured.get("/v1/status", headers={"Authorization": f"Basic {READ}"})
    assert caplog.records, "nothing was logged: the check proves nothing"
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert ADMIN not in text
    assert READ not in text


async def test_without_tokens_the_api_is_open_and_says_so(start: Start, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="switchman")
    api = await start()
    assert (await api.apply(checkout())).status == 200
    assert [e["author"] for e in await api.history()] == ["anonymous"]
    assert any("no API tokens configured" in r.getMessage() for r in caplog.records)
    # Nobody to attribute a change to: what the caller says is the author, and on_behalf_of stays empty.
    await api.delete("listener", "ingress", headers={"X-Switchman-Author": "alice"})
    assert [(e["author"], e["on_behalf_of"]) for e in await api.history()] == [("alice", None), ("anonymous", None)]
