"""After the kubeadm step's apply: wait until the nodes cloud-init set up are Ready, then run the cluster checks.

The nodes install containerd and the Kubernetes packages, then run ``kubeadm init`` or ``kubeadm join``, on
their own (cloud-init); apply waits for the API server behind the kubeconfig it wrote and for every node of the
lab to register and be Ready (``kubernetes.readyTimeout``), saying what it waits for as it changes, and then runs
:func:`~switchman.lab.cloud.checks.run_checks`, NodePorts reached at the nodes' floating IPs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from switchman.errors import LabError
from switchman.kubernetes import KubernetesSettings
from switchman.kubernetes.objects import KubernetesError, ObjectRef, Objects, connect_objects
from switchman.lab.cloud.check_pods import ready
from switchman.lab.cloud.checks import CheckResult, run_checks
from switchman.lab.cloud.config import ChecksConfig

__all__ = ["check_cluster", "wait_for_nodes"]

_POLL = 5.0


async def wait_for_nodes(objects: Objects, nodes: Sequence[str], timeout: float, say: Callable[[str], None],
                         poll: float = _POLL) -> None:
    """Return once every one of ``nodes`` is registered and Ready; LabError after ``timeout`` seconds, with
    what was still missing."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            found = {n["metadata"]["name"]: n for n in await objects.list(ObjectRef("v1", "Node", ""))}
            missing = [n for n in nodes if n not in found]
            unready = [n for n in nodes if n in found and not ready(found[n])[0]]
            if not missing and not unready:
                say(f"nodes Ready: {', '.join(nodes)}")
                return
            now = f"nodes Ready: {len(nodes) - len(missing) - len(unready)} of {len(nodes)}"
            now += f"; not registered yet: {', '.join(missing)}" if missing else ""
            now += f"; not Ready yet: {', '.join(unready)}" if unready else ""
        except KubernetesError as exc:
            now = f"the API server at {objects.server} does not answer yet ({str(exc).split(': ', 1)[-1][:120]})"
        if now != last:
            say(now)
            last = now
        if time.monotonic() > deadline:
            raise LabError(f"kubeadm: after {timeout:g}s (kubernetes.readyTimeout) {now}; look at the cloud-init "
                           "output of the nodes (/var/log/cloud-init-output.log over SSH, as the image's user with "
                           "the lab's key)")
        await asyncio.sleep(poll)


async def check_cluster(kubeconfig: Path, nodes: Sequence[str], settings: ChecksConfig, ready_timeout: float,
                        addresses: Mapping[str, str], say: Callable[[str], None]) -> list[CheckResult]:
    """Wait for ``nodes`` through ``kubeconfig``, then run the checks; LabError naming the checks that failed."""
    async with await connect_objects(KubernetesSettings(str(kubeconfig))) as objects:
        say(f"waiting for the cluster at {objects.server} (cloud-init installs the nodes, then kubeadm init and "
            "join: about 10 minutes)")
        await wait_for_nodes(objects, nodes, ready_timeout, say)
        results = await run_checks(objects, settings, expected=nodes, addresses=addresses,
                                   report=lambda result: say(result.line()))
    failed = [r.name for r in results if not r.ok]
    if failed:
        raise LabError(f"kubeadm: the cluster checks failed: {', '.join(failed)} (the lines above say what and "
                       f"where to look; `switchman lab cloud check` runs them again)")
    return results
