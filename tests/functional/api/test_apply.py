"""POST /v1/apply: JSON and YAML bodies, all or nothing, dry runs."""

from __future__ import annotations

import copy

import yaml

from tests.functional.api.conftest import Api
from tests.functional.api.docs import checkout, example

CHECKOUT_IDS = ["listener/ingress", "routes/ingress-routes", "service/checkout"]
CHECKOUT_ENVOY = ["cds/checkout-v1", "cds/checkout-v2", "eds/checkout-v1", "eds/checkout-v2", "lds/ingress",
                  "rds/ingress-routes"]


async def test_apply_json_creates_a_revision_and_serves_it(api: Api) -> None:
    reply = await api.apply(checkout())
    assert reply.status == 200, reply.body
    assert reply.body == {
        "revision": 1, "created": CHECKOUT_IDS, "configured": [], "unchanged": [], "deleted": [],
        "envoy": {"added": CHECKOUT_ENVOY, "changed": [], "removed": []}, "dry_run": False, "groups": {}, "head": 1,
    }
    render = await api.get("/v1/render")
    assert [r["name"] for r in render.body["resources"]["lds"]] == ["ingress"]
    assert (await api.get("/v1/status")).body["revision"] == 1


async def test_apply_yaml_stream(api: Api) -> None:
    text = yaml.safe_dump_all(checkout())
    reply = await api.call("POST", "/v1/apply?message=from+yaml", data=text, content_type="application/yaml")
    assert reply.status == 200, reply.body
    assert (reply.body["revision"], reply.body["created"]) == (1, CHECKOUT_IDS)
    [entry] = await api.history()
    assert entry["message"] == "from yaml"


async def test_applying_the_same_documents_again_changes_nothing(api: Api) -> None:
    await api.apply(checkout())
    reply = await api.apply(checkout())
    assert reply.status == 200
    assert (reply.body["revision"], reply.body["unchanged"], reply.body["created"]) == (None, CHECKOUT_IDS, [])
    assert reply.body["envoy"] == {"added": [], "changed": [], "removed": []}
    assert len(await api.history()) == 1


async def test_a_change_is_configured_and_reported_in_envoy_terms(api: Api) -> None:
    await api.apply(checkout())
    docs = checkout()
    docs[0]["spec"]["connectTimeout"] = "2s"
    reply = await api.apply(docs[:1])
    assert reply.status == 200, reply.body
    assert (reply.body["revision"], reply.body["configured"]) == (2, ["service/checkout"])
    assert reply.body["unchanged"] == ["listener/ingress", "routes/ingress-routes"]  # kept, not in this apply
    assert reply.body["envoy"] == {"added": [], "changed": ["cds/checkout-v1", "cds/checkout-v2"], "removed": []}


async def test_a_bad_document_in_a_batch_changes_nothing(api: Api) -> None:
    await api.apply(checkout())
    before_history, before_docs = await api.history(), await api.documents()
    good = example("canary-with-retries.yaml")
    bad = copy.deepcopy(good)
    bad[1]["spec"]["virtualHosts"][0]["routes"][0]["split"][1]["weight"] = 101
    reply = await api.apply(bad)
    assert reply.status == 422
    assert reply.error["code"] == "invalid_config"
    assert reply.error["path"] == "routes/api-routes: spec.virtualHosts[0].routes[0].split[1].weight"
    assert "101 is above 100" in reply.error["message"]
    assert await api.history() == before_history
    assert await api.documents() == before_docs
    assert [r["name"] for r in (await api.get("/v1/render")).body["resources"]["cds"]] == ["checkout-v1", "checkout-v2"]


async def test_a_batch_that_leaves_a_reference_dangling_changes_nothing(api: Api) -> None:
    docs = example("canary-with-retries.yaml")
    reply = await api.apply(docs[1:])  # the routes name service api, which is not in the batch
    assert reply.status == 422
    assert reply.error["path"] == "routes/api-routes: spec.virtualHosts[0].routes[0].split[0]"
    assert "names service 'api', which does not exist" in reply.error["message"]
    assert await api.history() == []
    assert await api.documents() == []


async def test_the_same_document_twice_in_one_apply_is_refused(api: Api) -> None:
    docs = checkout()
    reply = await api.apply([*docs, docs[0]])
    assert reply.status == 422
    assert (reply.error["path"], reply.error["message"]) == ("service/checkout",
                                                             "service/checkout: appears twice in this apply")
    assert await api.history() == []


async def test_dry_run_reports_without_a_revision(api: Api) -> None:
    await api.apply(checkout())
    before = await api.get("/v1/render")
    docs = example("canary-with-retries.yaml")
    reply = await api.apply(docs, query="?dryRun=true")
    assert reply.status == 200, reply.body
    assert reply.body["revision"] is None and reply.body["dry_run"] is True
    assert reply.body["created"] == ["listener/api-ingress", "routes/api-routes", "service/api"]
    assert reply.body["envoy"]["added"] == ["cds/api-v1", "cds/api-v2", "eds/api-v1", "eds/api-v2", "lds/api-ingress",
                                            "rds/api-routes"]
    assert len(await api.history()) == 1
    assert len(await api.documents()) == 3
    assert (await api.get("/v1/render")).body == before.body


async def test_dry_run_in_the_body(api: Api) -> None:
    reply = await api.call("POST", "/v1/apply", json_body={"documents": checkout(), "dryRun": True})
    assert (reply.status, reply.body["revision"], reply.body["dry_run"]) == (200, None, True)
    assert await api.history() == []


async def test_a_dry_run_of_a_bad_batch_is_refused_like_an_apply(api: Api) -> None:
    docs = checkout()
    docs[2]["spec"]["routes"] = "nope"
    reply = await api.apply(docs, query="?dryRun=1")
    assert reply.status == 422
    assert reply.error["path"] == "listener/ingress: spec.routes"
