"""The lab on Kubernetes: Switchman, the front Envoy and checkout v1/v2 with sidecars, in a namespace of its own.

``up`` applies deploy/kubernetes/switchman and deploy/kubernetes/lab
(:func:`~switchman.lab.kubernetes.manifests.lab_objects`) with server-side apply, waits until Switchman
answers, configures every Envoy through Switchman's public API, and returns once every Envoy runs that
config. Switchman runs **in the cluster** (the image, the RBAC, the in-cluster config and the probes a user
deploys), reached from here through NodePorts; that is also the only place it can run on a cluster whose
pods cannot reach this machine (a cloud one).

Everything applied is recorded in the run dir's ``lab.json`` (0600: it holds the lab's admin token) as it
is applied, so ``down`` removes exactly that, in reverse, even after an ``up`` that failed halfway (and the
store's files, when they are on a hostPath of the lab's).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

import aiohttp

from switchman.client import SwitchmanClient
from switchman.errors import LabError
from switchman.kubernetes import KubernetesSettings
from switchman.kubernetes.objects import ObjectRef, Objects, connect_objects
from switchman.lab.kubernetes.manifests import (
    APP_PORT,
    FRONT_NODE_PORT,
    FRONT_PORT,
    LAB_NAMESPACE,
    SIDECAR_PORT,
    STORE_CLAIM,
    lab_objects,
)
from switchman.lab.local.launcher import LAB_FILE, read_lab
from switchman.lab.local.supervisor import wait_synced
from switchman.lab.local.upstream_main import write_atomically
from switchman.lab.topology import FRONT_GROUP, SERVICE, VERSIONS, front_documents_for, sidecar_documents

__all__ = ["KIND", "KubernetesLab", "KubernetesLabSettings", "lab_documents", "pod_ready"]

#: ``lab.json``'s ``kind``: ``lab status`` and ``lab down`` tell a Kubernetes lab from a local one by it.
KIND: Final = "kubernetes"
DEFAULT_STORE_PATH: Final = "/var/lib/switchman-lab"
_IMAGE_HINT: Final = "build the images and import them into the node's containerd: scripts/images --import"
_POLL: Final = 0.25


@dataclass(frozen=True, slots=True)
class KubernetesLabSettings:
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    namespace: str = LAB_NAMESPACE
    address: str = ""  # where this machine reaches the NodePorts; "" = the first node's ExternalIP, else InternalIP
    timeout: float = 180.0
    # the store's hostPath on the node, when the cluster has no default StorageClass
    store_path: str = DEFAULT_STORE_PATH


def lab_documents(namespace: str) -> list[dict[str, Any]]:
    """Switchman's config for the lab: each version's sidecars (group ``checkout-vN``: port 8000 to the app on
    the pod's loopback) and the front (port 10000, ``checkout`` whose versions are the Kubernetes Services
    ``checkout-vN``, all on v1)."""
    docs = [d for v in VERSIONS for d in sidecar_documents(f"{SERVICE}-{v}", APP_PORT, "0.0.0.0", SIDECAR_PORT)]
    versions = {v: {"kubernetes": {"namespace": namespace, "service": f"{SERVICE}-{v}", "port": "http"}}
                for v in VERSIONS}
    return docs + front_documents_for(versions, listen_address="0.0.0.0", port=FRONT_PORT)


def _write_state(run_dir: Path, state: Mapping[str, Any]) -> None:
    """lab.json, readable by the owner only (the admin token is in it)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(run_dir / LAB_FILE, json.dumps(state, indent=2), mode=0o600)


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """Is the pod's Ready condition true?"""
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def _deployment_ready(deployment: Mapping[str, Any]) -> bool:
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    wanted = int(spec.get("replicas", 1))
    return (
        int(status.get("observedGeneration", 0)) >= int((deployment.get("metadata") or {}).get("generation", 0))
        and int(status.get("updatedReplicas", 0)) == wanted
        and int(status.get("readyReplicas", 0)) == wanted
        and int(status.get("replicas", 0)) == wanted
    )


def pod_problems(pods: list[dict[str, Any]]) -> list[str]:
    """Why pods are not ready, as a person would look for it: waiting reasons, restarts, pending conditions."""
    problems = []
    for pod in pods:
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        for container in status.get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason", "")
            if reason and reason != "ContainerCreating":
                hint = f" ({_IMAGE_HINT})" if "Image" in reason else ""
                problems.append(f"pod {name} container {container['name']}: {reason}: "
                                f"{waiting.get('message', '')}{hint}")
            elif not container.get("ready"):
                problems.append(f"pod {name} container {container['name']}: not ready "
                                f"(restarts {container.get('restartCount', 0)})")
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") != "True":
                problems.append(f"pod {name}: not scheduled: {condition.get('message', '')}")
    return problems


class KubernetesLab:
    """One lab in one namespace; its record lives in ``run_dir / lab.json``."""

    def __init__(self, run_dir: Path, settings: KubernetesLabSettings, out: TextIO = sys.stderr) -> None:
        self.run_dir = run_dir.resolve()
        self.settings = settings
        self.namespace = settings.namespace
        self.out = out
        self._state: dict[str, Any] = {}

    @property
    def node_ids(self) -> set[str]:
        """Every Envoy's node id (``POD.NAMESPACE``); known once ``start`` has returned."""
        return {str(p["node_id"]) for p in self._state.get("pods") or ()} | (
            {str(self._state["front"]["node_id"])} if self._state.get("front") else set()
        )

    @property
    def description(self) -> str:
        return (f"Lab on Kubernetes ({self._state.get('server', '')}), namespace {self.namespace}: clients → "
                f"front Envoy (NodePort {FRONT_NODE_PORT}) → pods of checkout v1 and v2, each app behind its sidecar "
                "Envoy; Switchman in the cluster configures every Envoy through its API")

    def _say(self, line: str) -> None:
        print(f"[lab {time.strftime('%H:%M:%S')}] {line}", file=self.out, flush=True)

    async def _until(
        self, what: str, check: Callable[[], Awaitable[bool]], problems: Callable[[], Awaitable[list[str]]],
        deadline: float,
    ) -> None:
        started = time.monotonic()
        said = started
        while not await check():
            now = time.monotonic()
            if now > deadline:
                found = await problems()
                raise LabError(f"{what}: not within {self.settings.timeout:.0f}s" + (
                    ": " + "; ".join(found) if found else ""))
            if now - said >= 10:
                said = now
                found = await problems()
                self._say(f"waiting {now - started:.0f}s for {what}" + (f" ({'; '.join(found[:3])})" if found else ""))
            await asyncio.sleep(_POLL)
        self._say(f"{what}: {time.monotonic() - started:.1f}s")

    async def _deployments_ready(self, objects: Objects, names: list[str], deadline: float) -> None:
        async def check() -> bool:
            for name in names:
                found = await objects.get(ObjectRef("apps/v1", "Deployment", name, self.namespace))
                if found is None or not _deployment_ready(found):
                    return False
            return True

        async def problems() -> list[str]:
            return pod_problems(await objects.list(ObjectRef("v1", "Pod", "", self.namespace)))

        await self._until(f"Deployments {', '.join(names)} ready", check, problems, deadline)

    async def _address(self, objects: Objects) -> str:
        if self.settings.address:
            return self.settings.address
        for node in await objects.list(ObjectRef("v1", "Node", "")):
            addresses = {a["type"]: a["address"] for a in (node.get("status") or {}).get("addresses") or ()}
            for kind in ("ExternalIP", "InternalIP"):
                if addresses.get(kind):
                    return str(addresses[kind])
        raise LabError("no node has an ExternalIP or InternalIP to reach the NodePorts by; give --address")

    async def _store(self, objects: Objects) -> tuple[str | None, str | None]:
        """Where the store goes: (None, VOLUME) when a PersistentVolume is reserved for the store's claim in this
        namespace (the cloud lab's NFS volume), (None, None) when a default StorageClass provisions it, else
        (a hostPath of the node, None)."""
        for volume in await objects.list(ObjectRef("v1", "PersistentVolume", "")):
            claim = volume["spec"].get("claimRef") or {}
            if (claim.get("namespace"), claim.get("name")) != (self.namespace, STORE_CLAIM):
                continue
            name = str(volume["metadata"]["name"])
            if (volume.get("status") or {}).get("phase") == "Released":
                # an earlier lab's claim is gone: reserve the volume (and the store it holds) for the new one
                await objects.request(
                    "PATCH", ObjectRef("v1", "PersistentVolume", name).path(),
                    body={"spec": {"claimRef": {"uid": None, "resourceVersion": None}}},
                    content_type="application/merge-patch+json",
                )
            return None, name
        for sc in await objects.list(ObjectRef("storage.k8s.io/v1", "StorageClass", "")):
            annotations = (sc.get("metadata") or {}).get("annotations") or {}
            if annotations.get("storageclass.kubernetes.io/is-default-class") == "true":
                return None, None
        return f"{self.settings.store_path.rstrip('/')}/{self.namespace}", None

    async def start(self) -> dict[str, Any]:
        """Deploy, configure and wait until every Envoy is synced; the lab's record (also in lab.json)."""
        deadline = time.monotonic() + self.settings.timeout
        if (self.run_dir / LAB_FILE).exists():
            raise LabError(f"a lab is recorded in {self.run_dir / LAB_FILE}: run `switchman lab down` first")
        async with await connect_objects(self.settings.kubernetes) as objects:
            if await objects.get(ObjectRef("v1", "Namespace", self.namespace)) is not None:
                raise LabError(
                    f"namespace {self.namespace} exists already and is not this lab's: the lab makes its own"
                )
            token = secrets.token_urlsafe(24)
            store, volume = await self._store(objects)
            self._state = {
                "kind": KIND, "server": objects.server, "namespace": self.namespace,
                "kubeconfig": self.settings.kubernetes.kubeconfig, "context": self.settings.kubernetes.context,
                "token": token, "made": [], "store_host_path": store, "store_volume": volume,
            }
            _write_state(self.run_dir, self._state)
            where = (f" (store on the node's {store}: no default StorageClass)" if store
                     else f" (store on the volume {volume}, made for it)" if volume else "")
            self._say(f"applying deploy/kubernetes/switchman and deploy/kubernetes/lab into namespace "
                      f"{self.namespace} on {objects.server}{where}")
            for obj in lab_objects(token, self.namespace, store, store_volume=volume):
                ref = ObjectRef.of(obj)
                await objects.apply(obj)
                self._state["made"].append(ref.to_json())
                _write_state(self.run_dir, self._state)
            self._say(f"applied {len(self._state['made'])} objects")
            await self._deployments_ready(objects, ["switchman"], deadline)
            address = await self._address(objects)
            service = await objects.get(ObjectRef("v1", "Service", "switchman", self.namespace))
            assert service is not None
            api_port = next(p["nodePort"] for p in service["spec"]["ports"] if p["name"] == "api")
            self._state["api_url"] = f"http://{address}:{api_port}"
            self._state["front_url"] = f"http://{address}:{FRONT_NODE_PORT}"
            self._state["xds_address"] = f"switchman.{self.namespace}.svc.cluster.local:18000"
            _write_state(self.run_dir, self._state)
            await self._until(f"Switchman's API at {self._state['api_url']} ready", self._api_ready,
                              self._no_problems, deadline)
            async with SwitchmanClient(self._state["api_url"], token, author="lab") as client:
                applied = await client.apply(lab_documents(self.namespace), message="lab: the lab's topology, on v1")
                self._say(f"configured through the API: revision {applied.revision}")
                await self._deployments_ready(objects, [f"{SERVICE}-{v}" for v in VERSIONS] + ["front"], deadline)
                await self._record_pods(objects)
                await self._discovered(objects, client, deadline)
                await wait_synced(client, applied.revision or 0, self.node_ids, max(1.0, deadline - time.monotonic()))
            self._say(f"every Envoy ({len(self.node_ids)}) runs revision {applied.revision}")
            # kube-proxy programs a NodePort a moment after its endpoint is ready: up means a request works
            await self._until(f"the front answers at {self._state['front_url']}", self._front_answers,
                              self._no_problems, deadline)
            self._state["revision"] = applied.revision
            _write_state(self.run_dir, self._state)
        return self.state()

    async def _discovered(self, objects: Objects, client: SwitchmanClient, deadline: float) -> None:
        """Until Switchman's discovery holds every ready pod of each version, and no other (the EndpointSlice
        controller lists a pod a moment after it is ready): before that the front may have too few endpoints."""
        async def check() -> bool:
            ready: dict[str, int] = {}
            for pod in await objects.list(ObjectRef("v1", "Pod", "", self.namespace), label_selector=f"app={SERVICE}"):
                labels = pod["metadata"].get("labels") or {}
                if not pod["metadata"].get("deletionTimestamp") and pod_ready(pod):
                    ready[str(labels.get("version"))] = ready.get(str(labels.get("version")), 0) + 1
            known = ((await client.status()).get("discovery") or {}).get("endpoints") or {}
            return all(known.get(f"{self.namespace}/{SERVICE}-{v}:http") == ready.get(v, 0) for v in VERSIONS)

        await self._until("Switchman's discovery holds every ready pod", check, self._no_problems, deadline)

    async def _no_problems(self) -> list[str]:
        return []

    async def _front_answers(self) -> bool:
        """Five requests in a row answered 200 through the front."""
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(5):
                    async with session.get(
                        f"{self._state['front_url']}/", timeout=aiohttp.ClientTimeout(total=2)
                    ) as resp:
                        if resp.status != 200:
                            return False
                return True
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def _api_ready(self) -> bool:
        try:
            async with aiohttp.ClientSession() as session, session.get(
                f"{self._state['api_url']}/readyz", timeout=aiohttp.ClientTimeout(total=2)
            ) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def _record_pods(self, objects: Objects) -> None:
        pods = await objects.list(ObjectRef("v1", "Pod", "", self.namespace))
        found = []
        for pod in pods:
            meta, status = pod["metadata"], pod.get("status") or {}
            if meta.get("deletionTimestamp") or status.get("phase") != "Running":
                continue
            labels = meta.get("labels") or {}
            node_id = f"{meta['name']}.{self.namespace}"
            if labels.get("app") == FRONT_GROUP:
                self._state["front"] = {
                    "name": meta["name"], "node_id": node_id, "listener_url": self._state["front_url"]
                }
            elif labels.get("app") == SERVICE:
                found.append({
                    "name": meta["name"], "version": labels.get("version", ""), "node_id": node_id,
                    "ip": status.get("podIP", ""),
                    "sidecar": {"url": f"http://{status.get('podIP', '')}:{SIDECAR_PORT}"},
                })
        self._state["pods"] = sorted(found, key=lambda p: (p["version"], p["name"]))

    def state(self) -> dict[str, Any]:
        """The record in the shape the demo reads (``api_url``, ``front.listener_url``, ``pods``)."""
        return dict(self._state)

    async def _settle(self, objects: Objects, version: str, replicas: int) -> None:
        """Until ``version``'s Deployment is ready with ``replicas`` pods and no other pod of it is left
        (terminating ones included)."""
        deployment = ObjectRef("apps/v1", "Deployment", f"{SERVICE}-{version}", self.namespace)
        selector = f"app={SERVICE},version={version}"

        async def check() -> bool:
            found = await objects.get(deployment)
            if found is None or not _deployment_ready(found):
                return False
            pods = await objects.list(ObjectRef("v1", "Pod", "", self.namespace), label_selector=selector)
            return len(pods) == replicas

        async def problems() -> list[str]:
            return pod_problems(
                await objects.list(ObjectRef("v1", "Pod", "", self.namespace), label_selector=selector)
            )

        await self._until(f"{deployment.name} at {replicas} ready pods", check, problems,
                          time.monotonic() + self.settings.timeout)

    async def _scale(self, objects: Objects, version: str, replicas: int) -> None:
        ref = ObjectRef("apps/v1", "Deployment", f"{SERVICE}-{version}", self.namespace)
        status, data = await objects.request(
            "PATCH", ref.path(), body={"spec": {"replicas": replicas}}, content_type="application/merge-patch+json"
        )
        if status != 200:
            raise LabError(f"scaling {ref}: HTTP {status}: {data.get('message', data)}")
        await self._settle(objects, version, replicas)

    async def churn(self, version: str) -> list[str]:
        """``version``'s pods come and go: one more, one deleted, down to one, back; what was done, in order."""
        async with await connect_objects(self.settings.kubernetes) as objects:
            ref = ObjectRef("apps/v1", "Deployment", f"{SERVICE}-{version}", self.namespace)
            found = await objects.get(ref)
            if found is None:
                raise LabError(f"{ref} is gone")
            replicas = int(found["spec"]["replicas"])
            actions = []
            await self._scale(objects, version, replicas + 1)
            actions.append(f"scaled {replicas}→{replicas + 1}")
            pods = await objects.list(ObjectRef("v1", "Pod", "", self.namespace),
                                      label_selector=f"app={SERVICE},version={version}")
            victim = sorted(p["metadata"]["name"] for p in pods)[0]
            await objects.delete(ObjectRef("v1", "Pod", victim, self.namespace))
            await self._settle(objects, version, replicas + 1)
            actions.append(f"pod {victim} deleted and replaced")
            await self._scale(objects, version, 1)
            actions.append(f"scaled {replicas + 1}→1")
            await self._scale(objects, version, replicas)
            actions.append(f"scaled 1→{replicas}")
            await self._record_pods(objects)
            async with SwitchmanClient(self._state["api_url"], self._state["token"]) as client:
                await self._discovered(objects, client, time.monotonic() + self.settings.timeout)
        _write_state(self.run_dir, self._state)
        return actions

    async def stop(self) -> None:
        """Remove what ``start`` applied (what lab.json records), in reverse, and wait until it is gone."""
        await down(self.run_dir, self.settings.kubernetes, self.out, self.settings.timeout)


async def _remove_store_files(
    objects: Objects, namespace: str, path: str, node: str, image: str, timeout: float
) -> str:
    """The store's hostPath directory ``path`` on ``node``, removed by a pod of ``image`` there (the files are
    the lab's too); what happened, in words."""
    parent, name = path.rstrip("/").rsplit("/", 1)
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "store-cleanup", "namespace": namespace},
        "spec": {
            "nodeName": node, "restartPolicy": "Never", "automountServiceAccountToken": False,
            "containers": [{
                "name": "rm", "image": image, "imagePullPolicy": "IfNotPresent",
                "command": ["rm", "-rf", f"/parent/{name}"],
                "securityContext": {"runAsUser": 0, "runAsNonRoot": False, "allowPrivilegeEscalation": False},
                "volumeMounts": [{"name": "parent", "mountPath": "/parent"}],
            }],
            "volumes": [{"name": "parent", "hostPath": {"path": parent, "type": "Directory"}}],
        },
    }
    ref = ObjectRef.of(pod)
    await objects.apply(pod)
    deadline = time.monotonic() + timeout
    try:
        while True:
            found = await objects.get(ref)
            phase = ((found or {}).get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                return f"{path} removed" if phase == "Succeeded" else f"removing {path} failed (pod {ref})"
            if time.monotonic() > deadline:
                return f"{path} not removed within {timeout:.0f}s"
            await asyncio.sleep(0.25)
    finally:
        await objects.delete(ref)


async def down(run_dir: Path, kubernetes: KubernetesSettings | None = None, out: TextIO = sys.stderr,
               timeout: float = 120.0) -> list[str]:
    """Delete every object ``run_dir``'s lab.json records (in reverse), and the store's files on the node, wait
    until each is gone, remove the record. Returns what was deleted."""
    state = read_lab(run_dir)
    settings = kubernetes or KubernetesSettings(str(state.get("kubeconfig", "")), str(state.get("context", "")))
    refs = [ObjectRef.from_json(r) for r in state.get("made") or ()]
    deleted = []
    async with await connect_objects(settings) as objects:
        store = ""
        namespace = str(state["namespace"])
        if state.get("store_host_path") and await objects.get(ObjectRef("v1", "Namespace", namespace)):
            # Switchman goes first, so that nothing writes while its files go
            switchman = ObjectRef("apps/v1", "Deployment", "switchman", namespace)
            pods = await objects.list(ObjectRef("v1", "Pod", "", namespace),
                                      label_selector="app.kubernetes.io/name=switchman")
            if await objects.delete(switchman):
                deleted.append(str(switchman))
            placed = [p for p in pods if p["spec"].get("nodeName")]
            for pod in pods:
                await objects.delete(ObjectRef("v1", "Pod", pod["metadata"]["name"], namespace))
            if placed:
                store = await _remove_store_files(
                    objects, namespace, str(state["store_host_path"]), str(placed[0]["spec"]["nodeName"]),
                    str(placed[0]["spec"]["containers"][0]["image"]), timeout / 2,
                )
        for ref in reversed(refs):
            if str(ref) not in deleted and await objects.delete(ref):
                deleted.append(str(ref))
        deadline = time.monotonic() + timeout
        pending = list(refs)
        while pending:
            pending = [ref for ref in pending if await objects.get(ref) is not None]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise LabError(f"still there after {timeout:.0f}s: {', '.join(str(r) for r in pending)}")
            await asyncio.sleep(0.5)
    print(f"[lab] deleted {len(deleted)} objects" + (f"; the store's files: {store}" if store else ""), file=out)
    (run_dir / LAB_FILE).unlink(missing_ok=True)
    return deleted
