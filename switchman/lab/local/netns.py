"""Network namespaces for the lab's pods: each pod (an app and its sidecar Envoy) gets a namespace and a veth link.

For pod ``i`` of a lab run the supervisor creates namespace ``swm-<runid>-<name>``,
a veth pair ``swv<runid><i>h`` (host side) / ``swv<runid><i>n`` (namespace side),
and a private /30 out of ``10.213.0.0/16``: ``10.213.<slot>.1`` on the host side,
``10.213.<slot>.2`` inside the namespace (``slot`` is the first third octet no
host address uses yet, so ``i`` on an otherwise idle host). ``lo`` and both
ends are brought up, and the namespace's default route goes through the host
side, so a pod reaches every host address (the control plane listens on the
first pod's host-side address). ``ip netns del`` removes the namespace and
with it the veth pair.

Every helper shells out to ``ip`` (iproute2) and needs root; :func:`require_netns`
says so up front. Only namespaces named ``swm-...`` are ever deleted.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Final

from switchman.errors import LabError

__all__ = [
    "NETNS_PREFIX",
    "POD_NETWORK",
    "Pod",
    "create_pod",
    "delete_netns",
    "delete_pods",
    "free_slots",
    "list_netns",
    "new_run_id",
    "require_netns",
]

log = logging.getLogger("switchman.lab.netns")

NETNS_PREFIX: Final = "swm-"
POD_NETWORK: Final = ipaddress.IPv4Network("10.213.0.0/16")
_IFNAME_MAX: Final = 15
_NAME_OK: Final = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True, slots=True)
class Pod:
    """One namespace with its veth link and /30."""

    netns: str
    host_if: str
    ns_if: str
    host_address: str
    address: str
    slot: int

    def to_json(self) -> dict[str, Any]:
        """The pod as ``lab.json`` records it."""
        return asdict(self)


def require_netns() -> str:
    """The path of ``ip``; LabError unless we are root and ``ip`` is installed."""
    if os.geteuid() != 0:
        raise LabError("--netns needs root (it creates network namespaces and veth pairs): run lab up as root")
    ip = shutil.which("ip")
    if ip is None:
        raise LabError("--netns needs the ip command (iproute2), which is not on PATH")
    return ip


def new_run_id() -> str:
    """A short id, unique per lab run, for namespace and interface names (6 hex digits)."""
    return secrets.token_hex(3)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    ip = shutil.which("ip")
    if ip is None:
        raise LabError("the ip command (iproute2) is not on PATH")
    result = subprocess.run([ip, *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise LabError(f"ip {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def list_netns() -> list[str]:
    """The names of every network namespace (``ip netns list``)."""
    result = _ip("netns", "list")
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def free_slots(count: int) -> list[int]:
    """``count`` third octets of ``10.213.0.0/16`` that no address on the host uses yet, lowest first."""
    used: set[int] = set()
    for line in _ip("-4", "-o", "addr", "show").stdout.splitlines():
        for word in line.split():
            try:
                iface = ipaddress.IPv4Interface(word)
            except ValueError:
                continue
            if iface.network.overlaps(POD_NETWORK):
                used.add(int(iface.ip) >> 8 & 0xFF)
    slots = [s for s in range(256) if s not in used][:count]
    if len(slots) < count:
        raise LabError(f"no free /30 left in {POD_NETWORK}")
    return slots


def create_pod(run_id: str, name: str, index: int, slot: int) -> Pod:
    """Create namespace ``swm-<run_id>-<name>`` with its veth link and /30 in ``slot``; return it.

    When a step fails, whatever was created is deleted again and LabError says what failed.
    """
    if not (_NAME_OK.match(run_id) and _NAME_OK.match(name)) or not 0 <= slot < 256:
        raise LabError(f"bad pod name {run_id!r}/{name!r} or slot {slot}")
    host_if, ns_if = f"swv{run_id}{index}h", f"swv{run_id}{index}n"
    if len(host_if) > _IFNAME_MAX:
        raise LabError(f"interface name {host_if!r} is longer than {_IFNAME_MAX} characters")
    base = int(POD_NETWORK.network_address) + (slot << 8)
    pod = Pod(
        netns=f"{NETNS_PREFIX}{run_id}-{name}",
        host_if=host_if,
        ns_if=ns_if,
        host_address=str(ipaddress.IPv4Address(base + 1)),
        address=str(ipaddress.IPv4Address(base + 2)),
        slot=slot,
    )
    try:
        _ip("netns", "add", pod.netns)
        _ip("link", "add", pod.host_if, "type", "veth", "peer", "name", pod.ns_if, "netns", pod.netns)
        _ip("addr", "add", f"{pod.host_address}/30", "dev", pod.host_if)
        _ip("link", "set", pod.host_if, "up")
        _ip("-n", pod.netns, "addr", "add", f"{pod.address}/30", "dev", pod.ns_if)
        _ip("-n", pod.netns, "link", "set", pod.ns_if, "up")
        _ip("-n", pod.netns, "link", "set", "lo", "up")
        _ip("-n", pod.netns, "route", "add", "default", "via", pod.host_address)
    except (LabError, OSError, subprocess.SubprocessError) as exc:
        delete_netns(pod.netns)
        _ip("link", "del", pod.host_if, check=False)  # in case the peer never reached the namespace
        raise LabError(f"cannot create network namespace {pod.netns}: {exc}") from None
    log.info("netns %s: %s %s <-> %s %s", pod.netns, pod.host_if, pod.host_address, pod.ns_if, pod.address)
    return pod


def delete_netns(name: str) -> bool:
    """Delete namespace ``name`` (and so its veth pair) if it exists; False when it could not be deleted.

    Refuses (LabError) any name that does not start with ``swm-``: the lab deletes only its own.
    """
    if not name.startswith(NETNS_PREFIX) or not _NAME_OK.match(name):
        raise LabError(f"refusing to delete network namespace {name!r}: not a lab namespace")
    try:
        if name not in list_netns():
            return True
        result = _ip("netns", "del", name, check=False)
    except (LabError, OSError, subprocess.SubprocessError) as exc:
        log.warning("cannot delete network namespace %s: %s", name, exc)
        return False
    if result.returncode != 0:
        log.warning("cannot delete network namespace %s: %s", name, result.stderr.strip())
        return False
    log.info("deleted netns %s", name)
    return True


def delete_pods(names: Iterable[str]) -> list[str]:
    """Delete every lab namespace in ``names`` that exists; the names that could not be deleted."""
    left = []
    for name in dict.fromkeys(names):
        if name.startswith(NETNS_PREFIX) and _NAME_OK.match(name) and not delete_netns(name):
            left.append(name)
    return left
