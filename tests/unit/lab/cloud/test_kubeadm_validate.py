"""Every kubeadm configuration the cloud lab renders passes the real ``kubeadm config validate``, without an error
or a warning; and where cloud.yaml draws a line, kubeadm draws the same one.

Needs a kubeadm binary built from k8s.io/kubernetes: ``SWITCHMAN_TEST_KUBEADM=$(scripts/kubeadm)``.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from switchman.errors import ConfigError
from switchman.lab.cloud import CloudConfig, State, load_config, parse_config
from switchman.lab.cloud.kubeadm import CONF_DIR, node_user_data
from switchman.lab.cloud.runner import Context

ENV = "SWITCHMAN_TEST_KUBEADM"
HERE = Path(__file__).parent
FIP = "203.0.113.7"


@pytest.fixture(scope="module")
def kubeadm() -> str:
    path = os.environ.get(ENV, "")
    if not path:
        pytest.skip(f"needs kubeadm: set {ENV}=$(scripts/kubeadm) (built from k8s.io/kubernetes, ≈ 20 s with "
                    "k8s-local's Go caches)")
    return path


@pytest.fixture(scope="module")
def version(kubeadm: str) -> str:
    """kubeadm's own version: the lab pins kubeadm to the cluster's version, so that is what it validates."""
    run = subprocess.run([kubeadm, "version", "-o", "short"], capture_output=True, text=True, check=True, timeout=30)
    return run.stdout.strip()


def _lab(version: str, workers: int = 2, **kubernetes: Any) -> dict[str, Any]:
    return {"name": "demo", "openstack": {"cloud": "c", "flavor": {}, "image": {"name": "i", "file": "f"},
                                          "workers": workers},
            "kubernetes": {"version": version, "nfs": {}, **kubernetes}}


def _rendered(config: CloudConfig, tmp_path: Path) -> dict[str, str]:
    """Each node's kubeadm.yaml as apply renders it: out of the node's cloud-init user data."""
    ctx = Context(config, State(tmp_path / "state.json", config.name), tmp_path)
    found = {}
    for node, role in config.nodes():
        user_data = yaml.safe_load(node_user_data(ctx, node, role, FIP, plan=False))
        (content,) = [f["content"] for f in user_data["write_files"] if f["path"] == f"{CONF_DIR}/kubeadm.yaml"]
        found[node] = content
    return found


def _validate(kubeadm: str, text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "kubeadm.yaml"
    path.write_text(text)
    return subprocess.run([kubeadm, "config", "validate", "--config", str(path)], capture_output=True, text=True,
                          timeout=60)


def _assert_clean(kubeadm: str, config: CloudConfig, tmp_path: Path) -> None:
    rendered = _rendered(config, tmp_path)
    assert len(rendered) == len(config.nodes())
    for node, text in rendered.items():
        run = _validate(kubeadm, text, tmp_path)
        # "ok" and nothing else: a warning (klog's W lines, "[config] WARNING") fails as an error would
        assert (run.returncode, run.stdout, run.stderr) == (0, "ok\n", ""), f"{node}:\n{text}\n{run.stderr}"


def test_the_plans_lab(kubeadm: str, version: str, tmp_path: Path) -> None:
    config = load_config(HERE / "cloud.yaml")
    assert config.kubernetes is not None
    config = dataclasses.replace(config, kubernetes=dataclasses.replace(config.kubernetes, version=version))
    _assert_clean(kubeadm, config, tmp_path)


@pytest.mark.parametrize(("workers", "kubernetes", "openstack_network"), [
    (2, {}, {}),
    (1, {"cni": "weave"}, {}),
    (0, {}, {}),  # a master alone
    (20, {"podSubnet": "10.244.0.0/19"}, {}),  # 21 nodes: 21 of its 32 /24s
    (1, {"podSubnet": "10.0.0.0/8", "serviceSubnet": "172.16.0.0/12"}, {"cidr": "192.168.50.0/24"}),  # widest
    (1, {"podSubnet": "172.31.254.0/23", "serviceSubnet": "172.31.253.0/28"}, {"masterIp": "10.10.0.254"}),
    (1, {"nfs": None}, {}),
])
def test_edge_cases(kubeadm: str, version: str, tmp_path: Path, workers: int, kubernetes: dict[str, Any],
                    openstack_network: dict[str, Any]) -> None:
    doc = _lab(version, workers, **kubernetes)
    if kubernetes.get("nfs", {}) is None:
        del doc["kubernetes"]["nfs"]
    doc["openstack"]["network"] = openstack_network
    _assert_clean(kubeadm, parse_config(doc), tmp_path)


def test_the_longest_names(kubeadm: str, version: str, tmp_path: Path) -> None:
    doc = _lab(version, 20, podSubnet="10.244.0.0/16")
    doc["name"] = "a" * 31 + "z"  # 32 characters, the most cloud.yaml takes; nodes up to ...-worker-20
    _assert_clean(kubeadm, parse_config(doc), tmp_path)


@pytest.mark.parametrize(("field", "outside"), [
    ("serviceSubnet", "172.0.0.0/11"),  # too large
    ("serviceSubnet", "10.96.0.0/29"),  # too small
    ("podSubnet", "16.0.0.0/7"),  # more than 16 bits wider than a node's /24
])
def test_where_cloud_yaml_refuses_kubeadm_refuses_too(kubeadm: str, version: str, tmp_path: Path, field: str,
                                                      outside: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_lab(version, **{field: outside}))
    assert caught.value.path == f"cloud.yaml: kubernetes.{field}"
    # the same value, past cloud.yaml's check, is what kubeadm itself refuses
    config = parse_config(_lab(version))
    assert config.kubernetes is not None
    attribute = {"serviceSubnet": "service_subnet", "podSubnet": "pod_subnet"}[field]
    config = dataclasses.replace(config, kubernetes=dataclasses.replace(config.kubernetes, **{attribute: outside}))
    run = _validate(kubeadm, _rendered(config, tmp_path)["demo-master"], tmp_path)
    assert run.returncode != 0 and f"networking.{field}" in run.stderr, run.stdout + run.stderr

