"""Real Envoys, bootstrapped with SotW ADS, delta ADS and per-type streams, proxy through Switchman's config."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from switchman.lab.local import EnvoyMode
from switchman.testing.builders import eds_cluster, grpc_source, http_listener, load_assignment, route_config
from switchman.xds import Snapshot, SnapshotCache, XdsServer

pytestmark = pytest.mark.envoy


def chain(cluster_ports: dict[str, int], route_to: str | list[tuple[str, int]], mode: EnvoyMode) -> Snapshot:
    source = grpc_source() if mode is EnvoyMode.PER_TYPE else None
    items: list[object] = [
        http_listener("ingress", "ingress-routes", source=source),
        route_config("ingress-routes", route_to),
    ]
    for name, port in cluster_ports.items():
        items += [eds_cluster(name, source=source), load_assignment(name, [("127.0.0.1", port)])]
    return Snapshot.build(items)  # type: ignore[arg-type]


async def get_version(port: int) -> str:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/") as resp:
        assert resp.status == 200, await resp.text()
        return resp.headers["x-upstream-version"]


async def wait_for_version(port: int, version: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            last = await get_version(port)
            if last == version:
                return
        except (AssertionError, aiohttp.ClientError) as exc:
            last = repr(exc)
        await asyncio.sleep(0.05)
    raise AssertionError(f"still {last!r}, wanted {version!r}")


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
