"""The GCE step against the fake Compute Engine, with its nesting check over SSH to a real server.

The fake keeps the API's contract (operations that are done after a get or
two, errors in the operation, NotFound); the instance's external address is
127.0.0.1, where a real SSH server stands in for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncssh
import pytest
from google.cloud import compute_v1

from switchman.errors import LabError
from switchman.lab.cloud import Context, parse_config
from switchman.lab.cloud.gce import GceStep
from switchman.lab.cloud.gce_api import insert_request
from switchman.lab.cloud.state import Record
from switchman.lab.cloud.steps import open_context
from switchman.testing.gce import FakeCompute
from tests.functional.lab.cloud_host import NAME, StandIn, stand_in

pytestmark = pytest.mark.timeout(60)
PROJECT, ZONE = "switchman-lab", "us-central1-a"


def _context(host: StandIn, **gce: Any) -> Context:
    config = parse_config({
        "name": NAME,
        "gce": {"project": PROJECT, "zone": ZONE, "machineType": "n2-standard-8", "bootTimeout": "30s", **gce},
        "openstack": {"cloud": "c", "flavor": {}, "image": {"name": "noble", "file": "noble.img"}},
    })
    return open_context(config, host.state_dir, host.record)


def _step(fake: FakeCompute, host: StandIn) -> GceStep:
    return GceStep(lambda: fake, ssh_port=host.port, paths=host.paths, poll=0)


async def test_apply_inserts_waits_checks_nesting_then_finds_it_and_destroy_deletes_it(tmp_path: Path) -> None:
    async with stand_in(tmp_path) as host:
        fake = FakeCompute()
        step = _step(fake, host)
        ctx = _context(host)
        (made,) = await step.apply(ctx)
        assert (made.verb, made.what, made.name) == ("+", "instance", "demo-host")

        # One insert, built as test_gce.py checks it, and the zone operation waited for until DONE.
        (insert,) = fake.calls(compute_v1.InsertInstanceRequest)
        assert insert.instance_resource.advanced_machine_features.enable_nested_virtualization
        public = (host.state_dir / "demo.id_ed25519.pub").read_text().strip()
        assert insert.instance_resource.metadata.items[0].value == f"ubuntu:{public}"
        polls = fake.calls(compute_v1.GetZoneOperationRequest)
        assert len(polls) == 2 and {(p.project, p.zone) for p in polls} == {(PROJECT, ZONE)}
        waits = [m for m in host.lines("gce") if ": operation " in m]
        assert [w.split()[-1] for w in waits] == ["PENDING", "RUNNING", "100%"]

        record = ctx.state.find("gce", "instance", "demo-host")
        (instance,) = fake.instances.values()
        assert record is not None and record.id == str(instance.id)
        assert record.data == {"project": PROJECT, "zone": ZONE}
        assert ctx.state.output("gce", "external_ip") == "127.0.0.1"
        assert ctx.state.output("gce", "internal_ip") == "10.128.0.2"
        # Nesting was checked on the host, and the host's key is pinned from now on.
        assert any(host.paths.kvm in c and host.paths.cpuinfo in c for c in host.server.commands)
        assert ctx.state.output("gce", "ssh_host_key") == host.server.public_host_key
        assert "nested virtualization works" in host.lines("gce")[-1]

        # Again: the instance is found, nothing is inserted, the state file is the same byte for byte.
        before = ctx.state.path.read_text()
        ctx = _context(host)
        (found,) = await step.apply(ctx)
        assert (found.verb, found.detail) == ("=", "exists")
        assert len(fake.calls(compute_v1.InsertInstanceRequest)) == 1
        assert ctx.state.path.read_text() == before
        assert ctx.state.path.stat().st_mode & 0o777 == 0o600

        (planned,) = step.plan(ctx).actions
        assert planned.line() == f"= instance demo-host  (recorded, id {instance.id})"

        (line,) = await step.status(ctx)
        assert line.ok and line.status == "RUNNING 127.0.0.1 (n2-standard-8)"

        (gone,) = await step.destroy(ctx)
        assert (gone.verb, gone.name) == ("-", "demo-host")
        (delete,) = fake.calls(compute_v1.DeleteInstanceRequest)
        assert (delete.project, delete.zone, delete.instance) == (PROJECT, ZONE, "demo-host")
        assert len(fake.calls(compute_v1.GetZoneOperationRequest)) == 4, "the delete's operation was waited for"
        assert fake.instances == {}
        assert ctx.state.records == [] and ctx.state.outputs == {}
        assert await step.destroy(ctx) == []


async def test_an_operation_error_is_surfaced_and_nothing_stays_recorded(tmp_path: Path) -> None:
    async with stand_in(tmp_path) as host:
        fake = FakeCompute()
        fake.fail_next_insert("ZONE_RESOURCE_POOL_EXHAUSTED", f"The zone 'projects/{PROJECT}/zones/{ZONE}' does "
                              "not have enough resources available to fulfill the request.")
        ctx = _context(host)
        with pytest.raises(LabError) as caught:
            await _step(fake, host).apply(ctx)
        assert ("gce: insert instance demo-host failed: ZONE_RESOURCE_POOL_EXHAUSTED: The zone "
                f"'projects/{PROJECT}/zones/{ZONE}' does not have enough resources") in str(caught.value)
        assert "try another gce.zone" in str(caught.value)
        assert ctx.state.records == [] and fake.instances == {}
        assert host.server.commands == [], "no instance, no SSH"


@pytest.mark.parametrize(("kvm", "vmx", "missing"), [(False, True, "/dev/kvm"), (True, False, "the vmx CPU flag"),
                                                     (False, False, "/dev/kvm and the vmx CPU flag")])
async def test_an_instance_that_cannot_nest_stops_the_apply(tmp_path: Path, kvm: bool, vmx: bool,
                                                            missing: str) -> None:
    async with stand_in(tmp_path, kvm=kvm, vmx=vmx) as host:
        ctx = _context(host)
        with pytest.raises(LabError) as caught:
            await _step(FakeCompute(), host).apply(ctx)
        message = str(caught.value)
        missing = missing.replace("/dev/kvm", host.paths.kvm)
        assert f"gce: nested virtualization is missing on 127.0.0.1: no {missing}." in message
        assert "Intel machine type that can nest" in message and "destroy and apply again" in message
        # The instance was made: it stays recorded, so destroy removes it.
        assert ctx.state.find("gce", "instance", "demo-host") is not None


async def test_an_instance_the_lab_did_not_make_is_used_or_refused_never_destroyed(tmp_path: Path) -> None:
    async with stand_in(tmp_path) as host:
        fake = FakeCompute()
        theirs = compute_v1.Instance(
            name="demo-host", status="RUNNING", machine_type=f"zones/{ZONE}/machineTypes/n2-standard-4",
            network_interfaces=[compute_v1.NetworkInterface(
                network_i_p="10.128.0.7", access_configs=[compute_v1.AccessConfig(nat_i_p="127.0.0.1")])])
        fake.instances[(PROJECT, ZONE, "demo-host")] = theirs
        with pytest.raises(LabError, match="exists without nested virtualization"):
            await _step(fake, host).apply(_context(host))

        theirs.advanced_machine_features = compute_v1.AdvancedMachineFeatures(enable_nested_virtualization=True)
        ctx = _context(host)
        (kept,) = await _step(fake, host).apply(ctx)
        assert (kept.verb, kept.detail) == ("=", "exists, made before the lab: never destroyed")
        assert ctx.state.output("gce", "internal_ip") == "10.128.0.7"
        assert await _step(fake, host).destroy(ctx) == []
        assert fake.calls(compute_v1.InsertInstanceRequest) == fake.calls(compute_v1.DeleteInstanceRequest) == []


async def test_a_host_that_shows_another_key_than_the_pinned_one_is_refused(tmp_path: Path) -> None:
    async with stand_in(tmp_path) as host:
        fake = FakeCompute()
        await _step(fake, host).apply(_context(host))
        ctx = _context(host)
        other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode().strip()
        ctx.state.set_output("gce", "ssh_host_key", other)  # as if the address now answered with another host
        with pytest.raises(LabError, match="shows another key than the one recorded"):
            await _step(fake, host).apply(ctx)


async def test_an_apply_stopped_during_the_insert_still_owns_the_instance(tmp_path: Path) -> None:
    async with stand_in(tmp_path) as host:
        fake = FakeCompute(gets_to_done=1)
        ctx = _context(host)
        # As the step leaves it when stopped after the insert: recorded first, the operation not waited for.
        ctx.state.add(Record("gce", "instance", "demo-host", "(inserting)", {"project": PROJECT, "zone": ZONE}))
        op = fake.insert_instance(insert_request(ctx.config, "ssh-ed25519 AAAA demo"))
        fake.get_operation(compute_v1.GetZoneOperationRequest(project=PROJECT, zone=ZONE, operation=op.name))

        ctx = _context(host)
        (found,) = await _step(fake, host).apply(ctx)
        assert (found.verb, found.detail) == ("=", "exists")
        (instance,) = fake.instances.values()
        record = ctx.state.find("gce", "instance", "demo-host")
        assert record is not None and record.id == str(instance.id)
        (gone,) = await _step(fake, host).destroy(ctx)
        assert gone.name == "demo-host" and fake.instances == {}
