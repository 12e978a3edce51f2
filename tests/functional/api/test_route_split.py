"""PATCH /v1/routes/{name}/split: one named route's weighted split, checked like any apply."""

from __future__ import annotations

from typing import Any

from tests.functional.api.conftest import Api
from tests.functional.api.docs import checkout


def named_checkout() -> list[dict[str, Any]]:
    docs = checkout()
    docs[1]["spec"]["virtualHosts"][0]["routes"][2]["name"] = "main"
    return docs


SPLIT = [{"service": "checkout", "version": "v1", "weight": 75}, {"service": "checkout", "version": "v2", "weight": 25}]


async def test_a_named_route_gets_a_new_split(api: Api) -> None:
    await api.apply(named_checkout())
    body = {"route": "main", "split": SPLIT}
    preview = await api.call("PATCH", "/v1/routes/ingress-routes/split?dryRun=true", json_body=body)
    assert preview.status == 200 and preview.body["revision"] is None, preview.body
    assert preview.body["envoy"]["changed"] == ["rds/ingress-routes"]

    reply = await api.call("PATCH", "/v1/routes/ingress-routes/split", json_body={"route": "main", "split": SPLIT})
    assert reply.status == 200 and reply.body["revision"] == 2, reply.body
    route = (await api.get("/v1/render")).body["resources"]["rds"][0]["virtualHosts"][0]["routes"][2]
    clusters = route["route"]["weightedClusters"]["clusters"]
    assert [(c["name"], c["weight"]) for c in clusters] == [("checkout-v1", 75), ("checkout-v2", 25)]
    stored = (await api.get("/v1/documents/routes/ingress-routes")).body
    assert stored["spec"]["virtualHosts"][0]["routes"][2]["split"] == SPLIT
    assert "service" not in stored["spec"]["virtualHosts"][0]["routes"][2]
    assert (await api.history())[0]["message"] == "split of routes/ingress-routes main: checkout/v1=75, checkout/v2=25"


async def test_route_split_errors(api: Api) -> None:
    await api.apply(named_checkout())
    path = "/v1/routes/ingress-routes/split"
    missing = await api.call("PATCH", path, json_body={"route": "nope", "split": SPLIT})
    assert missing.status == 404 and missing.body["error"]["code"] == "not_found"
    nothing = await api.call("PATCH", "/v1/routes/absent/split", json_body={"route": "main", "split": SPLIT})
    assert nothing.status == 404
    zero = [{**s, "weight": 0} for s in SPLIT]
    refused = await api.call("PATCH", path, json_body={"route": "main", "split": zero})
    assert refused.status == 422
    assert refused.body["error"]["path"] == "routes/ingress-routes: spec.virtualHosts[0].routes[2].split"
    assert "weights sum to 0" in refused.body["error"]["message"]
    malformed = await api.call("PATCH", path, json_body={"route": "main"})
    assert malformed.status == 400 and malformed.body["error"]["code"] == "bad_request"
    assert [h["number"] for h in await api.history()] == [1]  # nothing refused was stored
