"""The manifests of deploy/kubernetes, read as plain objects, and what the lab changes in them.

``deploy/kubernetes/`` is what a user applies (``kubectl apply -k``): ``switchman/`` (Switchman itself, one
replica on SQLite), ``etcd/`` (two replicas on etcd) and ``lab/`` (the lab's workloads: the front Envoy and
checkout v1/v2, each app behind its sidecar). The lab reads the same files, in their kustomization's order,
and changes only what a lab needs (:func:`lab_objects`): everything in the lab's namespace, its own admin token, the API
reachable from the host (NodePort), and, on a cluster without a default StorageClass (k8s-local has none),
a hostPath volume for the store.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from switchman.errors import ConfigError, LabError
from switchman.kubernetes.objects import KINDS, ObjectRef

__all__ = [
    "APP_PORT",
    "BASE_NAMESPACE",
    "FRONT_NODE_PORT",
    "FRONT_PORT",
    "LAB_NAMESPACE",
    "SIDECAR_PORT",
    "STORE_CLAIM",
    "in_namespace",
    "lab_objects",
    "load",
    "manifests_dir",
]

BASE_NAMESPACE: Final = "switchman"
LAB_NAMESPACE: Final = "switchman-lab"
#: Ports the lab's manifests give (deploy/kubernetes/lab): the sidecars' listener, the apps behind them on
#: the pod's loopback, the front's listener and its NodePort.
SIDECAR_PORT: Final = 8000
APP_PORT: Final = 8080
FRONT_PORT: Final = 10000
FRONT_NODE_PORT: Final = 30080
#: The claim of Switchman's store (deploy/kubernetes/switchman/store.yaml).
STORE_CLAIM: Final = "switchman-store"
_TOKENS_SECRET: Final = "switchman-tokens"


def manifests_dir() -> Path:
    """deploy/kubernetes: in the wheel (``switchman/_deploy_kubernetes``), else in the checkout."""
    package = Path(__file__).resolve().parents[2]
    for candidate in (package / "_deploy_kubernetes", package.parent / "deploy" / "kubernetes"):
        if (candidate / "switchman" / "kustomization.yaml").is_file():
            return candidate
    raise LabError(f"no deploy/kubernetes manifests beside {package}: a checkout or the wheel carries them")


def load(directory: Path) -> list[dict[str, Any]]:
    """The objects of ``directory``'s kustomization.yaml, file by file in its ``resources`` order.

    Only plain files are read (the lab's own kustomizations list nothing else); a directory among the
    resources is a LabError rather than a silently partial list.
    """
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text()) or {}
    objects: list[dict[str, Any]] = []
    for name in kustomization.get("resources") or ():
        path = directory / str(name)
        if not path.is_file():
            raise LabError(f"{directory / 'kustomization.yaml'}: resource {name} is not a file; the lab reads files")
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                if not isinstance(doc, dict):
                    raise ConfigError(str(path), "a document is not a mapping")
                ObjectRef.of(doc)  # a kind the project cannot apply is refused here
                objects.append(doc)
    return objects


def in_namespace(objects: Iterable[Mapping[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """Copies of ``objects`` moved into ``namespace``: namespaced objects, the Namespace itself, and
    ServiceAccount subjects of bindings (which name the namespace they live in)."""
    moved: list[dict[str, Any]] = []
    for obj in objects:
        copied = copy.deepcopy(dict(obj))
        meta = copied.setdefault("metadata", {})
        kind = KINDS.get((str(copied.get("apiVersion")), str(copied.get("kind"))))
        if copied.get("kind") == "Namespace":
            meta["name"] = namespace
        elif kind is not None and kind.namespaced:
            meta["namespace"] = namespace
        for subject in copied.get("subjects") or ():
            if subject.get("kind") == "ServiceAccount":
                subject["namespace"] = namespace
        moved.append(copied)
    return moved


def _unique(objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first of each object (the base and the lab both carry the Namespace)."""
    seen: set[ObjectRef] = set()
    kept = []
    for obj in objects:
        ref = ObjectRef.of(obj)
        if ref not in seen:
            seen.add(ref)
            kept.append(obj)
    return kept


def _find(objects: Sequence[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj.get("kind") == kind and (obj.get("metadata") or {}).get("name") == name:
            return obj
    raise LabError(f"deploy/kubernetes has no {kind} {name}")


def _owned_store(objects: list[dict[str, Any]], namespace: str, volume_name: str) -> None:
    """Bind the store's claim to the volume ``volume_name``, and let the (non-root) replica write there.

    hostPath and NFS volumes ignore ``fsGroup``, so an init container (root, the same image, no capability
    but chown's) hands the directory to the replica's user first.
    """
    claim = _find(objects, "PersistentVolumeClaim", STORE_CLAIM)
    claim["spec"]["volumeName"] = volume_name
    claim["spec"]["storageClassName"] = ""
    pod = _find(objects, "Deployment", "switchman")["spec"]["template"]["spec"]
    main = pod["containers"][0]
    user = pod["securityContext"]["runAsUser"]
    store = next(m for m in main["volumeMounts"] if m["name"] == "store")
    pod["initContainers"] = [{
        "name": "store-owner",
        "image": main["image"],
        "imagePullPolicy": main.get("imagePullPolicy", "IfNotPresent"),
        "command": ["chown", f"{user}:{user}", store["mountPath"]],
        "securityContext": {
            "runAsUser": 0, "runAsNonRoot": False, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]},
        },
        "volumeMounts": [dict(store)],
    }]


def _host_path_store(objects: list[dict[str, Any]], namespace: str, host_path: str) -> None:
    """A hostPath volume of the lab's own for the store's claim (a cluster with no provisioner)."""
    claim = _find(objects, "PersistentVolumeClaim", STORE_CLAIM)
    volume_name = f"{namespace}-store"
    objects.insert(objects.index(claim), {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": volume_name, "labels": {"app.kubernetes.io/part-of": namespace}},
        "spec": {
            "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
            "accessModes": list(claim["spec"]["accessModes"]),
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "claimRef": {"namespace": namespace, "name": STORE_CLAIM},
            "hostPath": {"path": host_path, "type": "DirectoryOrCreate"},
        },
    })
    _owned_store(objects, namespace, volume_name)


def lab_objects(
    admin_token: str, namespace: str = LAB_NAMESPACE, store_host_path: str | None = None,
    directory: Path | None = None, store_volume: str | None = None,
) -> list[dict[str, Any]]:
    """Everything ``lab up --kubernetes`` applies, in order: Switchman from deploy/kubernetes/switchman and the
    lab's workloads from deploy/kubernetes/lab, in ``namespace``; the admin token ``lab=<admin_token>``; the
    API Service as a NodePort; the store on ``store_volume`` (a PersistentVolume made for it, such as the
    cloud lab's NFS one), or on a hostPath volume of the lab's own at ``store_host_path`` of the node, or
    (neither) on what the cluster's default StorageClass provisions."""
    root = directory or manifests_dir()
    objects = _unique(in_namespace(load(root / "switchman"), namespace) + in_namespace(load(root / "lab"), namespace))
    service = _find(objects, "Service", "switchman")
    service["spec"]["type"] = "NodePort"
    # The discovery ClusterRole is the lab's own (a Switchman installed beside it keeps its own role).
    role = _find(objects, "ClusterRole", "switchman-discovery")
    role["metadata"]["name"] = f"{namespace}-discovery"
    for binding in objects:
        ref = binding.get("roleRef") or {}
        if ref.get("kind") == "ClusterRole" and ref.get("name") == "switchman-discovery":
            ref["name"] = role["metadata"]["name"]
    deployment = _find(objects, "Deployment", "switchman")
    objects.insert(objects.index(deployment), {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": _TOKENS_SECRET, "namespace": namespace},
        "type": "Opaque",
        "stringData": {"admin-tokens": f"lab={admin_token}"},
    })
    if store_volume is not None:
        _owned_store(objects, namespace, store_volume)
    elif store_host_path is not None:
        _host_path_store(objects, namespace, store_host_path)
    if namespace != LAB_NAMESPACE:
        _point_bootstrap_at(objects, namespace)
    return objects


def _point_bootstrap_at(objects: list[dict[str, Any]], namespace: str) -> None:
    """The Envoys' bootstrap names Switchman's Service by its DNS name, which holds the namespace."""
    config_map = _find(objects, "ConfigMap", "envoy-bootstrap")
    text = str(config_map["data"]["bootstrap.yaml"])
    old = f"switchman.{LAB_NAMESPACE}.svc.cluster.local"
    if old not in text:
        raise LabError(f"deploy/kubernetes/lab/envoy-bootstrap.yaml no longer names {old}")
    config_map["data"]["bootstrap.yaml"] = text.replace(old, f"switchman.{namespace}.svc.cluster.local")
