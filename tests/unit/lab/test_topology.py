"""The lab's topology: pods take turns between versions, and each Envoy is served only its own part."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from switchman.control.groups import build_served
from switchman.lab.topology import (
    FRONT_GROUP,
    FRONT_LISTENER,
    PodSpec,
    front_documents,
    pod_specs,
    retry_routes,
    sidecar_documents,
)
from switchman.model.config import parse_document
from switchman.xds import resources as rt
from switchman.xds.cache import Snapshot


def _served(docs: list[dict[str, Any]]) -> dict[str, Snapshot]:
    return dict(build_served(parse_document(d, f"lab[{i}]") for i, d in enumerate(docs)).snapshots)


def _lab_documents(pods: list[PodSpec]) -> list[dict[str, Any]]:
    docs = [d for i, pod in enumerate(pods) for d in sidecar_documents(pod, 9000 + i, f"10.213.{i}.2")]
    endpoints: dict[str, list[tuple[str, int]]] = {}
    for i, pod in enumerate(pods):
        endpoints.setdefault(pod.version, []).append((f"10.213.{i}.2", 15000 + i))
    return docs + front_documents(endpoints)


def test_pods_take_turns_between_versions() -> None:
    pods = pod_specs(5)
    assert [p.name for p in pods] == [
        "checkout-v1-0", "checkout-v2-0", "checkout-v1-1", "checkout-v2-1", "checkout-v1-2",
    ]
    assert [p.index for p in pods] == [0, 1, 2, 3, 4]
    assert pods[3].sidecar_node == "checkout-v2-1-sidecar" and pods[3].listener == "checkout-v2-1-inbound"


def test_fewer_pods_than_versions_is_refused() -> None:
    with pytest.raises(ValueError, match="one pod per version"):
        pod_specs(1)


def test_the_front_gets_only_its_listener_and_splits_between_the_sidecars() -> None:
    pods = pod_specs(3)
    served = _served(_lab_documents(pods))
    assert set(served) >= {FRONT_GROUP, *(p.name for p in pods)}
    front = served[FRONT_GROUP]
    assert set(front.get(rt.LISTENER).resources) == {FRONT_LISTENER}
    assert set(front.get(rt.CLUSTER).resources) == {"checkout-v1", "checkout-v2"}
    endpoints = front.get(rt.ENDPOINT).resources
    v1 = endpoints["checkout-v1"].message
    hosts = {
        (e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value)
        for group in v1.endpoints for e in group.lb_endpoints
    }
    assert hosts == {("10.213.0.2", 15000), ("10.213.2.2", 15002)}  # both v1 pods' sidecars


def test_each_sidecar_gets_only_its_inbound_listener_to_its_own_app() -> None:
    pods = pod_specs(2)
    served = _served(_lab_documents(pods))
    for i, pod in enumerate(pods):
        sidecar = served[pod.name]
        [listener] = sidecar.get(rt.LISTENER).resources.values()
        assert listener.name == pod.listener
        assert listener.message.address.socket_address.address == f"10.213.{i}.2"
        assert listener.message.address.socket_address.port_value == 0
        [cluster] = sidecar.get(rt.CLUSTER).resources.values()
        assert cluster.name == f"{pod.name}-app"
        [host] = cluster.message.load_assignment.endpoints[0].lb_endpoints
        assert host.endpoint.address.socket_address.address == "127.0.0.1"  # the app, on the pod's loopback
        assert host.endpoint.address.socket_address.port_value == 9000 + i


def test_retries_replace_only_the_front_routes() -> None:
    [routes] = retry_routes()
    assert routes["metadata"] == {"name": "checkout-routes", "groups": [FRONT_GROUP]}
    docs = _lab_documents(pod_specs(2))
    docs = [d for d in docs if d["metadata"]["name"] != "checkout-routes"] + [routes]
    front = _served(docs)[FRONT_GROUP]
    [config] = front.get(rt.ROUTE).resources.values()
    [route] = config.message.virtual_hosts[0].routes
    assert route.route.retry_policy.retry_on == "5xx,reset,connect-failure"
    assert route.route.retry_policy.num_retries.value == 6


async def test_one_lab_per_run_dir(tmp_path: Path) -> None:
    from switchman.errors import LabError
    from switchman.lab.local.launcher import lab_starting
    from switchman.lab.local.supervisor import Supervisor

    first = Supervisor(tmp_path / "lab", 2)
    first._lock()  # what start() does first
    try:
        assert lab_starting(tmp_path / "lab")
        with pytest.raises(LabError, match="another lab is starting or running"):
            await Supervisor(tmp_path / "lab", 2).start()
    finally:
        first._unlock()
    assert not lab_starting(tmp_path / "lab")
