"""History (who, when, what changed), revisions, and rollback to an earlier revision."""

from __future__ import annotations

import grpc

from switchman.api.grpc import management_pb2 as pb
from tests.functional.api.docs import checkout, example
from tests.functional.grpc_api.conftest import Grpc, apply_request, plain, refused, trailers


async def _three_revisions(api: Grpc) -> None:
    await api.stub.Apply(apply_request(checkout(), message="first"), metadata=(("x-switchman-author", "alice"),))
    docs = checkout()
    docs[0]["spec"]["weights"] = {"v1": 50, "v2": 50}
    await api.stub.Apply(apply_request(docs[:1] + example("canary-with-retries.yaml")))
    await api.stub.DeleteDocument(pb.DeleteDocumentRequest(kind="listener", name="api-ingress"),
                                  metadata=(("x-switchman-author", "bob"),))


async def test_history_matches_rest(api: Grpc) -> None:
    await _three_revisions(api)
    reply = await api.stub.History(pb.HistoryRequest())
    third, second, first = reply.revisions
    assert (first.number, first.author, first.message) == (1, "alice", "first")
    assert (second.number, second.author, second.message) == (2, "anonymous", "apply")
    assert (third.number, third.author, third.message) == (3, "bob", "delete listener/api-ingress")
    assert list(third.removed) == ["listener/api-ingress"] and not third.added and not third.changed
    assert not any(e.HasField("rollback_of") for e in reply.revisions)

    rest = (await api.rest_get("/v1/history"))["revisions"]
    for mine, theirs in zip(reply.revisions, rest, strict=True):
        assert (mine.number, mine.author, mine.message) == (theirs["number"], theirs["author"], theirs["message"])
        assert (list(mine.added), list(mine.changed), list(mine.removed)) == (
            theirs["added"], theirs["changed"], theirs["removed"])
        assert abs(mine.created_at.ToNanoseconds() / 1e9 - theirs["created_at"]) < 1e-6
    assert first.created_at.ToDatetime() <= second.created_at.ToDatetime() <= third.created_at.ToDatetime()


async def test_history_limit(api: Grpc) -> None:
    await _three_revisions(api)
    reply = await api.stub.History(pb.HistoryRequest(limit=1))
    assert [e.number for e in reply.revisions] == [3]
    assert len((await api.stub.History(pb.HistoryRequest(limit=100_000))).revisions) == 3


async def test_a_revision_holds_its_documents(api: Grpc) -> None:
    await api.stub.Apply(apply_request(checkout()))
    await api.stub.DeleteDocument(pb.DeleteDocumentRequest(kind="listener", name="ingress"))
    reply = await api.stub.GetRevision(pb.GetRevisionRequest(number=1))
    assert reply.revision.number == 1
    rest = await api.rest_get("/v1/revisions/1")
    assert [plain(d) for d in reply.documents] == rest["documents"]
    assert len((await api.stub.GetRevision(pb.GetRevisionRequest(number=2))).documents) == 2
    error = await refused(api.stub.GetRevision(pb.GetRevisionRequest(number=9)))
    assert (error.code(), trailers(error)) == (grpc.StatusCode.NOT_FOUND, {"switchman-error-code": "not_found"})


async def test_rollback_to_an_earlier_revision(api: Grpc) -> None:
    await api.stub.Apply(apply_request(checkout()))
    first_render = await api.rest_get("/v1/render")
    first_docs = await api.rest_get("/v1/documents")
    docs = checkout()
    docs[0]["spec"]["weights"] = {"v1": 0, "v2": 100}
    await api.stub.Apply(apply_request(docs[:1] + example("canary-with-retries.yaml")))
    assert await api.rest_get("/v1/render") != first_render

    reply = await api.stub.Rollback(pb.RollbackRequest(revision=1), metadata=(("x-switchman-author", "oncall"),))
    assert reply.revision == 3
    assert list(reply.deleted) == ["listener/api-ingress", "routes/api-routes", "service/api"]
    assert list(reply.configured) == ["service/checkout"]
    assert await api.rest_get("/v1/documents") == first_docs
    assert await api.rest_get("/v1/render") == first_render
    latest = (await api.stub.History(pb.HistoryRequest(limit=1))).revisions[0]
    assert (latest.number, latest.author, latest.message) == (3, "oncall", "rollback to revision 1")
    assert latest.HasField("rollback_of") and latest.rollback_of == 1


async def test_rollback_to_a_missing_revision_is_not_found(api: Grpc) -> None:
    await api.stub.Apply(apply_request(checkout()))
    error = await refused(api.stub.Rollback(pb.RollbackRequest(revision=7)))
    assert (error.code(), trailers(error)) == (grpc.StatusCode.NOT_FOUND, {"switchman-error-code": "not_found"})
    assert len((await api.rest_get("/v1/history"))["revisions"]) == 1
