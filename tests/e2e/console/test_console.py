"""The web console in real headless Chromium, on a real Switchman with a real Envoy: what an operator sees and does."""

from __future__ import annotations

import asyncio
import time

import pytest
import yaml

from switchman.app import Switchman
from switchman.lab.local import EnvoyProcess
from tests.e2e.console.browser import Page
from tests.e2e.console.conftest import ADMIN, NODE, READ, Api, sign_in
from tests.e2e.helpers import REJECTED_ROUTES, Traffic, checkout_documents

pytestmark = pytest.mark.envoy

CANARY = {
    "kind": "Rollout",
    "metadata": {"name": "checkout"},
    "spec": {
        "service": "checkout", "stable": "v1", "canary": "v2",
        "analysis": {"interval": "1s", "threshold": 2, "metrics": [
            {"name": "request-success-rate", "thresholdRange": {"min": 99}}]},
        "steps": [{"setWeight": 20}, {"setWeight": 50}],
    },
}


def checkout() -> list[dict[str, object]]:
    return checkout_documents(19001, 19002, {"v1": 100, "v2": 0})


async def test_every_view_shows_the_envoy_its_nack_and_resources_without_console_errors(
    switchman: Switchman, envoy: EnvoyProcess, page: Page, shots
) -> None:
    admin = Api(switchman, ADMIN)
    assert (await admin.call("POST", "/v1/apply", {"documents": checkout(), "message": "checkout"}))[0] == 200
    await sign_in(page, switchman, ADMIN)
    assert await page.text("#who") == "ops (admin)"
    node = f"[data-node={NODE!r}]"
    await page.wait_for(f"document.querySelector(`{node}`)?.innerText.includes('synced')", what="the Envoy, synced")
    text = await page.text(node)
    for short in ("cds", "eds", "lds", "rds"):
        assert short in text, text
    assert "not synced" not in text

    # Routes Envoy rejects: the page shows, without a reload, Envoy's own words and the document they trace to.
    applied = await admin.call("POST", "/v1/apply", {"documents": list(yaml.safe_load_all(REJECTED_ROUTES))})
    assert applied[0] == 200, applied
    await page.wait_for(f"document.querySelector(`{node} .nack`)", what="the NACK")
    nack = await page.text(f"{node} .nack")
    assert "rds NACKed version" in nack and "traced to envoyresource/regex-routes" in nack, nack
    assert "regex" in nack.lower() or "unclosed" in nack or "missing )" in nack, nack
    assert "not synced" in await page.text(node)
    await shots(page, "envoys")
    await shots(page, "envoys-phone", width=390, height=844, mobile=True)

    # What the node is served, per type.
    await page.show(f"#/resources?node={NODE}")
    await page.wait_for("document.querySelector('[data-type=cds] details')", what="the clusters served")
    assert "checkout-v1" in await page.text("[data-type=cds]")
    assert "regex-routes" in await page.text("[data-type=rds]")
    await shots(page, "resources")

    # Documents, one document's history, and the diff of the two revisions.
    await page.show("#/documents")
    await page.wait_for("document.querySelector('[data-doc=\"service/checkout\"]')", what="the documents")
    assert "regex-routes" in await page.text("#documents")
    await page.click("[data-doc='service/checkout'] a")
    await page.wait_for("document.querySelector('pre.doc')?.innerText.includes('weights')", what="the Service")
    await page.show("#/history")
    await page.wait_for("document.querySelector('#diff .diffdoc')", what="the diff of revisions 1 and 2")
    assert "Revision 1 → 2" in await page.text("#diff")
    assert await page.evaluate("document.querySelectorAll('#diff tr.add').length") > 5
    await shots(page, "history")

    await page.show("#/rollouts")
    await page.wait_for("document.querySelector('main h1')?.innerText === 'Rollouts'")
    assert page.errors == []


async def test_a_change_applied_through_the_api_shows_without_a_reload_within_a_second(
    switchman: Switchman, page: Page
) -> None:
    admin = Api(switchman, ADMIN)
    assert (await admin.call("POST", "/v1/apply", {"documents": checkout()}))[0] == 200
    await sign_in(page, switchman, ADMIN, "documents")
    await page.wait_for("document.querySelector('#documents')", what="the documents")
    await page.evaluate("window.loadedOnce = true")  # gone if the page reloads
    added = {"kind": "Service", "metadata": {"name": "payments"},
             "spec": {"versions": {"v1": {"endpoints": [{"address": "127.0.0.1", "port": 19003}]}}}}
    started = time.monotonic()
    assert (await admin.call("POST", "/v1/apply", {"documents": [added]}))[0] == 200
    await page.wait_for("document.querySelector('[data-doc=\"service/payments\"]')", timeout=1.0,
                        what="the new Service on the page")
    assert time.monotonic() - started < 1.0
    assert await page.evaluate("window.loadedOnce") is True
    assert page.errors == []


async def test_a_rollback_from_the_history_page(switchman: Switchman, page: Page) -> None:
    admin = Api(switchman, ADMIN)
    docs = checkout()
    assert (await admin.call("POST", "/v1/apply", {"documents": docs}))[0] == 200
    docs[0]["spec"]["weights"] = {"v1": 50, "v2": 50}  # type: ignore[index]
    assert (await admin.call("POST", "/v1/apply", {"documents": docs}))[0] == 200
    await sign_in(page, switchman, ADMIN, "history")
    await page.wait_for("document.querySelector('[data-revision=\"1\"] button.write')", what="a rollback button")
    await page.click("[data-revision='1'] button.write")
    assert "Confirm" in await page.text("[data-revision='1'] button.write")  # asked twice
    await page.click("[data-revision='1'] button.write")
    await page.wait_for("document.querySelector('[data-revision=\"3\"]')", what="revision 3, the rollback")
    assert "rollback to 1" in await page.text("[data-revision='3']")
    history = await admin.read("/v1/history")
    newest = history["revisions"][0]
    assert (newest["number"], newest["rollback_of"], newest["author"]) == (3, 1, "ops")
    service = await admin.read("/v1/documents/Service/checkout")
    assert service["spec"]["weights"] == {"v1": 100, "v2": 0}
    assert page.errors == []


async def test_a_read_token_sees_no_buttons_and_cannot_change_anything(
    switchman: Switchman, page: Page, shots
) -> None:
    admin = Api(switchman, ADMIN)
    docs = checkout()
    assert (await admin.call("POST", "/v1/apply", {"documents": docs}))[0] == 200
    docs[0]["spec"]["weights"] = {"v1": 90, "v2": 10}  # type: ignore[index]
    assert (await admin.call("POST", "/v1/apply", {"documents": [*docs, CANARY]}))[0] == 200
    await sign_in(page, switchman, READ, "history")
    assert await page.text("#who") == "viewer (read)"
    await page.wait_for("document.querySelector('[data-revision=\"1\"]')", what="the history")
    assert await page.evaluate("document.querySelectorAll('button.write').length") == 0
    await page.show("#/rollouts/checkout")
    await page.wait_for("document.querySelector('#weight')", what="the rollout")
    assert await page.evaluate("document.querySelectorAll('button').length") == 1  # sign out, nothing else
    assert page.errors == []
    await shots(page, "rollout-read-token")

    # A request forged in the page with the read token is refused, and nothing changed.
    before = (await admin.read("/v1/history"))["revisions"][0]["number"]
    forged = await page.evaluate("""(async () => {
      const h = {Authorization: `Bearer ${sessionStorage.getItem('switchman.token')}`,
                 'Content-Type': 'application/json'};
      const rollback = await fetch('/v1/rollback', {method: 'POST', headers: h, body: '{"revision": 1}'});
      const abort = await fetch('/v1/rollouts/checkout/abort', {method: 'POST', headers: h});
      return [rollback.status, (await rollback.json()).error.code, abort.status];
    })()""")
    assert forged == [403, "forbidden", 403]
    assert (await admin.read("/v1/history"))["revisions"][0]["number"] == before
    rollout = await admin.read("/v1/rollouts/checkout")
    assert rollout["state"]["phase"] == "Progressing"


async def test_a_rollout_live_with_its_commands(switchman: Switchman, page: Page, shots) -> None:
    admin = Api(switchman, ADMIN)
    assert (await admin.call("POST", "/v1/apply", {"documents": [*checkout(), CANARY]}))[0] == 200
    await sign_in(page, switchman, ADMIN, "rollouts/checkout")
    await page.wait_for("document.getElementById('weight')?.innerText === '20%'", what="the canary at 20 %")
    await page.wait_for("document.querySelectorAll('#analyses tbody tr').length >= 2", what="analyses")
    assert "Inconclusive" in await page.text("#analyses")  # no traffic: never a pass

    await page.click("[data-action='pause:checkout']")
    await page.wait_for("document.querySelector('main h1')?.innerText.includes('Paused')", what="paused")
    await page.click("[data-action='resume:checkout']")
    await page.wait_for("document.querySelector('main h1')?.innerText.includes('Progressing')", what="resumed")
    await page.click("[data-action='promote:checkout']")
    await page.wait_for("document.getElementById('weight')?.innerText === '50%'", what="promoted to 50 %")
    rollout = await admin.read("/v1/rollouts/checkout")
    assert rollout["state"]["weight"] == 50
    kinds = [e["kind"] for e in rollout["state"]["events"]]
    assert {"Paused", "Resumed", "PromoteRequested"} <= set(kinds), kinds
    assert "Resumed" in await page.text("#events")
    assert await page.evaluate("document.querySelectorAll('figure.chart path.weight').length") == 1
    await shots(page, "rollout")
    assert page.errors == []


async def test_the_rollout_view_draws_the_split_measured_beside_the_weight_set(
    switchman: Switchman, envoy: EnvoyProcess, upstreams, page: Page, shots
) -> None:
    """Real traffic through the Envoy while the canary holds 30 %: each analysis's measured share is drawn."""
    admin = Api(switchman, ADMIN)
    blue, green = await upstreams("checkout", "v1"), await upstreams("checkout", "v2")
    judged = {"interval": "1s", "threshold": 5, "minRequests": 5,
              "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 0}}]}
    rollout = {**CANARY, "spec": {**CANARY["spec"], "analysis": judged, "steps": [{"setWeight": 30}, {"pause": {}}]}}
    documents = checkout_documents(blue.port, green.port, {"v1": 100, "v2": 0})
    assert (await admin.call("POST", "/v1/apply", {"documents": [*documents, rollout]}))[0] == 200
    traffic = Traffic(await envoy.wait_listener("ingress"))
    runner = asyncio.create_task(traffic.run(concurrency=2, seconds=30))
    try:
        await sign_in(page, switchman, ADMIN, "rollouts/checkout")
        await page.wait_for("document.querySelectorAll('figure.chart circle.split').length >= 3",
                            what="three analyses' measured split", timeout=20)
        shares = await page.evaluate(
            "[...document.querySelectorAll('figure.chart circle.split title')].map(t => t.textContent)")
    finally:
        traffic.stop()
        await runner
    measured = [float(text.rpartition(": ")[2]) for text in shares]
    # Each window's share of some dozens of requests at a 30 % weight; the first may straddle the change.
    assert all(0 <= m <= 100 for m in measured) and 10 <= measured[-1] <= 55, measured
    assert traffic.failures == []
    await shots(page, "rollout-split")
    assert page.errors == []
