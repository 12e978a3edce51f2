"""The cloud lab against a real API server and a real kubelet (k8s-local level 3, KWOK beside it): the cluster
checks pass, fail clearly, and clean up; the kubeadm step's apply waits for its nodes and runs them; the lab's
manifests (the NFS volume and claim, the checks' pods) are admitted by the API server and the claim binds.

k8s-local has one node with a kubelet (``localhost``), so "pod to pod across nodes" is pod to pod on that node
here (the line says so); its KWOK node runs no pods and the checks leave it out. Its images are the only ones
there are, so the checks run k8s-local's web image (``/web`` serves, ``/web -get`` and ``/web -resolve`` ask)
instead of busybox. Needs SWITCHMAN_TEST_KUBECONFIG.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from switchman.errors import LabError
from switchman.kubernetes import KubernetesSettings
from switchman.kubernetes.objects import ObjectRef, Objects, connect_objects
from switchman.lab.cloud import State, parse_config
from switchman.lab.cloud.check_pods import SERVICE, client_pod, has_real_kubelet, server_pod
from switchman.lab.cloud.checks import CheckResult, run_checks
from switchman.lab.cloud.cluster import wait_for_nodes
from switchman.lab.cloud.config import ChecksConfig
from switchman.lab.cloud.kubeadm import STEP, KubeadmStep, manifests
from switchman.lab.cloud.runner import Context
from switchman.lab.cloud.state import Record
from switchman.lab.kubernetes.manifests import LAB_NAMESPACE, STORE_CLAIM, lab_objects
from switchman.testing.wait import until
from tests.kube.conftest import kubeconfig_or_skip

pytestmark = pytest.mark.timeout(300)

#: k8s-local's web image in the checks' place of busybox (nothing can be pulled there).
WEB = ChecksConfig(image="localhost/k8s-local/web:1", pull_policy="Never", serve=(), get=("/web", "-get", "{url}"),
                   resolve=("/web", "-resolve", "{name}"), timeout=60)
WEB_YAML = {"image": WEB.image, "pullPolicy": WEB.pull_policy, "serve": [], "get": list(WEB.get),
            "resolve": list(WEB.resolve), "timeout": "60s"}


@pytest.fixture
async def objects() -> AsyncIterator[Objects]:
    async with await connect_objects(KubernetesSettings(kubeconfig_or_skip())) as found:
        nodes = await found.list(ObjectRef("v1", "Node", ""))
        if not any(has_real_kubelet(n) for n in nodes):
            pytest.skip("needs a node with a real kubelet (../shared/k8s-local up 3)")
        yield found


def _by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name.split(" ")[0] if r.name.startswith("NodePort") else r.name: r for r in results}


async def _gone(objects: Objects, namespace: str) -> None:
    assert await objects.get(ObjectRef("v1", "Namespace", namespace)) is None, f"{namespace} is left behind"


async def test_the_nodes_k8s_local_has(objects: Objects) -> None:
    nodes = {n["metadata"]["name"]: n for n in await objects.list(ObjectRef("v1", "Node", ""))}
    assert has_real_kubelet(nodes["localhost"])
    if "kwok-node-0" in nodes:  # KWOK reports kwok-0.8.0 as its kubelet version and no boot ID; labelled type=kwok
        assert not has_real_kubelet(nodes["kwok-node-0"])


async def test_the_checks_pass_and_leave_nothing(objects: Objects) -> None:
    lines: list[str] = []
    namespace = f"switchman-check-{uuid.uuid4().hex[:6]}"
    results = await run_checks(objects, WEB, expected=["localhost"], namespace=namespace,
                               report=lambda r: lines.append(r.line()))
    assert [r.ok for r in results] == [True] * 5, "\n".join(lines)
    checks = _by_name(results)
    assert list(checks) == ["nodes Ready", "server pods", "pod to pod", "DNS from a pod", "NodePort"]
    assert "kwok-node-0 has no kubelet" in checks["nodes Ready"].detail or "kwok-node-0" not in lines[0]
    assert "localhost -> localhost: hello from server-0" in checks["pod to pod"].detail
    assert "pod to pod on that node only, not across nodes" in checks["pod to pod"].detail
    assert "kubernetes.default -> 10.96.0.1" in checks["DNS from a pod"].detail
    assert f"{SERVICE} -> " in checks["DNS from a pod"].detail
    assert "10.244.0.1:" in checks["NodePort"].detail and "hello from server-0" in checks["NodePort"].detail
    assert all(line.startswith("ok   ") and "s): " in line for line in lines)  # a line each, with its time
    await _gone(objects, namespace)


async def test_failing_checks_say_what_failed_and_where_to_look(objects: Objects) -> None:
    """A node that never registered, a name no DNS knows, a NodePort address nothing answers on (k8s-local's
    NodePorts answer on 10.244.0.1 and 127.0.0.1 only)."""
    settings = ChecksConfig(**{**WEB.__dict__, "resolve": ("/web", "-resolve", "{name}.invalid"), "timeout": 5.0})
    results = await run_checks(objects, settings, expected=["localhost", "demo-worker-1"],
                               addresses={"localhost": "127.0.0.2"})
    checks = _by_name(results)
    assert [name for name, r in checks.items() if not r.ok] == ["nodes Ready", "DNS from a pod", "NodePort"]
    assert "not registered: demo-worker-1" in checks["nodes Ready"].detail
    assert "cloud-init-output.log" in checks["nodes Ready"].look_at
    assert "kubernetes.default: lookup kubernetes.default.invalid" in checks["DNS from a pod"].detail
    assert "CoreDNS" in checks["DNS from a pod"].look_at
    assert "127.0.0.2:" in checks["NodePort"].detail and "no answer within 5s" in checks["NodePort"].detail
    assert "kube-proxy" in checks["NodePort"].look_at
    assert checks["NodePort"].line().startswith("FAIL NodePort") and "\n     look at: " in checks["NodePort"].line()
    assert checks["pod to pod"].ok  # the rest still ran


async def test_an_image_the_nodes_do_not_have_fails_at_once(objects: Objects) -> None:
    settings = ChecksConfig(**{**WEB.__dict__, "image": "localhost/switchman-test/none:1"})
    namespace = f"switchman-check-{uuid.uuid4().hex[:6]}"
    results = await run_checks(objects, settings, namespace=namespace)
    assert [r.name for r in results] == ["nodes Ready", "server pods"]  # nothing to ask without servers
    failed = results[1]
    assert not failed.ok and failed.seconds < 30  # ErrImageNeverPull is not waited out
    assert "server-0 ErrImageNeverPull" in failed.detail and "localhost/switchman-test/none:1" in failed.look_at
    await _gone(objects, namespace)


def _switchman(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "switchman", *args], capture_output=True, text=True, timeout=240,
                          check=False, env={**os.environ, **(env or {})})


async def test_cli_check_on_any_cluster_with_settings_from_the_environment(objects: Objects) -> None:
    env = {"SWITCHMAN_LAB_CLOUD_KUBECONFIG": kubeconfig_or_skip(), "SWITCHMAN_LAB_CLOUD_CHECK_IMAGE": WEB.image,
           "SWITCHMAN_LAB_CLOUD_CHECK_PULL_POLICY": "Never", "SWITCHMAN_LAB_CLOUD_CHECK_SERVE": "-",
           "SWITCHMAN_LAB_CLOUD_CHECK_GET": "/web -get {url}",
           "SWITCHMAN_LAB_CLOUD_CHECK_RESOLVE": "/web -resolve {name}"}
    run = await asyncio.to_thread(_switchman, "lab", "cloud", "check", env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("checking https://") and "image localhost/k8s-local/web:1" in lines[0]
    assert [line.split(" (")[0] for line in lines[1:6]] == [
        "ok   nodes Ready", "ok   server pods", "ok   pod to pod", "ok   DNS from a pod", lines[5].split(" (")[0]]
    assert lines[5].startswith("ok   NodePort ") and lines[6].startswith("5 of 5 checks passed in ")


def _lab(tmp_path: Path, **kubernetes: Any) -> Context:
    config = parse_config({"name": "demo", "openstack": {"cloud": "c", "flavor": {},
                                                         "image": {"name": "i", "file": "f"}, "workers": 1},
                           "kubernetes": {"checks": WEB_YAML, **kubernetes}})
    return Context(config, State(tmp_path / "demo.state.json", "demo"), tmp_path)


def _fetched_kubeconfig(ctx: Context) -> None:
    """As if apply had written the lab's kubeconfig: k8s-local's admin kubeconfig in its place."""
    path = ctx.workdir / "demo.kubeconfig"
    shutil.copy(kubeconfig_or_skip(), path)
    ctx.state.add(Record(STEP, "kubeconfig", str(path), str(path)))


async def test_cli_check_of_the_lab_reads_cloud_yaml_and_the_state_dir(objects: Objects, tmp_path: Path) -> None:
    ctx = _lab(tmp_path)
    _fetched_kubeconfig(ctx)
    ctx.state.set_output("openstack", "floating_ip/demo-master", "10.244.0.1")
    (tmp_path / "cloud.yaml").write_text(yaml.safe_dump({
        "name": "demo", "openstack": {"cloud": "c", "flavor": {}, "image": {"name": "i", "file": "f"}, "workers": 1},
        "kubernetes": {"checks": WEB_YAML}}))
    run = await asyncio.to_thread(_switchman, "lab", "cloud", "check", "-f", str(tmp_path / "cloud.yaml"),
                                  "--state-dir", str(tmp_path))
    # the lab's nodes are not k8s-local's: the nodes check says so, and the checks on its real node pass
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAIL nodes Ready" in run.stdout and "not registered: demo-master, demo-worker-1" in run.stdout
    assert "ok   pod to pod" in run.stdout and "4 of 5 checks passed" in run.stdout


class _OnK8sLocal(KubeadmStep):
    """The kubeadm step with k8s-local's node as the lab's one node (the nodes' names are all that differ)."""

    def nodes(self, ctx: Context) -> list[str]:
        return ["localhost"]


async def test_kubeadm_apply_waits_for_the_nodes_then_checks(objects: Objects, tmp_path: Path) -> None:
    ctx = _lab(tmp_path)
    said: list[str] = []
    ctx.progress = lambda step, message: said.append(f"{step}: {message}")
    _fetched_kubeconfig(ctx)
    actions = await _OnK8sLocal().apply(ctx)
    assert [a.line() for a in actions] == [f"= kubeconfig {tmp_path / 'demo.kubeconfig'}  (exists)"]
    assert said[0].startswith("kubeadm: waiting for the cluster at https://")
    assert said[1] == "kubeadm: nodes Ready: localhost"
    assert [line.split(" (")[0] for line in said[2:7]] == [
        "kubeadm: ok   nodes Ready", "kubeadm: ok   server pods", "kubeadm: ok   pod to pod",
        "kubeadm: ok   DNS from a pod", said[6].split(" (")[0]]
    assert said[6].startswith("kubeadm: ok   NodePort")


async def test_waiting_for_nodes_that_never_come_says_which(objects: Objects) -> None:
    said: list[str] = []
    with pytest.raises(LabError) as caught:
        await wait_for_nodes(objects, ["localhost", "demo-worker-1"], 0.3, said.append, poll=0.1)
    assert "nodes Ready: 1 of 2; not registered yet: demo-worker-1" in str(caught.value)
    assert "kubernetes.readyTimeout" in str(caught.value) and "cloud-init-output.log" in str(caught.value)
    assert said == ["nodes Ready: 1 of 2; not registered yet: demo-worker-1"]


# -- the lab's manifests on the real API server ---------------------------------------------------------------


async def test_the_manifests_are_admitted_and_the_claim_binds(objects: Objects, tmp_path: Path) -> None:
    """The NFS volume binds the claim of Switchman's store, as `lab up --kubernetes` makes it, with no NFS server
    (binding is the API's business); a pod mounting it would wait for the mount here (no server at the master's
    address), so that pod is a dry run."""
    ctx = _lab(tmp_path, nfs={"export": "/srv/nfs/switchman", "size": "1Gi"})
    assert ctx.config.kubernetes is not None
    namespace = f"switchman-cloud-{uuid.uuid4().hex[:6]}"
    [volume] = yaml.safe_load_all(manifests(ctx.config, ctx.config.kubernetes))
    volume["metadata"]["name"] = f"{namespace}-store"  # cluster-wide: unique
    assert volume["spec"]["claimRef"] == {"namespace": LAB_NAMESPACE, "name": STORE_CLAIM}
    volume["spec"]["claimRef"]["namespace"] = namespace
    claim = next(o for o in lab_objects("t", namespace, store_volume=volume["metadata"]["name"])
                 if o["kind"] == "PersistentVolumeClaim")
    mounting = client_pod(WEB, namespace, "uses-the-store", "localhost", ["/web"])
    mounting["spec"]["containers"][0]["volumeMounts"] = [{"name": "store", "mountPath": "/store"}]
    mounting["spec"]["volumes"] = [{"name": "store", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}]
    checks = [server_pod(WEB, namespace, "server-0", "localhost"),
              client_pod(WEB, namespace, "get-0-0", "localhost", ["/web", "-get", "http://10.244.0.9:8080/"])]
    await objects.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    try:
        for obj in (volume, claim, *checks, mounting):
            admitted = await objects.apply(obj, dry_run=True)
            assert admitted["metadata"]["name"] == obj["metadata"]["name"]
        assert await objects.get(ObjectRef.of(volume)) is None  # a dry run stores nothing
        await objects.apply(volume)
        await objects.apply(claim)

        async def bound() -> bool:
            pv, pvc = await objects.get(ObjectRef.of(volume)), await objects.get(ObjectRef.of(claim))
            return all((o or {}).get("status", {}).get("phase") == "Bound" for o in (pv, pvc))

        await until(bound, 60, "the claim bound to the NFS volume", interval=0.5)
        stored, stored_claim = await objects.get(ObjectRef.of(volume)), await objects.get(ObjectRef.of(claim))
        assert stored is not None and stored_claim is not None
        assert stored["spec"]["claimRef"]["name"] == claim["metadata"]["name"] == STORE_CLAIM
        assert stored["spec"]["mountOptions"] == ["hard", "nfsvers=4.2"]
        # "" on the volume is stored as no class at all; on the claim it stays "", which keeps a default
        # StorageClass (none here; a cloud's provisioner elsewhere) from taking the claim
        assert "storageClassName" not in stored["spec"] and stored_claim["spec"]["storageClassName"] == ""
        assert stored_claim["spec"]["volumeName"] == volume["metadata"]["name"]
    finally:
        await objects.delete(ObjectRef("v1", "Namespace", namespace))
        await objects.delete(ObjectRef.of(volume))  # Retain: the volume outlives its claim until deleted

        async def gone() -> bool:
            return await objects.get(ObjectRef.of(volume)) is None

        await until(gone, 60, "the volume deleted once its claim is", interval=0.5)
