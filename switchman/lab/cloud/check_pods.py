"""What the cluster checks read of nodes and pods, and the pods they make (:mod:`.checks` runs them)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from switchman.lab.cloud.config import ChecksConfig

__all__ = [
    "HOPELESS",
    "SERVICE",
    "client_pod",
    "fill",
    "has_real_kubelet",
    "http_get",
    "node_address",
    "pod_state",
    "ready",
    "server_pod",
    "takes_pods",
]

#: The checks' Service (a NodePort in front of the server pods), resolved by its short name from a pod.
SERVICE = "web"
#: KWOK's conventions for the nodes it fakes: its annotation, and the label its examples (and k8s-local) select.
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_LABEL = ("type", "kwok")
#: kubeadm's taint of the master, which the checks' pods tolerate (so a master and one worker are two nodes).
CONTROL_PLANE_TAINT = "node-role.kubernetes.io/control-plane"
#: Why a container waits that no retry will cure: the checks say so at once instead of at their timeout.
HOPELESS = frozenset({"ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError"})


def has_real_kubelet(node: Mapping[str, Any]) -> bool:
    """Whether a kubelet runs the node's pods: not one KWOK fakes (its annotation or label), and one that reports
    a boot ID and a kubelet version (a kubelet always does; KWOK reports its own name as the version)."""
    meta = node.get("metadata", {})
    if KWOK_ANNOTATION in (meta.get("annotations") or {}):
        return False
    if (meta.get("labels") or {}).get(KWOK_LABEL[0]) == KWOK_LABEL[1]:
        return False
    info = node.get("status", {}).get("nodeInfo") or {}
    return bool(info.get("bootID")) and str(info.get("kubeletVersion", "")).startswith("v")


def ready(node: Mapping[str, Any]) -> tuple[bool, str]:
    """(Ready, why not) from the node's Ready condition."""
    for condition in node.get("status", {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            why = f"{condition.get('reason', '')}: {condition.get('message', '')}".strip(": ")
            return condition.get("status") == "True", why
    return False, "no Ready condition yet (the kubelet has not reported)"


def takes_pods(node: Mapping[str, Any]) -> str | None:
    """None when the checks' pods may go to the node, else why not (cordoned, or a taint they do not tolerate)."""
    spec = node.get("spec", {})
    if spec.get("unschedulable"):
        return "cordoned"
    for taint in spec.get("taints") or ():
        if taint.get("effect") in ("NoSchedule", "NoExecute") and taint.get("key") != CONTROL_PLANE_TAINT:
            return f"taint {taint.get('key')}:{taint.get('effect')}"
    return None


def node_address(node: Mapping[str, Any]) -> str:
    """Where to reach the node from outside: its ExternalIP, else its InternalIP, else its name."""
    found = {a.get("type"): a.get("address") for a in node.get("status", {}).get("addresses") or ()}
    return str(found.get("ExternalIP") or found.get("InternalIP") or node["metadata"]["name"])


def pod_state(pod: Mapping[str, Any]) -> str:
    """A pod's state in a few words: its container's waiting or terminated reason, else why it is not scheduled,
    else its phase."""
    if not pod:
        return "not there"
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or ():
        for key, state in (container.get("state") or {}).items():
            if key in ("waiting", "terminated"):
                code = f" (exit {state['exitCode']})" if "exitCode" in state else ""
                message = f" {state['message'].strip()}" if state.get("message") else ""
                return f"{state.get('reason') or key}:{code}{message}"
    for condition in status.get("conditions") or ():
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"Unschedulable: {condition.get('message', '')}"
    return str(status.get("phase") or "Pending")


def fill(command: Sequence[str], **values: str) -> list[str]:
    """The command with ``{url}``, ``{name}``, ``{port}`` replaced (plain replacement: shell braces stay)."""
    words = []
    for word in command:
        for key, value in values.items():
            word = word.replace(f"{{{key}}}", value)
        words.append(word)
    return words


def _pod(settings: ChecksConfig, namespace: str, name: str, node: str, role: str,
         command: Sequence[str]) -> dict[str, Any]:
    container: dict[str, Any] = {"name": role, "image": settings.image, "imagePullPolicy": settings.pull_policy}
    if command:
        container["command"] = list(command)
    spec: dict[str, Any] = {
        # pinned to the node as a DaemonSet's pods are, through the scheduler
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}},
        "tolerations": [{"key": CONTROL_PLANE_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [container],
    }
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"role": role}}, "spec": spec}


def server_pod(settings: ChecksConfig, namespace: str, name: str, node: str) -> dict[str, Any]:
    """A server on ``node``: the image's ``serve`` command on ``port``, Ready once the port takes connections."""
    pod = _pod(settings, namespace, name, node, "server", fill(settings.serve, port=str(settings.port)))
    container = pod["spec"]["containers"][0]
    container["ports"] = [{"name": "http", "containerPort": settings.port}]
    container["readinessProbe"] = {"tcpSocket": {"port": settings.port}, "periodSeconds": 1}
    return pod


def client_pod(settings: ChecksConfig, namespace: str, name: str, node: str, command: Sequence[str]) -> dict[str, Any]:
    """A one-shot pod on ``node`` running ``command`` once: its exit status is the answer, its log the words."""
    pod = _pod(settings, namespace, name, node, "client", command)
    pod["spec"]["restartPolicy"] = "Never"
    pod["spec"]["activeDeadlineSeconds"] = int(settings.timeout)
    return pod


async def http_get(url: str, within: float) -> tuple[bool, str]:
    """GET ``url`` until it answers 2xx or ``within`` seconds passed (kube-proxy takes a moment to program a
    new NodePort): (answered, its body or the last error)."""
    deadline = time.monotonic() + within
    last = ""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while True:
            try:
                async with session.get(url) as response:
                    body = " ".join((await response.text()).split())[:200]
                    if 200 <= response.status < 300:
                        return True, body
                    last = f"HTTP {response.status}: {body}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if time.monotonic() > deadline:
                return False, f"no answer within {within:g}s ({last})"
            await asyncio.sleep(0.5)
