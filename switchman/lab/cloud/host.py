"""The devstack host as the lab sees it over SSH: where things are on it, and whether it can run nested VMs.

A GCE instance with nested virtualization asked for but not granted (a
machine type or CPU platform that cannot nest, an organization policy)
boots all the same and shows no ``/dev/kvm`` and no ``vmx`` flag; devstack
then falls back to emulation without a word and every nested VM is some ten
times slower. :func:`check_nesting` makes that an error instead.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, fields
from pathlib import Path

from switchman.errors import LabError
from switchman.lab.cloud.ssh import Shell

__all__ = ["HostPaths", "Nesting", "check_nesting", "nesting_script", "probe_nesting"]


@dataclass(frozen=True)
class HostPaths:
    """The paths the lab reads and writes on the host."""

    kvm: str = "/dev/kvm"
    cpuinfo: str = "/proc/cpuinfo"
    stack_home: str = "/opt/stack"  # the stack user's home and devstack's DEST
    sudoers: str = "/etc/sudoers.d/50_stack_sh"  # the name devstack's own create-stack-user.sh uses
    clouds_yaml: str = "/etc/openstack/clouds.yaml"  # where stack.sh writes it (functions-common)

    @classmethod
    def under(cls, root: Path) -> HostPaths:
        """The same paths below ``root``: a directory that stands in for a host's file system."""
        return cls(**{f.name: str(root) + getattr(cls, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Nesting:
    kvm: bool  # /dev/kvm exists
    vmx: bool  # the CPU shows Intel VT-x

    @property
    def ok(self) -> bool:
        return self.kvm and self.vmx


def nesting_script(paths: HostPaths) -> str:
    kvm, cpuinfo = shlex.quote(paths.kvm), shlex.quote(paths.cpuinfo)
    return (f"if [ -e {kvm} ]; then echo kvm=yes; else echo kvm=no; fi\n"
            f"if grep -qw vmx {cpuinfo}; then echo vmx=yes; else echo vmx=no; fi\n")


async def probe_nesting(shell: Shell, paths: HostPaths) -> Nesting:
    out = await shell.run("check nested virtualization", nesting_script(paths))
    found = dict(line.split("=", 1) for line in out.split() if "=" in line)
    return Nesting(kvm=found.get("kvm") == "yes", vmx=found.get("vmx") == "yes")


async def check_nesting(shell: Shell, paths: HostPaths, where: str, fix: str) -> Nesting:
    """The host's nesting; LabError saying what is missing and ``fix`` (what to do) when it cannot nest."""
    nesting = await probe_nesting(shell, paths)
    if not nesting.ok:
        missing = " and ".join(m for m, there in ((paths.kvm, nesting.kvm), ("the vmx CPU flag", nesting.vmx))
                               if not there)
        raise LabError(f"{where}: nested virtualization is missing on {shell.target.host}: no {missing}. "
                       f"The host booted without it and devstack would run every VM emulated (ten times slower). "
                       f"{fix}")
    return nesting
