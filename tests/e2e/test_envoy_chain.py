"""Real Envoys, bootstrapped with SotW ADS, delta ADS and per-type streams, proxy through Switchman's config."""

from __future__ import annotations

import pytest

from switchman.lab.local import EnvoyMode
from switchman.testing.builders import load_assignment
from switchman.xds import SnapshotCache, XdsServer
from tests.e2e.helpers import Traffic, chain, wait_for_version

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


async def test_envoy_keeps_the_assignments_a_state_of_the_world_response_leaves_out(
    cache: SnapshotCache, xds: XdsServer, upstreams, envoys
) -> None:
    """After the full set, a SotW EDS response carries only what changed; Envoy keeps the rest."""
    v1, v2, v3 = [await upstreams("checkout", v) for v in ("v1", "v2", "v3")]
    split = [("checkout-a", 50), ("checkout-b", 50)]
    snapshot = chain({"checkout-a": v1.port, "checkout-b": v2.port}, split)
    cache.set_snapshot("demo", snapshot)
    envoy = await envoys("envoy-partial")
    port = await envoy.wait_listener("ingress")
    await wait_for_version(port, "v1")
    await wait_for_version(port, "v2")
    cache.set_snapshot("demo", snapshot.with_changes(upsert=[load_assignment("checkout-a", [("127.0.0.1", v3.port)])]))
    await wait_for_version(port, "v3")  # checkout-a moved...
    traffic = Traffic(port)
    await traffic.run(concurrency=2, limit=200, seconds=10)
    assert set(traffic.versions) == {"v2", "v3"} and traffic.failures == []  # ...and checkout-b still serves
    stats = await envoy.stats("cluster.checkout-b.membership_total")
    assert stats["cluster.checkout-b.membership_total"] == 1
