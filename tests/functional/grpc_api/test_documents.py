"""Get, list and delete documents; set a service's weights."""

from __future__ import annotations

import grpc

from switchman.api.grpc import management_pb2 as pb
from tests.functional.api.docs import by_id, checkout
from tests.functional.grpc_api.conftest import Grpc, apply_request, plain, refused, struct, trailers


async def test_list_and_get(api: Grpc) -> None:
    await api.stub.Apply(apply_request(checkout()))
    expected = by_id(checkout())
    every = await api.stub.ListDocuments(pb.ListDocumentsRequest())
    assert [plain(d) for d in every.documents] == [expected[k] for k in sorted(expected)]
    only = await api.stub.ListDocuments(pb.ListDocumentsRequest(kind="service"))
    assert [plain(d) for d in only.documents] == [expected["service/checkout"]]
    one = await api.stub.GetDocument(pb.GetDocumentRequest(kind="Routes", name="ingress-routes"))
    assert plain(one.document) == expected["routes/ingress-routes"]
    assert plain(one.document) == await api.rest_get("/v1/documents/routes/ingress-routes")


async def test_get_missing_is_not_found(api: Grpc) -> None:
    error = await refused(api.stub.GetDocument(pb.GetDocumentRequest(kind="service", name="nope")))
    assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND, "service/nope does not exist")
    assert trailers(error) == {"switchman-error-code": "not_found"}


async def test_delete_a_document_nobody_refers_to(api: Grpc) -> None:
    await api.stub.Apply(apply_request(checkout()))
    reply = await api.stub.DeleteDocument(pb.DeleteDocumentRequest(kind="listener", name="ingress"))
    assert (reply.revision, list(reply.deleted)) == (2, ["listener/ingress"])
    assert list(reply.envoy.removed) == ["lds/ingress"]
    assert "listener/ingress" not in by_id((await api.rest_get("/v1/documents"))["documents"])
    [latest, _] = (await api.rest_get("/v1/history"))["revisions"]
    assert (latest["author"], latest["message"]) == ("anonymous", "delete listener/ingress")


async def test_delete_dry_run(api: Grpc) -> None:
    await api.stub.Apply(apply_request(checkout()))
    reply = await api.stub.DeleteDocument(pb.DeleteDocumentRequest(kind="Listener", name="ingress", dry_run=True))
    assert (reply.HasField("revision"), reply.dry_run, list(reply.deleted)) == (False, True, ["listener/ingress"])
    assert len((await api.rest_get("/v1/documents"))["documents"]) == 3


async def test_delete_a_document_others_refer_to_is_refused_naming_the_referrer(api: Grpc) -> None:
    await api.stub.Apply(apply_request(checkout()))
    error = await refused(api.stub.DeleteDocument(pb.DeleteDocumentRequest(kind="service", name="checkout")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailers(error) == {
        "switchman-error-code": "invalid_config",
        "switchman-error-path": "routes/ingress-routes: spec.virtualHosts[0].routes[1]",
    }
    assert "names service 'checkout', which does not exist" in error.details()
    assert len((await api.rest_get("/v1/history"))["revisions"]) == 1


async def test_delete_missing_or_of_an_unknown_kind_is_not_found(api: Grpc) -> None:
    error = await refused(api.stub.DeleteDocument(pb.DeleteDocumentRequest(kind="cluster", name="nope")))
    assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND, "cluster/nope does not exist")
    error = await refused(api.stub.DeleteDocument(pb.DeleteDocumentRequest(kind="gateway", name="x")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert trailers(error) == {"switchman-error-code": "not_found"}
    assert "there is no kind 'gateway'" in error.details()


async def test_set_weights_shifts_the_split(api: Grpc) -> None:
    await api.stub.Apply(apply_request(checkout()))
    reply = await api.stub.SetWeights(
        pb.SetWeightsRequest(service="checkout", weights={"v1": 90, "v2": 10}),
        metadata=(("x-switchman-author", "shifter"),),
    )
    assert (reply.revision, list(reply.configured), list(reply.envoy.changed)) == (
        2, ["service/checkout"], ["rds/ingress-routes"])
    service = await api.rest_get("/v1/documents/service/checkout")
    assert service["spec"]["weights"] == {"v1": 90, "v2": 10}
    route = (await api.rest_get("/v1/render"))["resources"]["rds"][0]["virtualHosts"][0]["routes"][2]
    clusters = route["route"]["weightedClusters"]["clusters"]
    assert [(c["name"], c["weight"]) for c in clusters] == [("checkout-v1", 9000), ("checkout-v2", 1000)]
    latest = (await api.rest_get("/v1/history"))["revisions"][0]
    assert (latest["author"], latest["message"]) == ("shifter", "weights of service/checkout: {'v1': 90, 'v2': 10}")


async def test_set_weights_errors(api: Grpc) -> None:
    await api.stub.Apply(apply_request(checkout()))
    error = await refused(api.stub.SetWeights(pb.SetWeightsRequest(service="checkout", weights={"v1": 50, "v3": 50})))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailers(error)["switchman-error-path"] == "service/checkout: spec.weights.v3"
    error = await refused(api.stub.SetWeights(pb.SetWeightsRequest(service="nope", weights={"v1": 1})))
    assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND, "service/nope does not exist")
    assert len((await api.rest_get("/v1/history"))["revisions"]) == 1


async def test_set_route_split(api: Grpc) -> None:
    docs = checkout()
    docs[1]["spec"]["virtualHosts"][0]["routes"][2]["name"] = "main"
    await api.stub.Apply(apply_request(docs))
    split = [
        {"service": "checkout", "version": "v1", "weight": 75},
        {"service": "checkout", "version": "v2", "weight": 25},
    ]
    reply = await api.stub.SetRouteSplit(
        pb.SetRouteSplitRequest(routes="ingress-routes", route="main", split=[struct(s) for s in split])
    )
    assert (reply.revision, list(reply.envoy.changed)) == (2, ["rds/ingress-routes"])
    route = (await api.rest_get("/v1/render"))["resources"]["rds"][0]["virtualHosts"][0]["routes"][2]
    assert [(c["name"], c["weight"]) for c in route["route"]["weightedClusters"]["clusters"]] == [
        ("checkout-v1", 75), ("checkout-v2", 25)]
    zero = [struct({**s, "weight": 0}) for s in split]
    request = pb.SetRouteSplitRequest(routes="ingress-routes", route="main", split=zero)
    error = await refused(api.stub.SetRouteSplit(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailers(error)["switchman-error-path"] == "routes/ingress-routes: spec.virtualHosts[0].routes[2].split"
    error = await refused(api.stub.SetRouteSplit(pb.SetRouteSplitRequest(routes="ingress-routes", route="x")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
