"""The k8s-local cluster (../shared/k8s-local, level 2) that the Kubernetes tests and benchmarks run against.

``SWITCHMAN_TEST_KUBECONFIG`` names its admin kubeconfig (``$K8S_LOCAL_STATE/admin.kubeconfig``). Besides
the API (through the real ``kubernetes.aio`` client), a test may restart the API server as ``up`` started it
(same command line, directory and environment; the new PID is recorded where ``down`` looks, so ``down``
still stops it) and compact etcd.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

from kubernetes.aio import client, config

from switchman.testing.wait import until

__all__ = ["ENV", "Cluster", "open_cluster"]

#: The variable that names the cluster's admin kubeconfig (what ``up 2`` prints).
ENV = "SWITCHMAN_TEST_KUBECONFIG"
#: The finalizer that keeps a deleted pod terminating (Cluster.hold).
HOLD = "switchman.test/hold"


def _argv(pid: int) -> tuple[list[str], str, dict[str, str]]:
    proc = Path(f"/proc/{pid}")
    argv = [a.decode() for a in proc.joinpath("cmdline").read_bytes().split(b"\0") if a]
    env = dict(
        item.decode().split("=", 1) for item in proc.joinpath("environ").read_bytes().split(b"\0") if b"=" in item
    )
    return argv, os.readlink(proc / "cwd"), env


class _Model(Protocol):
    @classmethod
    def from_dict(cls: type[_M], obj: dict[str, Any] | None) -> _M | None: ...


_M = TypeVar("_M", bound=_Model)


def _model(cls: type[_M], body: dict[str, Any]) -> _M:
    """The client's model of ``body`` (the API's JSON, camelCase), checked by its pydantic model."""
    found = cls.from_dict(body)
    assert found is not None
    return found


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


class Cluster:
    """One test's view of the cluster: a namespace of its own, the API clients, and the parts it may restart."""

    def __init__(self, kubeconfig: str, api_client: client.ApiClient, namespace: str) -> None:
        self.kubeconfig = kubeconfig
        self.state = Path(kubeconfig).parent
        self.api_client = api_client
        self.namespace = namespace
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.discovery = client.DiscoveryV1Api(api_client)

    # -- objects ---------------------------------------------------------------

    async def service(self, name: str, selector: dict[str, str] | None, port_name: str = "http") -> None:
        spec: dict[str, Any] = {"ports": [{"name": port_name, "port": 80, "targetPort": 8080}]}
        if selector is not None:
            spec["selector"] = selector
        await self.core.create_namespaced_service(
            self.namespace, _model(client.V1Service, {"metadata": {"name": name}, "spec": spec})
        )

    async def deployment(self, name: str, labels: dict[str, str], replicas: int) -> None:
        """A Deployment whose pods KWOK runs (Running with a fake IP, ready at once)."""
        body: dict[str, Any] = {
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "nodeSelector": {"type": "kwok"},
                        "containers": [{"name": "app", "image": "app", "ports": [{"containerPort": 8080}]}],
                        "terminationGracePeriodSeconds": 0,
                    },
                },
            },
        }
        await self.apps.create_namespaced_deployment(self.namespace, _model(client.V1Deployment, body))

    async def scale(self, name: str, replicas: int) -> None:
        await self.apps.patch_namespaced_deployment_scale(name, self.namespace, {"spec": {"replicas": replicas}})

    async def pods(self, selector: str) -> dict[str, str]:
        """The Running pods that match a label selector: name -> pod IP."""
        pods = await self.core.list_namespaced_pod(self.namespace, label_selector=selector)
        return {
            p.metadata.name: p.status.pod_ip for p in pods.items
            if p.metadata is not None and p.metadata.name and p.status is not None and p.status.pod_ip
            and p.status.phase == "Running" and p.metadata.deletion_timestamp is None
        }

    async def make_unready(self, pod: str) -> None:
        """Set the pod's Ready condition to False, as a kubelet does when a readiness probe fails (KWOK leaves
        it so): the EndpointSlice controller then lists the pod as not ready."""
        found = await self.core.read_namespaced_pod(pod, self.namespace)
        assert found.status is not None
        conditions = [
            {"type": c.type, "status": "False" if c.type in ("Ready", "ContainersReady") else c.status}
            for c in found.status.conditions or ()
        ]
        await self.core.patch_namespaced_pod_status(pod, self.namespace, {"status": {"conditions": conditions}})

    async def delete_pod(self, pod: str, grace_seconds: int = 0) -> None:
        await self.core.delete_namespaced_pod(pod, self.namespace, grace_period_seconds=grace_seconds)

    async def hold(self, pod: str) -> None:
        """Give the pod a finalizer: deleted, it stays terminating until :meth:`release`."""
        await self.core.patch_namespaced_pod(pod, self.namespace, {"metadata": {"finalizers": [HOLD]}})

    async def release(self, pod: str) -> None:
        """Take :meth:`hold`'s finalizer away (a deleted pod then goes)."""
        try:
            await self.core.patch_namespaced_pod(pod, self.namespace, {"metadata": {"finalizers": None}})
        except client.ApiException as exc:
            if exc.status != 404:
                raise

    async def ready_ips(self, service: str) -> list[str]:
        """The addresses the EndpointSlice controller lists as ready for ``service``."""
        slices = await self.discovery.list_namespaced_endpoint_slice(
            self.namespace, label_selector=f"kubernetes.io/service-name={service}"
        )
        return sorted(
            e.addresses[0] for s in slices.items for e in s.endpoints or ()
            if e.conditions is None or e.conditions.ready is not False
        )

    async def write_slice(self, name: str, service: str, endpoints: list[dict[str, Any]]) -> None:
        """Create or replace an EndpointSlice of a selector-less Service, as a controller of one's own would."""
        body: dict[str, Any] = {
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service,
                                                  "endpointslice.kubernetes.io/managed-by": "switchman-tests"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints,
        }
        try:
            current = await self.discovery.read_namespaced_endpoint_slice(name, self.namespace)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            await self.discovery.create_namespaced_endpoint_slice(self.namespace, _model(client.V1EndpointSlice, body))
            return
        assert current.metadata is not None
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        await self.discovery.replace_namespaced_endpoint_slice(
            name, self.namespace, _model(client.V1EndpointSlice, body)
        )

    async def touch(self) -> None:
        """A write that moves the cluster's resourceVersion on, touching no EndpointSlice."""
        await self.core.create_namespaced_config_map(
            self.namespace,
            _model(client.V1ConfigMap, {"metadata": {"generateName": "touch-"}, "data": {"at": str(time.time())}}),
        )

    # -- the API server and etcd -----------------------------------------------

    def _pid_file(self) -> Path:
        return self.state / "pids" / "kube-apiserver.pid"

    async def stop_api_server(self) -> tuple[list[str], str, dict[str, str]]:
        """Kill kube-apiserver (SIGKILL: lost, as in a crash; SIGTERM would drain for a minute) and wait until
        it is gone; returns what starts it again."""
        pid = int(self._pid_file().read_text())
        started = _argv(pid)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _alive(pid):
            if time.monotonic() > deadline:
                raise AssertionError(f"kube-apiserver (PID {pid}) still runs 30 s after SIGKILL")
            await asyncio.sleep(0.05)
        return started

    async def start_api_server(self, started: tuple[list[str], str, dict[str, str]]) -> None:
        """Start kube-apiserver as before (``down`` stops it by the PID recorded), and wait until it is ready."""
        argv, cwd, env = started
        # As up's start(): detached (setsid, in the background of a shell that exits), so that it is no child
        # of this process; its PID where down looks.
        log = self.state / "logs" / "kube-apiserver.log"
        shell = await asyncio.to_thread(
            subprocess.run,
            ["sh", "-c", 'log=$1; shift; setsid "$@" >>"$log" 2>&1 </dev/null & echo $!', "sh", str(log), *argv],
            cwd=cwd, env=env, check=True, capture_output=True, text=True,
        )
        self._pid_file().write_text(shell.stdout.strip() + "\n")
        await until(self._api_ready, 60, "kube-apiserver /readyz")

    async def _api_ready(self) -> bool:
        try:
            await self.core.list_namespaced_config_map(self.namespace, limit=1)
        except Exception:
            return False
        return True

    @staticmethod
    def etcd_url(started: tuple[list[str], str, dict[str, str]]) -> str:
        """The etcd that kube-apiserver (as ``stop_api_server`` returned it) uses."""
        argv = started[0]
        return argv[argv.index("--etcd-servers") + 1].split(",")[0]

    @staticmethod
    def compact_etcd(etcd: str) -> int:
        """Compact etcd's history up to its current revision (what the API server's 410 Gone comes from)."""

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            request = urllib.request.Request(f"{etcd}{path}", data=json.dumps(body).encode(), method="POST")
            with urllib.request.urlopen(request, timeout=5) as reply:
                result: dict[str, Any] = json.loads(reply.read())
                return result

        revision = int(post("/v3/kv/range", {"key": "Lw=="})["header"]["revision"])
        post("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision



async def open_cluster(kubeconfig: str) -> AsyncIterator[Cluster]:
    """A Cluster with a fresh namespace, deleted afterwards."""
    configuration = client.Configuration()
    await config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, client_configuration=configuration, persist_config=False)
    api_client = client.ApiClient(configuration)
    namespace = f"sw-{uuid.uuid4().hex[:8]}"
    cluster = Cluster(kubeconfig, api_client, namespace)
    await cluster.core.create_namespace(_model(client.V1Namespace, {"metadata": {"name": namespace}}))
    try:

        async def service_account() -> bool:
            return bool((await cluster.core.list_namespaced_service_account(namespace)).items)

        # Up to a minute and more after an API server restart: kube-controller-manager relists first.
        await until(service_account, 120, "the default ServiceAccount")
        yield cluster
    finally:
        try:
            await cluster.core.delete_namespace(namespace)
        finally:
            await api_client.close()  # type: ignore[no-untyped-call]
