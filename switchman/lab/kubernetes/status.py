"""``switchman lab status`` for a lab on Kubernetes: its pods, their Envoys and the versions they ACKed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from switchman.client import ClientError, SwitchmanClient
from switchman.kubernetes import KubernetesSettings
from switchman.kubernetes.objects import KubernetesError, ObjectRef, connect_objects
from switchman.lab.kubernetes.lab import pod_ready
from switchman.lab.local.launcher import read_lab

__all__ = ["pod_rows", "print_status"]


def pod_rows(
    pods: list[dict[str, Any]], namespace: str, nodes: Mapping[str, Mapping[str, Any]]
) -> list[tuple[str, ...]]:
    """One row per pod: name, phase, ready, restarts, its Envoy's node id, whether that Envoy is connected
    and runs what it is served (synced)."""
    rows: list[tuple[str, ...]] = []
    for pod in sorted(pods, key=lambda p: str(p["metadata"]["name"])):
        name = str(pod["metadata"]["name"])
        status = pod.get("status") or {}
        restarts = sum(int(c.get("restartCount", 0)) for c in status.get("containerStatuses") or ())
        phase = "Terminating" if pod["metadata"].get("deletionTimestamp") else str(status.get("phase", "?"))
        node_id = f"{name}.{namespace}"
        envoy = nodes.get(node_id)
        has_envoy = any(c.get("name") == "envoy" for c in (pod.get("spec") or {}).get("containers") or ())
        rows.append((
            name, phase, "yes" if pod_ready(pod) else "NO", str(restarts),
            node_id if has_envoy else "-",
            ("yes" if (envoy or {}).get("synced") else "NO") if has_envoy else "-",
        ))
    return rows


async def print_status(run_dir: Path) -> int:
    """Print the lab's pods with their Envoys, and the API's view; 1 when a pod is not ready or an Envoy not
    synced, or the API does not answer."""
    from switchman.cli.get import table
    from switchman.cli.status import status_table

    state = read_lab(run_dir)
    namespace = str(state["namespace"])
    settings = KubernetesSettings(str(state.get("kubeconfig", "")), str(state.get("context", "")))
    healthy = True
    nodes: dict[str, Mapping[str, Any]] = {}
    api_url = str(state.get("api_url", ""))
    print(f"lab on {state.get('server')} in namespace {namespace} ({run_dir / 'lab.json'})")
    revision: Any = None
    if api_url:
        try:
            async with SwitchmanClient(api_url, str(state.get("token") or ""), timeout=5.0) as client:
                status = await client.status()
        except ClientError as exc:
            print(f"API {api_url}: not answering ({exc})")
            healthy = False
        else:
            revision = status.get("revision")
            nodes = {str(n.get("node_id")): n for n in status.get("nodes") or () if isinstance(n, Mapping)}
    try:
        async with await connect_objects(settings) as objects:
            pods = await objects.list(ObjectRef("v1", "Pod", "", namespace))
    except KubernetesError as exc:
        print(f"Kubernetes API: {exc}")
        return 1
    rows = pod_rows(pods, namespace, nodes)
    print(table(("POD", "PHASE", "READY", "RESTARTS", "ENVOY NODE", "SYNCED"), rows))
    healthy = healthy and bool(rows) and all(r[2] == "yes" and r[5] != "NO" for r in rows)
    print()
    if nodes:
        print(status_table(list(nodes.values())))
        print()
    print(f"API:   {api_url}  serving revision {revision}; {len(nodes)} Envoys connected")
    print(f"front: {state.get('front_url', '')}  <- send traffic here")
    return 0 if healthy else 1
