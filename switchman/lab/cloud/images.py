"""The images step: Switchman's images into every node's containerd, for ``switchman lab up --kubernetes``.

The lab's pods run ``localhost/switchman/...`` images with imagePullPolicy
IfNotPresent: no registry holds them, so each node's containerd must have
them already (its ``k8s.io`` namespace, where the kubelet looks).
``scripts/images`` writes them as OCI archives, ``<repository>-<tag>.tar``
in ``kubernetes.images`` (``runs/images``). For each node (over SSH as
:mod:`.reach` says, through the GCE host when there is one), this step asks
containerd which of them it has (``ctr -n k8s.io images ls -q``), uploads
each missing archive with SFTP to a temporary path, imports it
(``ctr -n k8s.io images import``), checks containerd now lists the image,
and removes the upload, also when the import failed. A re-apply finds every
image and uploads nothing. What it imported goes with the servers: destroy
only forgets it.

It runs after the kubeadm step, and waits on each node for cloud-init to
have finished (containerd is installed and restarted by it).
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from switchman.errors import LabError
from switchman.lab.cloud.plan import CREATE, DELETE, KEEP, Action, RenderedFile, StepPlan
from switchman.lab.cloud.reach import behind_host, open_host, open_node
from switchman.lab.cloud.runner import Context, StatusLine
from switchman.lab.cloud.ssh import Shell
from switchman.lab.cloud.state import Record

__all__ = ["STEP", "Archive", "ImagesStep", "NodePaths", "archives", "lab_images"]

STEP = "images"
LS = "sudo ctr -n k8s.io images ls -q"
_BOOTING = "((cloud-init still running))"
# How often an upload reports, at most (and at its end).
_EVERY = 5.0


@dataclass(frozen=True)
class NodePaths:
    boot_finished: str = "/var/lib/cloud/instance/boot-finished"  # cloud-init writes it when it is done
    upload_dir: str = "/var/tmp"  # on disk, unlike a /tmp that may be tmpfs: archives are hundreds of MB


@dataclass(frozen=True)
class Archive:
    image: str
    path: Path

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def lab_images() -> list[str]:
    """The images ``switchman lab up --kubernetes`` runs: those its manifests (deploy/kubernetes) name."""
    from switchman.lab.kubernetes.manifests import load, manifests_dir

    objects = load(manifests_dir() / "switchman") + load(manifests_dir() / "lab")
    pods = [o["spec"]["template"]["spec"] for o in objects if o.get("kind") == "Deployment"]
    return sorted({c["image"] for pod in pods for c in pod.get("containers", []) + pod.get("initContainers", [])})


def archive_name(image: str) -> str:
    """scripts/images' archive of ``image``: ``localhost/switchman/envoy:1.40.0`` -> ``envoy-1.40.0.tar``."""
    repository, _, tag = image.rpartition(":")
    return f"{repository.rsplit('/', 1)[-1]}-{tag}.tar"


def archives(folder: Path, images: list[str]) -> list[Archive]:
    """Each image's archive in ``folder``; LabError naming those that are not there."""
    found = [Archive(image, folder / archive_name(image)) for image in images]
    missing = [a.path.name for a in found if not a.path.is_file()]
    if missing:
        raise LabError(f"images: {folder} has no {', '.join(missing)} (kubernetes.images): run scripts/images "
                       "first, which builds them and writes them there")
    return found


def megabytes(size: float) -> str:
    return f"{size / 1e6:.1f} MB"


def node_script(paths: NodePaths, archive: Archive) -> str:
    """What the step runs on a node for one archive it lacks (the plan shows it)."""
    remote = upload_path(paths, archive)
    return (f"{LS}   # which images containerd has\n"
            f"# sftp put {archive.path} {remote}\n"
            f"sudo ctr -n k8s.io images import {shlex.quote(remote)}\n"
            f"rm -f {shlex.quote(remote)}\n")


def upload_path(paths: NodePaths, archive: Archive) -> str:
    return f"{paths.upload_dir}/switchman-{archive.path.name}"


class ImagesStep:
    name = STEP

    def __init__(self, images: Callable[[], list[str]] = lab_images, *, paths: NodePaths | None = None,
                 ports: Mapping[str, int] | None = None, poll: float = 10.0) -> None:
        self.images = images
        self.paths = paths or NodePaths()
        self.ports = dict(ports or {})  # each node's SSH port: 22 unless given
        self.poll = poll

    def _archives(self, ctx: Context) -> list[Archive]:
        k = ctx.config.kubernetes
        if k is None or k.images is None:
            return []
        return archives(k.images, self.images())

    def plan(self, ctx: Context) -> StepPlan:
        found = self._archives(ctx)
        actions = []
        for node, _ in ctx.config.nodes():
            for a in found:
                name = f"{node}/{a.image}"
                verb, detail = ((KEEP, "recorded") if ctx.state.find(STEP, "image", name) else
                                (CREATE, f"{a.path}, {megabytes(a.size)}, unless containerd has it"))
                actions.append(Action(verb, "image", name, detail))
        total = sum(a.size for a in found)
        via = " through the GCE host" if behind_host(ctx) else ""
        summary = (f"{len(found)} images ({megabytes(total)}) into each node's containerd over SSH{via} as "
                   f"{ctx.config.openstack.image.ssh_user}: what lab up --kubernetes runs")
        files = tuple(RenderedFile(f"each node: {a.path.name}", node_script(self.paths, a)) for a in found)
        return StepPlan(STEP, summary, tuple(actions), files)

    async def apply(self, ctx: Context) -> list[Action]:
        found = self._archives(ctx)
        if not found:
            return []
        k = ctx.config.kubernetes
        assert k is not None
        done: list[Action] = []
        async with open_host(ctx, lambda m: ctx.progress(STEP, m)) as host:
            for node, _ in ctx.config.nodes():
                async with open_node(ctx, STEP, node, port=self.ports.get(node, 22), via=host,
                                     timeout=ctx.config.openstack.server_timeout) as shell:
                    have = await self._containerd(ctx, node, shell, k.ready_timeout)
                    for archive in found:
                        done.append(await self._one(ctx, node, shell, archive, have))
        return done

    async def _containerd(self, ctx: Context, node: str, shell: Shell, timeout: float) -> set[str]:
        """The images containerd has on ``node``, once cloud-init finished there (it installs containerd)."""
        deadline = time.monotonic() + timeout
        script = (f"if [ -e {shlex.quote(self.paths.boot_finished)} ]; then {LS}; "
                  f"else echo {shlex.quote(_BOOTING)}; fi")
        said = False
        while True:
            out = await shell.run("list containerd's images", script)
            if _BOOTING not in out:
                return set(out.split())
            if time.monotonic() > deadline:
                raise LabError(f"images: cloud-init still running on {node} after {timeout:g}s "
                               "(kubernetes.readyTimeout): look at its /var/log/cloud-init-output.log")
            if not said:
                ctx.progress(STEP, f"{node}: waiting for cloud-init to finish (it installs containerd)")
                said = True
            await asyncio.sleep(self.poll)

    async def _one(self, ctx: Context, node: str, shell: Shell, archive: Archive, have: set[str]) -> Action:
        name = f"{node}/{archive.image}"
        if archive.image in have:
            return Action(KEEP, "image", name, "containerd has it")
        remote = upload_path(self.paths, archive)
        size = archive.size
        ctx.progress(STEP, f"{node}: upload {archive.path.name} ({megabytes(size)})")
        start = last = time.monotonic()

        def report(copied: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= _EVERY and copied < total:
                last = now
                ctx.progress(STEP, f"{node}: {archive.path.name} {megabytes(copied)} of {megabytes(total)} "
                                   f"({copied / (now - start) / 1e6:.1f} MB/s)")

        remove = f"rm -f {shlex.quote(remote)}"
        try:
            await shell.upload(f"upload {archive.path.name}", archive.path, remote, report)
            took = time.monotonic() - start
            ctx.progress(STEP, f"{node}: {archive.path.name} uploaded, {megabytes(size)} in {took:.1f}s "
                               f"({size / max(took, 1e-3) / 1e6:.1f} MB/s)")
            start = time.monotonic()
            await shell.run(f"import {archive.path.name} into containerd",
                            f"sudo ctr -n k8s.io images import {shlex.quote(remote)}")
        except BaseException:
            with contextlib.suppress(LabError):  # the upload goes in any case; the first error is the one to see
                await shell.run("remove the upload", remove)
            raise
        await shell.run("remove the upload", remove)
        listed = set((await shell.run("list containerd's images", LS)).split())
        if archive.image not in listed:
            raise LabError(f"images: {archive.path} imported on {node}, but containerd lists no {archive.image}: "
                           "the archive holds another image (run scripts/images again)")
        ctx.progress(STEP, f"{node}: {archive.image} imported in {time.monotonic() - start:.1f}s")
        ctx.state.add(Record(STEP, "image", name, archive.image, {"archive": str(archive.path)}))
        return Action(CREATE, "image", name, f"{megabytes(size)} from {archive.path.name}")

    async def status(self, ctx: Context) -> list[StatusLine]:
        records = ctx.state.of_step(STEP)
        if not records:
            return []
        by_node: dict[str, set[str]] = {}
        try:
            async with open_host(ctx, lambda m: None, timeout=15) as host:
                for node in sorted({r.name.split("/", 1)[0] for r in records}):
                    async with open_node(ctx, STEP, node, port=self.ports.get(node, 22), via=host,
                                         timeout=15) as shell:
                        by_node[node] = set((await shell.run("list containerd's images", LS)).split())
        except LabError as exc:
            return [StatusLine(r.kind, r.name, f"node unreachable: {exc}", False) for r in records]
        lines = []
        for r in records:
            there = r.id in by_node.get(r.name.split("/", 1)[0], set())
            lines.append(StatusLine(r.kind, r.name, "in containerd" if there else "MISSING from containerd", there))
        return lines

    async def destroy(self, ctx: Context) -> list[Action]:
        done = []
        for r in list(ctx.state.reversed_of_step(STEP)):
            ctx.state.remove(r)
            done.append(Action(DELETE, r.kind, r.name, "goes with the server"))
        ctx.state.forget_step(STEP)
        return done
