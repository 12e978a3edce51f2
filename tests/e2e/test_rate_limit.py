"""A route's token bucket, through a real Switchman and a real Envoy: requests beyond it are refused by the Envoy.

examples/rate-limits-and-breakers.yaml, pointed at one upstream: ``/search``
has a bucket of 5 that does not refill within the test, the rest of the
virtual host a bucket of 100. Of 8 searches, the client gets 5 answers from
the upstream and 3 refusals (429, with the example's headers) from Envoy,
which counts the same 3 in its ``http_local_rate_limit.rate_limited`` stat;
the upstream sees only the 5.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from multidict import CIMultiDict

from switchman.client import SwitchmanClient
from switchman.lab.local import EnvoyProcess, Upstream
from switchman.lab.local.upstream import VERSION_HEADER
from tests.e2e.helpers import switchman_and_envoy, until
from tests.functional.api.docs import example

pytestmark = pytest.mark.envoy

SEARCH_STATS = "rate_limit.catalog.search.http_local_rate_limit."


@dataclass
class Lab:
    api: SwitchmanClient
    upstream: Upstream
    envoy: EnvoyProcess


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    upstream = Upstream("catalog", "v1")
    await upstream.start()
    try:
        async with switchman_and_envoy(tmp_path, "limits-envoy") as (api, envoy):
            yield Lab(api, upstream, envoy)
    finally:
        await upstream.stop()


async def _get(session: aiohttp.ClientSession, port: int, path: str) -> tuple[int, CIMultiDict[str]]:
    async with session.get(f"http://127.0.0.1:{port}{path}") as resp:
        await resp.read()
        return resp.status, resp.headers.copy()


async def test_requests_beyond_the_bucket_are_refused_by_envoy(lab: Lab) -> None:
    docs = example("rate-limits-and-breakers.yaml")
    docs[0]["spec"]["versions"]["v1"]["endpoints"][0]["port"] = lab.upstream.port
    await lab.api.apply(docs, message="catalog with rate limits and circuit breakers")
    port = await lab.envoy.wait_listener("catalog-ingress")

    async with aiohttp.ClientSession() as session:

        async def serving() -> bool:  # warms up through the virtual host's bucket, not the search route's
            status, headers = await _get(session, port, "/warm")
            return status == 200 and headers.get(VERSION_HEADER) == "v1"

        await until(serving, 10, "the catalog routes in place")
        before = lab.upstream.requests
        answers = [await _get(session, port, f"/search?q={i}") for i in range(8)]
        others = Counter([(await _get(session, port, f"/item/{i}"))[0] for i in range(20)])

    assert [status for status, _ in answers] == [200] * 5 + [429] * 3
    for status, headers in answers:
        assert headers["x-ratelimit-limit"] == "5"
        assert (VERSION_HEADER in headers) == (status == 200)  # a refusal never reached the upstream
        assert (headers.get("x-limited-by") == "switchman") == (status == 429)
    assert [headers["x-ratelimit-remaining"] for _, headers in answers[:5]] == ["4", "3", "2", "1", "0"]
    assert others == Counter({200: 20})  # the virtual host's own bucket is another one
    assert lab.upstream.requests - before == 5 + 20

    stats = await lab.envoy.stats(SEARCH_STATS)
    assert stats[SEARCH_STATS + "rate_limited"] == 3, stats
    assert stats[SEARCH_STATS + "ok"] == 5, stats
