"""The lab and the demo on a real Kubernetes node (k8s-local level 3): the images built here run as pods,
Switchman in the cluster with its RBAC and in-cluster config, Envoys as sidecars, traffic through NodePorts.

Needs SWITCHMAN_TEST_KUBECONFIG (a cluster with a real kubelet) and SWITCHMAN_TEST_IMAGES=1 (scripts/images
--import has put the images on its node)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from switchman.kubernetes import KubernetesSettings
from switchman.kubernetes.objects import ObjectRef, Objects, connect_objects
from switchman.lab.demo import DemoSettings, run_demo
from switchman.lab.kubernetes.lab import KubernetesLab, KubernetesLabSettings
from tests.kube.conftest import kubeconfig_or_skip

IMAGES_ENV = "SWITCHMAN_TEST_IMAGES"
pytestmark = pytest.mark.timeout(600)


@pytest.fixture
async def objects() -> AsyncIterator[Objects]:
    kubeconfig = kubeconfig_or_skip()
    if os.environ.get(IMAGES_ENV) != "1":
        pytest.skip(f"needs the images on the cluster's node: run scripts/images --import, then set {IMAGES_ENV}=1")
    async with await connect_objects(KubernetesSettings(kubeconfig)) as found:
        nodes = await found.list(ObjectRef("v1", "Node", ""))
        if not any(n["metadata"]["name"] == "localhost" for n in nodes):
            pytest.skip("needs a real kubelet (../shared/k8s-local up 3)")
        yield found


def _switchman(*args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "switchman", *args], capture_output=True, text=True, timeout=timeout, check=False,
    )


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
        return resp.status, await resp.text()


async def test_lab_up_status_down_through_the_cli(objects: Objects, tmp_path: Path) -> None:
    kubeconfig = kubeconfig_or_skip()
    run_dir = tmp_path / "lab"
    up = await asyncio.to_thread(
        _switchman, "lab", "up", "--kubernetes", "--kubeconfig", kubeconfig, "--namespace", "switchman-lab-cli",
        "--run-dir", str(run_dir), "--timeout", "300",
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        state: dict[str, Any] = json.loads((run_dir / "lab.json").read_text())
        assert (run_dir / "lab.json").stat().st_mode & 0o077 == 0  # the token is in it
        # the front answers through the NodePort, from v1 (the lab starts there), through a sidecar
        answers = [await _get(state["front_url"] + "/") for _ in range(20)]
        assert all(status == 200 for status, _ in answers), answers
        assert all('"v1"' in body or "v1" in body for _, body in answers), answers[:3]
        # the API wants the lab's token for changes
        async with aiohttp.ClientSession() as session, session.post(
            state["api_url"] + "/v1/apply", json={"documents": []}
        ) as resp:
            assert resp.status == 401
        status = await asyncio.to_thread(_switchman, "lab", "status", "--run-dir", str(run_dir), timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        for pod in state["pods"]:
            assert pod["name"] in status.stdout and f"{pod['name']}.switchman-lab-cli" in status.stdout
        assert status.stdout.count(" yes ") >= 2 * len(state["pods"])  # ready and synced
        # Switchman runs in the cluster as its manifests say: not root, with the ServiceAccount's RBAC only
        [pod] = await objects.list(ObjectRef("v1", "Pod", "", "switchman-lab-cli"),
                                   label_selector="app.kubernetes.io/name=switchman")
        assert pod["spec"]["serviceAccountName"] == "switchman"
        review = await objects.create({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": "system:serviceaccount:switchman-lab-cli:switchman",
                     "resourceAttributes": {"namespace": "switchman-lab-cli", "verb": "list", "resource": "pods"}},
        })
        assert review["status"]["allowed"] is False
        review = await objects.create({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": "system:serviceaccount:switchman-lab-cli:switchman",
                     "resourceAttributes": {"namespace": "switchman-lab-cli", "verb": "watch",
                                            "group": "discovery.k8s.io", "resource": "endpointslices"}},
        })
        assert review["status"]["allowed"] is True
    finally:
        down = await asyncio.to_thread(_switchman, "lab", "down", "--run-dir", str(run_dir), timeout=200)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not (run_dir / "lab.json").exists()
    assert await objects.get(ObjectRef("v1", "Namespace", "switchman-lab-cli")) is None
    assert await objects.get(ObjectRef("rbac.authorization.k8s.io/v1", "ClusterRole",
                                       "switchman-lab-cli-discovery")) is None
    assert await objects.get(ObjectRef("v1", "PersistentVolume", "switchman-lab-cli-store")) is None


async def test_demo_on_kubernetes_passes_and_pods_come_and_go_without_a_failed_request(
    objects: Objects, tmp_path: Path
) -> None:
    kubeconfig = kubeconfig_or_skip()
    out = io.StringIO()
    settings = KubernetesLabSettings(KubernetesSettings(kubeconfig), namespace="switchman-lab-demo", timeout=300)
    passed = await run_demo(
        DemoSettings(rate=200, requests_per_step=400, run_dir=tmp_path), out,
        lab_in=lambda folder: KubernetesLab(folder, settings, out),
    )
    text = out.getvalue()
    assert passed, text
    [report] = tmp_path.glob("demo-*/report.json")  # noqa: ASYNC240 (after the run)
    steps = {s["name"].split(" (")[0]: s for s in json.loads(report.read_text())["steps"]}
    assert steps["canary 50% to v2"]["within_3_sigma"]
    assert steps["load across the whole ramp"]["failures"] == 0
    churn = steps["v2 pods come and go"]
    assert churn["failures"] == 0 and churn["requests"] > 500, churn
    assert steps["v2 fails 20%, no retries"]["success_rate"] < 0.95
    assert steps["v2 fails 20%, retries on"]["failures"] == 0
    # the demo removes its lab
    assert await objects.get(ObjectRef("v1", "Namespace", "switchman-lab-demo")) is None
