"""expected_revision on every gRPC change: a stale one is ABORTED (conflict) and changes nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from switchman.api.grpc import management_pb2 as pb
from tests.functional.api.test_route_split import named_checkout
from tests.functional.grpc_api.conftest import Grpc, apply_request, refused, struct, trailers


def _split(v1: int) -> list[Any]:
    return [struct({"service": "checkout", "version": "v1", "weight": v1}),
            struct({"service": "checkout", "version": "v2", "weight": 100 - v1})]


def _changes(expected: int) -> dict[str, Any]:
    """Every change request, each made against ``expected``."""
    docs = named_checkout()
    docs[0]["spec"]["weights"] = {"v1": 80, "v2": 20}
    return {
        "Apply": pb.ApplyRequest(documents=apply_request(docs).documents, expected_revision=expected),
        "SetWeights": pb.SetWeightsRequest(service="checkout", weights={"v1": 70, "v2": 30},
                                           expected_revision=expected),
        "SetRouteSplit": pb.SetRouteSplitRequest(routes="ingress-routes", route="main", split=_split(60),
                                                 expected_revision=expected),
        "Rollback": pb.RollbackRequest(revision=1, expected_revision=expected),
        "DeleteDocument": pb.DeleteDocumentRequest(kind="listener", name="ingress", expected_revision=expected),
    }


async def test_a_stale_expected_revision_is_aborted_and_stores_nothing(api: Grpc) -> None:
    await api.stub.Apply(apply_request(named_checkout()))
    await api.stub.SetWeights(pb.SetWeightsRequest(service="checkout", weights={"v1": 90, "v2": 10}))
    history = await api.rest_get("/v1/history")
    for method, request in _changes(1).items():
        error = await refused(getattr(api.stub, method)(request))
        assert error.code() == grpc.StatusCode.ABORTED, method
        assert trailers(error)["switchman-error-code"] == "conflict"
        assert "the head is revision 2, not 1" in (error.details() or ""), method
    assert await api.rest_get("/v1/history") == history


async def test_the_right_expected_revision_changes_and_the_answer_names_the_head(api: Grpc) -> None:
    first = await api.stub.Apply(pb.ApplyRequest(documents=apply_request(named_checkout()).documents,
                                                 expected_revision=0))
    assert (first.revision, first.head) == (1, 1)
    head = 1
    for method in ("SetWeights", "SetRouteSplit", "Rollback", "Apply", "DeleteDocument"):
        reply = await getattr(api.stub, method)(_changes(head)[method])
        assert reply.HasField("revision") and reply.revision == reply.head == head + 1, method
        head += 1
    again = await api.stub.Apply(pb.ApplyRequest(documents=apply_request(named_checkout()).documents,
                                                 dry_run=True, expected_revision=head))
    assert (again.HasField("revision"), again.head) == (False, head)


async def test_a_negative_expected_revision_is_invalid(api: Grpc) -> None:
    await api.stub.Apply(apply_request(named_checkout()))
    error = await refused(api.stub.SetWeights(pb.SetWeightsRequest(service="checkout", weights={"v1": 1, "v2": 99},
                                                                   expected_revision=-1)))
    assert (error.code(), trailers(error)["switchman-error-code"]) == (grpc.StatusCode.INVALID_ARGUMENT, "bad_request")


async def test_two_changes_with_the_same_expected_revision_one_wins(api: Grpc) -> None:
    await api.stub.Apply(apply_request(named_checkout()))
    # every round's weights differ from every earlier round's: a change equal to the last winner's would be a
    # no-op, which takes no revision and so conflicts with nothing
    for n in range(10):
        head = (await api.rest_get("/v1/history"))["revisions"][0]["number"]
        outcomes = await asyncio.gather(
            *(api.stub.SetWeights(pb.SetWeightsRequest(
                service="checkout", weights={"v1": 100 - 2 * n - i, "v2": 2 * n + i}, expected_revision=head,
            )) for i in (1, 2)),
            return_exceptions=True,
        )
        won = [o for o in outcomes if isinstance(o, pb.ApplyResponse)]
        lost = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        assert lost[0].code() == grpc.StatusCode.ABORTED
        outcomes = await asyncio.gather(
            *(api.stub.SetRouteSplit(pb.SetRouteSplitRequest(
                routes="ingress-routes", route="main", split=_split(40 + 2 * n + i), expected_revision=won[0].head,
            )) for i in (1, 2)),
            return_exceptions=True,
        )
        assert sorted(type(o).__name__ for o in outcomes) == ["AioRpcError", "ApplyResponse"], outcomes
    assert len((await api.rest_get("/v1/history"))["revisions"]) == 21
