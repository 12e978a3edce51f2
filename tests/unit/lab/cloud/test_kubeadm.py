"""Rendered cloud-init, kubeadm configs, scripts and manifests: valid for their own tools, and what the issue asks."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from switchman.lab.cloud import State, parse_config
from switchman.lab.cloud.kubeadm import ClusterSecrets, kubeconfig, node_files, node_user_data
from switchman.lab.cloud.pki import ca_cert_hash, client_cert
from switchman.lab.cloud.runner import Context

FIP = "203.0.113.7"


def _ctx(tmp_path: Path, **kubernetes: Any) -> Context:
    openstack = {"cloud": "c", "flavor": {}, "image": {"name": "i", "file": "f"}, "workers": 2}
    config = parse_config({"name": "demo", "openstack": openstack, "kubernetes": {"nfs": {}, **kubernetes}})
    return Context(config, State(tmp_path / "state.json", "demo"), tmp_path)


def _files(ctx: Context, node: str, role: str) -> dict[str, str]:
    return {f.path: f.content for f in node_files(ctx.config, node, role, FIP, ClusterSecrets.of(ctx.state))}


@pytest.mark.parametrize(("node", "role"), [("demo-master", "master"), ("demo-worker-1", "worker")])
def test_cloud_init_passes_cloud_init_schema(tmp_path: Path, node: str, role: str) -> None:
    if shutil.which("cloud-init") is None:
        pytest.skip("cloud-init not installed (apt-get install cloud-init; .ci/run does)")
    user_data = tmp_path / "user-data"
    user_data.write_text(node_user_data(_ctx(tmp_path), node, role, FIP, plan=False))
    run = subprocess.run(["cloud-init", "schema", "--config-file", str(user_data)], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("cni", ["flannel", "weave"])
def test_scripts_parse_with_bash(tmp_path: Path, cni: str) -> None:
    ctx = _ctx(tmp_path, cni=cni)
    scripts = {**_files(ctx, "demo-master", "master"), **_files(ctx, "demo-worker-1", "worker")}
    for path, text in scripts.items():
        if path.endswith(".sh"):
            run = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True, timeout=30)
            assert run.returncode == 0, f"{path}: {run.stderr}"


def test_master_init_config(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    files = _files(ctx, "demo-master", "master")
    init, cluster, kubelet = yaml.safe_load_all(files["/etc/switchman/kubeadm.yaml"])
    assert init["apiVersion"] == cluster["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert FIP in cluster["apiServer"]["certSANs"]
    assert cluster["kubernetesVersion"] == "v1.37.2" and cluster["networking"]["podSubnet"] == "10.244.0.0/16"
    assert kubelet["cgroupDriver"] == "systemd"
    assert init["bootstrapTokens"][0]["token"] == ctx.state.secrets["kubeadm.token"]
    assert "SystemdCgroup = true" in files["/etc/switchman/containerd.toml"]
    assert "pkgs.k8s.io/core:/stable:/v1.37/deb/" in files["/etc/switchman/setup.sh"]
    assert "kube-flannel.yml" in files["/etc/switchman/master.sh"]
    assert x509.load_pem_x509_certificate(files["/etc/kubernetes/pki/ca.crt"].encode())


def test_worker_joins_by_token_and_ca_hash(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    master = _files(ctx, "demo-master", "master")
    (join,) = yaml.safe_load_all(_files(ctx, "demo-worker-2", "worker")["/etc/switchman/kubeadm.yaml"])
    discovery = join["discovery"]["bootstrapToken"]
    assert join["kind"] == "JoinConfiguration" and discovery["apiServerEndpoint"] == "10.10.0.10:6443"
    assert discovery["caCertHashes"] == [ca_cert_hash(master["/etc/kubernetes/pki/ca.crt"])]
    assert discovery["token"] == ctx.state.secrets["kubeadm.token"]
    assert "/etc/kubernetes/pki/ca.key" not in _files(ctx, "demo-worker-2", "worker")


def test_secrets_are_made_once(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    first = node_user_data(ctx, "demo-master", "master", FIP, plan=False)
    again = State.load(tmp_path / "state.json", "demo")
    assert node_user_data(Context(ctx.config, again, tmp_path), "demo-master", "master", FIP, plan=False) == first
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o600


def test_nfs_volume_is_reserved_for_switchmans_store(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    files = _files(ctx, "demo-master", "master")
    [pv] = yaml.safe_load_all(files["/etc/switchman/nfs.yaml"])
    assert pv["spec"]["mountOptions"] == ["hard", "nfsvers=4.2"] and pv["spec"]["storageClassName"] == ""
    assert pv["spec"]["nfs"] == {"server": "10.10.0.10", "path": "/srv/nfs/switchman"}
    # the claim is the one `switchman lab up --kubernetes` makes (deploy/kubernetes/switchman/store.yaml)
    assert pv["spec"]["claimRef"] == {"namespace": "switchman-lab", "name": "switchman-store"}
    assert "ReadWriteOnce" in pv["spec"]["accessModes"]
    assert files["/etc/exports"].startswith("/srv/nfs/switchman 10.10.0.0/24(rw,sync")


def test_kubeconfig_client_is_signed_by_the_cluster_ca(tmp_path: Path) -> None:
    secrets = ClusterSecrets.of(_ctx(tmp_path).state)
    client = client_cert((secrets.ca_cert, secrets.ca_key), "demo-admin", "system:masters")
    doc = yaml.safe_load(kubeconfig(_ctx(tmp_path).config, FIP, secrets, client))
    assert doc["clusters"][0]["cluster"]["server"] == f"https://{FIP}:6443"
    cert = x509.load_pem_x509_certificate(base64.b64decode(doc["users"][0]["user"]["client-certificate-data"]))
    ca = x509.load_pem_x509_certificate(secrets.ca_cert.encode())
    cert.verify_directly_issued_by(ca)
    assert "O=system:masters" in cert.subject.rfc4514_string()
