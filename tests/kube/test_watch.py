"""One namespace's watch against the real API server: it resumes from its resourceVersion, listing once."""

from __future__ import annotations

import asyncio

from switchman.kubernetes import KubernetesSettings
from switchman.kubernetes.api import connect
from switchman.kubernetes.watch import SliceWatch
from switchman.testing.k8s_local import Cluster
from switchman.testing.wait import until


async def test_watches_the_server_ends_resume_without_listing_again(cluster: Cluster) -> None:
    # Watches of one second: the API server ends each, and the watch opens again from where it was.
    api = await connect(KubernetesSettings(cluster.kubeconfig), watch_seconds=1)
    reports: list[frozenset[str]] = []
    watch = SliceWatch(api, cluster.namespace, lambda namespace, services: reports.append(services))
    watch.start()
    try:
        await until(lambda: _synced(watch), 30, "the first list")
        listed_at = watch.resource_version
        await cluster.service("pinned", None)
        for n in range(4):  # a change in each of several watches
            await cluster.write_slice("pinned-1", "pinned", [{"addresses": [f"10.244.200.{n + 1}"], "conditions": {}}])

            async def seen(n: int = n) -> bool:
                found = watch.slices.get("pinned-1")
                return found is not None and found.endpoints[0].address == f"10.244.200.{n + 1}"

            await until(seen, 30, f"slice update {n + 1}")
            await asyncio.sleep(1.2)  # the API server ends this watch meanwhile
        health = watch.health()
        assert (health.lists, health.stale_since) == (1, None)
        assert int(health.resource_version) > int(listed_at)
        assert frozenset({"pinned"}) in reports
    finally:
        await watch.stop()
        await api.close()


async def _synced(watch: SliceWatch) -> bool:
    return watch.synced.is_set()
