"""A stand-in devstack host for the cloud lab's tests: a real SSH server on 127.0.0.1 over a directory.

The directory holds what the lab reads and writes on a host
(:meth:`HostPaths.under`); ``standin/`` holds the tools that would need root
or the network (its README says what each does). The server authorizes the
lab's own key, made in the state directory as apply would make it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from switchman.lab.cloud.host import HostPaths
from switchman.lab.cloud.ssh import lab_key
from switchman.testing.sshd import ShellServer

STANDIN = Path(__file__).parent / "standin"
NAME = "demo"


@dataclass
class StandIn:
    root: Path
    state_dir: Path
    server: ShellServer
    paths: HostPaths
    progress: list[tuple[str, str]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.port

    def file(self, path: str) -> Path:
        """A path of :attr:`paths` (already below the stand-in's root) as a Path."""
        return Path(path)

    def calls(self) -> list[str]:
        """What the stand-in tools were asked to do, in order."""
        log = self.root / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def record(self, step: str, message: str) -> None:
        self.progress.append((step, message))

    def lines(self, step: str) -> list[str]:
        return [m for s, m in self.progress if s == step]


@asynccontextmanager
async def stand_in(tmp_path: Path, *, kvm: bool = True, vmx: bool = True) -> AsyncIterator[StandIn]:
    root, state_dir = tmp_path / "host", tmp_path / "state"
    paths = _lay_out(root, kvm, vmx)
    _, public = lab_key(state_dir, NAME)
    env = {**os.environ, "PATH": f"{STANDIN / 'bin'}:{os.environ['PATH']}", "FAKE_ROOT": str(root),
           "FAKE_DEVSTACK": str(STANDIN / "devstack")}
    async with ShellServer(root, public + "\n", env) as server:
        yield StandIn(root, state_dir, server, paths)


@asynccontextmanager
async def stand_in_node(root: Path, state_dir: Path) -> AsyncIterator[ShellServer]:
    """A node of the lab: a real SSH server on 127.0.0.1 over ``root`` (its own containerd of ``bin/ctr``),
    letting in the lab's key from ``state_dir``."""
    _, public = lab_key(state_dir, NAME)
    env = {**os.environ, "PATH": f"{STANDIN / 'bin'}:{_make(root)}{os.environ['PATH']}", "FAKE_ROOT": str(root)}
    async with ShellServer(root, public + "\n", env) as server:
        yield server


def _make(folder: Path) -> str:
    folder.mkdir(parents=True)
    return ""


def _lay_out(root: Path, kvm: bool, vmx: bool) -> HostPaths:
    """The host's folders, its /dev/kvm when it has one, and a /proc/cpuinfo of two CPUs."""
    paths = HostPaths.under(root)
    for folder in ("dev", "proc", "etc/sudoers.d", "opt"):
        (root / folder).mkdir(parents=True)
    if kvm:
        Path(paths.kvm).touch()
    flags = "fpu vme de pse tsc msr pae mce cx8 apic sep" + (" vmx" if vmx else "") + " sse sse2 ssse3 avx avx2"
    cpu = f"vendor_id\t: GenuineIntel\nflags\t\t: {flags}\n"
    Path(paths.cpuinfo).write_text(f"processor\t: 0\n{cpu}\nprocessor\t: 1\n{cpu}")
    return paths
