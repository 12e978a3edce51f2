"""Bearer tokens in the call's metadata: read tokens may read, admin tokens change; the token's name is the author."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from switchman.api import Tokens
from switchman.api.grpc import management_pb2 as pb
from tests.functional.api.docs import checkout
from tests.functional.grpc_api.conftest import Grpc, Metadata, Start, apply_request, refused, trailers

ADMIN, READ = "s3cret", "r3ad"
TOKENS = Tokens(admin={"ci": ADMIN}, read={"viewer": READ})

Call = Callable[[Grpc, Metadata], Awaitable[Any]]

READS: dict[str, Call] = {
    "GetDocument": lambda g, md: g.stub.GetDocument(
        pb.GetDocumentRequest(kind="service", name="checkout"), metadata=md),
    "ListDocuments": lambda g, md: g.stub.ListDocuments(pb.ListDocumentsRequest(), metadata=md),
    "History": lambda g, md: g.stub.History(pb.HistoryRequest(), metadata=md),
    "GetRevision": lambda g, md: g.stub.GetRevision(pb.GetRevisionRequest(number=1), metadata=md),
    "Render": lambda g, md: g.stub.Render(pb.RenderRequest(), metadata=md),
    "Status": lambda g, md: g.stub.Status(pb.StatusRequest(), metadata=md),
}
CHANGES: dict[str, Call] = {
    "Apply": lambda g, md: g.stub.Apply(apply_request(checkout()), metadata=md),
    "Apply(dry run)": lambda g, md: g.stub.Apply(apply_request(checkout(), dry_run=True), metadata=md),
    "DeleteDocument": lambda g, md: g.stub.DeleteDocument(
        pb.DeleteDocumentRequest(kind="listener", name="ingress"), metadata=md),
    "SetWeights": lambda g, md: g.stub.SetWeights(
        pb.SetWeightsRequest(service="checkout", weights={"v1": 50, "v2": 50}), metadata=md),
    "Rollback": lambda g, md: g.stub.Rollback(pb.RollbackRequest(revision=1), metadata=md),
}


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
async def secured(start: Start) -> Grpc:
    api = await start(tokens=TOKENS)
    await api.stub.Apply(apply_request(checkout()), metadata=bearer(ADMIN))
    return api


@pytest.mark.parametrize("method", [*READS, *CHANGES])
async def test_no_token_is_unauthenticated(secured: Grpc, method: str) -> None:
    error = await refused({**READS, **CHANGES}[method](secured, ()))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert trailers(error) == {"switchman-error-code": "unauthorized"}
    assert "bearer token is required" in error.details()


@pytest.mark.parametrize("value", ["Bearer nope", "Basic czNjcmV0", "Bearer", "s3cret", f"Bearer {ADMIN}x"])
async def test_a_wrong_or_malformed_token_is_unauthenticated(secured: Grpc, value: str) -> None:
    error = await refused(secured.stub.ListDocuments(pb.ListDocumentsRequest(), metadata=(("authorization", value),)))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert trailers(error) == {"switchman-error-code": "unauthorized"}


@pytest.mark.parametrize("method", list(CHANGES))
async def test_a_read_token_may_not_change_anything(secured: Grpc, method: str) -> None:
    error = await refused(CHANGES[method](secured, bearer(READ)))
    assert (error.code(), trailers(error)) == (grpc.StatusCode.PERMISSION_DENIED, {"switchman-error-code": "forbidden"})
    assert error.details() == "token 'viewer' may only read"
    assert len((await secured.stub.History(pb.HistoryRequest(), metadata=bearer(READ))).revisions) == 1


@pytest.mark.parametrize("method", list(READS))
async def test_a_read_token_may_read(secured: Grpc, method: str) -> None:
    await READS[method](secured, bearer(READ))


async def test_an_admin_token_changes_under_its_name_on_behalf_of_the_author_given(secured: Grpc) -> None:
    await secured.stub.DeleteDocument(pb.DeleteDocumentRequest(kind="listener", name="ingress"),
                                      metadata=(*bearer(ADMIN), ("x-switchman-author", "alice@ci")))
    history = await secured.stub.History(pb.HistoryRequest(), metadata=bearer(ADMIN))
    assert [e.author for e in history.revisions] == ["ci", "ci"]
    assert [e.on_behalf_of if e.HasField("on_behalf_of") else None for e in history.revisions] == ["alice@ci", None]
    rest = (await secured.rest_get("/v1/history", token=READ))["revisions"]
    assert [(e["author"], e["on_behalf_of"]) for e in rest] == [("ci", "alice@ci"), ("ci", None)]


async def test_the_rest_tokens_are_the_grpc_tokens(secured: Grpc) -> None:
    status, _ = await secured.rest_call("GET", "/v1/documents")
    assert status == 401
    docs = (await secured.rest_get("/v1/documents", token=READ))["documents"]
    listed = await secured.stub.ListDocuments(pb.ListDocumentsRequest(), metadata=bearer(READ))
    assert len(docs) == len(listed.documents) == 3


async def test_tokens_never_appear_in_logs(secured: Grpc, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await refused(secured.stub.Apply(apply_request([{"kind": "Nope"}]), metadata=bearer(ADMIN)))
    for call, metadata in ((CHANGES["Apply"], bearer(READ)), (READS["Status"], bearer(ADMIN + "x")),
                           (READS["Status"], (("authorization", f"Basic {READ}"),))):
        await refused(call(secured, metadata))
    await secured.switchman.store.close()  # the store is gone: an error the server logs
    await refused(READS["History"](secured, bearer(ADMIN)))
    assert caplog.records, "nothing was logged: the check proves nothing"
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert ADMIN not in text
    assert READ not in text


async def test_without_tokens_anyone_may_change_as_anonymous(api: Grpc) -> None:
    await api.stub.Apply(apply_request(checkout()))
    await api.stub.SetWeights(pb.SetWeightsRequest(service="checkout", weights={"v1": 50, "v2": 50}),
                              metadata=(("x-switchman-author", "bob"),))
    assert [e.author for e in (await api.stub.History(pb.HistoryRequest())).revisions] == ["bob", "anonymous"]
