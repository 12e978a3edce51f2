"""``switchman lab cloud check``: the cluster checks, on the lab's cluster (``-f``) or on any (``--kubeconfig``).

Nodes Ready, pod to pod across nodes, DNS from a pod, a NodePort from here: a line each with its result and
time; exit 1 when one fails. The image and the commands its pods run come from ``kubernetes.checks`` of
cloud.yaml, each replaceable by an option (a cluster that cannot pull busybox takes an image of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shlex
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from switchman.cli.config import add_switch
from switchman.cli.options import option, seconds, whole_number
from switchman.errors import ConfigError, LabError

if TYPE_CHECKING:
    from switchman.lab.cloud.checks import CheckResult
    from switchman.lab.cloud.config import ChecksConfig

__all__ = ["add_check_parser"]

KUBECONFIG_ENV = "SWITCHMAN_LAB_CLOUD_KUBECONFIG"
#: The image's own entrypoint, as --serve's value.
ENTRYPOINT = "-"


def add_check_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                     common: Callable[[argparse.ArgumentParser], None]) -> None:
    check = sub.add_parser(
        "check", help="the cluster checks: nodes Ready, pod to pod across nodes, DNS from a pod, a NodePort from here",
        description="Run the cluster checks on the lab's cluster (its kubeconfig in the state dir) or, with "
        "--kubeconfig, on any cluster. Their pods and Service go in a namespace of their own, deleted afterwards. "
        "Exit 1 when a check fails.",
    )
    common(check)
    option(check, "--kubeconfig", KUBECONFIG_ENV, "", "check this cluster instead of the lab's (-f is then not read)")
    option(check, "--image", "SWITCHMAN_LAB_CLOUD_CHECK_IMAGE", "",
           "the checks' image (else cloud.yaml's kubernetes.checks.image, else busybox:1.28)")
    option(check, "--pull-policy", "SWITCHMAN_LAB_CLOUD_CHECK_PULL_POLICY", "",
           "its imagePullPolicy: IfNotPresent, Always or Never")
    option(check, "--serve", "SWITCHMAN_LAB_CLOUD_CHECK_SERVE", "",
           f"the server pods' command, shell words ({{port}} filled in); {ENTRYPOINT!r}: the image's entrypoint")
    option(check, "--port", "SWITCHMAN_LAB_CLOUD_CHECK_PORT", "", "the port the server pods answer HTTP on")
    option(check, "--get", "SWITCHMAN_LAB_CLOUD_CHECK_GET", "", "the HTTP client's command, shell words with {url}")
    option(check, "--resolve", "SWITCHMAN_LAB_CLOUD_CHECK_RESOLVE", "",
           "the resolver's command, shell words with {name}")
    option(check, "--timeout", "SWITCHMAN_LAB_CLOUD_CHECK_TIMEOUT", "",
           "seconds each check's pods may take (pulling the image included)")
    add_switch(check, "--keep", "SWITCHMAN_LAB_CLOUD_CHECK_KEEP", "keep the checks' namespace, to look at its pods")
    check.set_defaults(run=run_check)


def _words(text: str, flag: str, needs: str) -> tuple[str, ...]:
    try:
        words = tuple(shlex.split(text))
    except ValueError as exc:
        raise ConfigError(flag, f"{text!r} is not shell words: {exc}") from None
    if needs and not any(needs in word for word in words):
        raise ConfigError(flag, f"{text!r} has no {needs} (where the check puts what to ask for)")
    return words


def overrides(base: ChecksConfig, args: argparse.Namespace) -> ChecksConfig:
    """``base`` with what the options give instead."""
    changes: dict[str, object] = {}
    if args.image:
        changes["image"] = args.image
    if args.pull_policy:
        if args.pull_policy not in ("IfNotPresent", "Always", "Never"):
            raise ConfigError("--pull-policy", f"{args.pull_policy!r} is not IfNotPresent, Always or Never")
        changes["pull_policy"] = args.pull_policy
    if args.serve:
        changes["serve"] = () if args.serve == ENTRYPOINT else _words(args.serve, "--serve", "")
    if args.port:
        port = whole_number(args.port, "--port", 1)
        if port > 65535:
            raise ConfigError("--port", f"{port} is not a port")
        changes["port"] = port
    if args.get:
        changes["get"] = _words(args.get, "--get", "{url}")
    if args.resolve:
        changes["resolve"] = _words(args.resolve, "--resolve", "{name}")
    if args.timeout:
        changes["timeout"] = seconds(args.timeout, "--timeout")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _target(args: argparse.Namespace) -> tuple[Path, ChecksConfig, list[str], dict[str, str]]:
    """(kubeconfig, the checks' settings, the nodes that must be there, their NodePort addresses)."""
    from switchman.lab.cloud import load_config
    from switchman.lab.cloud.config import ChecksConfig
    from switchman.lab.cloud.kubeadm import kubeconfig_path
    from switchman.lab.cloud.steps import open_context

    if args.kubeconfig:
        return Path(args.kubeconfig), ChecksConfig(), [], {}
    config = load_config(Path(args.f))
    if config.kubernetes is None:
        raise ConfigError(f"{args.f}: kubernetes", "missing: the lab makes no cluster to check (or give --kubeconfig)")
    ctx = open_context(config, Path(args.state_dir))
    path = kubeconfig_path(ctx)
    if not path.exists():
        raise LabError(f"no kubeconfig at {path}: apply the lab first, or give --kubeconfig")
    nodes = [node for node, _ in config.nodes()]
    addresses = {n: ip for n in nodes if (ip := ctx.state.output("openstack", f"floating_ip/{n}"))}
    return path, config.kubernetes.checks, nodes, addresses


async def _check(kubeconfig: Path, settings: ChecksConfig, nodes: Sequence[str], addresses: Mapping[str, str],
                 namespace: str, keep: bool) -> list[CheckResult]:
    from switchman.kubernetes import KubernetesSettings
    from switchman.kubernetes.objects import connect_objects
    from switchman.lab.cloud.checks import run_checks

    async with await connect_objects(KubernetesSettings(str(kubeconfig))) as objects:
        print(f"checking {objects.server} (namespace {namespace}, image {settings.image})", flush=True)
        return await run_checks(objects, settings, expected=nodes, addresses=addresses, namespace=namespace,
                                keep=keep, report=lambda result: print(result.line(), flush=True))


async def _through_tunnel(args: argparse.Namespace, check: Callable[[Path], Awaitable[list[CheckResult]]],
                          kubeconfig: Path) -> list[CheckResult]:
    """The checks of the lab's cluster through its proxy when the cluster is behind the GCE host."""
    if args.kubeconfig:
        return await check(kubeconfig)
    from switchman.cli.lab_cloud import through_tunnel
    from switchman.lab.cloud import load_config
    from switchman.lab.cloud.reach import proxied_kubeconfig, proxy_url
    from switchman.lab.cloud.steps import open_context

    ctx = open_context(load_config(Path(args.f)), Path(args.state_dir))

    async def proxied() -> list[CheckResult]:
        proxy = await proxy_url(ctx)
        return await check(kubeconfig if proxy is None else proxied_kubeconfig(kubeconfig, proxy))

    return await through_tunnel(ctx, proxied)


def run_check(args: argparse.Namespace) -> int:
    kubeconfig, base, nodes, addresses = _target(args)
    settings = overrides(base, args)
    namespace = f"switchman-check-{uuid.uuid4().hex[:6]}"
    start = time.monotonic()
    results = asyncio.run(_through_tunnel(args, lambda path: _check(path, settings, nodes, addresses, namespace,
                                                                    args.keep), kubeconfig))
    passed = sum(r.ok for r in results)
    print(f"{passed} of {len(results)} checks passed in {time.monotonic() - start:.1f}s"
          + (f"; namespace {namespace} kept (kubectl delete namespace {namespace})" if args.keep else ""))
    return 0 if results and passed == len(results) else 1
