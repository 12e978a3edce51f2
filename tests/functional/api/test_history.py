"""History (who, what changed), revisions, and rollback to an earlier revision."""

from __future__ import annotations

import pytest

from tests.functional.api.conftest import Api
from tests.functional.api.docs import checkout, example


async def test_history_records_author_message_and_changes(api: Api) -> None:
    await api.apply(checkout(), headers={"X-Switchman-Author": "alice"}, query="?message=first")
    docs = checkout()
    docs[0]["spec"]["weights"] = {"v1": 50, "v2": 50}
    await api.apply(docs[:1] + example("canary-with-retries.yaml"))
    await api.delete("listener", "api-ingress", headers={"X-Switchman-Author": "bob"})

    third, second, first = await api.history()
    assert (first["number"], first["author"], first["message"]) == (1, "alice", "first")
    assert len(first["added"]) == 3 and first["changed"] == first["removed"] == []
    assert (second["number"], second["author"], second["message"]) == (2, "anonymous", "apply")
    assert len(second["added"]) == 3 and len(second["changed"]) == 1 and second["removed"] == []
    assert (third["number"], third["author"], third["message"]) == (3, "bob", "delete listener/api-ingress")
    assert len(third["removed"]) == 1 and third["added"] == third["changed"] == []
    assert all(e["rollback_of"] is None for e in (first, second, third))
    assert first["created_at"] <= second["created_at"] <= third["created_at"]


async def test_history_names_documents(api: Api) -> None:
    await api.apply(checkout())
    [entry] = await api.history()
    assert [name.lower() for name in entry["added"]] == ["listener/ingress", "routes/ingress-routes",
                                                          "service/checkout"]


async def test_history_names_documents_as_apply_does(api: Api) -> None:
    applied = await api.apply(checkout())
    [entry] = await api.history()
    assert entry["added"] == applied.body["created"]


async def test_history_limit(api: Api) -> None:
    await api.apply(checkout())
    await api.delete("listener", "ingress")
    reply = await api.get("/v1/history?limit=1")
    assert [e["number"] for e in reply.body["revisions"]] == [2]
    reply = await api.get("/v1/history?limit=many")
    assert (reply.status, reply.error["code"]) == (400, "bad_request")


async def test_a_revision_holds_its_documents(api: Api) -> None:
    await api.apply(checkout())
    await api.delete("listener", "ingress")
    reply = await api.get("/v1/revisions/1")
    assert reply.status == 200
    assert reply.body["revision"]["number"] == 1
    assert len(reply.body["documents"]) == 3
    assert len((await api.get("/v1/revisions/2")).body["documents"]) == 2
    assert (await api.get("/v1/revisions/9")).status == 404
    reply = await api.get("/v1/revisions/latest")
    assert (reply.status, reply.error["code"]) == (400, "bad_request")


async def test_rollback_to_an_earlier_revision(api: Api) -> None:
    await api.apply(checkout())
    first_render = (await api.get("/v1/render")).body
    first_docs = await api.documents()
    docs = checkout()
    docs[0]["spec"]["weights"] = {"v1": 0, "v2": 100}
    await api.apply(docs[:1] + example("canary-with-retries.yaml"))
    assert (await api.get("/v1/render")).body != first_render

    reply = await api.call("POST", "/v1/rollback", json_body={"revision": 1}, headers={"X-Switchman-Author": "oncall"})
    assert reply.status == 200, reply.body
    assert reply.body["revision"] == 3
    assert reply.body["deleted"] == ["listener/api-ingress", "routes/api-routes", "service/api"]
    assert reply.body["configured"] == ["service/checkout"]
    assert await api.documents() == first_docs
    assert (await api.get("/v1/render")).body == first_render
    latest = (await api.history())[0]
    assert (latest["number"], latest["author"], latest["rollback_of"]) == (3, "oncall", 1)
    assert latest["message"] == "rollback to revision 1"
    assert (await api.get("/v1/status")).body["revision"] == 3


async def test_rollback_to_a_missing_revision_is_404(api: Api) -> None:
    await api.apply(checkout())
    reply = await api.call("POST", "/v1/rollback", json_body={"revision": 7})
    assert (reply.status, reply.error["code"]) == (404, "not_found")
    assert len(await api.history()) == 1


@pytest.mark.parametrize("body", [{}, {"revision": "1"}, {"rev": 1}, [1]], ids=["empty", "string", "key", "list"])
async def test_rollback_needs_a_revision_number(api: Api, body: object) -> None:
    await api.apply(checkout())
    reply = await api.call("POST", "/v1/rollback", json_body=body)
    assert (reply.status, reply.error["code"]) == (400, "bad_request")


async def test_rollback_with_a_body_that_is_not_json_is_400(api: Api) -> None:
    await api.apply(checkout())
    reply = await api.call("POST", "/v1/rollback", data="revision=1", content_type="application/json")
    assert (reply.status, reply.error["code"]) == (400, "bad_request")


async def test_rollback_to_a_boolean_is_400(api: Api) -> None:
    await api.apply(checkout())
    reply = await api.call("POST", "/v1/rollback", json_body={"revision": True})
    assert (reply.status, reply.error["code"]) == (400, "bad_request")
    assert len(await api.history()) == 1
