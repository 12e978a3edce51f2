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
    ({"gce": {"project": "p", "zone": "us-central1-a", "machineType": "e2-standard-8"}}, "gce.machineType",
     "cannot run nested virtualization"),
])
def test_errors_name_the_field(change: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_doc(**change))
    assert caught.value.path == f"cloud.yaml: {path}"
    assert words in caught.value.reason


def test_unreadable_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "cloud.yaml")
    (tmp_path / "cloud.yaml").write_text("name: [")
    with pytest.raises(ConfigError, match="is not YAML"):
        load_config(tmp_path / "cloud.yaml")
