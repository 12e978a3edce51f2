"""The load generator's three kinds of client all go through a real Envoy, each as it says."""

from __future__ import annotations

import pytest

from switchman.lab.local.load import ClientKind, run_load
from switchman.xds import SnapshotCache, XdsServer
from tests.e2e.helpers import chain, wait_for_version

pytestmark = pytest.mark.envoy


async def test_each_client_kind_reaches_the_upstream_as_it_says(
    cache: SnapshotCache, xds: XdsServer, upstreams, envoys
) -> None:
    blue = await upstreams("checkout", "v1")
    cache.set_snapshot("demo", chain({"checkout-v1": blue.port}, "checkout-v1"))
    envoy = await envoys("load-clients")
    port = await envoy.wait_listener("ingress")
    await wait_for_version(port, "v1")
    before = await envoy.stats("http.ingress.downstream_rq_http")

    result = await run_load([f"http://127.0.0.1:{port}/"], rate=300, count=90, kinds=tuple(ClientKind))

    assert result.failures == []
    by_kind = {kind.value: [s for s in result.samples if s.client == kind.value] for kind in ClientKind}
    assert {k: len(v) for k, v in by_kind.items()} == {k.value: 30 for k in ClientKind}
    assert all(s.version == "v1" for s in result.samples)
    after = await envoy.stats("http.ingress.downstream_rq_http")

    def grew(stat: str) -> int:
        return after[stat] - before.get(stat, 0)

    assert grew("http.ingress.downstream_rq_http2_total") == 30
    assert grew("http.ingress.downstream_rq_http1_total") == 60
    cx = await envoy.stats("http.ingress.downstream_cx_http")
    # At least 30 connections for the new-connection client; HTTP/2 multiplexes over few.
    assert cx["http.ingress.downstream_cx_http1_total"] >= 30
    assert 1 <= cx["http.ingress.downstream_cx_http2_total"] <= 5
