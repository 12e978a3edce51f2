"""EndpointSlice discovery against a real API server (k8s-local level 2: KWOK pods, the real EndpointSlice
controller) and a real Envoy: what Envoy holds follows the cluster, through failures, without revisions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from switchman.app import Switchman
from switchman.lab.local import EnvoyProcess
from switchman.testing.k8s_local import Cluster
from switchman.testing.wait import until
from tests.functional.cli.conftest import clean_environ, run_switchman
from tests.kube.conftest import members, service_document

# KWOK pods are ready at once and the EndpointSlice controller lists them within a second or two; but after
# an API server restart kube-controller-manager takes up to a minute to catch up (its informers relist).
SETTLE = 90.0

pytestmark = pytest.mark.timeout(300)


async def api(switchman: Switchman, path: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{switchman.api_port}{path}") as r:
        return await r.json()


async def envoy_follows(cluster: Cluster, envoy: EnvoyProcess, service: str, envoy_cluster: str,
                        count: int) -> dict[str, str]:
    """Wait until the controller lists ``count`` ready pods for ``service`` and Envoy holds exactly those."""

    seen: list[tuple[list[str], dict[str, str]]] = []

    async def same() -> dict[str, str] | None:
        ips = await cluster.ready_ips(service)
        held = await members(envoy, envoy_cluster)
        seen[:] = [(ips, held)]
        want = {f"{ip}:8080": "HEALTHY" for ip in ips}
        # Distinct addresses: KWOK may hand a new pod the address of one that is still going away.
        return held if len(set(ips)) == count and held == want else None

    try:
        result: dict[str, str] = await until(same, SETTLE, f"Envoy holds the {count} ready pods of {service}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen (ready IPs, Envoy's members): {seen}") from None
    return result


async def deployed(cluster: Cluster, switchman: Switchman, envoy: EnvoyProcess, replicas: int) -> dict[str, str]:
    """Kubernetes Service and Deployment web-v1 (pods app=web, version=v1), Switchman's Service web whose v1 they
    are, and Envoy holding the pods: what it holds."""
    await cluster.service("web-v1", {"app": "web", "version": "v1"})
    await cluster.deployment("web-v1", {"app": "web", "version": "v1"}, replicas=replicas)
    await switchman.controller.apply([service_document(cluster.namespace, {"v1": "web-v1"})], author="test")
    return await envoy_follows(cluster, envoy, "web-v1", "web-v1", replicas)


async def a_new_slice_reaches_envoy(cluster: Cluster, envoy: EnvoyProcess, before: dict[str, str]) -> None:
    """The watch goes on: a slice of web-v1 written now (beside the controller's) reaches Envoy."""
    await cluster.write_slice("web-v1-extra", "web-v1", [{"addresses": ["10.244.200.9"], "conditions": {}}])
    want = before | {"10.244.200.9:8080": "HEALTHY"}

    async def extra() -> bool:
        return await members(envoy, "web-v1") == want

    await until(extra, SETTLE, "Envoy holds a slice written after the API server came back")


async def test_a_deployment_scaled_up_and_down_changes_what_envoy_holds(
    cluster: Cluster, switchman: Switchman, envoy: EnvoyProcess, tmp_path: Path
) -> None:
    await deployed(cluster, switchman, envoy, 2)
    await cluster.scale("web-v1", 5)
    held = await envoy_follows(cluster, envoy, "web-v1", "web-v1", 5)
    await cluster.scale("web-v1", 1)
    await envoy_follows(cluster, envoy, "web-v1", "web-v1", 1)

    # Pods came and went; the history has the one revision a person made.
    assert [r.number for r in await switchman.controller.history()] == [1]
    # render and status say where the endpoints came from.
    render = await api(switchman, "/v1/render")
    rows = render["endpoints"]["web-v1"]
    assert len(rows) == 1 and rows[0]["source"].startswith(f"kubernetes {cluster.namespace}/web-v1/web-v1-")
    status = await api(switchman, "/v1/status")
    assert status["discovery"]["current"] is True
    assert status["discovery"]["endpoints"] == {f"{cluster.namespace}/web-v1:http": 1}
    assert len(held) == 5
    # The same, as the commands print it.
    environ = clean_environ(tmp_path) | {"SWITCHMAN_API": f"http://127.0.0.1:{switchman.api_port}"}
    printed = await run_switchman(("status",), environ)
    assert printed.code == 0, printed
    server = switchman.discovery.api.server if switchman.discovery else ""
    assert f"kubernetes discovery ({server}): current; watching {cluster.namespace}\n" in printed.out
    assert f"  kubernetes {cluster.namespace}/web-v1:http: 1 endpoint\n" in printed.out
    rendered = await run_switchman(("render",), environ)
    assert f'"source": "kubernetes {cluster.namespace}/web-v1/web-v1-' in rendered.out


async def test_a_pod_made_unready_leaves_envoy(cluster: Cluster, switchman: Switchman, envoy: EnvoyProcess) -> None:
    await deployed(cluster, switchman, envoy, 2)
    pods = await cluster.pods("app=web")
    unready = sorted(pods)[0]
    await cluster.make_unready(unready)
    held = await envoy_follows(cluster, envoy, "web-v1", "web-v1", 1)
    assert f"{pods[unready]}:8080" not in held


async def test_a_terminating_pod_drains_then_leaves(
    cluster: Cluster, switchman: Switchman, envoy: EnvoyProcess
) -> None:
    before = await deployed(cluster, switchman, envoy, 2)
    pods = await cluster.pods("app=web")
    going = sorted(pods)[0]
    address = f"{pods[going]}:8080"
    await cluster.hold(going)  # a finalizer keeps it terminating, as a long grace period would
    try:
        await cluster.delete_pod(going, grace_seconds=30)

        async def draining() -> dict[str, str] | None:
            held = await members(envoy, "web-v1")
            # The controller lists it terminating (serving): Envoy keeps it, draining; its replacement arrives.
            return held if held.get(address) == "DRAINING" and len(held) == 3 else None

        held = await until(draining, SETTLE, f"Envoy drains {address} and holds the replacement")
        assert {a for a, h in held.items() if h == "HEALTHY"} >= set(before) - {address}
    finally:
        await cluster.release(going)

    async def gone() -> bool:
        held = await members(envoy, "web-v1")
        return address not in held and len(held) == 2

    await until(gone, SETTLE, f"Envoy drops {address} once the pod is gone")


async def test_terminating_endpoints_drain_and_unready_ones_leave(
    cluster: Cluster, switchman: Switchman, envoy: EnvoyProcess
) -> None:
    # A selector-less Service whose slice the test writes: the conditions are exactly what it says.
    await cluster.service("pinned", None)
    ready = {"ready": True, "serving": True, "terminating": False}
    await cluster.write_slice("pinned-1", "pinned", [
        {"addresses": [f"10.244.200.{i}"], "conditions": ready, "zone": "zone-a"} for i in (1, 2, 3)
    ])
    await switchman.controller.apply([service_document(cluster.namespace, {"v1": "pinned"})], author="test")
    everyone = {f"10.244.200.{i}:8080": "HEALTHY" for i in (1, 2, 3)}

    async def held(want: dict[str, str]) -> bool:
        return await members(envoy, "web-v1") == want

    await until(lambda: held(everyone), SETTLE, "Envoy holds the three endpoints")
    await cluster.write_slice("pinned-1", "pinned", [
        {"addresses": ["10.244.200.1"], "conditions": ready, "zone": "zone-a"},
        {"addresses": ["10.244.200.2"], "conditions": {"ready": False, "serving": True, "terminating": True},
         "zone": "zone-a"},
        {"addresses": ["10.244.200.3"], "conditions": {"ready": False, "serving": False, "terminating": False},
         "zone": "zone-a"},
    ])
    # The terminating one stays, draining (no new requests); the unready one is no longer sent.
    drained = {"10.244.200.1:8080": "HEALTHY", "10.244.200.2:8080": "DRAINING"}
    await until(lambda: held(drained), SETTLE, "Envoy drains .2 and no longer holds .3")
    rows = (await api(switchman, "/v1/render"))["endpoints"]["web-v1"]
    assert [(r["address"], r["health"], r["zone"]) for r in rows] == [
        ("10.244.200.1", "HEALTHY", "zone-a"), ("10.244.200.2", "DRAINING", "zone-a")
    ]
    # The pod is gone: the slice drops it, and so does Envoy.
    await cluster.write_slice("pinned-1", "pinned", [{"addresses": ["10.244.200.1"], "conditions": ready}])
    await until(lambda: held({"10.244.200.1:8080": "HEALTHY"}), SETTLE, "Envoy drops the drained one")
    assert [r.number for r in await switchman.controller.history()] == [1]


async def test_a_lost_api_server_empties_nothing_and_the_watch_resumes(
    cluster: Cluster, switchman: Switchman, envoy: EnvoyProcess
) -> None:
    before = await deployed(cluster, switchman, envoy, 2)
    started = await cluster.stop_api_server()
    try:
        async def stale() -> bool:
            return (await api(switchman, "/v1/status"))["discovery"]["current"] is False

        await until(stale, SETTLE, "status says discovery is stale")
        status = await api(switchman, "/v1/status")
        assert "Envoys keep the last endpoints known" in status["discovery"]["reason"]
        readyz = await api(switchman, "/readyz")
        assert readyz["discovery"]["current"] is False and readyz["ready"] is True
        for _ in range(10):  # meanwhile Envoy keeps every endpoint
            assert await members(envoy, "web-v1") == before
            await asyncio.sleep(0.1)
    finally:
        await cluster.start_api_server(started)

    async def current() -> bool:
        return (await api(switchman, "/v1/status"))["discovery"]["current"] is True

    await until(current, SETTLE, "discovery is current again")
    assert await members(envoy, "web-v1") == before
    await a_new_slice_reaches_envoy(cluster, envoy, before)


async def test_410_gone_makes_the_watch_list_again(
    cluster: Cluster, switchman: Switchman, envoy: EnvoyProcess
) -> None:
    before = await deployed(cluster, switchman, envoy, 2)
    watched = (await api(switchman, "/v1/status"))["discovery"]["namespaces"][0]
    assert watched["lists"] == 1
    # The cluster moves on while Switchman's watch stays where it was; then etcd forgets that history, and
    # the restarted API server's watch cache starts after it: resuming from there is 410 Gone.
    await cluster.touch()
    started = await cluster.stop_api_server()
    try:
        cluster.compact_etcd(cluster.etcd_url(started))
    finally:
        await cluster.start_api_server(started)

    async def listed_again() -> dict[str, Any] | None:
        namespace: dict[str, Any] = (await api(switchman, "/v1/status"))["discovery"]["namespaces"][0]
        return namespace if namespace["lists"] == 2 and namespace["stale_since"] is None else None

    after = await until(listed_again, SETTLE, "the watch lists again after 410 Gone")
    assert int(after["resource_version"]) > int(watched["resource_version"])
    assert await members(envoy, "web-v1") == before  # the new list holds the same: nothing lost
    await a_new_slice_reaches_envoy(cluster, envoy, before)
