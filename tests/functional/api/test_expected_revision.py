"""If-Match on every change: a stale revision is 409 and changes nothing; answers carry the new one as ETag."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.functional.api.conftest import Api, Reply
from tests.functional.api.docs import checkout
from tests.functional.api.test_route_split import SPLIT, named_checkout

WEIGHTS = "/v1/services/checkout/weights"
SPLIT_PATH = "/v1/routes/ingress-routes/split"


def if_match(revision: int | str) -> dict[str, str]:
    return {"If-Match": f'"{revision}"' if isinstance(revision, int) else revision}


def etag(reply: Reply) -> int:
    tag = reply.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"'), tag
    return int(tag[1:-1])


async def changes(api: Api, revision: int) -> dict[str, Reply]:
    """Every kind of change, each made against ``revision``."""
    docs = named_checkout()
    docs[0]["spec"]["weights"] = {"v1": 80, "v2": 20}
    return {
        "apply": await api.apply(docs, headers=if_match(revision)),
        "weights": await api.call("PATCH", WEIGHTS, json_body={"v1": 70, "v2": 30}, headers=if_match(revision)),
        "split": await api.call(
            "PATCH", SPLIT_PATH, json_body={"route": "main", "split": SPLIT}, headers=if_match(revision)
        ),
        "rollback": await api.call("POST", "/v1/rollback", json_body={"revision": 1}, headers=if_match(revision)),
        "delete": await api.delete("listener", "ingress", headers=if_match(revision)),
    }


async def test_a_stale_if_match_is_409_on_every_change_and_stores_nothing(api: Api) -> None:
    await api.apply(named_checkout())
    await api.call("PATCH", WEIGHTS, json_body={"v1": 90, "v2": 10})  # the head is 2 now
    before = (await api.history(), await api.documents(), (await api.get("/v1/render")).body)
    for what, reply in (await changes(api, 1)).items():
        assert (reply.status, reply.error["code"]) == (409, "conflict"), what
        assert "the head is revision 2, not 1" in reply.error["message"], what
    assert (await api.history(), await api.documents(), (await api.get("/v1/render")).body) == before


async def test_the_right_if_match_changes_and_the_answer_names_the_new_head(api: Api) -> None:
    first = await api.apply(named_checkout(), headers=if_match(0))  # 0: an empty store
    assert (first.status, etag(first), first.body["head"]) == (200, 1, 1)
    docs = named_checkout()
    docs[0]["spec"]["weights"] = {"v1": 80, "v2": 20}
    change: dict[str, Callable[[int], Awaitable[Reply]]] = {
        "weights": lambda head: api.call("PATCH", WEIGHTS, json_body={"v1": 70, "v2": 30}, headers=if_match(head)),
        "split": lambda head: api.call(
            "PATCH", SPLIT_PATH, json_body={"route": "main", "split": SPLIT}, headers=if_match(head)
        ),
        "rollback": lambda head: api.call(
            "POST", "/v1/rollback", json_body={"revision": 1}, headers=if_match(head)
        ),
        "apply": lambda head: api.apply(docs, headers=if_match(head)),
        "delete": lambda head: api.delete("listener", "ingress", headers=if_match(head)),
    }
    head = 1
    for what, call in change.items():
        reply = await call(head)
        assert reply.status == 200, (what, reply.body)
        assert reply.body["revision"] == reply.body["head"] == etag(reply) == head + 1, what
        head += 1
    assert [e["number"] for e in await api.history()] == [6, 5, 4, 3, 2, 1]
    assert etag(await api.get("/v1/documents")) == 6
    assert etag(await api.get("/v1/documents/service/checkout")) == 6


async def test_a_dry_run_or_a_change_that_changes_nothing_names_the_head_it_was_checked_against(api: Api) -> None:
    await api.apply(checkout())
    again = await api.apply(checkout(), headers=if_match(1))
    assert (again.status, again.body["revision"], again.body["head"], etag(again)) == (200, None, 1, 1)
    docs = checkout()
    docs[0]["spec"]["weights"] = {"v1": 10, "v2": 90}
    dry = await api.apply(docs, query="?dryRun=true")
    assert (dry.body["revision"], etag(dry)) == (None, 1)
    assert (await api.apply(docs, headers=if_match(etag(dry)))).status == 200  # nothing moved since the dry run


@pytest.mark.parametrize("value", ['W/"1"', "abc", '"1', "1, 2", "-1", "*", '""', "1.0", "\uff11"])
async def test_an_if_match_that_is_not_a_revision_is_400_naming_the_header(api: Api, value: str) -> None:
    await api.apply(checkout())
    for reply in (
        await api.apply(checkout(), headers={"If-Match": value}),
        await api.call("PATCH", WEIGHTS, json_body={"v1": 1, "v2": 99}, headers={"If-Match": value}),
        await api.call("POST", "/v1/rollback", json_body={"revision": 1}, headers={"If-Match": value}),
        await api.delete("listener", "ingress", headers={"If-Match": value}),
    ):
        assert (reply.status, reply.error["code"]) == (400, "bad_request"), value
        assert "If-Match" in reply.error["message"]
    assert len(await api.history()) == 1


async def test_a_quoted_or_bare_revision_both_match(api: Api) -> None:
    await api.apply(checkout())
    assert (await api.call("PATCH", WEIGHTS, json_body={"v1": 1, "v2": 99}, headers={"If-Match": "1"})).status == 200
    reply = await api.call("PATCH", WEIGHTS, json_body={"v1": 2, "v2": 98}, headers={"If-Match": ' "2" '})
    assert reply.status == 200


async def _race(api: Api, calls: list[Any]) -> list[Reply]:
    replies: list[Reply] = await asyncio.gather(*calls)
    return replies


@pytest.mark.parametrize("rounds", [10])
async def test_two_patches_with_the_same_if_match_one_wins(api: Api, rounds: int) -> None:
    await api.apply(named_checkout())
    # every round's weights differ from every earlier round's: a change equal to the last winner's would be a
    # no-op, which takes no revision and so conflicts with nothing
    for n in range(rounds):
        head = (await api.history())[0]["number"]
        weights = await _race(api, [
            api.call("PATCH", WEIGHTS, json_body={"v1": 100 - 2 * n - i, "v2": 2 * n + i}, headers=if_match(head))
            for i in (1, 2)
        ])
        assert sorted(r.status for r in weights) == [200, 409], [r.body for r in weights]
        won = next(r for r in weights if r.status == 200)
        split = [{"service": "checkout", "version": "v1", "weight": 50 + n},
                 {"service": "checkout", "version": "v2", "weight": 50 - n}]
        splits = await _race(api, [
            api.call("PATCH", SPLIT_PATH, json_body={"route": "main", "split": split[::order]},
                     headers=if_match(won.body["head"]))
            for order in (1, -1)
        ])
        assert sorted(r.status for r in splits) == [200, 409], [r.body for r in splits]
    assert len(await api.history()) == 1 + 2 * rounds


def _with_v3(weights: dict[str, int]) -> list[dict[str, Any]]:
    docs = checkout()
    service = docs[0]
    service["spec"]["versions"]["v3"] = {"endpoints": [{"address": "127.0.0.1", "port": 9003}]}
    service["spec"]["weights"] = weights
    return docs


async def test_a_weights_patch_racing_an_apply_never_reverts_what_the_apply_added(api: Api) -> None:
    """The lost update: a PATCH of weights that read the Service before an apply added v3, and wrote it
    back after, would silently remove v3. Whatever the order, the PATCH must apply to what is there."""
    for n in range(30):
        reset = await api.apply(checkout())
        assert reset.status == 200, reset.body
        applied, patched = await asyncio.gather(
            api.apply(_with_v3({"v1": 80, "v2": 10, "v3": 10})),
            api.call("PATCH", WEIGHTS, json_body={"v1": 50 + n % 10, "v2": 50 - n % 10}),
        )
        assert (applied.status, patched.status) == (200, 200), (applied.body, patched.body)
        service = (await api.get("/v1/documents/service/checkout")).body
        assert "v3" in service["spec"]["versions"], (n, service)
        # and the history agrees: every revision since the apply has v3
        since = [e["number"] for e in await api.history() if e["number"] >= applied.body["revision"]]
        for number in since:
            stored = (await api.get(f"/v1/revisions/{number}")).body["documents"]
            [svc] = [d for d in stored if d["kind"] == "Service"]
            assert "v3" in svc["spec"]["versions"], (n, number)
        # the other way round too: v3 removed by the apply stays removed
        removed, patched = await asyncio.gather(
            api.apply(checkout()), api.call("PATCH", WEIGHTS, json_body={"v1": 60, "v2": 40}),
        )
        assert (removed.status, patched.status) == (200, 200), (removed.body, patched.body)
        service = (await api.get("/v1/documents/service/checkout")).body
        assert "v3" not in service["spec"]["versions"], (n, service)
