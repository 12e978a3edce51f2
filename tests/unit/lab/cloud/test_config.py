"""cloud.yaml: defaults, and errors that name the field at fault."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from switchman.errors import ConfigError
from switchman.lab.cloud import load_config, parse_config


def _doc(**sections: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": "demo", "openstack": {"cloud": "lab-admin", "flavor": {},
                                                         "image": {"name": "noble", "file": "noble.img"}}}
    doc.update(sections)
    return doc


def test_defaults() -> None:
    config = parse_config(_doc(kubernetes={}), base=Path("/labs"))
    assert config.openstack.flavor.name == "demo.node" and config.openstack.flavor.vcpus == 2
    assert config.openstack.image.file == Path("/labs/noble.img")
    assert config.openstack.network.master_ip == "10.10.0.10"
    assert config.kubernetes is not None and config.kubernetes.minor == "v1.37" and config.kubernetes.cni == "flannel"
    assert config.nodes() == [("demo-master", "master"), ("demo-worker-1", "worker")]
    assert config.kubernetes.images == Path("/labs/runs/images") and config.openstack.image.ssh_user == "ubuntu"


def test_images_elsewhere_or_none() -> None:
    config = parse_config(_doc(kubernetes={"images": "/srv/images"}), base=Path("/labs"))
    assert config.kubernetes is not None and config.kubernetes.images == Path("/srv/images")
    config = parse_config(_doc(kubernetes={"images": False}), base=Path("/labs"))
    assert config.kubernetes is not None and config.kubernetes.images is None


@pytest.mark.parametrize(("change", "path", "words"), [
    ({"openstack": {"cloud": "x", "flavor": {"vcpus": 0}, "image": {"name": "i", "file": "f"}}},
     "openstack.flavor.vcpus", "0 is below 1"),
    ({"openstack": {"cloud": "x", "flavor": {"cpus": 2}, "image": {"name": "i", "file": "f"}}},
     "openstack.flavor.cpus", "unknown field"),
    ({"openstack": {"flavor": {}, "image": {"name": "i", "file": "f"}}}, "openstack.cloud", "devstack"),
    ({"openstack": {"cloud": "x", "flavor": {}, "image": {"name": "i"}}}, "openstack.image.file", "is required"),
    ({"name": "Demo_1"}, "name", "lower-case"),
    ({"kubernetes": {"podSubnet": "10.10.0.0/16"}}, "kubernetes.podSubnet", "overlaps openstack.network.cidr"),
    ({"kubernetes": {"cni": "calico"}}, "kubernetes.cni", "not one of flannel, weave"),
    ({"kubernetes": {"version": "1.37"}}, "kubernetes.version", "v1.37.2"),
    ({"kubernetes": {"version": "v1.30.9"}}, "kubernetes.version", "first kubeadm that reads"),
    ({"kubernetes": {"serviceSubnet": "172.0.0.0/11"}}, "kubernetes.serviceSubnet", "from /12 to /28"),
    ({"kubernetes": {"serviceSubnet": "10.96.0.0/29"}}, "kubernetes.serviceSubnet", "from /12 to /28"),
    ({"kubernetes": {"podSubnet": "16.0.0.0/7"}}, "kubernetes.podSubnet", "at most 16 bits wider"),
    ({"kubernetes": {"podSubnet": "10.244.0.0/24"}}, "kubernetes.podSubnet", "holds 1 of the /24s"),
    ({"gce": {"project": "p", "zone": "us-central1-a", "machineType": "e2-standard-8"}}, "gce.machineType",
     "cannot run nested virtualization"),
])
def test_errors_name_the_field(change: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_doc(**change))
    assert caught.value.path == f"cloud.yaml: {path}"
    assert words in caught.value.reason


def _gce(**fields: Any) -> dict[str, Any]:
    return {"project": "switchman-lab", "zone": "us-central1-a", "machineType": "n2-standard-8", **fields}


@pytest.mark.parametrize(("machine_type", "why"), [
    ("e2-standard-8", "E2 has no nested virtualization"),
    ("n2d-standard-8", "N2D is AMD"),
    ("c2d-standard-8", "C2D is AMD"),
    ("t2d-standard-8", "T2D is AMD"),
    ("t2a-standard-8", "T2A is Arm"),
    ("c4a-standard-8", "C4A is Arm"),
    ("m3-ultramem-32", "M3 is memory-optimized"),
    ("g1-small", "G1 is a shared-core N1 type"),
])
def test_machine_types_that_cannot_nest_are_refused(machine_type: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_doc(gce=_gce(machineType=machine_type)))
    assert caught.value.path == "cloud.yaml: gce.machineType"
    assert f"{machine_type!r} cannot run nested virtualization ({why}" in caught.value.reason
    assert "N2 (n2-standard-8) or N1" in caught.value.reason


@pytest.mark.parametrize(("gce", "path", "words"), [
    (_gce(machineType="n1-standard-8", minCpuPlatform="Intel Sandy Bridge"), "gce.minCpuPlatform",
     "cannot run nested virtualization on N1"),
    (_gce(minCpuPlatform="AMD Milan"), "gce.minCpuPlatform", "only Intel can nest"),
    (_gce(diskGb=30), "gce.diskGb", "30 is below 60"),
    (_gce(zone="us-central1"), "gce.zone", "a zone such as us-central1-a"),
    (_gce(nestedVirtualization=False), "gce.nestedVirtualization", "unknown field"),
])
def test_gce_errors_name_the_field(gce: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_doc(gce=gce))
    assert caught.value.path == f"cloud.yaml: {path}"
    assert words in caught.value.reason


def test_gce_and_devstack_defaults() -> None:
    config = parse_config(_doc(gce=_gce(machineType="n1-standard-8"), devstack={}))
    assert config.gce is not None and config.devstack is not None
    assert config.gce.min_cpu_platform == "Intel Haswell"
    assert (config.gce.disk_gb, config.gce.image_family, config.gce.image_project) == (
        120, "ubuntu-2404-lts-amd64", "ubuntu-os-cloud")
    assert config.devstack.branch == "stable/2026.1" and config.devstack.host is None
    assert config.host_name == "demo-host"
    assert parse_config(_doc(gce=_gce())).gce.min_cpu_platform is None  # type: ignore[union-attr]


@pytest.mark.parametrize(("sections", "path", "words"), [
    ({"devstack": {}}, "devstack.host", "is required without a gce section"),
    ({"gce": _gce(), "devstack": {"host": "203.0.113.9"}}, "devstack.host", "is the GCE instance's"),
    ({"gce": _gce(), "devstack": {"sshKey": "id_ed25519"}}, "devstack.sshKey", "is the GCE instance's"),
    ({"devstack": {"host": "h", "branch": "2026.1"}}, "devstack.branch", "stable/2026.1"),
    ({"devstack": {"host": "h", "hostIp": "h"}}, "devstack.hostIp", "IP"),
])
def test_devstack_errors_name_the_field(sections: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_doc(**sections))
    assert caught.value.path == f"cloud.yaml: {path}"
    assert words in caught.value.reason


def test_unreadable_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "cloud.yaml")
    (tmp_path / "cloud.yaml").write_text("name: [")
    with pytest.raises(ConfigError, match="is not YAML"):
        load_config(tmp_path / "cloud.yaml")
