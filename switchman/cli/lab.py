"""``switchman lab up|status|down``: a local lab (serve, a front Envoy, pods of app + sidecar) in the background.

``lab up`` starts a detached supervisor (:mod:`switchman.lab.local.supervisor`)
that owns every process of the lab and returns once the Envoys run the
initial config; ``lab status`` reads the run dir's ``lab.json`` and asks the
API; ``lab down`` stops the supervisor and waits until every recorded process
is gone.

``lab up --netns`` (root, iproute2) runs each pod, app and sidecar, in its own
network namespace with a veth link to the host; ``lab down`` deletes the
namespaces, also those a killed supervisor left behind.

``lab up --kubernetes`` deploys the same topology into a namespace of its own on a Kubernetes cluster
(:mod:`switchman.lab.kubernetes.lab`), Switchman included; ``lab status`` and ``lab down`` tell the two
apart by the run dir's ``lab.json``.

``lab cloud plan|apply|status|destroy`` is the nested cloud lab (:mod:`switchman.cli.lab_cloud`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from switchman.cli import lab_cloud
from switchman.cli.config import add_switch
from switchman.cli.options import option, seconds
from switchman.errors import ConfigError

if TYPE_CHECKING:
    from switchman.lab.kubernetes.lab import KubernetesLabSettings

__all__ = ["add_parser", "run_down", "run_status", "run_up"]

RUN_DIR_ENV = "SWITCHMAN_LAB_RUN_DIR"
NETNS_ENV = "SWITCHMAN_LAB_NETNS"
DEFAULT_RUN_DIR = "runs/lab"


def _run_dir_option(parser: argparse.ArgumentParser) -> None:
    option(parser, "--run-dir", RUN_DIR_ENV, DEFAULT_RUN_DIR, "where the lab keeps lab.json, its store and its logs")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``lab`` and its three subcommands."""
    parser = sub.add_parser(
        "lab", help="a local lab in the background: switchman serve, a front Envoy, pods with sidecar Envoys",
        description="A local lab: switchman serve, a front Envoy, and N pods, each a checkout app (v1 and v2 taking "
        "turns) with its sidecar Envoy, owned by one supervisor process that runs in the background. Every Envoy "
        "is configured through the API. Killing the supervisor stops them all.",
    )
    lab_sub = parser.add_subparsers(dest="lab_command", required=True)
    up = lab_sub.add_parser("up", help="start the lab and return once the Envoys run its config")
    option(
        up, "--envoys", "SWITCHMAN_LAB_ENVOYS", "2",
        "sidecar Envoys, one per pod; the pods take turns between checkout v1 and v2, so at least 2 "
        "(the front Envoy comes on top)",
    )
    _run_dir_option(up)
    option(up, "--timeout", "SWITCHMAN_LAB_TIMEOUT", "90", "seconds to wait for the lab to come up")
    add_switch(
        up, "--netns", NETNS_ENV,
        "run each pod (app and sidecar) in its own network namespace with a veth link (10.213.0.0/16); "
        "needs root and ip",
    )
    kubernetes_options(up)
    up.set_defaults(run=run_up)
    status = lab_sub.add_parser(
        "status", help="the lab's processes, Envoys and URLs",
        description="Each process of the lab (alive or not), the API's view of the Envoys, and the URLs. "
        "Exits 1 when a process is gone or the API does not answer.",
    )
    _run_dir_option(status)
    status.set_defaults(run=run_status)
    down = lab_sub.add_parser("down", help="stop the lab and wait until every process is gone")
    _run_dir_option(down)
    option(down, "--timeout", "SWITCHMAN_LAB_DOWN_TIMEOUT", "20", "seconds before what is left gets SIGKILL")
    down.set_defaults(run=run_down)
    lab_cloud.add_parser(lab_sub)


def kubernetes_options(parser: argparse.ArgumentParser) -> None:
    """``--kubernetes`` and how to reach the cluster (``lab up`` and ``demo``)."""
    add_switch(
        parser, "--kubernetes", "SWITCHMAN_LAB_KUBERNETES",
        "on a Kubernetes cluster instead: Switchman, the front Envoy and checkout v1/v2 with sidecars in a "
        "namespace of the lab's own (images from scripts/images)",
    )
    option(parser, "--kubeconfig", "SWITCHMAN_KUBECONFIG", "", "the cluster's kubeconfig (--kubernetes)")
    option(parser, "--kube-context", "SWITCHMAN_KUBE_CONTEXT", "", "its context (default: its current one)")
    option(parser, "--namespace", "SWITCHMAN_LAB_NAMESPACE", "switchman-lab", "the lab's namespace (--kubernetes)")
    option(
        parser, "--address", "SWITCHMAN_LAB_ADDRESS", "",
        "where this machine reaches the cluster's NodePorts (--kubernetes; default: a node's ExternalIP, else "
        "its InternalIP)",
    )


def kubernetes_lab_settings(args: argparse.Namespace, timeout: float) -> KubernetesLabSettings:
    """The KubernetesLabSettings the options name."""
    from switchman.kubernetes import KubernetesSettings
    from switchman.lab.kubernetes.lab import KubernetesLabSettings

    if not args.kubernetes and (args.kubeconfig or args.kube_context):
        raise ConfigError("--kubeconfig", "is for --kubernetes, which is off")
    return KubernetesLabSettings(
        KubernetesSettings(args.kubeconfig, args.kube_context), namespace=args.namespace, address=args.address,
        timeout=timeout,
    )


def _is_kubernetes(run_dir: Path) -> bool:
    from switchman.lab.kubernetes.lab import KIND
    from switchman.lab.local.launcher import LAB_FILE, read_lab

    return (run_dir / LAB_FILE).exists() and read_lab(run_dir).get("kind") == KIND


def _run_up_kubernetes(args: argparse.Namespace) -> int:
    from switchman.lab.kubernetes.lab import KubernetesLab
    from switchman.lab.local.launcher import LAB_FILE

    run_dir = Path(args.run_dir)
    lab = KubernetesLab(run_dir, kubernetes_lab_settings(args, seconds(args.timeout, "--timeout")))
    try:
        state = asyncio.run(lab.start())
    except BaseException:
        print(f"lab up failed: what it applied is recorded in {run_dir / LAB_FILE}; `switchman lab down` removes it",
              file=sys.stderr)
        raise
    print(f"lab up on {state['server']} in namespace {state['namespace']} ({run_dir / LAB_FILE})")
    print(f"API:   {state['api_url']}  (token in {run_dir / LAB_FILE})")
    print(f"front: {state['front_url']}  <- send traffic here")
    for pod in state["pods"]:
        print(f"pod {pod['name']} ({pod['version']}): sidecar {pod['sidecar']['url']}")
    return 0


def _urls(lab: Mapping[str, Any]) -> list[str]:
    front = lab.get("front") or {}
    lines = [
        f"API:   {lab.get('api_url', '')}  (xDS {lab.get('xds_address', '')})",
        f"front: {front.get('listener_url', '')}  (admin {front.get('admin_url', '')})  <- send traffic here",
    ]
    for pod in lab.get("pods") or ():
        sidecar = pod.get("sidecar") or {}
        where = f" in netns {pod['netns']}" if pod.get("netns") else ""
        lines.append(
            f"pod {pod.get('name')}: sidecar {sidecar.get('url', '')} (admin {sidecar.get('admin_url', '')}), "
            f"app on the pod's port {pod.get('app', {}).get('port')}{where}"
        )
    return lines


def run_up(args: argparse.Namespace) -> int:
    """Start the lab in the background (or on Kubernetes); print its URLs."""
    if args.kubernetes:
        return _run_up_kubernetes(args)
    from switchman.lab.local.launcher import LAB_FILE, start_lab
    from switchman.lab.topology import VERSIONS

    try:
        envoys = int(args.envoys)
    except ValueError:
        raise ConfigError("--envoys", f"{args.envoys!r} is not a whole number") from None
    if envoys < len(VERSIONS):
        raise ConfigError("--envoys", f"a lab needs at least {len(VERSIONS)} sidecars: one pod per checkout version")
    run_dir = Path(args.run_dir)
    lab = start_lab(run_dir, envoys, seconds(args.timeout, "--timeout"), netns=bool(args.netns))
    print(f"lab up in {run_dir} (supervisor pid {lab['supervisor']['pid']}; {run_dir / LAB_FILE})")
    for line in _urls(lab):
        print(line)
    for pod in lab.get("netns") or ():
        print(f"netns {pod['netns']}: {pod['address']} (host side {pod['host_if']} {pod['host_address']})")
    return 0


async def _api_status(api_url: str) -> dict[str, Any]:
    from switchman.client import SwitchmanClient

    async with SwitchmanClient(api_url, timeout=5.0) as client:
        return dict(await client.status())


def run_status(args: argparse.Namespace) -> int:
    """Print each process, the API's status summary and the URLs; 1 when something is not running."""
    from switchman.cli.get import table
    from switchman.cli.status import status_table
    from switchman.client import ClientError
    from switchman.lab.local.launcher import lab_processes, pid_alive, read_lab

    run_dir = Path(args.run_dir)
    if _is_kubernetes(run_dir):
        from switchman.lab.kubernetes.status import print_status

        return asyncio.run(print_status(run_dir))
    lab = read_lab(run_dir)
    rows = []
    healthy = True
    for entry in lab_processes(lab):
        alive = pid_alive(int(entry["pid"]))
        healthy = healthy and alive
        rows.append((str(entry["name"]), str(entry["pid"]), "yes" if alive else "NO", str(entry.get("log", ""))))
    print(f"lab in {run_dir}")
    print(table(("PROCESS", "PID", "ALIVE", "LOG"), rows))
    print()
    api_url = str(lab.get("api_url", ""))
    try:
        status = asyncio.run(_api_status(api_url))
    except ClientError as exc:
        print(f"API {api_url}: not answering ({exc})")
        healthy = False
    else:
        nodes = [n for n in status.get("nodes") or () if isinstance(n, Mapping)]
        synced = sum(1 for n in nodes if n.get("synced"))
        print(f"API {api_url}: serving revision {status.get('revision')}; Envoys: {len(nodes)} connected, "
              f"{synced} synced")
        if nodes:
            print(status_table(nodes))
    print()
    for line in _urls(lab):
        print(line)
    return 0 if healthy else 1


def run_down(args: argparse.Namespace) -> int:
    """Stop the lab; report what stopped and what had to be killed."""
    from switchman.errors import LabError
    from switchman.lab.local.launcher import LAB_FILE, cleanup_netns, lab_starting, stop_lab

    run_dir = Path(args.run_dir)
    if _is_kubernetes(run_dir):
        from switchman.lab.kubernetes.lab import down

        deleted = asyncio.run(down(run_dir, timeout=seconds(args.timeout, "--timeout") * 6))
        print(f"lab down: deleted {', '.join(deleted) or 'nothing (already gone)'}")
        return 0
    if not (run_dir / LAB_FILE).exists() and lab_starting(run_dir):
        raise LabError(f"a lab is starting in {run_dir}: wait until lab up returns, then lab down")
    if not (run_dir / LAB_FILE).exists():
        print(f"no lab running in {run_dir} ({LAB_FILE} not found)")
        removed = cleanup_netns(run_dir)  # left by a supervisor killed before lab.json was written
        if removed:
            print(f"deleted stale network namespaces: {', '.join(removed)}")
        return 0
    stopped, killed = stop_lab(run_dir, seconds(args.timeout, "--timeout"))
    print(f"lab down: {len(stopped) + len(killed)} processes gone ({', '.join(stopped + killed)})")
    if killed:
        print(f"killed with SIGKILL after the timeout: {', '.join(killed)}")
    return 0
