"""/v1/events tells a listener of each new revision at once and of Envoys' status changes; /v1/whoami says what a
token may do; the console's open paths open nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp

from switchman.api import Tokens
from tests.functional.ads import AdsClient
from tests.functional.api.conftest import Api, Start

SERVICE = {"kind": "Service", "metadata": {"name": "checkout"},
           "spec": {"versions": {"v1": {"endpoints": [{"address": "127.0.0.1", "port": 9001}]}}}}


async def _next_event(lines: aiohttp.StreamReader, kind: str) -> str:
    """The data of the next event of ``kind`` on the stream."""
    event = ""
    while True:
        line = (await asyncio.wait_for(lines.readline(), 5)).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == kind:
            return line.removeprefix("data: ")


async def test_a_listener_hears_of_a_new_revision_and_of_an_envoy_that_connects(
    api: Api, ads: Callable[[str], AdsClient]
) -> None:
    async with api.session.get(api.base + "/v1/events") as stream:
        assert stream.status == 200 and stream.content_type == "text/event-stream"
        assert await _next_event(stream.content, "hello") == '{"revision": null}'
        assert (await api.apply([SERVICE])).status == 200
        assert await _next_event(stream.content, "revision") == "1"
        client = ads("node-1")
        await client.request("type.googleapis.com/envoy.config.cluster.v3.Cluster")
        assert await _next_event(stream.content, "status") == ""


async def test_whoami_names_the_role_of_the_token_presented(start: Start) -> None:
    api = await start(Tokens(admin={"ops": "admin-secret"}, read={"viewer": "read-secret"}))
    expected = {
        None: {"tokens": True, "name": None, "role": None},
        "wrong": {"tokens": True, "name": None, "role": None},
        "admin-secret": {"tokens": True, "name": "ops", "role": "admin"},
        "read-secret": {"tokens": True, "name": "viewer", "role": "read"},
    }
    for token, answer in expected.items():
        reply = await api.as_token(token).get("/v1/whoami")
        assert (reply.status, reply.body) == (200, answer)
    assert (await api.get("/v1/events")).status == 401


async def test_whoami_without_tokens_says_everyone_may_change(api: Api) -> None:
    assert (await api.get("/v1/whoami")).body == {"tokens": False, "name": None, "role": "admin"}


async def test_the_console_is_served_and_its_open_paths_open_nothing_else(start: Start) -> None:
    api = await start(Tokens(admin={"ops": "admin-secret"}))
    page = await api.get("/")
    assert page.status == 200 and page.content_type == "text/html"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert (await api.get("/console/console.js")).content_type == "text/javascript"
    assert (await api.get("/console/nothing.js")).status == 404
    for sneaky in ("/console/../v1/documents", "/console/%2e%2e/v1/documents", "/console/..%2fv1/documents"):
        reply = await api.get(sneaky)
        assert reply.status in (401, 404), (sneaky, reply)
