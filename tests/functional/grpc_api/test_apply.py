"""Apply over gRPC: a revision, all or nothing, dry runs; what gRPC applies is what REST sees."""

from __future__ import annotations

import copy
import math

import grpc

from switchman.api.grpc import management_pb2 as pb
from tests.functional.api.docs import by_id, checkout, example
from tests.functional.grpc_api.conftest import Grpc, apply_request, plain, refused, struct, trailers

CHECKOUT_IDS = ["listener/ingress", "routes/ingress-routes", "service/checkout"]
CHECKOUT_ENVOY = ["cds/checkout-v1", "cds/checkout-v2", "eds/checkout-v1", "eds/checkout-v2", "lds/ingress",
                  "rds/ingress-routes"]


async def test_apply_creates_a_revision_that_rest_sees(api: Grpc) -> None:
    reply = await api.stub.Apply(
        apply_request(checkout(), message="first"), metadata=(("x-switchman-author", "alice"),)
    )
    assert reply.HasField("revision") and reply.revision == 1
    assert (list(reply.created), list(reply.configured), list(reply.unchanged), list(reply.deleted)) == (
        CHECKOUT_IDS, [], [], [])
    assert (list(reply.envoy.added), list(reply.envoy.changed), list(reply.envoy.removed)) == (CHECKOUT_ENVOY, [], [])
    assert reply.dry_run is False

    expected = by_id(checkout())
    documents = (await api.rest_get("/v1/documents"))["documents"]
    assert documents == [expected[k] for k in sorted(expected)]
    [entry] = (await api.rest_get("/v1/history"))["revisions"]
    assert (entry["number"], entry["author"], entry["message"], entry["added"]) == (1, "alice", "first", CHECKOUT_IDS)
    render = await api.rest_get("/v1/render")
    assert [r["name"] for r in render["resources"]["lds"]] == ["ingress"]
    assert (await api.rest_get("/v1/status"))["revision"] == 1


async def test_whole_numbers_arrive_as_integers(api: Grpc) -> None:
    """A Struct number is a double; the stored document has the integers a JSON body would have had."""
    await api.stub.Apply(apply_request(checkout()))
    service = await api.rest_get("/v1/documents/service/checkout")
    assert service["spec"]["weights"] == {"v1": 100, "v2": 0}
    assert all(type(w) is int for w in service["spec"]["weights"].values())
    # The same documents through REST: nothing changes, so both APIs read them the same way.
    status, body = await api.rest_call("POST", "/v1/apply", {"documents": checkout()})
    assert (status, body["revision"], body["unchanged"]) == (200, None, CHECKOUT_IDS)


async def test_applying_the_same_documents_again_changes_nothing(api: Grpc) -> None:
    await api.stub.Apply(apply_request(checkout()))
    reply = await api.stub.Apply(apply_request(checkout()))
    assert not reply.HasField("revision")
    assert (list(reply.unchanged), list(reply.created)) == (CHECKOUT_IDS, [])
    assert len((await api.rest_get("/v1/history"))["revisions"]) == 1


async def test_an_invalid_document_is_invalid_argument_with_its_path(api: Grpc) -> None:
    await api.stub.Apply(apply_request(checkout()))
    before = await api.rest_get("/v1/documents")
    bad = copy.deepcopy(example("canary-with-retries.yaml"))
    bad[1]["spec"]["virtualHosts"][0]["routes"][0]["split"][1]["weight"] = 101
    error = await refused(api.stub.Apply(apply_request(bad)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailers(error) == {
        "switchman-error-code": "invalid_config",
        "switchman-error-path": "routes/api-routes: spec.virtualHosts[0].routes[0].split[1].weight",
    }
    assert "101 is above 100" in error.details()
    assert error.details().startswith("routes/api-routes: spec.virtualHosts[0].routes[0].split[1].weight: ")
    assert await api.rest_get("/v1/documents") == before
    assert len((await api.rest_get("/v1/history"))["revisions"]) == 1


async def test_the_same_refusal_as_rest(api: Grpc) -> None:
    docs = example("canary-with-retries.yaml")[1:]  # the routes name service api, which is not in the batch
    error = await refused(api.stub.Apply(apply_request(docs)))
    status, body = await api.rest_call("POST", "/v1/apply", {"documents": docs})
    assert status == 422
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, body["error"]["message"])
    assert trailers(error) == {
        "switchman-error-code": body["error"]["code"], "switchman-error-path": body["error"]["path"]
    }


async def test_a_dry_run_reports_without_a_revision(api: Grpc) -> None:
    await api.stub.Apply(apply_request(checkout()))
    before = await api.rest_get("/v1/render")
    reply = await api.stub.Apply(apply_request(example("canary-with-retries.yaml"), dry_run=True))
    assert not reply.HasField("revision") and reply.dry_run is True
    assert list(reply.created) == ["listener/api-ingress", "routes/api-routes", "service/api"]
    assert list(reply.envoy.added) == ["cds/api-v1", "cds/api-v2", "eds/api-v1", "eds/api-v2", "lds/api-ingress",
                                       "rds/api-routes"]
    assert len((await api.rest_get("/v1/history"))["revisions"]) == 1
    assert len((await api.rest_get("/v1/documents"))["documents"]) == 3
    assert await api.rest_get("/v1/render") == before


async def test_a_dry_run_of_a_bad_batch_is_refused_like_an_apply(api: Grpc) -> None:
    docs = checkout()
    docs[2]["spec"]["routes"] = "nope"
    error = await refused(api.stub.Apply(apply_request(docs, dry_run=True)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailers(error)["switchman-error-path"] == "listener/ingress: spec.routes"


async def test_a_number_json_cannot_hold_is_invalid_argument(api: Grpc) -> None:
    doc = struct(checkout()[0])
    doc.fields["spec"].struct_value.fields["weights"].struct_value.fields["v1"].number_value = math.nan
    error = await refused(api.stub.Apply(pb.ApplyRequest(documents=[doc])))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailers(error) == {"switchman-error-code": "bad_request"}
    assert error.details() == "documents[0].spec.weights.v1: nan is not a JSON number"
    assert (await api.rest_get("/v1/history"))["revisions"] == []


async def test_an_empty_value_is_invalid_argument(api: Grpc) -> None:
    doc = struct(checkout()[0])
    doc.fields["spec"].struct_value.fields["connectTimeout"].Clear()
    error = await refused(api.stub.Apply(pb.ApplyRequest(documents=[doc])))
    assert (error.code(), trailers(error)["switchman-error-code"]) == (grpc.StatusCode.INVALID_ARGUMENT, "bad_request")
    assert "documents[0].spec.connectTimeout" in error.details()


async def test_documents_read_back_as_they_were_applied(api: Grpc) -> None:
    await api.stub.Apply(apply_request(checkout()))
    reply = await api.stub.ListDocuments(pb.ListDocumentsRequest())
    expected = by_id(checkout())
    assert [plain(d) for d in reply.documents] == [expected[k] for k in sorted(expected)]
