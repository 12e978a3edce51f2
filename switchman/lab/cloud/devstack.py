"""The devstack step: OpenStack on the host, over SSH, with stack.sh's log streamed as progress.

On the host (the GCE step's instance, or ``devstack.host``): the ``stack``
user with home /opt/stack, devstack checked out on ``devstack.branch``, a
local.conf (generated passwords, HOST_IP, LIBVIRT_TYPE kvm, or qemu when the
host has no /dev/kvm), then stack.sh. Its admin clouds.yaml is fetched back
next to the state file, and its ``devstack-admin`` entry feeds the OpenStack
step.

Idempotent: when keystone answers at ``http://HOST_IP/identity/v3`` nothing
is stacked again. A host the lab stacked (its marker is there) whose keystone
does not answer is an error, not a reason to stack again: stack.sh would
wipe the OpenStack resources the state file records.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable
from pathlib import Path

from switchman.errors import LabError
from switchman.lab.cloud.config import DevstackConfig
from switchman.lab.cloud.devstack_conf import (
    ADMIN_CLOUD,
    FLOATING_RANGE,
    MARKER,
    Passwords,
    admin_entry,
    host_ip_command,
    local_conf,
    parse_probe,
    prepare_script,
    probe_script,
    remove_user_script,
    stack_command,
    unstack_command,
    write_local_conf_command,
)
from switchman.lab.cloud.host import HostPaths
from switchman.lab.cloud.plan import CREATE, DELETE, KEEP, Action, RenderedFile, StepPlan
from switchman.lab.cloud.runner import Context, StatusLine
from switchman.lab.cloud.ssh import Shell, SshTarget, lab_key, open_shell
from switchman.lab.cloud.state import Record, State

__all__ = ["STEP", "DevstackStep", "admin_auth"]

STEP = "devstack"
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \| ")


def admin_auth(state: State) -> dict[str, str]:
    """The devstack's admin as openstack.connect's arguments (the password is a secret of the state)."""
    auth = {k.removeprefix("auth."): v for k, v in state.outputs.get(STEP, {}).items() if k.startswith("auth.")}
    if f"{STEP}.auth.password" in state.secrets:
        auth["password"] = state.secrets[f"{STEP}.auth.password"]
    return auth


def shown(line: str) -> str | None:
    """A line of stack.sh's output worth a progress line: not blank, not xtrace (``+ ...``), timestamp dropped."""
    text = _STAMP.sub("", line).rstrip()
    return None if not text.strip() or text.startswith("+") else text


class DevstackStep:
    name = STEP

    def __init__(self, paths: HostPaths | None = None) -> None:
        self.paths = paths or HostPaths()

    # -- where ----------------------------------------------------------------

    def _config(self, ctx: Context) -> DevstackConfig:
        if ctx.config.devstack is None:
            raise LabError("devstack: cloud.yaml has no devstack section")
        return ctx.config.devstack

    def _host_name(self, ctx: Context) -> str:
        d = self._config(ctx)
        return d.host if d.host is not None else ctx.config.host_name

    def _target(self, ctx: Context) -> SshTarget:
        d = self._config(ctx)
        key, _ = lab_key(ctx.workdir, ctx.config.name)
        if ctx.config.gce is None:
            assert d.host is not None
            return SshTarget(d.host, d.ssh_port, d.ssh_user, d.ssh_key or key, ctx.state.output(STEP, "ssh_host_key"))
        address = ctx.state.output("gce", "external_ip")
        if address is None:
            raise LabError(f"devstack: no address recorded for {ctx.config.host_name}: apply the gce step first")
        return SshTarget(address, int(ctx.state.output("gce", "ssh_port") or 22), ctx.config.gce.ssh_user, key,
                         ctx.state.output("gce", "ssh_host_key"))

    def _timeout(self, ctx: Context) -> float:
        return ctx.config.gce.boot_timeout if ctx.config.gce else 60.0

    def _clouds_file(self, ctx: Context) -> Path:
        return ctx.workdir / f"{ctx.config.name}.clouds.yaml"

    # -- plan -----------------------------------------------------------------

    def plan(self, ctx: Context) -> StepPlan:
        d = self._config(ctx)
        host = self._host_name(ctx)
        host_ip = (d.host_ip or ctx.state.output(STEP, "host_ip") or ctx.state.output("gce", "internal_ip")
                   or f"(({'the internal address' if ctx.config.gce else 'the address'} of {host}))")
        libvirt = ("kvm" if ctx.config.gce else
                   ctx.state.output(STEP, "libvirt_type") or "((kvm, or qemu when the host has no /dev/kvm))")
        clouds = self._clouds_file(ctx)
        items = [
            ("user", "stack", f"home {self.paths.stack_home}, chmod +x; passwordless sudo"),
            ("devstack", d.branch, f"stack.sh over SSH, its log streamed; skipped when keystone answers at "
                                   f"http://{host_ip}/identity/v3"),
            ("file", str(clouds), f"{self.paths.clouds_yaml} fetched back; its {ADMIN_CLOUD} feeds the openstack "
                                  "step"),
        ]
        actions = tuple(Action(KEEP, kind, name, "recorded") if ctx.state.find(STEP, kind, name)
                        else Action(CREATE, kind, name, detail) for kind, name, detail in items)
        files = (
            RenderedFile(f"{host}: prepare (run as root)", prepare_script(d, self.paths)),
            RenderedFile(f"{host}: {self.paths.stack_home}/devstack/local.conf",
                         local_conf(d, host_ip, libvirt, Passwords.placeholders(), self.paths)),
        )
        where = f"the GCE instance {host}" if ctx.config.gce else host
        return StepPlan(STEP, f"devstack {d.branch} on {where}", actions, files)

    # -- apply ----------------------------------------------------------------

    async def apply(self, ctx: Context) -> list[Action]:
        d = self._config(ctx)
        done: list[Action] = []
        async with open_shell(self._target(ctx), timeout=self._timeout(ctx),
                              progress=lambda m: ctx.progress(STEP, m)) as shell:
            if ctx.config.gce is None:
                ctx.state.set_output(STEP, "ssh_host_key", shell.host_key)
            host_ip = await self._host_ip(ctx, d, shell)
            probe = parse_probe(await shell.run("look at the host", probe_script(host_ip, self.paths)))
            libvirt = "kvm" if probe.get("kvm") else "qemu"
            ctx.state.set_output(STEP, "libvirt_type", libvirt)
            if probe.get("keystone"):
                done.append(Action(KEEP, "devstack", d.branch, f"keystone answers at http://{host_ip}/identity/v3"))
            elif probe.get("stacked"):
                raise LabError(
                    f"devstack: {shell.target.host} was stacked by the lab but keystone does not answer at "
                    f"http://{host_ip}/identity/v3: look at `systemctl status 'devstack@*'` there (a reboot stops "
                    f"devstack's services); to stack again from scratch, remove {self.paths.stack_home}/"
                    f"{MARKER} (stack.sh wipes what OpenStack holds)")
            else:
                if libvirt == "qemu":
                    ctx.progress(STEP, f"{shell.target.host} has no {self.paths.kvm}: LIBVIRT_TYPE=qemu, every VM "
                                       "emulated")
                done += await self._stack(ctx, d, shell, host_ip, libvirt)
            done.append(await self._fetch_clouds(ctx, shell))
        return done

    async def _host_ip(self, ctx: Context, d: DevstackConfig, shell: Shell) -> str:
        host_ip = d.host_ip or ctx.state.output("gce", "internal_ip")
        if host_ip is None:
            host_ip = (await shell.run("find the host's address", host_ip_command())).strip()
            try:
                ipaddress.IPv4Address(host_ip)
            except ValueError:
                raise LabError(f"devstack: cannot tell the address of {shell.target.host} (got {host_ip!r}); "
                               "set devstack.hostIp") from None
        ctx.state.set_output(STEP, "host_ip", host_ip)
        return host_ip

    async def _stack(self, ctx: Context, d: DevstackConfig, shell: Shell, host_ip: str, libvirt: str) -> list[Action]:
        done = []
        ctx.progress(STEP, f"prepare {shell.target.host}: user stack, devstack {d.branch}")
        out = await shell.run("prepare the stack user and devstack", "sudo bash -s",
                              input=prepare_script(d, self.paths))
        if "created user stack" in out:
            ctx.state.add(Record(STEP, "user", "stack", "stack"))
            done.append(Action(CREATE, "user", "stack", f"home {self.paths.stack_home}"))
        conf = local_conf(d, host_ip, libvirt, Passwords.of(ctx.state, d), self.paths)
        await shell.run("write local.conf", write_local_conf_command(self.paths), input=conf)
        # Recorded before stack.sh runs: a stopped or failed stack.sh still leaves services for destroy to stop.
        ctx.state.add(Record(STEP, "devstack", d.branch, d.branch, {"host": shell.target.host}))
        ctx.progress(STEP, f"stack.sh on {shell.target.host} (HOST_IP {host_ip}, LIBVIRT_TYPE {libvirt}); "
                           "this takes a while")
        status, tail = await shell.stream("stack.sh", stack_command(self.paths), _log(ctx), timeout=d.stack_timeout)
        if status != 0:
            raise LabError(f"devstack: stack.sh failed on {shell.target.host} (exit {status}); its last lines:"
                           + "".join(f"\n  {t}" for t in tail)
                           + f"\nthe whole log: {self.paths.stack_home}/logs/stack.sh.log on the host")
        probe = parse_probe(await shell.run("look at the host", probe_script(host_ip, self.paths)))
        if not probe.get("keystone"):
            raise LabError(f"devstack: stack.sh ended well but keystone does not answer at "
                           f"http://{host_ip}/identity/v3")
        done.append(Action(CREATE, "devstack", d.branch, f"keystone at http://{host_ip}/identity/v3"))
        return done

    async def _fetch_clouds(self, ctx: Context, shell: Shell) -> Action:
        text = await shell.run("fetch clouds.yaml", f"sudo cat {shlex.quote(self.paths.clouds_yaml)}")
        auth = admin_entry(text, f"{shell.target.host}:{self.paths.clouds_yaml}")
        ctx.state.set_secret(f"{STEP}.auth.password", auth["password"])
        for key, value in auth.items():
            if key != "password":
                ctx.state.set_output(STEP, f"auth.{key}", value)
        path = self._clouds_file(ctx)
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(0o600)
            path.write_text(text)
        if ctx.state.find(STEP, "file", str(path)):
            return Action(KEEP, "file", str(path), "fetched again")
        ctx.state.add(Record(STEP, "file", str(path), str(path)))
        if ctx.config.gce is not None:
            # The APIs are at the instance's internal address, and the floating IPs only on the instance itself.
            ctx.progress(STEP, f"devstack's APIs are at {auth['auth_url']} and the floating IPs in {FLOATING_RANGE}, "
                               f"inside GCE: the lab reaches them through {shell.target} (switchman lab cloud "
                               "proxy for kubectl and lab up)")
        return Action(CREATE, "file", str(path), f"{ADMIN_CLOUD}: {auth['auth_url']}")

    # -- status and destroy ---------------------------------------------------

    async def status(self, ctx: Context) -> list[StatusLine]:
        records = ctx.state.of_step(STEP)
        if not records:
            return []
        host_ip = ctx.state.output(STEP, "host_ip") or "?"
        try:
            async with open_shell(self._target(ctx), timeout=15, progress=lambda m: None) as shell:
                probe = parse_probe(await shell.run("look at the host", probe_script(host_ip, self.paths)))
        except LabError as exc:
            return [StatusLine(r.kind, r.name, f"host unreachable: {exc}", False) for r in records]
        lines = []
        for r in records:
            if r.kind == "devstack":
                ok = probe.get("keystone", False)
                lines.append(StatusLine(r.kind, r.name, f"keystone {'answers' if ok else 'DOES NOT ANSWER'} at "
                                                        f"http://{host_ip}/identity/v3", ok))
            elif r.kind == "file":
                there = _local(r).exists()
                lines.append(StatusLine(r.kind, r.name, "present" if there else "MISSING", there))
            else:
                lines.append(StatusLine(r.kind, r.name, "recorded"))
        return lines

    async def destroy(self, ctx: Context) -> list[Action]:
        records = list(ctx.state.reversed_of_step(STEP))
        done = []
        on_host = [r for r in records if r.kind != "file"]
        if on_host and ctx.config.gce is None:
            async with open_shell(self._target(ctx), timeout=60, progress=lambda m: ctx.progress(STEP, m)) as shell:
                for r in on_host:
                    ctx.progress(STEP, f"remove {r.kind} {r.name} from {shell.target.host}")
                    if r.kind == "devstack":
                        status, tail = await shell.stream("unstack.sh", unstack_command(self.paths), _log(ctx),
                                                          timeout=1800)
                        if status != 0:
                            raise LabError(f"devstack: unstack.sh failed on {shell.target.host} (exit {status})"
                                           + "".join(f"\n  {t}" for t in tail))
                    else:
                        await shell.run("remove the stack user", "sudo bash -s", input=remove_user_script(self.paths))
        for r in records:
            if r.kind == "file":
                _local(r).unlink(missing_ok=True)
            # On the GCE instance, what devstack made goes with the instance (the gce step deletes it next).
            detail = "goes with the GCE instance" if ctx.config.gce and r.kind != "file" else ""
            ctx.state.remove(r)
            done.append(Action(DELETE, r.kind, r.name, detail))
        ctx.state.forget_step(STEP)
        return done


def _log(ctx: Context) -> Callable[[str], None]:
    """Hands the lines of a devstack script worth showing to the progress sink."""
    def line(text: str) -> None:
        if (show := shown(text)) is not None:
            ctx.progress(STEP, show)

    return line


def _local(record: Record) -> Path:
    """The local file a ``file`` record names."""
    return Path(record.name)
