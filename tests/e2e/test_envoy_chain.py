"""Real Envoys, bootstrapped with SotW ADS, delta ADS and per-type streams, proxy through Switchman's config."""

from __future__ import annotations

import pytest

from switchman.lab.local import EnvoyMode
from switchman.xds import SnapshotCache, XdsServer
from tests.e2e.helpers import chain, wait_for_version

pytestmark = pytest.mark.envoy


@pytest.mark.parametrize("mode", list(EnvoyMode))
async def test_envoy_proxies_through_served_chain_and_follows_update(
    mode: EnvoyMode, cache: SnapshotCache, xds: XdsServer, upstreams, envoys
) -> None:
    blue = await upstreams("checkout", "v1")
    green = await upstreams("checkout", "v2")
    ports = {"checkout-v1": blue.port, "checkout-v2": green.port}
    cache.set_snapshot("demo", chain(ports, "checkout-v1", mode))
    envoy = await envoys(f"envoy-{mode.value}", mode=mode)
    port = await envoy.wait_listener("ingress")
    await wait_for_version(port, "v1")

    cache.set_snapshot("demo", chain(ports, "checkout-v2", mode))
    await wait_for_version(port, "v2")
    statuses = {s.node_id: s for s in xds.statuses()}
    node = statuses[f"envoy-{mode.value}"]
    assert {t.type for t in node.types} >= {"lds", "rds", "cds", "eds"}
    assert all(t.nack_message is None for t in node.types)
