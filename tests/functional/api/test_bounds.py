"""Bad input costs what its size allows: YAML alias bombs are refused, bodies over the limit are 413."""

from __future__ import annotations

import json
import time
from typing import Any

import yaml

from tests.functional.api.conftest import Api, Start
from tests.functional.api.docs import checkout
from tests.unit.model.test_loader import bomb

LIMIT = 64 * 1024


async def test_a_yaml_alias_bomb_is_refused_and_stores_nothing(api: Api) -> None:
    text = bomb(6)  # 420 bytes that stand for a million strings
    assert len(text) < 450
    started = time.perf_counter()
    reply = await api.call("POST", "/v1/apply", data=text, content_type="application/yaml")
    took = time.perf_counter() - started
    assert (reply.status, reply.error["code"]) == (400, "bad_request"), reply.body
    assert reply.error["message"].startswith("the body is not YAML: the alias *a2 brings aliases to")
    assert "(line 6, column" in reply.error["message"]
    assert took < 1.0, took  # the refusal itself takes well under a millisecond (tests/unit/model/test_loader.py)
    assert await api.history() == []


async def test_a_large_yaml_body_is_applied(api: Api) -> None:
    docs: list[dict[str, Any]] = [
        {"kind": "Cluster", "metadata": {"name": f"c{i}"}, "spec": {"endpoints": [{"address": "127.0.0.1", "port": i}]}}
        for i in range(1, 400)
    ]
    text = yaml.safe_dump_all(docs)
    assert len(text) > 32 * 1024  # parsed on a worker thread (handlers.INLINE_YAML_BYTES)
    reply = await api.call("POST", "/v1/apply", data=text, content_type="application/yaml")
    assert (reply.status, len(reply.body["created"])) == (200, 399), reply.body


async def test_json_nested_too_deeply_is_400(api: Api) -> None:
    body = '{"documents": ' + "[" * 100_000 + "]" * 100_000 + "}"
    reply = await api.call("POST", "/v1/apply", data=body, content_type="application/json")
    assert (reply.status, reply.error["code"]) == (400, "bad_request"), reply.body


async def test_a_body_over_the_limit_is_413_naming_the_limit(start: Start) -> None:
    api = await start(max_body_bytes=LIMIT)
    padding = "x" * LIMIT
    docs = checkout()
    docs[0]["metadata"]["annotations"] = {"pad": padding}
    reply = await api.call("POST", "/v1/apply", data=json.dumps({"documents": docs}), content_type="application/json")
    assert (reply.status, reply.error["code"]) == (413, "too_large"), reply.body
    assert f"the body is over the limit of {LIMIT} bytes" in reply.error["message"]
    assert "--max-body-bytes" in reply.error["message"]
    for method, path in (("PATCH", "/v1/services/checkout/weights"), ("POST", "/v1/rollback")):
        reply = await api.call(method, path, data=json.dumps({"pad": padding}), content_type="application/json")
        assert (reply.status, reply.error["code"]) == (413, "too_large"), path
    reply = await api.call("POST", "/v1/apply", data="#" + padding, content_type="application/yaml")
    assert reply.status == 413
    assert await api.history() == []
    assert (await api.apply(checkout())).status == 200  # under the limit: as usual
