"""deploy/kubernetes as a user applies it: ``kubectl kustomize`` renders each kustomization (the real kubectl),
and the real API server admits every object it renders (server-side dry run, nothing stored)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml

from switchman.kubernetes import KubernetesSettings
from switchman.kubernetes.objects import ObjectRef, Objects, connect_objects
from switchman.lab.kubernetes.manifests import in_namespace, manifests_dir
from tests.kube.conftest import kubeconfig_or_skip

KUBECTL_ENV = "SWITCHMAN_TEST_KUBECTL"


def _kustomize(directory: str) -> list[dict[str, Any]]:
    kubectl = os.environ.get(KUBECTL_ENV, "")
    if not kubectl:
        pytest.skip(f"needs kubectl for kustomize: set {KUBECTL_ENV} (../shared/k8s-local/build 3 kubectl makes one)")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(manifests_dir() / directory)], capture_output=True, text=True, check=True,
        timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


@pytest.fixture
async def objects() -> AsyncIterator[Objects]:
    async with await connect_objects(KubernetesSettings(kubeconfig_or_skip())) as found:
        yield found


@pytest.mark.parametrize("directory", ["switchman", "etcd", "lab"])
async def test_each_kustomization_renders_and_the_api_server_admits_it(objects: Objects, directory: str) -> None:
    rendered = await asyncio.to_thread(_kustomize, directory)
    # in a namespace of the test's own, made for real (a dry run cannot create what others are checked in)
    namespace = f"manifests-{uuid.uuid4().hex[:8]}"
    moved = in_namespace(rendered, namespace)
    await objects.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    try:
        for obj in moved:
            if obj["kind"] != "Namespace":
                stored = await objects.apply(obj, dry_run=True)
                assert stored["metadata"]["name"] == obj["metadata"]["name"]
    finally:
        await objects.delete(ObjectRef("v1", "Namespace", namespace))
    kinds = sorted({o["kind"] for o in rendered})
    if directory == "etcd":
        [deployment] = [o for o in rendered if o["kind"] == "Deployment"]
        assert deployment["spec"]["replicas"] == 2
        assert deployment["spec"]["template"]["spec"]["containers"][0]["args"][-1].startswith("etcd://")
        assert "PersistentVolumeClaim" not in kinds  # no volume: the store is etcd
    if directory == "switchman":
        assert "PersistentVolumeClaim" in kinds and "ClusterRoleBinding" not in kinds
