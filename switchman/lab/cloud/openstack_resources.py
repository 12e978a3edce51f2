"""Each kind of OpenStack resource the lab records: how status looks it up and how destroy removes it.

Both go through the admin connection, by the id the state file recorded, so
destroy works even when the lab user's password is gone. Removing what is
already gone counts as done: destroy can be run again after it was stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from switchman.errors import LabError
from switchman.lab.cloud.openstack_api import Conn, NotFound, call, identity
from switchman.lab.cloud.state import Record

__all__ = ["DELETERS", "describe", "wait_gone"]

Deleter = Callable[[Conn, Record], Awaitable[None]]


async def wait_gone(what: str, get: Callable[[], Any], timeout: float, tick: Callable[[str], None]) -> None:
    """Poll ``get`` until it raises NotFound; LabError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = await call(f"look up {what}", get)
        except NotFound:
            return
        if time.monotonic() > deadline:
            raise LabError(f"openstack: {what} still there after {timeout:g}s (status {found.status})")
        tick(f"{what}: {getattr(found, 'status', 'deleting')}")
        await asyncio.sleep(1.0)


async def _server(admin: Conn, r: Record) -> None:
    await call(f"delete server {r.name}", admin.compute.delete_server, r.id, ignore_missing=True)
    await wait_gone(f"server {r.name}", lambda: admin.compute.get_server(r.id), 300, lambda _: None)


async def _keypair(admin: Conn, r: Record) -> None:
    await call(f"delete keypair {r.name}", admin.compute.delete_keypair, r.name, user_id=r.data["user_id"],
               ignore_missing=True)


async def _router_interface(admin: Conn, r: Record) -> None:
    with contextlib.suppress(NotFound):
        await call(f"detach subnet from router {r.data['router_id']}", admin.network.remove_interface_from_router,
                   r.data["router_id"], subnet_id=r.data["subnet_id"])


async def _role_assignment(admin: Conn, r: Record) -> None:
    with contextlib.suppress(NotFound):
        await call(f"unassign role {r.data['role_id']}", identity(admin).unassign_project_role_from_user,
                   r.data["project_id"], r.data["user_id"], r.data["role_id"])


async def _project(admin: Conn, r: Record) -> None:
    # Neutron makes a "default" security group in a project the first time the project uses it;
    # it is the lab's doing, so it goes with the project.
    groups = await call("list security groups", lambda: list(admin.network.security_groups(project_id=r.id)))
    for group in groups:
        await call(f"delete security group {group.name}", admin.network.delete_security_group, group.id,
                   ignore_missing=True)
    await call(f"delete project {r.name}", identity(admin).delete_project, r.id, ignore_missing=True)


def _by_id(proxy: str, method: str) -> Deleter:
    async def delete(admin: Conn, r: Record) -> None:
        fn = getattr(getattr(admin, proxy), method)
        await call(f"delete {r.kind} {r.name}", fn, r.id, ignore_missing=True)

    return delete


DELETERS: Mapping[str, Deleter] = {
    "project": _project,
    "user": _by_id("identity", "delete_user"),
    "role_assignment": _role_assignment,
    "flavor": _by_id("compute", "delete_flavor"),
    "image": _by_id("image", "delete_image"),
    "network": _by_id("network", "delete_network"),
    "subnet": _by_id("network", "delete_subnet"),
    "router": _by_id("network", "delete_router"),
    "router_interface": _router_interface,
    "security_group": _by_id("network", "delete_security_group"),
    "security_group_rule": _by_id("network", "delete_security_group_rule"),
    "keypair": _keypair,
    "floating_ip": _by_id("network", "delete_ip"),
    "server": _server,
}

_GETTERS: Mapping[str, tuple[str, str]] = {
    "project": ("identity", "get_project"),
    "user": ("identity", "get_user"),
    "flavor": ("compute", "get_flavor"),
    "image": ("image", "get_image"),
    "network": ("network", "get_network"),
    "subnet": ("network", "get_subnet"),
    "router": ("network", "get_router"),
    "security_group": ("network", "get_security_group"),
    "security_group_rule": ("network", "get_security_group_rule"),
    "floating_ip": ("network", "get_ip"),
    "server": ("compute", "get_server"),
}


async def describe(admin: Conn, r: Record) -> tuple[bool, str]:
    """(present, a few words) for a recorded resource, looked up by its id."""
    if r.kind == "keypair":
        getter: Callable[[], Any] = lambda: admin.compute.get_keypair(r.name, user_id=r.data["user_id"])  # noqa: E731
    elif r.kind in _GETTERS:
        proxy, method = _GETTERS[r.kind]
        getter = functools.partial(getattr(getattr(admin, proxy), method), r.id)
    else:
        return True, "recorded"
    try:
        found = await call(f"look up {r.kind} {r.name}", getter)
    except NotFound:
        return False, "MISSING"
    if r.kind == "server":
        return found.status == "ACTIVE", f"{found.status} {_addresses(found.addresses)}"
    if r.kind == "floating_ip":
        return True, f"{found.floating_ip_address} -> {found.fixed_ip_address or 'not associated'}"
    if r.kind == "image":
        return found.status == "active", str(found.status)
    return True, "present"


def _addresses(addresses: Mapping[str, Any] | None) -> str:
    found = [f"{a['addr']} ({a.get('OS-EXT-IPS:type', '?')})" for net in (addresses or {}).values() for a in net]
    return ", ".join(found)
