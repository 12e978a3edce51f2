"""The devstack step over SSH to a real server on 127.0.0.1 whose commands run in a stand-in host.

What runs there is the step's own shell (the stack user, local.conf,
stack.sh, clouds.yaml); the tools that would need root or the network, and
devstack itself, are the stand-ins of ``standin/`` (see its README).
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import openstack
import pytest
import yaml

from switchman.errors import LabError
from switchman.lab.cloud import Context, parse_config
from switchman.lab.cloud.devstack import DevstackStep, admin_auth
from switchman.lab.cloud.gce import GceStep
from switchman.lab.cloud.runner import apply_steps, destroy_steps
from switchman.lab.cloud.steps import open_context
from switchman.testing.gce import FakeCompute
from tests.functional.lab.cloud_host import NAME, StandIn, stand_in

pytestmark = pytest.mark.timeout(60)
OPENSTACK = {"flavor": {}, "image": {"name": "noble", "file": "noble.img"}}


def _context(host: StandIn, **devstack: Any) -> Context:
    config = parse_config({"name": NAME, "devstack": {"host": "127.0.0.1", "sshPort": host.port, **devstack},
                           "openstack": OPENSTACK})
    return open_context(config, host.state_dir, host.record)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _stack_runs(host: StandIn) -> int:
    return sum("./stack.sh" in c for c in host.server.commands)


async def test_apply_stacks_once_fetches_clouds_yaml_and_destroy_unstacks(tmp_path: Path) -> None:
    async with stand_in(tmp_path) as host:
        step = DevstackStep(host.paths)
        ctx = _context(host)
        done = await step.apply(ctx)
        assert [(a.verb, a.what, a.name) for a in done] == [
            ("+", "user", "stack"), ("+", "devstack", "stable/2026.1"), ("+", "file", str(host.state_dir /
                                                                                      "demo.clouds.yaml"))]

        # The stack user: home /opt/stack made traversable, passwordless sudo; devstack cloned on the branch.
        home, sudoers = host.file(host.paths.stack_home), host.file(host.paths.sudoers)
        assert _mode(home) & 0o011 == 0o011, "chmod +x on the home Ubuntu makes 0750"
        assert sudoers.read_text() == "stack ALL=(ALL) NOPASSWD:ALL\n"
        assert _mode(sudoers) == 0o440
        assert f"git clone --branch stable/2026.1 https://opendev.org/openstack/devstack {home}/devstack" \
            in host.calls()

        # local.conf: readable by the stack user only, with the passwords the state file keeps (0600).
        conf_file = home / "devstack" / "local.conf"
        assert _mode(conf_file) == 0o600
        conf = dict(line.split("=", 1) for line in conf_file.read_text().splitlines() if "=" in line)
        secrets = ctx.state.secrets
        assert conf["ADMIN_PASSWORD"] == secrets["devstack.admin_password"]
        assert conf["DATABASE_PASSWORD"] == secrets["devstack.database_password"]
        assert conf["RABBIT_PASSWORD"] == secrets["devstack.rabbit_password"]
        assert conf["SERVICE_PASSWORD"] == secrets["devstack.service_password"]
        assert len(set(conf[k] for k in conf if k.endswith("_PASSWORD"))) == 4
        assert conf["HOST_IP"] == "10.128.0.9", "asked of the host: the default route's source address"
        assert conf["LIBVIRT_TYPE"] == "kvm"
        assert conf["LOGFILE"] == f"{home}/logs/stack.sh.log"
        assert _mode(ctx.state.path) == 0o600

        # stack.sh's output came as progress lines: its own words, without timestamps or xtrace.
        lines = host.lines("devstack")
        assert "Installing package prerequisites" in lines and "Starting Keystone" in lines
        assert "This is your host IP address: 10.128.0.9" in lines
        assert not [line for line in lines if line.startswith("+") or " | " in line]

        # clouds.yaml came back (0600), and its devstack-admin is what the OpenStack step connects with.
        fetched = host.state_dir / "demo.clouds.yaml"
        assert _mode(fetched) == 0o600
        assert yaml.safe_load(fetched.read_text())["clouds"]["devstack-admin"]["auth"]["username"] == "admin"
        assert admin_auth(ctx.state) == {
            "auth_url": "http://10.128.0.9/identity", "username": "admin", "password": conf["ADMIN_PASSWORD"],
            "project_name": "admin", "user_domain_id": "default", "project_domain_id": "default",
            "region_name": "RegionOne"}
        assert "auth.password" not in ctx.state.outputs["devstack"], "the password is a secret, not an output"
        # What the OpenStack step's admin_connection makes of it (no request is sent before authorize()).
        sdk = openstack.connect(load_yaml_config=False, load_envvars=False, **admin_auth(ctx.state))
        assert sdk.config.get_auth_args()["auth_url"] == "http://10.128.0.9/identity"
        assert sdk.config.get_region_name() == "RegionOne"

        # Again: keystone answers, so nothing is stacked or cloned again; the state file stays as it was.
        before = ctx.state.path.read_text()
        ctx = _context(host)
        again = await step.apply(ctx)
        assert [(a.verb, a.what) for a in again] == [("=", "devstack"), ("=", "file")]
        assert _stack_runs(host) == 1
        assert sum(c.startswith("git clone") for c in host.calls()) == 1
        assert ctx.state.path.read_text() == before

        plan = step.plan(ctx)
        assert {a.verb for a in plan.actions} == {"="}
        assert "HOST_IP=10.128.0.9\n" in plan.files[1].text and "((admin password))" in plan.files[1].text

        status = await step.status(ctx)
        assert all(line.ok for line in status), status
        assert "keystone answers at http://10.128.0.9/identity/v3" in [line.status for line in status]

        gone = await step.destroy(ctx)
        assert [(a.verb, a.what) for a in gone] == [("-", "file"), ("-", "devstack"), ("-", "user")]
        assert not (host.root / "keystone-up").exists(), "unstack.sh ran"
        assert "userdel -r stack" in host.calls() and not sudoers.exists()
        assert not fetched.exists()
        assert ctx.state.records == [] and not [k for k in ctx.state.secrets if k.startswith("devstack.")]


async def test_a_failing_stack_sh_shows_its_last_lines_and_a_later_apply_stacks_again(tmp_path: Path) -> None:
    async with stand_in(tmp_path) as host:
        (host.root / "fail").touch()
        ctx = _context(host)
        with pytest.raises(LabError) as caught:
            await DevstackStep(host.paths).apply(ctx)
        message = str(caught.value)
        assert message.startswith("devstack: stack.sh failed on 127.0.0.1 (exit 1); its last lines:")
        assert "[ERROR] ./stack.sh:1203 nova-api did not start" in message
        assert "step 30" in message and "step 5\n" not in message, "the last lines, not all of them"
        assert f"the whole log: {host.paths.stack_home}/logs/stack.sh.log" in message
        assert ctx.state.find("devstack", "devstack", "stable/2026.1") is not None, "destroy must unstack it"

        (host.root / "fail").unlink()
        done = await DevstackStep(host.paths).apply(_context(host))
        assert ("+", "devstack") in [(a.verb, a.what) for a in done]
        assert _stack_runs(host) == 2


async def test_a_stacked_host_whose_keystone_is_down_is_not_stacked_again(tmp_path: Path) -> None:
    async with stand_in(tmp_path) as host:
        await DevstackStep(host.paths).apply(_context(host))
        (host.root / "keystone-up").unlink()  # as after a reboot
        with pytest.raises(LabError, match="was stacked by the lab but keystone does not answer"):
            await DevstackStep(host.paths).apply(_context(host))
        assert _stack_runs(host) == 1


async def test_without_dev_kvm_devstack_emulates(tmp_path: Path) -> None:
    async with stand_in(tmp_path, kvm=False) as host:
        await DevstackStep(host.paths).apply(_context(host, hostIp="10.0.0.5"))
        conf = (host.file(host.paths.stack_home) / "devstack" / "local.conf").read_text()
        assert "LIBVIRT_TYPE=qemu\n" in conf and "HOST_IP=10.0.0.5\n" in conf
        assert any("LIBVIRT_TYPE=qemu, every VM emulated" in line for line in host.lines("devstack"))


async def test_on_the_gce_instance_then_destroyed_in_reverse(tmp_path: Path) -> None:
    async with stand_in(tmp_path) as host:
        config = parse_config({
            "name": NAME,
            "gce": {"project": "switchman-lab", "zone": "us-central1-a", "machineType": "n2-standard-8",
                    "sshUser": "lab"},
            "devstack": {}, "openstack": OPENSTACK,
        })
        fake = FakeCompute(internal_ip="10.128.0.4")
        steps = [GceStep(lambda: fake, ssh_port=host.port, paths=host.paths, poll=0), DevstackStep(host.paths)]
        ctx = open_context(config, host.state_dir, host.record)
        gce, devstack = await apply_steps(ctx, steps)
        assert [a.verb for a in gce.actions] == ["+"] and [a.verb for a in devstack.actions] == ["+", "+", "+"]
        conf = (host.file(host.paths.stack_home) / "devstack" / "local.conf").read_text()
        assert "HOST_IP=10.128.0.4\n" in conf, "the instance's internal address"
        assert admin_auth(ctx.state)["auth_url"] == "http://10.128.0.4/identity"
        assert any(line.startswith("devstack's APIs are at http://10.128.0.4/identity and the floating IPs in "
                                   "172.24.4.0/24, inside GCE: the lab reaches them through lab@127.0.0.1:")
                   for line in host.lines("devstack"))

        commands = len(host.server.commands)
        devstack, gce = await destroy_steps(ctx, steps)
        assert (devstack.step, gce.step) == ("devstack", "gce")
        assert {a.detail for a in devstack.actions if a.what != "file"} == {"goes with the GCE instance"}
        assert len(host.server.commands) == commands, "nothing to undo on a host that is deleted next"
        assert fake.instances == {} and ctx.state.records == []
