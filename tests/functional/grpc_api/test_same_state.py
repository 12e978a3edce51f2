"""REST and gRPC are two doors to one control plane: what one changes, the other reads."""

from __future__ import annotations

from google.protobuf import json_format

from switchman.api.grpc import management_pb2 as pb
from switchman.xds import resources as rt
from tests.functional.api.docs import checkout, example
from tests.functional.grpc_api.conftest import Grpc, apply_request, plain


async def _assert_same(api: Grpc) -> None:
    rest_docs = (await api.rest_get("/v1/documents"))["documents"]
    grpc_docs = [plain(d) for d in (await api.stub.ListDocuments(pb.ListDocumentsRequest())).documents]
    assert grpc_docs == rest_docs

    rest_history = (await api.rest_get("/v1/history"))["revisions"]
    grpc_history = (await api.stub.History(pb.HistoryRequest())).revisions
    assert [(e.number, e.author, e.message, list(e.added), list(e.changed), list(e.removed),
             e.rollback_of if e.HasField("rollback_of") else None,
             e.on_behalf_of if e.HasField("on_behalf_of") else None) for e in grpc_history] == [
        (e["number"], e["author"], e["message"], e["added"], e["changed"], e["removed"], e["rollback_of"],
         e["on_behalf_of"])
        for e in rest_history]

    rest_render = (await api.rest_get("/v1/render"))["resources"]
    grpc_render = {}
    for rendered in (await api.stub.Render(pb.RenderRequest())).types:
        messages = []
        for packed in rendered.resources:
            message = rt.message_class(rendered.type_url)()
            packed.Unpack(message)
            messages.append(json_format.MessageToDict(message))
        grpc_render[rendered.type] = messages
    assert grpc_render == rest_render

    rest_status = await api.rest_get("/v1/status")
    grpc_status = await api.stub.Status(pb.StatusRequest())
    assert grpc_status.revision == rest_status["revision"]
    assert grpc_status.store.store_head == rest_status["store"]["store_head"]
    assert grpc_status.store.ready == rest_status["store"]["ready"]


async def test_changes_through_either_api_are_seen_by_both(api: Grpc) -> None:
    status, body = await api.rest_call("POST", "/v1/apply", {"documents": checkout(), "message": "by rest"})
    assert (status, body["revision"]) == (200, 1)
    await _assert_same(api)

    reply = await api.stub.SetWeights(pb.SetWeightsRequest(service="checkout", weights={"v1": 80, "v2": 20}))
    assert reply.revision == 2
    await _assert_same(api)

    reply = await api.stub.Apply(apply_request(example("canary-with-retries.yaml"), message="by grpc"))
    assert reply.revision == 3
    await _assert_same(api)

    status, body = await api.rest_call("POST", "/v1/rollback", {"revision": 1})
    assert (status, body["revision"], body["deleted"]) == (200, 4, ["listener/api-ingress", "routes/api-routes",
                                                                     "service/api"])
    await _assert_same(api)

    reply = await api.stub.DeleteDocument(pb.DeleteDocumentRequest(kind="listener", name="ingress"))
    assert reply.revision == 5
    await _assert_same(api)
    assert [e.message for e in (await api.stub.History(pb.HistoryRequest())).revisions] == [
        "delete listener/ingress", "rollback to revision 1", "by grpc",
        "weights of service/checkout: {'v1': 80, 'v2': 20}", "by rest"]


async def test_a_change_through_grpc_answers_as_rest_would(api: Grpc) -> None:
    """The same apply, once per API (on a fresh store each), gives the same result."""
    grpc_reply = await api.stub.Apply(apply_request(checkout(), dry_run=True))
    status, rest_reply = await api.rest_call("POST", "/v1/apply", {"documents": checkout(), "dryRun": True})
    assert status == 200
    as_json = json_format.MessageToDict(grpc_reply, preserving_proto_field_name=True,
                                        always_print_fields_with_no_presence=True)
    assert {**as_json, "revision": None, "head": None} == rest_reply  # unset optionals: JSON nulls
