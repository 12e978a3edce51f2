"""The seed's cluster checks as code: nodes Ready, pod to pod across nodes, DNS from a pod, a NodePort from here.

Each check reports a line with its result and how long it took; a failure says what failed and where to look.
The checks' pods and Service live in a namespace of their own (``switchman-check-<random>``), deleted
afterwards unless asked to keep it.

Pods go only to nodes with a real kubelet (:func:`has_real_kubelet`: a KWOK node runs nothing) that take pods
(Ready, not cordoned, no taint but the control plane's, which the pods tolerate so that a master and one
worker are two nodes). One server pod on each; from each node a one-shot client pod asks every other node's
server, so every pair is tried in both directions (with one such node, its own server: pod to pod on one node,
not across nodes, and the line says so). One-shot pods rather than ``exec``: the result is the pod's exit
status and its log, which needs no streaming connection to a kubelet, and any image with an HTTP client and a
resolver will do (:class:`~switchman.lab.cloud.config.ChecksConfig`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from switchman.kubernetes.objects import KubernetesError, ObjectRef, Objects
from switchman.lab.cloud.check_pods import (
    HOPELESS,
    SERVICE,
    client_pod,
    fill,
    has_real_kubelet,
    http_get,
    node_address,
    pod_state,
    ready,
    server_pod,
    takes_pods,
)
from switchman.lab.cloud.config import ChecksConfig

__all__ = ["CheckResult", "Report", "has_real_kubelet", "run_checks"]

Report = Callable[["CheckResult"], None]


@dataclass(frozen=True)
class CheckResult:
    """One check: ``ok``, what was seen, how long it took, and on failure where to look."""

    name: str
    ok: bool
    detail: str
    seconds: float
    look_at: str = ""

    def line(self) -> str:
        head = f"{'ok' if self.ok else 'FAIL':4} {self.name} ({self.seconds:.1f}s): {self.detail}"
        return head if self.ok or not self.look_at else f"{head}\n     look at: {self.look_at}"


async def run_checks(objects: Objects, settings: ChecksConfig, *, expected: Sequence[str] = (),
                     addresses: Mapping[str, str] | None = None, report: Report | None = None,
                     namespace: str = "", keep: bool = False) -> list[CheckResult]:
    """Run the checks on the cluster ``objects`` reaches; ``expected`` names nodes that must be there,
    ``addresses`` the address to reach a node's NodePorts at (default: its ExternalIP, else InternalIP)."""
    run = _Checks(objects, settings, report or (lambda result: None),
                  namespace or f"switchman-check-{uuid.uuid4().hex[:6]}")
    nodes = await run.nodes(expected)
    if not nodes:
        return run.results
    try:
        servers = await run.servers(nodes)
        if servers:
            await run.concurrently(**{
                "pod to pod": run.pod_to_pod(servers), "DNS from a pod": run.dns(nodes[0]),
                "NodePort from here": run.node_port(nodes, dict(addresses or {}))})
    finally:
        if not keep:
            await run.clean_up()
    return run.results


class _Checks:
    def __init__(self, objects: Objects, settings: ChecksConfig, report: Report, namespace: str) -> None:
        self.objects = objects
        self.settings = settings
        self.report = report
        self.ns = namespace
        self.results: list[CheckResult] = []
        self.node_port_number = 0
        self.service_ip = ""

    def _done(self, name: str, start: float, ok: bool, detail: str, look_at: str = "") -> bool:
        result = CheckResult(name, ok, detail, time.monotonic() - start, look_at)
        self.results.append(result)
        self.report(result)
        return ok

    async def concurrently(self, **checks: Awaitable[CheckResult]) -> None:
        """Run checks at once (each times itself) and report them in the order given."""
        start = time.monotonic()
        results = await asyncio.gather(*checks.values(), return_exceptions=True)
        for name, result in zip(checks, results, strict=True):
            if isinstance(result, KubernetesError):
                result = self._result(name, start, False, str(result), "the API server's answer")
            elif isinstance(result, BaseException):
                raise result
            self.results.append(result)
            self.report(result)

    # -- nodes --------------------------------------------------------------

    async def nodes(self, expected: Sequence[str]) -> list[dict[str, Any]]:
        """The nodes Ready check; returns the nodes pods can go to."""
        start = time.monotonic()
        try:
            items = await self.objects.list(ObjectRef("v1", "Node", ""))
        except KubernetesError as exc:
            self._done("nodes Ready", start, False, f"cannot list nodes: {exc}",
                       f"the kubeconfig's server ({self.objects.server}) and its credentials")
            return []
        names = {n["metadata"]["name"]: n for n in items}
        missing = [name for name in expected if name not in names]
        unready = {name: why for name, n in names.items() for ok, why in [ready(n)] if not ok}
        usable, notes = [], []
        for name, node in sorted(names.items()):
            if not has_real_kubelet(node):
                notes.append(f"{name} has no kubelet (KWOK): no pods there")
            elif (why := takes_pods(node)) is not None:
                notes.append(f"{name} takes no pods ({why})")
            elif name not in unready:
                usable.append(node)
        detail = f"{len(names) - len(unready)} of {len(names)} Ready ({', '.join(sorted(names))})"
        look_at = ""
        if missing:
            detail += f"; not registered: {', '.join(missing)}"
            look_at = "the cloud-init output of each (/var/log/cloud-init-output.log): kubeadm join's lines"
        if unready:
            detail += "; " + "; ".join(f"{name} not Ready: {why}" for name, why in sorted(unready.items()))
            look_at = look_at or (f"kubectl describe node {next(iter(sorted(unready)))}; the kubelet's log on it "
                                  "(journalctl -u kubelet); the CNI's pods (kubectl get pods -A -o wide)")
        if not usable:
            detail += "; no Ready node with a real kubelet takes pods"
            look_at = look_at or "the nodes' taints and whether any runs a kubelet (kubectl get nodes -o wide)"
        if notes:
            detail += "; " + "; ".join(notes)
        self._done("nodes Ready", start, not (missing or unready or not usable), detail, look_at)
        return usable

    # -- server pods --------------------------------------------------------

    async def servers(self, nodes: Sequence[dict[str, Any]]) -> dict[str, tuple[str, str]]:
        """A server pod on every node, and the NodePort Service in front of them: node -> (pod, pod IP)."""
        start = time.monotonic()
        name = "server pods"
        placed = {f"server-{i}": n["metadata"]["name"] for i, n in enumerate(nodes)}
        try:
            await self.objects.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {
                "name": self.ns, "labels": {"app.kubernetes.io/managed-by": "switchman"}}})
            service = await self.objects.apply({
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVICE, "namespace": self.ns},
                "spec": {"type": "NodePort", "selector": {"role": "server"},
                         "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
            self.node_port_number = int(service["spec"]["ports"][0]["nodePort"])
            self.service_ip = str(service["spec"]["clusterIP"])
            for pod, node in placed.items():
                await self.objects.apply(server_pod(self.settings, self.ns, pod, node))
            pods = await self._wait(list(placed), lambda p: p.get("status", {}).get("phase") == "Running"
                                    and _pod_ready(p))
        except KubernetesError as exc:
            self._done(name, start, False, str(exc), "the API server's answer above")
            return {}
        late = [pod for pod in placed if not (pod in pods and _pod_ready(pods[pod]))]
        if late:
            states = await self._states(late, pods)
            self._done(name, start, False, f"not Ready within {self.settings.timeout:g}s: {states}",
                       f"whether the nodes can pull {self.settings.image} (the checks' image, imagePullPolicy "
                       f"{self.settings.pull_policy}), then the pods' events (run again with the namespace kept)")
            return {}
        servers = {placed[pod]: (pod, str(pods[pod]["status"]["podIP"])) for pod in placed}
        self._done(name, start, True, ", ".join(f"{pod} on {node} ({ip})" for node, (pod, ip) in servers.items()))
        return servers

    # -- the checks that run at once ----------------------------------------

    async def pod_to_pod(self, servers: Mapping[str, tuple[str, str]]) -> CheckResult:
        start = time.monotonic()
        nodes = list(servers)
        pairs = [(a, b) for a in nodes for b in nodes if a != b] or [(nodes[0], nodes[0])]
        asks = {f"get-{nodes.index(a)}-{nodes.index(b)}": (a, b) for a, b in pairs}
        url = f"http://{{ip}}:{self.settings.port}/"
        commands = {pod: fill(self.settings.get, url=url.format(ip=servers[b][1]))
                    for pod, (a, b) in asks.items()}
        answers = await self._one_shots({pod: (asks[pod][0], command) for pod, command in commands.items()})
        failed = [f"{a} -> {b} ({servers[b][1]}): {answers[pod][1]}" for pod, (a, b) in asks.items()
                  if not answers[pod][0]]
        seen = [f"{a} -> {b}: {answers[pod][1]}" for pod, (a, b) in asks.items()]
        note = "" if len(nodes) > 1 else "; one node takes pods: pod to pod on that node only, not across nodes"
        if failed:
            return self._result("pod to pod", start, False, "; ".join(failed) + note,
                                "the CNI: its pods (kubectl get pods -A -o wide), and between nodes its overlay "
                                "(Flannel's VXLAN, 8472/udp) through the nodes' security group")
        return self._result("pod to pod", start, True, "; ".join(seen) + note)

    async def dns(self, node: Mapping[str, Any]) -> CheckResult:
        start = time.monotonic()
        api = await self.objects.get(ObjectRef("v1", "Service", "kubernetes", "default"))
        want = {"kubernetes.default": str((api or {}).get("spec", {}).get("clusterIP", "")),
                SERVICE: self.service_ip}
        where = node["metadata"]["name"]
        pods = {f"resolve-{i}": (where, fill(self.settings.resolve, name=name)) for i, name in enumerate(want)}
        answers = await self._one_shots(pods)
        seen, failed = [], []
        for (name, ip), pod in zip(want.items(), pods, strict=True):
            ok, text = answers[pod]
            if ok and ip and ip in text.replace(",", " ").split():
                seen.append(f"{name} -> {ip}")
            else:
                failed.append(f"{name}: {text}")
        if failed:
            return self._result("DNS from a pod", start, False, "; ".join(failed) + f" (expected {want})",
                                "CoreDNS (kubectl -n kube-system get pods -l k8s-app=kube-dns) and the kube-dns "
                                "Service's ClusterIP in the pods' /etc/resolv.conf")
        return self._result("DNS from a pod", start, True, f"on {where}: " + "; ".join(seen))

    async def node_port(self, nodes: Sequence[dict[str, Any]], addresses: Mapping[str, str]) -> CheckResult:
        start = time.monotonic()
        port = self.node_port_number
        targets = {n["metadata"]["name"]: addresses.get(n["metadata"]["name"]) or node_address(n) for n in nodes}
        answers = await asyncio.gather(*(http_get(f"http://{address}:{port}/", min(30.0, self.settings.timeout))
                                         for address in targets.values()))
        lines = [f"{address}:{port} ({node}): {text}" for (node, address), (_, text) in zip(targets.items(), answers,
                                                                                             strict=True)]
        if not all(ok for ok, _ in answers):
            return self._result(f"NodePort {port} from here", start, False, "; ".join(lines),
                                "kube-proxy on those nodes, and whatever is between here and them (a security "
                                "group or firewall must let 30000-32767/tcp in)")
        return self._result(f"NodePort {port} from here", start, True, "; ".join(lines))

    def _result(self, name: str, start: float, ok: bool, detail: str, look_at: str = "") -> CheckResult:
        return CheckResult(name, ok, detail, time.monotonic() - start, look_at)

    # -- pods ---------------------------------------------------------------

    async def _one_shots(self, pods: Mapping[str, tuple[str, Sequence[str]]]) -> dict[str, tuple[bool, str]]:
        """Run one-shot client pods (name -> (node, command)); name -> (exited 0, first line of its log or why)."""
        try:
            for pod, (node, command) in pods.items():
                await self.objects.apply(client_pod(self.settings, self.ns, pod, node, command))
            found = await self._wait(list(pods), lambda p: p.get("status", {}).get("phase") in ("Succeeded", "Failed"))
        except KubernetesError as exc:
            return {pod: (False, str(exc)) for pod in pods}
        answers = {}
        for pod in pods:
            phase = found.get(pod, {}).get("status", {}).get("phase")
            if phase not in ("Succeeded", "Failed"):
                answers[pod] = (False, f"did not finish within {self.settings.timeout:g}s: "
                                       f"{await self._states([pod], found)}")
                continue
            log = (await self.objects.log(ObjectRef("v1", "Pod", pod, self.ns), tail_lines=20)).strip()
            text = " | ".join(log.splitlines()[-3:]) if phase == "Failed" else " ".join(log.split())
            answers[pod] = (phase == "Succeeded", text or f"{phase}, no output ({pod_state(found[pod])})")
        return answers

    async def _wait(self, names: Sequence[str], done: Callable[[dict[str, Any]], bool]) -> dict[str, dict[str, Any]]:
        """The pods, once each of ``names`` is ``done``, one is stuck for good, or the checks' timeout passed."""
        deadline = time.monotonic() + self.settings.timeout
        while True:
            pods = {p["metadata"]["name"]: p for p in await self.objects.list(ObjectRef("v1", "Pod", "", self.ns))}
            pending = [n for n in names if n not in pods or not done(pods[n])]
            stuck = any(pod_state(pods.get(n, {})).split(":")[0] in HOPELESS for n in pending)
            if not pending or stuck or time.monotonic() > deadline:
                return pods
            await asyncio.sleep(0.5)

    async def _states(self, names: Sequence[str], pods: Mapping[str, dict[str, Any]]) -> str:
        """Each pod's state and its latest events, for a failure's line."""
        parts = []
        for name in names:
            events = await self.objects.list(ObjectRef("v1", "Event", "", self.ns),
                                             field_selector=f"involvedObject.name={name}")
            latest = sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))[-2:]
            said = "; ".join(f"{e.get('reason')}: {e.get('message', '').strip()}" for e in latest)
            parts.append(f"{name} {pod_state(pods.get(name, {}))}" + (f" ({said})" if said else ""))
        return "; ".join(parts)

    async def clean_up(self) -> None:
        """Delete the namespace and wait (a minute at most) until it is gone."""
        ref = ObjectRef("v1", "Namespace", self.ns)
        try:
            if not await self.objects.delete(ref):
                return
            deadline = time.monotonic() + 60
            while True:
                if await self.objects.get(ref) is None or time.monotonic() > deadline:
                    return
                await asyncio.sleep(0.5)
        except KubernetesError:
            pass  # the checks' result stands; the namespace may be left behind, its name is in the lines


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions") or ())
