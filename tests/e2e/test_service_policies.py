"""A Service's cohort and mirror, through a real Switchman and a real Envoy to two HTTP upstreams.

The cohort must hold exactly: every request that carries the header or the
cookie reaches v2 although v2's weight is 0, and no other request does.
The mirror sends v2 a copy of every request while every answer the client
gets comes from v1. Each upstream records what it received, so both sides
are counted: which version answered the client, and which upstream saw
which request (Envoy marks shadow requests with ``-shadow`` on the Host).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from switchman.client import SwitchmanClient
from switchman.lab.local import EnvoyProcess
from tests.e2e.helpers import Recorder, switchman_and_envoy

pytestmark = pytest.mark.envoy

NODE = "policies-envoy"
HOST = "shop.test"
REQUESTS = 50


@dataclass
class Lab:
    api: SwitchmanClient
    v1: Recorder
    v2: Recorder
    envoy: EnvoyProcess


def documents(v1: int, v2: int, **policies: Any) -> list[dict[str, Any]]:
    """Service ``checkout`` (v1 100, v2 0) with ``policies``, routes that send everything to it, a listener."""
    return [
        {
            "kind": "Service",
            "metadata": {"name": "checkout"},
            "spec": {
                "versions": {
                    "v1": {"endpoints": [{"address": "127.0.0.1", "port": v1}]},
                    "v2": {"endpoints": [{"address": "127.0.0.1", "port": v2}]},
                },
                "weights": {"v1": 100, "v2": 0},
                "connectTimeout": "500ms",
                **policies,
            },
        },
        {
            "kind": "Routes",
            "metadata": {"name": "ingress-routes"},
            "spec": {"virtualHosts": [
                {"name": "shop", "domains": ["*"],
                 "routes": [{"match": {"prefix": "/"}, "service": "checkout", "name": "main"}]},
            ]},
        },
        {"kind": "Listener", "metadata": {"name": "ingress"}, "spec": {"port": 0, "routes": "ingress-routes"}},
    ]


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    v1, v2 = Recorder("v1"), Recorder("v2")
    await v1.start()
    await v2.start()
    try:
        async with switchman_and_envoy(tmp_path, NODE) as (api, envoy):
            yield Lab(api, v1, v2, envoy)
    finally:
        await v1.stop()
        await v2.stop()


async def send(port: int, path: str, headers: dict[str, str] | None = None, count: int = REQUESTS) -> Counter[str]:
    """``count`` requests to ``path``-N, one at a time on one connection; the versions that answered."""
    answered: Counter[str] = Counter()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        for i in range(count):
            url = f"http://127.0.0.1:{port}{path}-{i}"
            async with session.get(url, headers={"Host": HOST, **(headers or {})}) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
                answered[resp.headers["x-upstream-version"]] += 1
    return answered


async def until(what: str, check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Wait until ``check()`` is true; a request that fails meanwhile (the listener still warming) is a no."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            if await check():
                return
        except (AssertionError, aiohttp.ClientError) as exc:
            last = f": {exc!r}"
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}{last}")


async def test_the_cohort_goes_to_its_version_and_nothing_else_does(lab: Lab) -> None:
    cohort = {
        "version": "v2",
        "match": [
            {"headers": [{"name": "x-canary", "exact": "1"}]},
            {"cookie": {"name": "canary", "value": "always"}},
        ],
    }
    await lab.api.apply(documents(lab.v1.port, lab.v2.port, cohort=cohort), message="checkout with a v2 cohort")
    port = await lab.envoy.wait_listener("ingress")

    async def cohort_in_place() -> bool:
        return (await send(port, "/warm", {"x-canary": "1"}, count=1)) == Counter(v2=1)

    await until("the cohort route", cohort_in_place)

    assert await send(port, "/header", {"x-canary": "1"}) == Counter(v2=REQUESTS)
    assert await send(port, "/cookie", {"Cookie": "a=b; canary=always; c=d"}) == Counter(v2=REQUESTS)
    assert await send(port, "/lone-cookie", {"Cookie": "canary=always"}) == Counter(v2=REQUESTS)
    # Near misses: another header value, another cookie value, a cookie whose name ends with the cohort's.
    assert await send(port, "/plain") == Counter(v1=REQUESTS)
    assert await send(port, "/near", {"x-canary": "0", "Cookie": "a=b; canary=never; xcanary=always"}) == Counter(
        v1=REQUESTS
    )

    # What each upstream received agrees with what answered: nothing leaked either way.
    for prefix in ("/header-", "/cookie-", "/lone-cookie-"):
        assert sum(lab.v2.paths(prefix, shadow=False).values()) == REQUESTS
        assert not lab.v1.paths(prefix, shadow=False)
    for prefix in ("/plain-", "/near-"):
        assert sum(lab.v1.paths(prefix, shadow=False).values()) == REQUESTS
        assert not lab.v2.paths(prefix, shadow=False)
    assert not [seen for seen in (*lab.v1.seen, *lab.v2.seen) if seen[0].endswith("-shadow")]


async def test_the_mirror_copies_every_request_to_its_version_and_the_client_sees_only_v1(lab: Lab) -> None:
    await lab.api.apply(
        documents(lab.v1.port, lab.v2.port, mirror={"version": "v2", "percent": 100}), message="mirror to v2"
    )
    port = await lab.envoy.wait_listener("ingress")

    async def mirrored() -> bool:
        await send(port, "/warm", count=1)
        return bool(lab.v2.paths("/warm-", shadow=True))

    await until("the first mirrored request", mirrored)

    assert await send(port, "/measured") == Counter(v1=REQUESTS)
    expected = Counter(f"/measured-{i}" for i in range(REQUESTS))

    async def all_copies_arrived() -> bool:
        return lab.v2.paths("/measured-", shadow=True) == expected

    # Shadow requests are fire-and-forget: the last copies may land after the client's answers.
    await until("every shadow copy at v2", all_copies_arrived, timeout=5.0)
    assert lab.v1.paths("/measured-", shadow=False) == expected
    assert not lab.v1.paths("/measured-", shadow=True)
    assert not lab.v2.paths("/", shadow=False)  # v2 never answered a client
    assert {host for host, path in lab.v2.seen if path.startswith("/measured-")} == {f"{HOST}-shadow"}
