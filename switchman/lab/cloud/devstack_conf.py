"""What the devstack step renders and runs on the host: local.conf, the scripts, and reading back clouds.yaml.

Paths come from :class:`~switchman.lab.cloud.host.HostPaths`; every value
put into a shell line is quoted. The passwords are made once and kept in the
state file; a plan shows them as placeholders.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import yaml

from switchman.errors import LabError
from switchman.lab.cloud.config import DevstackConfig
from switchman.lab.cloud.host import HostPaths, nesting_script
from switchman.lab.cloud.pki import password
from switchman.lab.cloud.state import State

__all__ = [
    "ADMIN_CLOUD",
    "FLOATING_RANGE",
    "MARKER",
    "REPO",
    "Passwords",
    "admin_entry",
    "host_ip_command",
    "local_conf",
    "parse_probe",
    "prepare_script",
    "probe_script",
    "remove_user_script",
    "stack_command",
    "unstack_command",
    "write_local_conf_command",
]

REPO = "https://opendev.org/openstack/devstack"
USER = "stack"
ADMIN_CLOUD = "devstack-admin"  # the clouds.yaml entry stack.sh writes for admin in the admin project
FLOATING_RANGE = "172.24.4.0/24"  # devstack's default; stack.sh NATs it out of the host's default route
MARKER = ".switchman-stacked"


@dataclass(frozen=True)
class Passwords:
    admin: str
    database: str
    rabbit: str
    service: str

    @classmethod
    def placeholders(cls) -> Passwords:
        return cls("((admin password))", "((database password))", "((rabbit password))", "((service password))")

    @classmethod
    def of(cls, state: State, config: DevstackConfig) -> Passwords:
        """The lab's passwords, made and saved the first time (the admin's from cloud.yaml when it has one)."""
        def made(key: str) -> str:
            return state.secret(f"devstack.{key}_password", lambda: password(24))

        admin = config.admin_password or made("admin")
        return cls(admin, made("database"), made("rabbit"), made("service"))


def _home(paths: HostPaths) -> str:
    return shlex.quote(paths.stack_home)


def local_conf(config: DevstackConfig, host_ip: str, libvirt_type: str, p: Passwords, paths: HostPaths) -> str:
    gateway = FLOATING_RANGE.rsplit(".", 1)[0] + ".1"
    return f"""[[local|localrc]]
# devstack {config.branch} for the switchman cloud lab.
ADMIN_PASSWORD={p.admin}
DATABASE_PASSWORD={p.database}
RABBIT_PASSWORD={p.rabbit}
SERVICE_PASSWORD={p.service}
HOST_IP={host_ip}
# kvm when the host has /dev/kvm (nested virtualization); qemu emulates every VM.
LIBVIRT_TYPE={libvirt_type}
# The floating IPs of the lab's servers; stack.sh NATs them out of the host for the nested VMs.
FLOATING_RANGE={FLOATING_RANGE}
PUBLIC_NETWORK_GATEWAY={gateway}
LOGFILE={paths.stack_home}/logs/stack.sh.log
LOG_COLOR=False
# The servers boot from images: no volumes, no dashboard, no test suite.
disable_service horizon tempest c-sch c-api c-vol
"""


def prepare_script(config: DevstackConfig, paths: HostPaths) -> str:
    """As root: the ``stack`` user (home /opt/stack), its passwordless sudo, and devstack checked out in its home."""
    home, sudoers = _home(paths), shlex.quote(paths.sudoers)
    checkout = shlex.quote(f"{paths.stack_home}/devstack")
    return f"""#!/bin/bash
# The user devstack runs as, and devstack {config.branch} in its home (as devstack's create-stack-user.sh does).
set -euo pipefail
if ! getent passwd {USER} >/dev/null; then
  useradd -U -s /bin/bash -d {home} -m {USER}
  echo "created user {USER}"
fi
# Ubuntu 21.04 and later make new homes 0750; the services running as other users must traverse this one.
chmod +x {home}
( umask 226 && echo "{USER} ALL=(ALL) NOPASSWD:ALL" > {sudoers} )
if [ ! -d {checkout}/.git ]; then
  sudo -u {USER} -H git clone --branch {shlex.quote(config.branch)} {REPO} {checkout}
fi
"""


def write_local_conf_command(paths: HostPaths) -> str:
    """Writes stdin to local.conf as the stack user, readable by it only (it holds the passwords)."""
    target = shlex.quote(f"{paths.stack_home}/devstack/local.conf")
    return f"sudo -u {USER} -H sh -c {shlex.quote(f'umask 077 && cat > {target}')}"


def stack_command(paths: HostPaths) -> str:
    checkout = shlex.quote(f"{paths.stack_home}/devstack")
    marker = shlex.quote(f"{paths.stack_home}/{MARKER}")
    inner = f"cd {checkout} && ./stack.sh && date -u +%FT%TZ > {marker}"
    return f"sudo -u {USER} -H bash -c {shlex.quote(inner)}"


def unstack_command(paths: HostPaths) -> str:
    checkout = shlex.quote(f"{paths.stack_home}/devstack")
    marker = shlex.quote(f"{paths.stack_home}/{MARKER}")
    inner = f"rm -f {marker}; if [ -x {checkout}/unstack.sh ]; then cd {checkout} && ./unstack.sh; fi"
    return f"sudo -u {USER} -H bash -c {shlex.quote(inner)}"


def remove_user_script(paths: HostPaths) -> str:
    return f"""#!/bin/bash
set -euo pipefail
rm -f {shlex.quote(paths.sudoers)}
if getent passwd {USER} >/dev/null; then
  userdel -r {USER} 2>/dev/null || userdel {USER}
fi
rm -rf {_home(paths)}
"""


def host_ip_command() -> str:
    """The host's source address for the default route: what devstack would guess for HOST_IP itself."""
    return "ip -4 -o route get 1.1.1.1 | sed -n 's/.* src \\([0-9.]*\\).*/\\1/p'"


def probe_script(host_ip: str, paths: HostPaths) -> str:
    """``key=yes|no`` lines: kvm, vmx, keystone (answers at /identity/v3), stacked (the lab's marker is there)."""
    url = shlex.quote(f"http://{host_ip}/identity/v3")
    marker = shlex.quote(f"{paths.stack_home}/{MARKER}")
    return (nesting_script(paths)
            + f"if curl -fsS --max-time 10 {url} >/dev/null 2>&1; then echo keystone=yes; else echo keystone=no; fi\n"
            + f"if [ -e {marker} ]; then echo stacked=yes; else echo stacked=no; fi\n")


def parse_probe(out: str) -> dict[str, bool]:
    return {k: v == "yes" for k, v in (line.split("=", 1) for line in out.split() if "=" in line)}


def admin_entry(text: str, where: str) -> dict[str, str]:
    """The ``devstack-admin`` entry of a clouds.yaml as flat connection arguments (``auth_url``, ``password``...)."""
    try:
        doc: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LabError(f"devstack: {where} is not YAML: {exc}") from None
    entry = (doc or {}).get("clouds", {}).get(ADMIN_CLOUD) if isinstance(doc, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("auth"), dict):
        raise LabError(f"devstack: {where} has no {ADMIN_CLOUD} cloud: did stack.sh finish?")
    flat = {str(k): str(v) for k, v in entry["auth"].items()}
    if "region_name" in entry:
        flat["region_name"] = str(entry["region_name"])
    for required in ("auth_url", "username", "password"):
        if required not in flat:
            raise LabError(f"devstack: the {ADMIN_CLOUD} cloud of {where} has no {required}")
    return flat
