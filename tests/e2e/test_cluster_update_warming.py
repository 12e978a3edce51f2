"""An EDS cluster changed with its endpoints unchanged is active within a second on a real Envoy.

Envoy replaces a changed cluster by a new one that warms until it gets its
ClusterLoadAssignment again; traffic goes to the old cluster meanwhile.
Switchman sends the assignment once more after the CDS response (see
:mod:`switchman.xds.server.warming`); without it the new cluster would wait
for ``initial_fetch_timeout`` (15 s) and Envoy would log "initial fetch timed
out".
"""

from __future__ import annotations

import asyncio

import pytest

from switchman.lab.local import EnvoyMode, EnvoyProcess
from switchman.testing.builders import eds_cluster, grpc_source
from switchman.xds import SnapshotCache, XdsServer
from tests.e2e.helpers import Traffic, chain, until, wait_for_version

pytestmark = pytest.mark.envoy

ACTIVE_WITHIN = 1.5  # seconds (it takes a few milliseconds); a cluster left warming waits 15 s


async def active(envoy: EnvoyProcess, name: str) -> str:
    """The connect timeout of the active ``name`` cluster, as Envoy's config dump shows it ("" when none)."""
    dump = await envoy.config_dump("dynamic_active_clusters")
    found = [c["cluster"] for c in dump.get("configs", []) if c["cluster"]["name"] == name]
    return str(found[0].get("connect_timeout", "")) if found else ""


@pytest.mark.parametrize("mode", [EnvoyMode.ADS, EnvoyMode.DELTA_ADS, EnvoyMode.PER_TYPE])
async def test_a_changed_eds_cluster_is_active_at_once_and_traffic_flows(
    mode: EnvoyMode, cache: SnapshotCache, xds: XdsServer, upstreams, envoys
) -> None:
    blue = await upstreams("checkout", "v1")
    first = chain({"blue": blue.port}, "blue", mode=mode)
    cache.set_snapshot("demo", first)
    envoy = await envoys(f"rewarm-{mode.value}", mode=mode)
    port = await envoy.wait_listener("ingress")
    await wait_for_version(port, "v1")
    assert await active(envoy, "blue") == "1s"
    modified_before = (await envoy.stats("cluster_manager.cluster_modified")).get("cluster_manager.cluster_modified", 0)

    traffic = Traffic(port)
    runner = asyncio.create_task(traffic.run(concurrency=4, limit=20_000, seconds=20))
    await asyncio.sleep(0.3)
    source = grpc_source() if mode is EnvoyMode.PER_TYPE else None
    # The same endpoints; only the cluster changes.
    cache.set_snapshot("demo", first.with_changes(upsert=[eds_cluster("blue", connect_timeout=2.5, source=source)]))
    before_change = traffic.total

    async def settled() -> bool:
        # A cluster CDS replaced counts in cluster_modified (cluster_updated counts endpoint updates).
        stats = await envoy.stats("cluster_manager.")
        return (
            stats.get("cluster_manager.warming_clusters", -1) == 0
            and stats.get("cluster_manager.cluster_modified", 0) > modified_before
            and await active(envoy, "blue") == "2.500s"
        )

    await until(settled, ACTIVE_WITHIN, "the changed cluster active, none warming")
    through_new = traffic.total
    await asyncio.sleep(0.3)
    traffic.stop()
    await runner

    assert traffic.failures == [], traffic.failures[:5]
    assert traffic.total > through_new > before_change  # it flowed while the cluster changed, and after
    assert "initial fetch timed out" not in envoy.log_tail(10_000)
