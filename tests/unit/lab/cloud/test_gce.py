"""The GCE step's requests, field by field, and the fake Compute Engine keeping the API's contract."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.api_core import exceptions as api_exc
from google.cloud import compute_v1

from switchman.errors import LabError
from switchman.lab.cloud import CloudConfig, parse_config
from switchman.lab.cloud.gce_api import VMX_LICENSE, OperationFailed, insert_request, request_json, wait_operation
from switchman.testing.gce import FakeCompute

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBxo demo"
Status = compute_v1.Operation.Status


def _config(**gce: Any) -> CloudConfig:
    return parse_config({
        "name": "demo",
        "gce": {"project": "switchman-lab", "zone": "us-central1-a", "machineType": "n2-standard-8", **gce},
        "openstack": {"cloud": "c", "flavor": {}, "image": {"name": "noble", "file": "noble.img"}},
    })


def test_the_insert_request_field_by_field() -> None:
    request = insert_request(_config(), KEY)
    assert (request.project, request.zone) == ("switchman-lab", "us-central1-a")
    instance = request.instance_resource
    assert instance.name == "demo-host"
    assert instance.machine_type == "zones/us-central1-a/machineTypes/n2-standard-8"
    assert instance.advanced_machine_features.enable_nested_virtualization is True
    assert "min_cpu_platform" not in instance, "N2 is Cascade Lake or later everywhere: no minimum to ask for"
    (disk,) = instance.disks
    assert disk.boot and disk.auto_delete and disk.type_ == "PERSISTENT"
    params = disk.initialize_params
    assert params.source_image == "projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64"
    assert params.disk_size_gb == 120
    assert params.disk_type == "zones/us-central1-a/diskTypes/pd-balanced"
    assert list(params.licenses) == []
    (nic,) = instance.network_interfaces
    assert nic.network == "projects/switchman-lab/global/networks/default"
    (access,) = nic.access_configs
    assert access.type_ == "ONE_TO_ONE_NAT"
    metadata = {item.key: item.value for item in instance.metadata.items}
    assert metadata == {"ssh-keys": f"ubuntu:{KEY}", "enable-oslogin": "FALSE"}
    assert dict(instance.labels) == {"switchman-lab": "demo"}


def test_n1_gets_a_haswell_minimum_and_the_vmx_license_is_an_option() -> None:
    instance = insert_request(_config(machineType="n1-standard-8", vmxLicense=True, diskGb=200,
                                      sshUser="lab"), KEY).instance_resource
    assert instance.min_cpu_platform == "Intel Haswell"
    assert list(instance.disks[0].initialize_params.licenses) == [VMX_LICENSE]
    assert VMX_LICENSE.endswith("/projects/vm-options/global/licenses/enable-vmx")
    assert instance.disks[0].initialize_params.disk_size_gb == 200
    assert instance.metadata.items[0].value.startswith("lab:ssh-ed25519 ")


def test_the_library_refuses_a_misspelled_field() -> None:
    # Why the requests are built from compute_v1's types and not from dicts.
    with pytest.raises(ValueError, match="enable_nested_virtualisation"):
        compute_v1.AdvancedMachineFeatures(enable_nested_virtualisation=True)


def test_the_plan_shows_the_request_as_the_api_receives_it() -> None:
    body = json.loads(request_json(insert_request(_config(), "((key))")))
    resource = body["instanceResource"]
    assert resource["advancedMachineFeatures"] == {"enableNestedVirtualization": True}
    assert resource["networkInterfaces"][0]["accessConfigs"][0]["type"] == "ONE_TO_ONE_NAT"
    assert resource["disks"][0]["initializeParams"]["diskSizeGb"] == "120"


# -- the fake keeps the contract ---------------------------------------------


def _get_op(fake: FakeCompute, op: compute_v1.Operation) -> compute_v1.Operation:
    return fake.get_operation(compute_v1.GetZoneOperationRequest(project="p", zone="z", operation=op.name))


def test_an_insert_is_an_operation_that_is_done_after_a_get_or_two() -> None:
    fake = FakeCompute(gets_to_done=2)
    request = insert_request(_config(zone="europe-west4-b"), KEY)
    request.project, request.zone = "p", "z"
    request.instance_resource.machine_type = "zones/z/machineTypes/n2-standard-8"
    op = fake.insert_instance(request)
    assert op.status == Status.PENDING and op.operation_type == "insert"
    get = compute_v1.GetInstanceRequest(project="p", zone="z", instance="demo-host")
    assert fake.get_instance(get).status == "PROVISIONING"
    assert _get_op(fake, op).status == Status.RUNNING
    assert _get_op(fake, op).status == Status.DONE
    instance = fake.get_instance(get)
    assert instance.status == "RUNNING" and instance.network_interfaces[0].access_configs[0].nat_i_p == "127.0.0.1"
    with pytest.raises(api_exc.Conflict):
        fake.insert_instance(request)
    delete = fake.delete_instance(compute_v1.DeleteInstanceRequest(project="p", zone="z", instance="demo-host"))
    while _get_op(fake, delete).status != Status.DONE:
        pass
    with pytest.raises(api_exc.NotFound):
        fake.get_instance(get)
    with pytest.raises(api_exc.NotFound):
        fake.delete_instance(compute_v1.DeleteInstanceRequest(project="p", zone="z", instance="demo-host"))
    with pytest.raises(api_exc.NotFound):
        fake.get_operation(compute_v1.GetZoneOperationRequest(project="p", zone="z", operation="operation-0"))


async def test_a_failed_operation_is_done_with_its_errors_and_they_are_surfaced() -> None:
    fake = FakeCompute(gets_to_done=1)
    fake.fail_next_insert("QUOTA_EXCEEDED", "Quota 'N2_CPUS' exceeded.  Limit: 4.0 in region us-central1.")
    request = insert_request(_config(), KEY)
    op = fake.insert_instance(request)
    seen: list[str] = []
    with pytest.raises(OperationFailed) as caught:
        await wait_operation(fake, op, "switchman-lab", "us-central1-a", "insert instance demo-host", timeout=5,
                             poll=0, progress=seen.append)
    message = str(caught.value)
    assert "insert instance demo-host failed: QUOTA_EXCEEDED: Quota 'N2_CPUS' exceeded." in message
    assert "ask for more quota" in message
    assert len(seen) == 2 and seen[0].endswith(" PENDING") and seen[1].endswith(" DONE 100%"), seen
    assert fake.instances == {}, "a failed insert leaves no instance"


async def test_an_operation_not_done_in_time_is_not_a_failed_one() -> None:
    # The GCE step keeps the instance recorded then: the operation may still make it.
    fake = FakeCompute(gets_to_done=100)
    op = fake.insert_instance(insert_request(_config(), KEY))
    with pytest.raises(LabError, match="not done after 0s") as caught:
        await wait_operation(fake, op, "switchman-lab", "us-central1-a", "insert", timeout=0, poll=0,
                             progress=lambda _: None)
    assert not isinstance(caught.value, OperationFailed)
