"""The GCE step: one Compute Engine instance with nested virtualization, to host devstack; proven to nest.

apply looks the instance up by name and inserts it only when it is not there
(recorded in the state file before the insert, so an interrupted apply still
owns it), waits for the zone operation and for the instance to run, then logs
in over SSH and checks ``/dev/kvm`` and the ``vmx`` flag: an instance that
was granted no nesting boots all the same, and would stack a devstack that
emulates every VM. Its addresses and SSH host key go to the state's outputs
for the devstack step. destroy deletes exactly the recorded instance (its
boot disk goes with it) and waits for the operation.
"""

from __future__ import annotations

import asyncio
import time

from google.cloud import compute_v1

from switchman.errors import LabError
from switchman.lab.cloud.config import GceConfig
from switchman.lab.cloud.gce_api import (
    Compute,
    ComputeFactory,
    GoogleCompute,
    NotFound,
    OperationFailed,
    call,
    delete_request,
    get_request,
    insert_request,
    instance_name,
    request_json,
    wait_operation,
)
from switchman.lab.cloud.host import HostPaths, check_nesting, nesting_script
from switchman.lab.cloud.plan import CREATE, DELETE, KEEP, Action, RenderedFile, StepPlan
from switchman.lab.cloud.runner import Context, StatusLine
from switchman.lab.cloud.ssh import SshTarget, lab_key, open_shell
from switchman.lab.cloud.state import Record

__all__ = ["STEP", "GceStep"]

STEP = "gce"
PLACEHOLDER_KEY = "((the lab's SSH public key))"
_BOOTING = ("PROVISIONING", "STAGING")


class GceStep:
    name = STEP

    def __init__(self, compute: ComputeFactory = GoogleCompute, *, ssh_port: int = 22,
                 paths: HostPaths | None = None, poll: float = 2.0) -> None:
        self.compute = compute
        self.ssh_port = ssh_port
        self.paths = paths or HostPaths()
        self.poll = poll

    def plan(self, ctx: Context) -> StepPlan:
        g = _gce(ctx)
        name = instance_name(ctx.config)
        record = ctx.state.find(STEP, "instance", name)
        platform = f", {g.min_cpu_platform} or later" if g.min_cpu_platform else ""
        image = f"{g.image_project}/{g.image_family}" + (" with the enable-vmx license" if g.vmx_license else "")
        action = (Action(KEEP, "instance", name, f"recorded, id {record.id}") if record else
                  Action(CREATE, "instance", name, f"{g.machine_type}{platform}, nested virtualization, {image}, "
                                                   f"{g.disk_gb} GB {g.disk_type}"))
        files = (RenderedFile(f"{name}: instances.insert request",
                              request_json(insert_request(ctx.config, PLACEHOLDER_KEY))),
                 RenderedFile(f"{name}: nesting check, run over SSH after boot", nesting_script(self.paths)))
        return StepPlan(STEP, f"instance {name} in project {g.project}, zone {g.zone}; after boot /dev/kvm and vmx "
                        f"are checked over SSH as {g.ssh_user}", (action,), files)

    async def apply(self, ctx: Context) -> list[Action]:
        g = _gce(ctx)
        compute = await call("connect to Compute Engine", self.compute)
        name = instance_name(ctx.config)
        try:
            instance = await call(f"look up instance {name}", compute.get_instance, get_request(ctx.config))
        except NotFound:
            instance = None
        if instance is None:
            instance = await self._insert(ctx, compute, g, name)
            done = Action(CREATE, "instance", name, f"id {instance.id}")
        else:
            if not instance.advanced_machine_features.enable_nested_virtualization:
                raise LabError(f"gce: instance {name} exists without nested virtualization; delete it, or give the "
                               "lab another name")
            record = ctx.state.find(STEP, "instance", name)
            if record is not None and record.id != str(instance.id):  # an apply stopped before it learned the id
                ctx.state.add(Record(STEP, "instance", name, str(instance.id), record.data))
            owner = "" if record else ", made before the lab: never destroyed"
            done = Action(KEEP, "instance", name, f"exists{owner}")
        instance = await self._running(ctx, compute, g, instance)
        nic = instance.network_interfaces[0]
        if not nic.access_configs or not nic.access_configs[0].nat_i_p:
            raise LabError(f"gce: instance {name} has no external address to reach it over SSH")
        external, internal = nic.access_configs[0].nat_i_p, nic.network_i_p
        for key, value in (("external_ip", external), ("internal_ip", internal), ("ssh_port", str(self.ssh_port))):
            ctx.state.set_output(STEP, key, value)
        await self._check(ctx, g, external)
        return [done]

    async def _insert(self, ctx: Context, compute: Compute, g: GceConfig, name: str) -> compute_v1.Instance:
        _, public = lab_key(ctx.workdir, ctx.config.name)
        request = insert_request(ctx.config, public)
        # Recorded first: an apply stopped during the insert still owns what it made, and destroy finds it by name.
        record = Record(STEP, "instance", name, "(inserting)", {"project": g.project, "zone": g.zone})
        ctx.state.add(record)
        ctx.progress(STEP, f"insert instance {name} ({g.machine_type}, nested virtualization)")
        try:
            op = await call(f"insert instance {name}", compute.insert_instance, request)
        except (LabError, NotFound):
            ctx.state.remove(record)  # the API refused the insert: nothing was made
            raise
        # Only a failed operation unrecords it: after a timeout or a lost connection the instance may still come.
        try:
            await wait_operation(compute, op, g.project, g.zone, f"insert instance {name}", timeout=g.boot_timeout,
                                 poll=self.poll, progress=lambda m: ctx.progress(STEP, m))
        except OperationFailed:
            ctx.state.remove(record)
            raise
        instance = await call(f"look up instance {name}", compute.get_instance, get_request(ctx.config))
        ctx.state.add(Record(STEP, "instance", name, str(instance.id), record.data))
        return instance

    async def _running(self, ctx: Context, compute: Compute, g: GceConfig,
                       instance: compute_v1.Instance) -> compute_v1.Instance:
        deadline = time.monotonic() + g.boot_timeout
        shown = ""
        while instance.status in _BOOTING:
            if instance.status != shown:
                ctx.progress(STEP, f"instance {instance.name}: {instance.status}")
                shown = instance.status
            if time.monotonic() > deadline:
                raise LabError(f"gce: instance {instance.name} still {instance.status} after {g.boot_timeout:g}s "
                               "(gce.bootTimeout)")
            await asyncio.sleep(self.poll)
            instance = await call(f"look up instance {instance.name}", compute.get_instance, get_request(ctx.config))
        if instance.status != "RUNNING":
            raise LabError(f"gce: instance {instance.name} is {instance.status}, not RUNNING: start it "
                           f"(gcloud compute instances start {instance.name} --zone {g.zone}) and apply again")
        return instance

    async def _check(self, ctx: Context, g: GceConfig, address: str) -> None:
        key, _ = lab_key(ctx.workdir, ctx.config.name)
        target = SshTarget(address, self.ssh_port, g.ssh_user, key, ctx.state.output(STEP, "ssh_host_key"))
        fix = ("Nesting needs an Intel machine type that can nest (N2, or N1 with gce.minCpuPlatform Haswell or "
               "later) and no organization policy constraints/compute.disableNestedVirtualization"
               + ("" if g.vmx_license else "; gce.vmxLicense: true adds the older enable-vmx image license")
               + ". Fix cloud.yaml, then destroy and apply again.")
        async with open_shell(target, timeout=g.boot_timeout, progress=lambda m: ctx.progress(STEP, m)) as shell:
            ctx.state.set_output(STEP, "ssh_host_key", shell.host_key)
            await check_nesting(shell, self.paths, STEP, fix)
        ctx.progress(STEP, f"{address}: /dev/kvm and vmx present: nested virtualization works")

    async def status(self, ctx: Context) -> list[StatusLine]:
        records = ctx.state.of_step(STEP)
        if not records:
            return []
        compute = await call("connect to Compute Engine", self.compute)
        lines = []
        for r in records:
            try:
                found = await call(f"look up instance {r.name}", compute.get_instance,
                                   compute_v1.GetInstanceRequest(project=r.data["project"], zone=r.data["zone"],
                                                                 instance=r.name))
            except NotFound:
                lines.append(StatusLine(r.kind, r.name, "MISSING", False))
                continue
            nic = found.network_interfaces[0] if found.network_interfaces else None
            address = nic.access_configs[0].nat_i_p if nic and nic.access_configs else "no external address"
            machine = found.machine_type.rsplit("/", 1)[-1]
            lines.append(StatusLine(r.kind, r.name, f"{found.status} {address} ({machine})", found.status == "RUNNING"))
        return lines

    async def destroy(self, ctx: Context) -> list[Action]:
        records = list(ctx.state.reversed_of_step(STEP))
        done = []
        compute = await call("connect to Compute Engine", self.compute) if records else None
        for r in records:
            assert compute is not None
            project, zone = r.data["project"], r.data["zone"]
            ctx.progress(STEP, f"delete instance {r.name}")
            try:
                op = await call(f"delete instance {r.name}", compute.delete_instance,
                                delete_request(project, zone, r.name))
                await wait_operation(compute, op, project, zone, f"delete instance {r.name}", timeout=600,
                                     poll=self.poll, progress=lambda m: ctx.progress(STEP, m))
            except NotFound:
                pass  # gone already: destroy can be run again after it was stopped
            ctx.state.remove(r)
            done.append(Action(DELETE, r.kind, r.name, f"id {r.id}"))
        ctx.state.forget_step(STEP)
        return done


def _gce(ctx: Context) -> GceConfig:
    if ctx.config.gce is None:
        raise LabError("gce: cloud.yaml has no gce section")
    return ctx.config.gce
