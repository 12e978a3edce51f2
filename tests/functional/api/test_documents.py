"""GET, list and DELETE documents; PATCH a service's weights."""

from __future__ import annotations

from tests.functional.api.conftest import Api
from tests.functional.api.docs import by_id, checkout


async def test_list_and_get(api: Api) -> None:
    await api.apply(checkout())
    expected = by_id(checkout())
    assert await api.documents() == [expected[k] for k in sorted(expected)]
    only = await api.get("/v1/documents?kind=service")
    assert only.body == {"documents": [expected["service/checkout"]]}
    one = await api.get("/v1/documents/Routes/ingress-routes")
    assert (one.status, one.body) == (200, expected["routes/ingress-routes"])


async def test_get_missing_is_404(api: Api) -> None:
    reply = await api.get("/v1/documents/service/nope")
    assert reply.status == 404
    assert reply.error == {"code": "not_found", "message": "service/nope does not exist"}


async def test_delete_a_document_nobody_refers_to(api: Api) -> None:
    await api.apply(checkout())
    reply = await api.delete("listener", "ingress")
    assert reply.status == 200, reply.body
    assert (reply.body["revision"], reply.body["deleted"]) == (2, ["listener/ingress"])
    assert reply.body["envoy"]["removed"] == ["lds/ingress"]
    assert "listener/ingress" not in by_id(await api.documents())
    assert (await api.get("/v1/documents/listener/ingress")).status == 404


async def test_delete_a_document_others_refer_to_is_refused_naming_the_referrer(api: Api) -> None:
    await api.apply(checkout())
    reply = await api.delete("service", "checkout")
    assert reply.status == 422
    assert reply.error["code"] == "invalid_config"
    assert reply.error["path"] == "routes/ingress-routes: spec.virtualHosts[0].routes[1]"
    assert "names service 'checkout', which does not exist" in reply.error["message"]
    assert len(await api.history()) == 1
    reply = await api.delete("routes", "ingress-routes")
    assert (reply.status, reply.error["path"]) == (422, "listener/ingress: spec.routes")


async def test_delete_dry_run(api: Api) -> None:
    await api.apply(checkout())
    reply = await api.delete("listener", "ingress", "?dryRun=true")
    assert (reply.status, reply.body["revision"], reply.body["deleted"]) == (200, None, ["listener/ingress"])
    assert len(await api.documents()) == 3


async def test_delete_missing_or_of_an_unknown_kind_is_404(api: Api) -> None:
    reply = await api.delete("cluster", "nope")
    assert (reply.status, reply.error["code"]) == (404, "not_found")
    assert reply.error["message"] == "cluster/nope does not exist"
    reply = await api.delete("gateway", "x")
    assert (reply.status, reply.error["code"]) == (404, "not_found")
    assert "there is no kind 'gateway'" in reply.error["message"]


async def test_patch_weights_shifts_the_split(api: Api) -> None:
    await api.apply(checkout())
    reply = await api.call("PATCH", "/v1/services/checkout/weights", json_body={"v1": 90, "v2": 10},
                           headers={"X-Switchman-Author": "shifter"})
    assert reply.status == 200, reply.body
    assert (reply.body["revision"], reply.body["configured"]) == (2, ["service/checkout"])
    assert reply.body["envoy"]["changed"] == ["rds/ingress-routes"]
    service = (await api.get("/v1/documents/service/checkout")).body
    assert service["spec"]["weights"] == {"v1": 90, "v2": 10}
    route = (await api.get("/v1/render")).body["resources"]["rds"][0]["virtualHosts"][0]["routes"][2]
    clusters = route["route"]["weightedClusters"]["clusters"]
    assert [(c["name"], c["weight"]) for c in clusters] == [("checkout-v1", 9000), ("checkout-v2", 1000)]
    latest = (await api.history())[0]
    assert latest["author"] == "shifter"
    assert latest["message"] == "weights of service/checkout: {'v1': 90, 'v2': 10}"


async def test_patch_weights_errors(api: Api) -> None:
    await api.apply(checkout())
    patch = "/v1/services/checkout/weights"
    reply = await api.call("PATCH", patch, json_body={"v1": 50, "v3": 50})
    assert (reply.status, reply.error["path"]) == (422, "service/checkout: spec.weights.v3")
    assert "there is no version 'v3' (versions: v1, v2)" in reply.error["message"]
    reply = await api.call("PATCH", patch, json_body={"v1": 0, "v2": 0})
    assert (reply.status, reply.error["path"]) == (422, "service/checkout: spec.weights")
    reply = await api.call("PATCH", "/v1/services/nope/weights", json_body={"v1": 1})
    assert (reply.status, reply.error["code"]) == (404, "not_found")
    reply = await api.call("PATCH", patch, data="{v1: 1", content_type="application/json")
    assert (reply.status, reply.error["code"]) == (400, "bad_request")
    reply = await api.call("PATCH", patch, json_body=[90, 10])
    assert (reply.status, reply.error["code"]) == (400, "bad_request")
    assert len(await api.history()) == 1
