"""POST /v1/apply?prune=true&selector=...: the store holds exactly the applied documents of a label set, in one
revision; what the selector does not pick is left alone; a prune that is not meant is refused."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from tests.functional.api.conftest import Api
from tests.functional.api.docs import checkout

SHOP = {"app": "shop"}


def labelled(docs: list[dict[str, Any]], labels: dict[str, str] = SHOP) -> list[dict[str, Any]]:
    out = copy.deepcopy(docs)
    for doc in out:
        doc["metadata"]["labels"] = dict(labels)
    return out


def payments() -> dict[str, Any]:
    """A Cluster nobody's folder owns (no labels)."""
    return {"kind": "Cluster", "metadata": {"name": "payments"},
            "spec": {"endpoints": [{"address": "127.0.0.1", "port": 9300}]}}


def cart_folder() -> list[dict[str, Any]]:
    """The shop's folder after checkout was replaced by cart: routes to cart, the same listener."""
    docs = labelled(checkout())
    service, routes, _listener = docs
    service["metadata"]["name"] = "cart"
    for route in routes["spec"]["virtualHosts"][0]["routes"]:
        if route.get("service") == "checkout":
            route["service"] = "cart"
        elif isinstance(route.get("service"), dict):
            route["service"]["name"] = "cart"
    return docs


async def test_a_prune_deletes_what_the_folder_no_longer_holds_in_the_same_revision(api: Api) -> None:
    assert (await api.apply([*labelled(checkout()), payments()])).status == 200
    reply = await api.apply(cart_folder(), query="?prune=true&selector=app%3Dshop")
    assert reply.status == 200, reply.body
    body = reply.body
    assert (body["revision"], body["created"], body["deleted"]) == (2, ["service/cart"], ["service/checkout"])
    assert body["configured"] == ["routes/ingress-routes"]
    # The service and the routes that named it went in one revision (a delete of the service alone is refused
    # while the routes name it): Envoy's clusters changed once, with the routes.
    assert body["envoy"]["removed"] == ["cds/checkout-v1", "cds/checkout-v2", "eds/checkout-v1", "eds/checkout-v2"]
    newest = (await api.history())[0]
    assert (newest["number"], newest["removed"], newest["added"]) == (2, ["service/checkout"], ["service/cart"])
    assert newest["message"] == "apply, pruning app=shop"
    ids = sorted(f"{d['kind'].lower()}/{d['metadata']['name']}" for d in await api.documents())
    assert ids == ["cluster/payments", "listener/ingress", "routes/ingress-routes", "service/cart"]  # payments stays


async def test_a_dry_run_shows_what_would_be_pruned_and_stores_nothing(api: Api) -> None:
    await api.apply(labelled(checkout()))
    reply = await api.apply(cart_folder(), query="?prune=true&selector=app%3Dshop&dryRun=true")
    assert reply.status == 200, reply.body
    assert (reply.body["dry_run"], reply.body["revision"], reply.body["deleted"]) == (True, None, ["service/checkout"])
    assert len(await api.history()) == 1


async def test_only_documents_with_every_label_of_the_selector_are_pruned(api: Api) -> None:
    front = labelled([payments()], {"app": "shop", "tier": "front"})
    await api.apply([*labelled(checkout()), *front])
    reply = await api.call(
        "POST", "/v1/apply", json_body={"documents": labelled(checkout(), {"app": "shop", "tier": "back"}),
                                        "prune": True, "selector": {"app": "shop", "tier": "back"}},
    )
    assert reply.status == 200, reply.body
    assert reply.body["deleted"] == []  # cluster/payments is tier=front
    assert reply.body["configured"] == ["listener/ingress", "routes/ingress-routes", "service/checkout"]


async def test_a_yaml_body_prunes_with_the_query(api: Api) -> None:
    await api.apply([*labelled(checkout()), *labelled([payments()])])
    text = yaml.safe_dump_all(labelled(checkout()))
    reply = await api.call("POST", "/v1/apply?prune=1&selector=app=shop", data=text, content_type="application/yaml")
    assert reply.status == 200, reply.body
    assert reply.body["deleted"] == ["cluster/payments"]


async def test_a_prune_without_a_selector_or_a_selector_without_prune_is_refused(api: Api) -> None:
    await api.apply(labelled(checkout()))
    for query, words in (
        ("?prune=true", "prune needs a selector"),
        ("?prune=true&selector=", "prune needs a selector"),
        ("?selector=app%3Dshop", "selector goes with prune=true"),
        ("?prune=maybe&selector=app%3Dshop", "prune is true or false"),
        ("?prune=true&selector=app", "'app' is not KEY=VALUE"),
    ):
        reply = await api.apply([], query=query)
        assert reply.status == 400, (query, reply.body)
        assert reply.error["code"] == "bad_request"
        assert words in reply.error["message"], (query, reply.error)
    assert len(await api.history()) == 1


async def test_a_document_applied_without_the_selectors_labels_is_refused_naming_it(api: Api) -> None:
    await api.apply(labelled(checkout()))
    docs = labelled(checkout())
    del docs[2]["metadata"]["labels"]
    reply = await api.apply(docs, query="?prune=true&selector=app%3Dshop")
    assert reply.status == 422
    assert reply.error["path"] == "listener/ingress: metadata.labels"
    assert "does not carry app=shop" in reply.error["message"]
    assert len(await api.history()) == 1


async def test_a_prune_that_leaves_a_reference_dangling_changes_nothing(api: Api) -> None:
    # The shop's routes live outside the folder (no labels): pruning the service they name is refused.
    service, routes, listener = checkout()
    await api.apply([*labelled([service, listener]), routes])
    before = await api.documents()
    reply = await api.apply(labelled([listener]), query="?prune=true&selector=app%3Dshop")
    assert reply.status == 422
    assert reply.error["path"].startswith("routes/ingress-routes: ")
    assert "names service 'checkout', which does not exist" in reply.error["message"]
    assert await api.documents() == before
    assert len(await api.history()) == 1


async def test_labels_are_checked_as_kubernetes_labels(api: Api) -> None:
    reply = await api.apply(labelled(checkout(), {"app": "shop floor"}))
    assert reply.status == 422
    assert reply.error["path"] == "service/checkout: metadata.labels.app"
