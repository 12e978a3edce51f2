"""The images step over SSH to real servers on 127.0.0.1: two nodes reached through the GCE host as a jump host.

Each node is its own asyncssh server over a directory with its own containerd
(the stand-in ``ctr`` of ``standin/bin``, which reads the image's name out of
the archive as ctr does); the host is a third one, which the nodes' connections
go through (``direct-tcpip``). The archives are real OCI-archive-shaped tars
of a few MB, uploaded with SFTP.
"""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from switchman.errors import LabError
from switchman.lab.cloud import Context, parse_config
from switchman.lab.cloud.images import ImagesStep, NodePaths
from switchman.lab.cloud.steps import open_context
from switchman.testing.sshd import ShellServer
from tests.functional.lab.cloud_host import NAME, StandIn, stand_in, stand_in_node

pytestmark = pytest.mark.timeout(60)
IMAGES = ["localhost/switchman/checkout:0.1.0", "localhost/switchman/envoy:1.40.0",
          "localhost/switchman/switchman:0.1.0"]
NODES = ("demo-master", "demo-worker-1")


def _archive(path: Path, image: str, size: int) -> None:
    """An OCI archive as buildah writes it: index.json naming the image, and a blob of ``size`` bytes."""
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "0" * 64, "size": 1,
        "annotations": {"org.opencontainers.image.ref.name": image}}]}).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in (("index.json", index), ("blobs/sha256/" + "1" * 64, bytes(range(256)) * (size // 256))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@dataclass
class Lab:
    host: StandIn
    nodes: dict[str, ShellServer]
    roots: dict[str, Path]
    folder: Path
    paths: NodePaths

    def context(self) -> Context:
        config = parse_config({
            "name": NAME,
            "gce": {"project": "switchman-lab", "zone": "us-central1-a", "machineType": "n2-standard-8",
                    "sshUser": "lab"},
            "devstack": {}, "openstack": {"flavor": {}, "image": {"name": "noble", "file": "noble.img"}},
            "kubernetes": {"images": str(self.folder)},
        })
        ctx = open_context(config, self.host.state_dir, self.host.record)
        for key, value in (("external_ip", "127.0.0.1"), ("ssh_port", str(self.host.port))):
            ctx.state.set_output("gce", key, value)
        for node in NODES:
            ctx.state.set_output("openstack", f"floating_ip/{node}", "127.0.0.1")
        return ctx

    def step(self, poll: float = 0.05) -> ImagesStep:
        return ImagesStep(lambda: IMAGES, paths=self.paths, ports={n: s.port for n, s in self.nodes.items()},
                          poll=poll)

    def containerd(self, node: str) -> list[str]:
        store = self.roots[node] / "containerd" / "images"
        return store.read_text().split() if store.exists() else []

    def imports(self, node: str) -> list[str]:
        log = self.roots[node] / "calls.log"
        calls = log.read_text().splitlines() if log.exists() else []
        return [c for c in calls if c.startswith("ctr ") and " import " in c]


@asynccontextmanager
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    folder = tmp_path / "images"
    folder.mkdir()
    for image, size in zip(IMAGES, (3_000_000, 1_500_000, 3_000_000), strict=True):
        repository, _, tag = image.rpartition(":")
        _archive(folder / f"{repository.rsplit('/', 1)[-1]}-{tag}.tar", image, size)
    shared = tmp_path / "nodes"  # the paths the step uses, the same on every node
    (shared / "var" / "tmp").mkdir(parents=True)
    boot = shared / "boot-finished"
    boot.touch()
    async with AsyncExitStack() as stack:
        host = await stack.enter_async_context(stand_in(tmp_path))
        roots = {node: tmp_path / node for node in NODES}
        nodes = {node: await stack.enter_async_context(stand_in_node(roots[node], host.state_dir)) for node in NODES}
        yield Lab(host, nodes, roots, folder, NodePaths(str(boot), str(shared / "var" / "tmp")))


def _booting(boot: Path) -> None:
    boot.unlink()


def _booted(boot: Path) -> None:
    boot.touch()


def _uploads(lab: Lab) -> list[Path]:
    return list(Path(lab.paths.upload_dir).iterdir())


async def test_apply_imports_what_each_node_lacks_through_the_host_and_a_re_apply_uploads_nothing(
        tmp_path: Path) -> None:
    async with lab(tmp_path) as lab_:
        # The master has envoy already (imported by hand, say): it gets the other two only.
        (lab_.roots["demo-master"] / "containerd").mkdir()
        (lab_.roots["demo-master"] / "containerd" / "images").write_text("localhost/switchman/envoy:1.40.0\n")
        ctx = lab_.context()
        done = await lab_.step().apply(ctx)
        assert [(a.verb, a.name) for a in done] == [
            ("+", "demo-master/localhost/switchman/checkout:0.1.0"),
            ("=", "demo-master/localhost/switchman/envoy:1.40.0"),
            ("+", "demo-master/localhost/switchman/switchman:0.1.0"),
            ("+", "demo-worker-1/localhost/switchman/checkout:0.1.0"),
            ("+", "demo-worker-1/localhost/switchman/envoy:1.40.0"),
            ("+", "demo-worker-1/localhost/switchman/switchman:0.1.0")]
        for node in NODES:
            assert sorted(lab_.containerd(node)) == IMAGES
        assert len(lab_.imports("demo-master")) == 2 and len(lab_.imports("demo-worker-1")) == 3
        # Every byte arrived (the stand-in ctr kept the size of what it imported), and the uploads are gone.
        sizes = lab_.roots["demo-worker-1"] / "containerd"
        for archive in lab_.folder.iterdir():
            name = f"localhost/switchman/{archive.stem.rsplit('-', 1)[0]}:{archive.stem.rsplit('-', 1)[1]}"
            assert (sizes / f"{name.replace('/', '_').replace(':', '_')}.size").read_text().strip() \
                == str(archive.stat().st_size)
        assert _uploads(lab_) == []
        # Reached through the host: each node's connection went through it, to the node's port.
        assert sorted(lab_.host.server.forwards) == sorted(("127.0.0.1", s.port) for s in lab_.nodes.values())
        assert lab_.host.server.commands == [], "the host only forwards"
        # Progress per node and image, with bytes and time.
        lines = lab_.host.lines("images")
        assert any(line.startswith("demo-worker-1: envoy-1.40.0.tar uploaded, 1.5 MB in ") and "MB/s" in line
                   for line in lines), lines
        assert any(line.startswith("demo-master: localhost/switchman/checkout:0.1.0 imported in ") for line in lines)
        assert "demo-master: upload envoy-1.40.0.tar (1.5 MB)" not in lines

        # Again: containerd has them all, nothing is uploaded or imported, the state file stays as it was.
        before = ctx.state.path.read_text()
        ctx = lab_.context()
        again = await lab_.step().apply(ctx)
        assert {a.verb for a in again} == {"="} and len(again) == 6
        assert len(lab_.imports("demo-master")) == 2 and len(lab_.imports("demo-worker-1")) == 3
        assert ctx.state.path.read_text() == before

        plan = lab_.step().plan(ctx)
        # Recorded: what the lab imported; the master's envoy was there before (apply finds it again).
        assert [a.verb for a in plan.actions] == ["=", "+", "=", "=", "=", "="]
        status = await lab_.step().status(ctx)
        assert [(s.name, s.status, s.ok) for s in status] == [(r.name, "in containerd", True)
                                                              for r in ctx.state.of_step("images")]
        gone = await lab_.step().destroy(ctx)
        assert {a.detail for a in gone} == {"goes with the server"} and len(gone) == 5
        assert ctx.state.of_step("images") == []


async def test_a_failed_import_shows_ctrs_message_and_removes_the_upload(tmp_path: Path) -> None:
    async with lab(tmp_path) as lab_:
        (lab_.roots["demo-master"] / "ctr-fail").touch()
        ctx = lab_.context()
        with pytest.raises(LabError) as caught:
            await lab_.step().apply(ctx)
        message = str(caught.value)
        assert message.startswith("import checkout-0.1.0.tar into containerd on 127.0.0.1 failed (exit 1)")
        assert "ctr: failed to extract layer sha256:4b1f: unexpected EOF" in message
        assert _uploads(lab_) == [] and ctx.state.of_step("images") == []

        (lab_.roots["demo-master"] / "ctr-fail").unlink()
        done = await lab_.step().apply(lab_.context())
        assert [a.verb for a in done] == ["+"] * 6


async def test_it_waits_for_cloud_init_to_finish_on_a_node(tmp_path: Path) -> None:
    async with lab(tmp_path) as lab_:
        boot = Path(lab_.paths.boot_finished)
        _booting(boot)

        async def boots() -> None:
            await asyncio.sleep(0.5)
            _booted(boot)

        booting = asyncio.create_task(boots())
        done = await lab_.step().apply(lab_.context())
        await booting
        assert len(done) == 6
        assert "demo-master: waiting for cloud-init to finish (it installs containerd)" in lab_.host.lines("images")


async def test_plan_lists_archives_and_sizes_and_a_missing_archive_says_run_scripts_images(tmp_path: Path) -> None:
    async with lab(tmp_path) as lab_:
        ctx = lab_.context()
        plan = lab_.step().plan(ctx)
        assert plan.summary.startswith("3 images (7.5 MB) into each node's containerd over SSH through the GCE host")
        assert plan.actions[1].line() == (f"+ image demo-master/localhost/switchman/envoy:1.40.0  ({lab_.folder}/"
                                          "envoy-1.40.0.tar, 1.5 MB, unless containerd has it)")
        assert len(plan.actions) == 6
        (lab_.folder / "envoy-1.40.0.tar").unlink()
        with pytest.raises(LabError, match=r"has no envoy-1.40.0.tar \(kubernetes.images\): run scripts/images first"):
            lab_.step().plan(ctx)
