"""``switchman lab cloud proxy``: the lab's proxy through the GCE host, kept open for kubectl and ``lab up``.

devstack's APIs and the nodes' floating IPs (the Kubernetes API server's among them) exist only inside GCE.
This opens the SSH connection to the host, listens on 127.0.0.1 (``--port``), writes
``<name>.proxy.kubeconfig`` (the lab's kubeconfig with ``proxy-url``), prints what to export, and keeps
going until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path

from switchman.cli.options import option, whole_number
from switchman.errors import ConfigError, LabError

__all__ = ["add_proxy_parser"]


def add_proxy_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                     common: Callable[[argparse.ArgumentParser], None]) -> None:
    proxy = sub.add_parser(
        "proxy", help="keep a proxy to devstack and the cluster open (through the GCE host), for kubectl and lab up",
        description="Open the lab's HTTP proxy through an SSH connection to the GCE host, write "
        "<name>.proxy.kubeconfig (the lab's kubeconfig with proxy-url) and print what to export; until Ctrl-C.",
    )
    common(proxy)
    option(proxy, "--port", "SWITCHMAN_LAB_CLOUD_PROXY_PORT", "8118", "the port on 127.0.0.1 to listen on")
    proxy.set_defaults(run=run_proxy)


async def _serve(args: argparse.Namespace) -> None:
    from switchman.lab.cloud import PrintProgress, load_config
    from switchman.lab.cloud.kubeadm import kubeconfig_path
    from switchman.lab.cloud.reach import behind_host, lab_tunnel, proxied_kubeconfig
    from switchman.lab.cloud.steps import open_context

    config = load_config(Path(args.f))
    ctx = open_context(config, Path(args.state_dir), PrintProgress())
    if not behind_host(ctx):
        raise ConfigError(f"{args.f}: gce", "missing: without a GCE host nothing is behind one (no proxy needed)")
    port = whole_number(args.port, "--port", 0)
    tunnel = lab_tunnel(ctx, port)
    try:
        url = await tunnel.url()
        print(f"proxy {url} through {config.gce.ssh_user if config.gce else ''}@"
              f"{ctx.state.output('gce', 'external_ip')} (Ctrl-C ends it)")
        print(f"export HTTP_PROXY={url} HTTPS_PROXY={url}   # openstack CLI, curl")
        kubeconfig = kubeconfig_path(ctx)
        if kubeconfig.exists():
            print(f"export KUBECONFIG={proxied_kubeconfig(kubeconfig, url)}   # kubectl; lab up --kubernetes "
                  "--kubeconfig")
        else:
            print(f"(no {kubeconfig} yet: apply the lab, then run this again for a kubeconfig)")
        await asyncio.Event().wait()  # until Ctrl-C
    finally:
        await tunnel.aclose()


def run_proxy(args: argparse.Namespace) -> int:
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise LabError(f"proxy: {exc}") from exc
    return 0
