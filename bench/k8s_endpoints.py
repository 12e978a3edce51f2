"""Kubernetes endpoint discovery: a pod deleted or made unready -> Envoy stops sending to it.

Runs against the k8s-local cluster (level 2: KWOK pods, the real EndpointSlice controller) that
``SWITCHMAN_TEST_KUBECONFIG`` names, with Switchman in this process (``serve --kubernetes``) and a real
Envoy fed by it. A Deployment of ``--pods`` pods backs one Service version. Each event deletes a pod or
makes it unready (its Ready condition False, as a failing readiness probe would), alternately, and
measures three moments:

- the API change (the delete or status patch answered);
- the EndpointSlice update (this script's own watch sees the pod's endpoint not ready, or gone):
  Kubernetes' own delay, reported apart;
- Envoy's EDS update (its admin ``/clusters`` no longer lists the IP as healthy: gone or draining, or
  its ``update_success`` counter moved: KWOK may hand the IP to the replacement pod at once), polled every
  5 ms;
- with ``--envoys N``, also the moment **every** Envoy has ACKed the EDS update that took the pod out (the
  xDS status in this process, read every 2 ms: Envoy ACKs a ClusterLoadAssignment once it has applied it;
  with the cluster quiet before each change, the first EDS version after it is the one without the pod).

The slice moment is this script's own watch; Switchman's may see the same update a little earlier, so
"then Envoy" can be a fraction of a millisecond below zero.

The IPs are fake (KWOK), so no traffic is sent: Envoy's membership is what decides where it would.

    SWITCHMAN_TEST_KUBECONFIG=$(../shared/k8s-local/up 2) python bench/k8s_endpoints.py --events 20
    python bench/k8s_endpoints.py --events 20 --envoys 50     # every one of 50 Envoys, per event
    python bench/k8s_endpoints.py --scale 1000 --envoys 10   # also: 0 -> 1,000 pods, last slice -> Envoys ACKed

Prints the figures and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from switchman.app import ServeSettings, Switchman
from switchman.kubernetes import KubernetesSettings
from switchman.kubernetes.api import connect
from switchman.kubernetes.slices import read_slice
from switchman.lab.local import EnvoyProcess, bootstrap
from switchman.testing.k8s_local import ENV, Cluster, open_cluster
from switchman.testing.wait import until
from switchman.xds import resources as rt

CLUSTER = "web-v1"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def healthy(envoy: EnvoyProcess) -> set[str]:
    """The addresses Envoy would send to: members of the cluster without a failing EDS health status."""
    data = await envoy.admin_json("/clusters?format=json")
    for status in data.get("cluster_statuses", []):
        if status.get("name") == CLUSTER:
            return {
                h["address"]["socket_address"]["address"] for h in status.get("host_statuses", [])
                if h.get("health_status", {}).get("eds_health_status", "HEALTHY") == "HEALTHY"
            }
    return set()


class SliceClock:
    """This script's own watch of the namespace's EndpointSlices: when each IP was last seen ready or not."""

    def __init__(self) -> None:
        self.not_ready_at: dict[str, float] = {}
        self.ready: set[str] = set()
        self.last_update = 0.0

    async def run(self, cluster: Cluster) -> None:
        api = await connect(KubernetesSettings(cluster.kubeconfig))
        try:
            listed = await api.list_slices(cluster.namespace)
            slices = {s.name: s for s in map(read_slice, listed.items)}
            self._seen(slices)
            async for event in api.watch_slices(cluster.namespace, listed.resource_version):
                if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    found = read_slice(event["object"])
                    slices.pop(found.name, None)
                    if event["type"] != "DELETED":
                        slices[found.name] = found
                    self._seen(slices)
        finally:
            await api.close()

    def _seen(self, slices: dict[str, Any]) -> None:
        now = self.last_update = time.monotonic()
        ready = {e.address for s in slices.values() for e in s.endpoints if e.ready and not e.terminating}
        for address in self.ready - ready:
            self.not_ready_at[address] = now
        self.ready = ready


async def eds_updates(envoy: EnvoyProcess) -> int:
    """How many EDS updates of the cluster Envoy applied (``cluster.web-v1.update_success``)."""
    data = await envoy.admin_json(f"/stats?format=json&filter=^cluster\\.{CLUSTER}\\.update_success$")
    return sum(int(s.get("value", 0)) for s in data.get("stats", []) if "value" in s)


async def _left(envoy: EnvoyProcess, address: str, updates: int) -> bool:
    """Envoy no longer holds ``address`` as healthy, or applied an EDS update since (KWOK may give the IP of a
    deleted pod to its replacement at once, so that the address is back before a poll sees it gone; with the
    cluster quiet before the change, the first update after it is the one that took the pod out)."""
    return address not in await healthy(envoy) or await eds_updates(envoy) > updates


async def _slice_updated(clock: SliceClock, address: str) -> bool:
    return address in clock.not_ready_at


async def _none_left(cluster: Cluster, envoy: EnvoyProcess) -> bool:
    return not await cluster.pods("app=web") and not await healthy(envoy)


def _eds_acked(switchman: Switchman) -> dict[str, str]:
    """Each node's ACKed EDS version."""
    return {
        node.node_id: next((t.acked_version for t in node.types if t.type == rt.short_name(rt.ENDPOINT)), "")
        for node in switchman.xds.statuses()
    }


async def _all_acked_since(switchman: Switchman, before: dict[str, str], envoys: int) -> bool:
    now = _eds_acked(switchman)
    return len(now) == envoys and all(now[n] != before.get(n) for n in now)


async def events(
    cluster: Cluster, switchman: Switchman, envoys: list[EnvoyProcess], count: int, pods: int
) -> dict[str, list[float]]:
    clock = SliceClock()
    watcher = asyncio.create_task(clock.run(cluster))
    envoy = envoys[0]
    figures: dict[str, list[float]] = {"total": [], "kubernetes": [], "switchman_envoy": []}
    if len(envoys) > 1:
        figures["all_envoys"] = []
    try:
        for i in range(count):
            async def settled() -> dict[str, str] | None:
                running = await cluster.pods("app=web")
                held = await healthy(envoy)
                ready = set(running.values())
                full = len(running) == pods and held == ready and clock.ready == ready
                return running if full else None

            running = await until(settled, 120, f"{pods} pods ready in Envoy", interval=0.1)
            name = sorted(running)[i % len(running)]
            address = running[name]
            kind = "delete" if i % 2 == 0 else "unready"
            updates = await eds_updates(envoy)
            before = _eds_acked(switchman)
            start = time.monotonic()
            if kind == "delete":
                await cluster.delete_pod(name)
            else:
                await cluster.make_unready(name)

            if len(envoys) > 1:
                await until(functools.partial(_all_acked_since, switchman, before, len(envoys)), 60,
                            f"{len(envoys)} Envoys ACKed the update", interval=0.002)
                figures["all_envoys"].append(time.monotonic() - start)
            await until(functools.partial(_left, envoy, address, updates), 60, f"Envoy stops sending to {address}",
                        interval=0.005)
            at_envoy = time.monotonic()
            await until(functools.partial(_slice_updated, clock, address), 30, "the slice update", interval=0.005)
            at_slice = clock.not_ready_at.pop(address)
            figures["total"].append(at_envoy - start)
            figures["kubernetes"].append(at_slice - start)
            figures["switchman_envoy"].append(at_envoy - at_slice)
            every = ""
            if len(envoys) > 1:
                every = f"; all {len(envoys)} Envoys ACKed {1000 * figures['all_envoys'][-1]:7.1f} ms"
            print(f"  {i + 1:3d} {kind:8s} {address:15s} total {1000 * (at_envoy - start):7.1f} ms  "
                  f"(slice {1000 * (at_slice - start):6.1f} ms, then Envoy {1000 * (at_envoy - at_slice):6.1f} ms)"
                  f"{every}")
            if kind == "unready":
                await cluster.delete_pod(name)  # the Deployment replaces it with a ready one
    finally:
        watcher.cancel()
    return figures


def _acked_everywhere(switchman: Switchman, envoys: int, pods: int) -> bool:
    """Discovery holds ``pods`` ready endpoints, and every Envoy has ACKed what it is served (the xDS status)."""
    found = [switchman.controller.discovered.endpoints(s) for s in switchman.controller.discovery_sources()]
    if sum(1 for known in found if known for d in known if not d.endpoint.health) < pods:
        return False
    nodes = switchman.xds.statuses()
    return len(nodes) == envoys and all(t.synced for node in nodes for t in node.types)


async def scale_up(cluster: Cluster, switchman: Switchman, envoys: list[EnvoyProcess], pods: int) -> dict[str, Any]:
    """0 -> ``pods`` pods: time from the last EndpointSlice update to every Envoy having ACKed them all (the xDS
    status, read in this process every 2 ms); then each Envoy's /clusters is checked (not timed)."""
    clock = SliceClock()
    watcher = asyncio.create_task(clock.run(cluster))
    start = time.monotonic()
    await cluster.scale("web-v1", pods)
    try:
        async def acked() -> bool:
            return len(clock.ready) >= pods and _acked_everywhere(switchman, len(envoys), pods)

        await until(acked, 900, f"{len(envoys)} Envoys ACKed {pods} endpoints", interval=0.002)
        done = time.monotonic()
        last_update = clock.last_update
    finally:
        watcher.cancel()
    for envoy in envoys:
        held = len(await healthy(envoy))
        if held < pods:
            raise SystemExit(f"{envoy.config['node']['id']} holds {held} endpoints, not {pods}")
    return {
        "pods": pods, "envoys": len(envoys), "scale_to_all_envoys_s": round(done - start, 2),
        "last_slice_update_to_all_envoys_acked_ms": round(1000 * (done - last_update), 1),
        "discovery_updates": switchman.discovery.health().updates if switchman.discovery else None,
    }


def report(figures: dict[str, list[float]], result: dict[str, Any]) -> None:
    for key, values in figures.items():
        result[key] = {"p50_ms": round(1000 * percentile(values, 50), 1),
                       "p99_ms": round(1000 * percentile(values, 99), 1), "n": len(values)}
    print(f"API change -> Envoy stops sending: p50 {result['total']['p50_ms']} ms, p99 {result['total']['p99_ms']} ms")
    print(f"  of which Kubernetes (API change -> EndpointSlice update): p50 {result['kubernetes']['p50_ms']} ms, "
          f"p99 {result['kubernetes']['p99_ms']} ms")
    print(f"  of which Switchman + Envoy (slice update -> Envoy's EDS update): p50 "
          f"{result['switchman_envoy']['p50_ms']} ms, p99 {result['switchman_envoy']['p99_ms']} ms")
    if "all_envoys" in result:
        print(f"API change -> every Envoy ACKed the update without the pod: p50 {result['all_envoys']['p50_ms']} ms, "
              f"p99 {result['all_envoys']['p99_ms']} ms")


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def main(args: argparse.Namespace) -> int:
    kubeconfig = args.kubeconfig or os.environ.get(ENV, "")
    if not kubeconfig:
        print(f"set {ENV} (or --kubeconfig) to the admin kubeconfig that ../shared/k8s-local/up 2 prints",
              file=sys.stderr)
        return 2
    result: dict[str, Any] = {"machine": f"{platform.machine()} {os.cpu_count()} cpus", "pods": args.pods}
    with tempfile.TemporaryDirectory() as tmp:
        async for cluster in open_cluster(kubeconfig):
            await cluster.service("web-v1", {"app": "web", "version": "v1"})
            await cluster.deployment("web-v1", {"app": "web", "version": "v1"}, replicas=args.pods)
            app = Switchman(ServeSettings(
                xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=str(Path(tmp) / "s.db"),
                kubernetes=KubernetesSettings(kubeconfig),
            ))
            await app.start()
            envoys: list[EnvoyProcess] = []
            try:
                for n in range(max(1, args.envoys)):
                    envoy = EnvoyProcess(bootstrap(f"envoy-{n}", app.xds_port, cluster="bench"))
                    await envoy.start()
                    envoys.append(envoy)
                await app.controller.apply([{
                    "kind": "Service", "metadata": {"name": "web"},
                    "spec": {"versions": {"v1": {"kubernetes": {
                        "namespace": cluster.namespace, "service": "web-v1", "port": "http"}}}},
                }], author="bench")
                if args.events:
                    print(f"{args.events} events (delete and unready, alternately), {args.pods} pods, "
                          f"{len(envoys)} Envoys (admin polled: the first):")
                    figures = await events(cluster, app, envoys, args.events, args.pods)
                    report(figures, result)
                result["revisions"] = len(await app.controller.history())
                if args.scale:
                    await cluster.scale("web-v1", 0)
                    await until(functools.partial(_none_left, cluster, envoys[0]), 300, "no pods", interval=0.2)
                    cpu = time.process_time()
                    result["scale"] = await scale_up(cluster, app, envoys, args.scale)
                    result["scale"]["process_cpu_s"] = round(time.process_time() - cpu, 2)
                    result["scale"]["bench_process_rss_mb"] = round(rss_kb() / 1024, 1)
                    print(f"0 -> {args.scale} pods: last EndpointSlice update -> {len(envoys)} Envoys ACKed them all: "
                          f"{result['scale']['last_slice_update_to_all_envoys_acked_ms']} ms "
                          f"(whole scale-up {result['scale']['scale_to_all_envoys_s']} s; this process's CPU "
                          f"{result['scale']['process_cpu_s']} s, RSS {result['scale']['bench_process_rss_mb']} MB)")
            finally:
                for envoy in envoys:
                    await envoy.stop()
                await app.stop(grace=0.5)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", default="", help=f"default: ${ENV}")
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--pods", type=int, default=5)
    parser.add_argument("--envoys", type=int, default=1)
    parser.add_argument("--scale", type=int, default=0, help="also scale 0 -> N pods (e.g. 1000)")
    sys.exit(asyncio.run(main(parser.parse_args())))
