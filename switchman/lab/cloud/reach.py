"""How the lab reaches what it made: the GCE host directly, the nodes at their floating IPs, through the host.

devstack's floating IPs (``FLOATING_RANGE``) exist only on the host that runs
it: stack.sh NATs them out of that host and nothing routes them from
elsewhere. So with a GCE host the nodes are reached through an SSH connection
to it (a jump host, as ``ssh -J``), logging in as the image's user
(``openstack.image.sshUser``) with the lab's key, which the OpenStack step put
in the servers' keypair. Without one (an OpenStack of the user's own) the
floating IPs are taken to be reachable from here.

A node's host key is trusted the first time and pinned in the state after
that, as the host's is.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncssh
import yaml

from switchman.errors import LabError
from switchman.lab.cloud.runner import Context
from switchman.lab.cloud.ssh import Shell, SshTarget, lab_key, open_shell
from switchman.lab.cloud.tunnel import Tunnel

__all__ = ["behind_host", "host_target", "lab_tunnel", "node_address", "open_host", "open_node", "proxied_kubeconfig",
           "proxy_url"]


def behind_host(ctx: Context) -> bool:
    """Whether devstack's APIs and floating IPs are reached through the GCE host (they are inside GCE)."""
    return ctx.config.gce is not None and ctx.config.devstack is not None


def host_target(ctx: Context) -> SshTarget:
    """The GCE host as the GCE step recorded it; LabError before that step ran."""
    gce = ctx.config.gce
    address = ctx.state.output("gce", "external_ip")
    if gce is None or address is None:
        raise LabError(f"no address recorded for {ctx.config.host_name}: apply the gce step first")
    key, _ = lab_key(ctx.workdir, ctx.config.name)
    return SshTarget(address, int(ctx.state.output("gce", "ssh_port") or 22), gce.ssh_user, key,
                     ctx.state.output("gce", "ssh_host_key"))


def node_address(ctx: Context, node: str) -> str:
    address = ctx.state.output("openstack", f"floating_ip/{node}")
    if address is None:
        raise LabError(f"no floating IP recorded for {node}: apply the openstack step first")
    return address


@contextlib.asynccontextmanager
async def open_host(ctx: Context, say: Callable[[str], None],
                    timeout: float = 60.0) -> AsyncIterator[asyncssh.SSHClientConnection | None]:
    """The connection to the GCE host when the nodes are behind it, else None."""
    if not behind_host(ctx):
        yield None
        return
    async with open_shell(host_target(ctx), timeout=timeout, progress=say) as host:
        yield host.conn


@contextlib.asynccontextmanager
async def open_node(ctx: Context, step: str, node: str, *, port: int = 22, timeout: float = 600.0,
                    via: asyncssh.SSHClientConnection | None = None) -> AsyncIterator[Shell]:
    """A shell on ``node`` (through ``via``, the host, when given); its host key pinned in ``step``'s outputs."""
    key, _ = lab_key(ctx.workdir, ctx.config.name)
    pinned = ctx.state.output(step, f"ssh_host_key/{node}")
    target = SshTarget(node_address(ctx, node), port, ctx.config.openstack.image.ssh_user, key, pinned)
    async with open_shell(target, timeout=timeout, progress=lambda m: ctx.progress(step, f"{node}: {m}"),
                          tunnel=via) as shell:
        ctx.state.set_output(step, f"ssh_host_key/{node}", shell.host_key)
        yield shell


def lab_tunnel(ctx: Context, port: int = 0) -> Tunnel:
    """The proxy through the GCE host for one run; it connects when a step first asks for it."""

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[asyncssh.SSHClientConnection]:
        async with open_shell(host_target(ctx), timeout=60, progress=lambda m: ctx.progress("tunnel", m)) as host:
            yield host.conn

    return Tunnel(connect, lambda: str(host_target(ctx)), port, lambda m: ctx.progress("tunnel", m))


async def proxy_url(ctx: Context) -> str | None:
    """The proxy to reach devstack and the floating IPs by, when they are behind the host (else None)."""
    if ctx.tunnel is None or not behind_host(ctx):
        return None
    return await ctx.tunnel.url()


def proxied_kubeconfig(source: Path, proxy: str) -> Path:
    """``<name>.proxy.kubeconfig`` beside ``source``: the same, each cluster with ``proxy-url`` (kubectl and the
    Kubernetes client then reach the API server through the lab's proxy)."""
    config = yaml.safe_load(source.read_text())
    for cluster in config.get("clusters", []):
        cluster["cluster"]["proxy-url"] = proxy
    path = source.with_name(source.name.replace(".kubeconfig", ".proxy.kubeconfig"))
    path.touch(0o600)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
