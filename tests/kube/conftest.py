"""Fixtures of the Kubernetes tests: the real k8s-local API server (skipped without SWITCHMAN_TEST_KUBECONFIG),
Switchman serving with --kubernetes, and a real Envoy fed by it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from switchman.app import ServeSettings, Switchman
from switchman.kubernetes import KubernetesSettings
from switchman.lab.local import EnvoyProcess, bootstrap
from switchman.testing.k8s_local import ENV, Cluster, open_cluster


def kubeconfig_or_skip() -> str:
    path = os.environ.get(ENV, "")
    if not path:
        pytest.skip(f"needs a Kubernetes cluster: set {ENV} to the admin kubeconfig that ../shared/k8s-local/up 2 "
                    "prints")
    return path


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    async for found in open_cluster(kubeconfig_or_skip()):
        yield found


@pytest.fixture
async def switchman(cluster: Cluster, tmp_path: Path) -> AsyncIterator[Switchman]:
    settings = ServeSettings(
        xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=str(tmp_path / "switchman.db"),
        kubernetes=KubernetesSettings(cluster.kubeconfig),
    )
    app = Switchman(settings)
    await app.start()
    yield app
    await app.stop(grace=0.5)


@pytest.fixture
async def envoy(switchman: Switchman) -> AsyncIterator[EnvoyProcess]:
    proc = EnvoyProcess(bootstrap("envoy-k8s", switchman.xds_port, cluster="demo"))
    await proc.start()
    yield proc
    await proc.stop()


def service_document(namespace: str, versions: dict[str, str]) -> dict[str, Any]:
    """Service ``web`` whose versions are Kubernetes Services of ``namespace`` (version -> Service name)."""
    return {
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {
            "versions": {
                v: {"kubernetes": {"namespace": namespace, "service": name, "port": "http"}}
                for v, name in versions.items()
            },
        },
    }


async def members(envoy: EnvoyProcess, cluster: str) -> dict[str, str]:
    """What Envoy's admin /clusters holds for ``cluster``: ``address:port`` -> its EDS health status."""
    data = await envoy.admin_json("/clusters?format=json")
    for status in data.get("cluster_statuses", []):
        if status.get("name") == cluster:
            return {
                f"{h['address']['socket_address']['address']}:{h['address']['socket_address']['port_value']}":
                    h.get("health_status", {}).get("eds_health_status", "HEALTHY")
                for h in status.get("host_statuses", [])
            }
    return {}
