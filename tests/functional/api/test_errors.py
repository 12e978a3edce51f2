"""Every error is JSON {"error": {"code", "message", "path"?}} with a stable code and the right status."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from switchman.store import SqliteStore
from switchman.store.base import Document, Revision
from tests.functional.api.conftest import Api, Start
from tests.functional.api.docs import checkout


async def _codes(api: Api) -> set[str]:
    schema = (await api.get("/v1/openapi.json")).body["paths"]["/v1/apply"]["post"]["responses"]["422"]
    codes: list[str] = schema["content"]["application/json"]["schema"]["properties"]["error"]["properties"]["code"][
        "enum"
    ]
    return set(codes)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("{not json", "application/json"), ('["documents"]', "application/json"),
     ('{"documents": {}}', "application/json"), ("kind: [unclosed", "application/yaml"), ("", "application/json")],
    ids=["not-json", "a-list", "documents-not-a-list", "not-yaml", "empty"],
)
async def test_a_malformed_apply_body_is_400(api: Api, body: str, content_type: str) -> None:
    reply = await api.call("POST", "/v1/apply", data=body, content_type=content_type)
    assert reply.status == 400
    assert reply.content_type == "application/json"
    assert reply.error["code"] == "bad_request"
    assert reply.error["message"]
    assert "path" not in reply.error


async def test_an_invalid_document_is_422_with_its_path(api: Api) -> None:
    docs = checkout()
    docs[1]["spec"]["virtualHosts"][0]["routes"][0]["match"] = {"prefix": "/", "path": "/x"}
    reply = await api.apply(docs)
    assert reply.status == 422
    assert reply.error == {
        "code": "invalid_config",
        "message": "routes/ingress-routes: spec.virtualHosts[0].routes[0].match: "
        "needs exactly one of prefix, path, regex (found prefix, path)",
        "path": "routes/ingress-routes: spec.virtualHosts[0].routes[0].match",
    }


async def test_a_document_that_is_not_a_mapping_is_422(api: Api) -> None:
    reply = await api.apply(["kind: Cluster"])
    assert (reply.status, reply.error["path"]) == (422, "request[0]")


async def test_an_unknown_path_is_a_json_404(api: Api) -> None:
    reply = await api.get("/v1/nope")
    assert (reply.status, reply.content_type, reply.error["code"]) == (404, "application/json", "not_found")


async def test_a_wrong_method_is_a_json_error(api: Api) -> None:
    reply = await api.call("PUT", "/v1/apply", json_body={})
    assert (reply.status, reply.content_type) == (405, "application/json")
    assert reply.error["code"] in await _codes(api)


class RacingStore(SqliteStore):
    """A store where another replica commits just before our next commit does (once, when armed)."""

    armed = False

    async def commit(
        self, documents: Sequence[Document], *, author: str, message: str, expected_head: int | None,
        rollback_of: int | None = None, on_behalf_of: str | None = None,
    ) -> Revision:
        if self.armed:
            self.armed = False
            await super().commit(documents, author="other-replica", message="raced", expected_head=expected_head)
        return await super().commit(
            documents, author=author, message=message, expected_head=expected_head, rollback_of=rollback_of,
            on_behalf_of=on_behalf_of,
        )


async def test_a_commit_that_loses_a_race_with_an_expected_revision_is_409(start: Start, tmp_path: Path) -> None:
    store = RacingStore(str(tmp_path / "race.db"))
    api = await start(store=store)
    await api.apply(checkout())
    store.armed = True
    docs = checkout()
    docs[0]["spec"]["weights"] = {"v1": 50, "v2": 50}
    reply = await api.call("POST", "/v1/apply", json_body={"documents": docs}, headers={"If-Match": '"1"'})
    assert reply.status == 409
    assert reply.error["code"] == "conflict"
    assert [(e["number"], e["author"]) for e in await api.history()] == [(2, "other-replica"), (1, "anonymous")]


async def test_a_commit_that_loses_a_race_without_one_is_made_on_the_new_head(start: Start, tmp_path: Path) -> None:
    store = RacingStore(str(tmp_path / "race.db"))
    api = await start(store=store)
    await api.apply(checkout())
    store.armed = True
    docs = checkout()
    docs[0]["spec"]["weights"] = {"v1": 50, "v2": 50}
    reply = await api.apply(docs)
    # the other replica committed these very documents first: on its head, this apply changes nothing more
    assert reply.status == 200 and reply.body["revision"] is None and reply.body["head"] == 2, reply.body
    assert [(e["number"], e["author"]) for e in await api.history()] == [(2, "other-replica"), (1, "anonymous")]


async def test_every_error_code_seen_is_documented(api: Api) -> None:
    seen = {
        (await api.call("POST", "/v1/apply", data="{", content_type="application/json")).error["code"],
        (await api.get("/v1/documents/cluster/nope")).error["code"],
        (await api.apply([{"kind": "Nope"}])).error["code"],
    }
    assert seen == {"bad_request", "not_found", "invalid_config"}
    assert seen <= await _codes(api)


_ACCEPTED_BY_THE_MODEL: dict[str, tuple[str, str]] = {
    # A YAML date where anything goes (apiVersion is read and ignored) cannot be stored as JSON.
    "yaml-date": ("application/yaml", "kind: Cluster\napiVersion: 2024-01-01\nmetadata: {name: c}\n"
                                      "spec: {endpoints: [{address: 127.0.0.1, port: 1}]}\n"),
    # JSON's NaN (Python's json module reads it) in a string field that the model stringifies.
    "json-nan": ("application/json", '{"documents": [{"kind": "Cluster", "metadata": {"name": "c"}, "apiVersion": NaN,'
                                     ' "spec": {"endpoints": [{"address": "127.0.0.1", "port": 1}]}}]}'),
    # A fault percent of NaN: translate raises ValueError.
    "nan-percent": ("application/json", '{"documents": [{"kind": "Routes", "metadata": {"name": "r"}, "spec": '
                                        '{"virtualHosts": [{"name": "h", "domains": ["*"], "routes": [{"match": '
                                        '{"prefix": "/"}, "directResponse": {"status": 200}, "fault": {"abort": '
                                        '{"status": 503, "percent": NaN}}}]}]}}]}'),
}


@pytest.mark.parametrize("case", list(_ACCEPTED_BY_THE_MODEL), ids=list(_ACCEPTED_BY_THE_MODEL))
async def test_values_that_are_not_plain_json_are_422(api: Api, case: str) -> None:
    content_type, body = _ACCEPTED_BY_THE_MODEL[case]
    reply = await api.call("POST", "/v1/apply", data=body, content_type=content_type)
    assert reply.status == 422, reply.body
    assert await api.history() == []


async def test_a_split_over_many_services_is_not_a_500(api: Api) -> None:
    totals = [(50, 47), (50, 39), (50, 33), (50, 29), (50, 23)]
    docs: list[dict[str, Any]] = [
        {"kind": "Service", "metadata": {"name": f"s{i}"}, "spec": {
            "versions": {"v1": {"endpoints": [{"address": "127.0.0.1", "port": 9001}]},
                         "v2": {"endpoints": [{"address": "127.0.0.1", "port": 9002}]}},
            "weights": {"v1": a, "v2": b}}}
        for i, (a, b) in enumerate(totals)
    ]
    split = [{"service": f"s{i}", "weight": 100 - i} for i in range(len(totals))]
    docs.append({"kind": "Routes", "metadata": {"name": "r"}, "spec": {"virtualHosts": [
        {"name": "h", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "split": split}]}]}})
    reply = await api.apply(docs)
    assert reply.status < 500, reply.body
