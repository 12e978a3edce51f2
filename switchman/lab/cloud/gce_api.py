"""The edge to ``google-cloud-compute``: the four calls the GCE step makes, the requests it sends, and operations.

Requests are built with the library's own types (``compute_v1.Instance``,
``AttachedDisk``, ...), which refuse a misspelled field. The library is
synchronous and has no asyncio client: :func:`call` runs each call in a
worker thread and maps its errors to :class:`~switchman.errors.LabError`.
The calls go through :class:`Compute`, which :class:`GoogleCompute` and the
fake in :mod:`switchman.testing.gce` both are.

Compute Engine answers a change (insert, delete) with a zone operation that
is PENDING or RUNNING; :func:`wait_operation` polls it until DONE. A failed
operation is DONE too, with its reasons in ``error.errors``.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from google.api_core import exceptions as api_exc
from google.auth import exceptions as auth_exc
from google.cloud import compute_v1

from switchman.errors import LabError
from switchman.lab.cloud.config import CloudConfig, GceConfig

__all__ = [
    "VMX_LICENSE",
    "Compute",
    "ComputeFactory",
    "GoogleCompute",
    "NotFound",
    "OperationFailed",
    "call",
    "delete_request",
    "get_request",
    "insert_request",
    "instance_name",
    "request_json",
    "wait_operation",
]

T = TypeVar("T")
NotFound = api_exc.NotFound
DONE = compute_v1.Operation.Status.DONE
# The license that marks an image for nested virtualization (the older way, before the instance setting).
VMX_LICENSE = "https://compute.googleapis.com/compute/v1/projects/vm-options/global/licenses/enable-vmx"

_HINTS = {
    "ZONE_RESOURCE_POOL_EXHAUSTED": "the zone has no room for this machine type now: try another gce.zone",
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS": "the zone has no room for this machine type now: try another gce.zone",
    "QUOTA_EXCEEDED": "ask for more quota (IAM & Admin > Quotas: CPUs of the series, SSD_TOTAL_GB in the region) "
                      "or choose a smaller gce.machineType",
}


class OperationFailed(LabError):
    """Raised when a zone operation is DONE with errors: what it was to make was not made."""


class Compute(Protocol):
    """Compute Engine's instances and zone operations, as far as the GCE step uses them."""

    def get_instance(self, request: compute_v1.GetInstanceRequest) -> compute_v1.Instance: ...

    def insert_instance(self, request: compute_v1.InsertInstanceRequest) -> compute_v1.Operation: ...

    def delete_instance(self, request: compute_v1.DeleteInstanceRequest) -> compute_v1.Operation: ...

    def get_operation(self, request: compute_v1.GetZoneOperationRequest) -> compute_v1.Operation: ...


# Where the step gets its client: called once per apply, status or destroy, in a worker thread.
ComputeFactory = Callable[[], Compute]


class GoogleCompute:
    """The real API, with Application Default Credentials (``gcloud auth application-default login``)."""

    def __init__(self) -> None:
        self.instances = compute_v1.InstancesClient()
        self.operations = compute_v1.ZoneOperationsClient()

    def get_instance(self, request: compute_v1.GetInstanceRequest) -> compute_v1.Instance:
        return self.instances.get(request=request)

    def insert_instance(self, request: compute_v1.InsertInstanceRequest) -> compute_v1.Operation:
        return self.instances.insert_unary(request=request)

    def delete_instance(self, request: compute_v1.DeleteInstanceRequest) -> compute_v1.Operation:
        return self.instances.delete_unary(request=request)

    def get_operation(self, request: compute_v1.GetZoneOperationRequest) -> compute_v1.Operation:
        return self.operations.get(request=request)


async def call(doing: str, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread; an API error becomes a LabError saying what was ``doing``.

    NotFound passes through: callers that look things up decide what a missing resource means.
    """
    try:
        return await asyncio.to_thread(functools.partial(fn, *args))
    except api_exc.NotFound:
        raise
    except auth_exc.DefaultCredentialsError as exc:
        raise LabError(f"gce: {doing}: no Google credentials ({exc}); run `gcloud auth application-default login` "
                       "or set GOOGLE_APPLICATION_CREDENTIALS to a service account key") from exc
    except (api_exc.GoogleAPIError, auth_exc.GoogleAuthError) as exc:
        raise LabError(f"gce: {doing}: {_first_line(exc)}") from exc


def instance_name(config: CloudConfig) -> str:
    return config.host_name


def insert_request(config: CloudConfig, ssh_key: str) -> compute_v1.InsertInstanceRequest:
    """instances.insert of the devstack host: nested virtualization on, Ubuntu's image family, the lab's key.

    ``ssh_key`` is the public key line that Google's guest environment installs for ``gce.sshUser``.
    """
    g = _gce(config)
    disk = compute_v1.AttachedDiskInitializeParams(
        source_image=f"projects/{g.image_project}/global/images/family/{g.image_family}",
        disk_size_gb=g.disk_gb,
        disk_type=f"zones/{g.zone}/diskTypes/{g.disk_type}",
        labels={"switchman-lab": config.name},
    )
    if g.vmx_license:
        disk.licenses = [VMX_LICENSE]
    instance = compute_v1.Instance(
        name=instance_name(config),
        description=f"switchman cloud lab {config.name}: the devstack host",
        machine_type=f"zones/{g.zone}/machineTypes/{g.machine_type}",
        advanced_machine_features=compute_v1.AdvancedMachineFeatures(enable_nested_virtualization=True),
        disks=[compute_v1.AttachedDisk(boot=True, auto_delete=True, type_="PERSISTENT", initialize_params=disk)],
        network_interfaces=[compute_v1.NetworkInterface(
            network=f"projects/{g.project}/global/networks/{g.network}",
            access_configs=[compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")],
        )],
        metadata=compute_v1.Metadata(items=[
            compute_v1.Items(key="ssh-keys", value=f"{g.ssh_user}:{ssh_key}"),
            # OS Login, when the project turns it on, ignores ssh-keys: the lab logs in with its own key.
            compute_v1.Items(key="enable-oslogin", value="FALSE"),
        ]),
        labels={"switchman-lab": config.name},
    )
    if g.min_cpu_platform is not None:
        instance.min_cpu_platform = g.min_cpu_platform
    return compute_v1.InsertInstanceRequest(project=g.project, zone=g.zone, instance_resource=instance)


def get_request(config: CloudConfig) -> compute_v1.GetInstanceRequest:
    g = _gce(config)
    return compute_v1.GetInstanceRequest(project=g.project, zone=g.zone, instance=instance_name(config))


def delete_request(project: str, zone: str, name: str) -> compute_v1.DeleteInstanceRequest:
    return compute_v1.DeleteInstanceRequest(project=project, zone=zone, instance=name)


def request_json(request: compute_v1.InsertInstanceRequest) -> str:
    """The request as the JSON the API receives (camelCase, enum names), for the plan."""
    text = compute_v1.InsertInstanceRequest.to_json(request, use_integers_for_enums=False, indent=2, sort_keys=True,
                                                    always_print_fields_with_no_presence=False)
    return str(text) + "\n"


async def wait_operation(compute: Compute, op: compute_v1.Operation, project: str, zone: str, what: str, *,
                         timeout: float, poll: float, progress: Callable[[str], None]) -> compute_v1.Operation:
    """Poll the zone operation ``op`` until DONE; OperationFailed with the operation's own reasons when it failed,
    LabError when it is not done within ``timeout`` seconds (it may still be done later).

    Progress: a line when its status changes, and every 30 s while it stays.
    """
    deadline = time.monotonic() + timeout
    shown, shown_at = None, 0.0
    while True:
        if op.status != shown or time.monotonic() - shown_at >= 30:
            progress(f"{what}: operation {op.name} {compute_v1.Operation.Status(op.status).name}"
                     + (f" {op.progress}%" if op.progress else ""))
            shown, shown_at = op.status, time.monotonic()
        if op.status == DONE:
            break
        if time.monotonic() > deadline:
            raise LabError(f"gce: {what}: operation {op.name} not done after {timeout:g}s (gce.bootTimeout)")
        await asyncio.sleep(poll)
        request = compute_v1.GetZoneOperationRequest(project=project, zone=zone, operation=op.name)
        op = await call(f"look up operation {op.name}", compute.get_operation, request)
    errors = list(op.error.errors)
    if errors or op.http_error_status_code >= 400:
        reasons = [f"{e.code}: {e.message}" for e in errors] or [f"HTTP {op.http_error_status_code}: "
                                                                 f"{op.http_error_message}"]
        hints = {_HINTS[e.code] for e in errors if e.code in _HINTS}
        if any("nested" in e.message.lower() for e in errors):
            hints.add("an organization policy (constraints/compute.disableNestedVirtualization) may forbid nesting")
        raise OperationFailed(f"gce: {what} failed: " + "; ".join(reasons)
                              + "".join(f" ({h})" for h in sorted(hints)))
    return op


def _gce(config: CloudConfig) -> GceConfig:
    if config.gce is None:
        raise LabError("gce: cloud.yaml has no gce section")
    return config.gce


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
