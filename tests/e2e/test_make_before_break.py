"""Moving a route to a brand-new cluster fails no request, and Envoy applies updates in make-before-break order."""

from __future__ import annotations

import asyncio
import re

import pytest

from switchman.lab.local import EnvoyMode
from switchman.xds import SnapshotCache, XdsServer
from switchman.xds import resources as rt
from tests.e2e.helpers import Traffic, chain, wait_for_version

pytestmark = pytest.mark.envoy

_RECEIVED = re.compile(
    r"Received (?:gRPC message|DeltaDiscoveryResponse) for type\.googleapis\.com/(\S+) at version (\S+)"
)
_ACCEPTED = re.compile(r"config for type\.googleapis\.com/(\S+) accepted with")


def accepted(log: str) -> list[tuple[str, str]]:
    """``(type, version)`` in the order Envoy's main thread applied them (its own debug log).

    State-of-the-world and delta log differently; both log the version on
    receipt and then ``... accepted`` once applied.
    """
    received: dict[str, str] = {}
    order = []
    for line in log.splitlines():
        if m := _RECEIVED.search(line):
            received[m.group(1)] = m.group(2)
        elif m := _ACCEPTED.search(line):
            order.append((m.group(1).rsplit(".", 1)[-1], received.get(m.group(1), "")))
    return order


@pytest.mark.parametrize("mode", [EnvoyMode.ADS, EnvoyMode.DELTA_ADS])
async def test_route_to_new_cluster_under_load_fails_nothing(
    mode: EnvoyMode, cache: SnapshotCache, xds: XdsServer, upstreams, envoys
) -> None:
    blue, green = await upstreams("checkout", "v1"), await upstreams("checkout", "v2")
    cache.set_snapshot("demo", chain({"blue": blue.port}, "blue"))
    envoy = await envoys(f"mbb-{mode.value}", mode=mode, log_level="info", component_log_level="config:debug")
    port = await envoy.wait_listener("ingress")
    await wait_for_version(port, "v1")

    traffic = Traffic(port)
    runner = asyncio.create_task(traffic.run(concurrency=4, limit=5000, seconds=20))
    await asyncio.sleep(0.3)
    new = chain({"green": green.port}, "green")  # a brand-new cluster, the old one gone
    cache.set_snapshot("demo", new)
    await wait_for_version(port, "v2")
    await asyncio.sleep(0.5)  # let the old cluster's removal land under traffic too
    traffic.stop()
    await runner

    assert traffic.failures == [], traffic.failures[:5]
    assert traffic.versions["v1"] > 0 and traffic.versions["v2"] > 0

    new_routes = ("RouteConfiguration", new.version(rt.ROUTE))
    final_clusters = ("Cluster", new.version(rt.CLUSTER))
    order: list[tuple[str, str]] = []
    for _ in range(100):  # Envoy flushes its log every 50 ms
        order = accepted(envoy.log_tail(100_000))
        if final_clusters in order:
            break
        await asyncio.sleep(0.05)
    # The new cluster, kept alongside the old one ("+held")...
    held_at = order.index(("Cluster", new.version(rt.CLUSTER) + "+held"))
    # ...then its endpoints, then the routes that use it...
    endpoints_at = next(i for i, (t, _) in enumerate(order) if t == "ClusterLoadAssignment" and i > held_at)
    routes_at = order.index(new_routes)
    # ...and only then the cluster set without the old cluster.
    final_at = order.index(final_clusters)
    assert held_at < endpoints_at < routes_at < final_at, order[held_at - 1 :]
    clusters = await envoy.admin("/clusters")
    assert "green::" in clusters and "blue::" not in clusters
