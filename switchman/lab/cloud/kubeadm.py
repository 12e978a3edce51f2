"""Kubernetes through cloud-init: kubeadm v1beta4 configs, node scripts, NFS volume, and the user's kubeconfig.

The CA and the bootstrap token are made here (:mod:`.pki`) and kept in the
state file, so workers join with the CA's hash and no SSH, and the user's
kubeconfig (a client certificate of ``system:masters``) is written without
logging in to the master. The master's floating IP goes into the API server's
certificate SANs. containerd 2.x (systemd cgroups) and kubelet, kubeadm and
kubectl pinned to one version from pkgs.k8s.io; Flannel by default, or the
community fork of weave with its IP range set to the pod subnet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from switchman.lab.cloud.cloudinit import File, cloud_config
from switchman.lab.cloud.config import CloudConfig, KubernetesConfig
from switchman.lab.cloud.pki import bootstrap_token, ca_cert_hash, client_cert, make_ca
from switchman.lab.cloud.plan import CREATE, DELETE, KEEP, Action, RenderedFile, StepPlan
from switchman.lab.cloud.runner import Context, StatusLine
from switchman.lab.cloud.state import Record, State
from switchman.lab.kubernetes.manifests import LAB_NAMESPACE, STORE_CLAIM

__all__ = [
    "STEP",
    "ClusterSecrets",
    "KubeadmStep",
    "kubeconfig",
    "kubeconfig_path",
    "manifests",
    "node_files",
    "node_user_data",
]

STEP = "kubeadm"
CRI_SOCKET = "unix:///run/containerd/containerd.sock"
CONF_DIR = "/etc/switchman"


@dataclass(frozen=True)
class ClusterSecrets:
    ca_cert: str
    ca_key: str
    token: str
    ca_hash: str

    @classmethod
    def placeholders(cls) -> ClusterSecrets:
        """What a plan shows instead of secrets (made at apply, kept in the state file)."""
        return cls("((cluster CA certificate))\n", "((cluster CA key))\n", "((bootstrap token))", "((CA hash))")

    @classmethod
    def of(cls, state: State) -> ClusterSecrets:
        """The lab's secrets, made and saved the first time."""
        if f"{STEP}.ca_cert" not in state.secrets:
            cert, key = make_ca()
            state.secrets[f"{STEP}.ca_key"] = key
            state.secret(f"{STEP}.ca_cert", lambda: cert)
        token = state.secret(f"{STEP}.token", bootstrap_token)
        cert = state.secrets[f"{STEP}.ca_cert"]
        return cls(cert, state.secrets[f"{STEP}.ca_key"], token, ca_cert_hash(cert))


def _yaml(*docs: Any) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def init_config(config: CloudConfig, k: KubernetesConfig, node: str, floating_ip: str, s: ClusterSecrets) -> str:
    """kubeadm's InitConfiguration, ClusterConfiguration and KubeletConfiguration (v1beta4) for the master."""
    master_ip = config.openstack.network.master_ip
    return _yaml(
        {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration",
         "bootstrapTokens": [{"token": s.token, "ttl": "24h0m0s", "usages": ["signing", "authentication"],
                              "groups": ["system:bootstrappers:kubeadm:default-node-token"]}],
         "localAPIEndpoint": {"advertiseAddress": master_ip, "bindPort": 6443},
         "nodeRegistration": {"name": node, "criSocket": CRI_SOCKET}},
        {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration", "clusterName": config.name,
         "kubernetesVersion": k.version,
         "networking": {"podSubnet": k.pod_subnet, "serviceSubnet": k.service_subnet, "dnsDomain": "cluster.local"},
         "apiServer": {"certSANs": [floating_ip, master_ip, node]}},
        {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration", "cgroupDriver": "systemd"},
    )


def join_config(config: CloudConfig, node: str, s: ClusterSecrets) -> str:
    """kubeadm's JoinConfiguration (v1beta4): discovery by token and the CA's hash, waiting for the master."""
    return _yaml({
        "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "JoinConfiguration",
        "discovery": {"bootstrapToken": {"apiServerEndpoint": f"{config.openstack.network.master_ip}:6443",
                                         "token": s.token, "caCertHashes": [s.ca_hash]}},
        # The master installs packages and runs kubeadm init meanwhile: wait for it, not the default 5 minutes.
        "timeouts": {"discovery": "30m0s"},
        "nodeRegistration": {"name": node, "criSocket": CRI_SOCKET},
    })


CONTAINERD_TOML = """\
# containerd 2.x (config version 3): runc with the systemd cgroup driver, as the kubelet's cgroupDriver.
version = 3

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = 'io.containerd.runc.v2'

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = true
"""

SYSCTL = "net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\nnet.ipv4.ip_forward = 1\n"


def setup_script(k: KubernetesConfig) -> str:
    """Every node: kernel settings, containerd 2.x from Docker's repository, the pinned Kubernetes packages."""
    repo = f"https://pkgs.k8s.io/core:/stable:/{k.minor}/deb/"
    version = k.version.removeprefix("v")
    return f"""#!/bin/bash
# Node setup: containerd 2.x (systemd cgroups), kubelet/kubeadm/kubectl {k.version} from pkgs.k8s.io {k.minor}.
set -euxo pipefail
modprobe overlay
modprobe br_netfilter
sysctl --system
install -m 0755 -d /etc/apt/keyrings
curl -fsSL https://download.docker.com/linux/ubuntu/gpg -o /etc/apt/keyrings/docker.asc
echo "deb [signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/ubuntu \\
$(. /etc/os-release && echo "$VERSION_CODENAME") stable" > /etc/apt/sources.list.d/docker.list
curl -fsSL {repo}Release.key | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] {repo} /" > /etc/apt/sources.list.d/kubernetes.list
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y containerd.io \\
  "kubelet={version}-*" "kubeadm={version}-*" "kubectl={version}-*"
apt-mark hold containerd.io kubelet kubeadm kubectl
if ! containerd --version | grep -q ' v2\\.'; then
  echo "containerd 2.x expected, found: $(containerd --version)" >&2
  exit 1
fi
install -m 0644 {CONF_DIR}/containerd.toml /etc/containerd/config.toml
systemctl restart containerd
systemctl enable --now kubelet
"""


def _cni_commands(k: KubernetesConfig) -> str:
    if k.cni == "weave":
        url = f"https://github.com/rajch/weave/releases/download/{k.weave_version}/weave-daemonset-k8s-1.11.yaml"
        return (f"kubectl apply -f {url}\n"
                f"kubectl -n kube-system set env daemonset/weave-net -c weave IPALLOC_RANGE={k.pod_subnet}\n")
    url = f"https://github.com/flannel-io/flannel/releases/download/{k.flannel_version}/kube-flannel.yml"
    # Flannel's manifest carries 10.244.0.0/16 in its net-conf: make it the pod subnet.
    return f"curl -fsSL {url} | sed 's#10.244.0.0/16#{k.pod_subnet}#' | kubectl apply -f -\n"


def master_script(config: CloudConfig, k: KubernetesConfig) -> str:
    nfs = ""
    if k.nfs is not None:
        nfs = f"""install -d -m 0777 {k.nfs.export}
chown nobody:nogroup {k.nfs.export}
exportfs -ra
systemctl restart nfs-kernel-server
kubectl apply -f {CONF_DIR}/nfs.yaml
"""
    return f"""#!/bin/bash
# The master: kubeadm init with the lab's CA (already in /etc/kubernetes/pki), the CNI, the NFS volume.
set -euxo pipefail
export KUBECONFIG=/etc/kubernetes/admin.conf
if [ ! -f /etc/kubernetes/admin.conf ]; then
  kubeadm init --config {CONF_DIR}/kubeadm.yaml
fi
{_cni_commands(k)}{nfs}"""


def worker_script() -> str:
    return f"""#!/bin/bash
# A worker: join the master by token and the CA's hash (kubeadm waits for the master to come up).
set -euxo pipefail
if [ ! -f /etc/kubernetes/kubelet.conf ]; then
  kubeadm join --config {CONF_DIR}/kubeadm.yaml
fi
"""


def manifests(config: CloudConfig, k: KubernetesConfig) -> str:
    """The NFS PersistentVolume for Switchman's store: no storage class, NFS 4.2, reserved (``claimRef``) for the
    claim ``switchman-store`` that ``switchman lab up --kubernetes`` makes in its namespace, which binds it."""
    assert k.nfs is not None
    return _yaml(
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{config.name}-store"},
         "spec": {"capacity": {"storage": k.nfs.size}, "volumeMode": "Filesystem",
                  # the store's claim asks ReadWriteOnce (one replica on SQLite); NFS could give more
                  "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
                  "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                  "claimRef": {"namespace": LAB_NAMESPACE, "name": STORE_CLAIM},
                  "mountOptions": ["hard", "nfsvers=4.2"],
                  "nfs": {"server": config.openstack.network.master_ip, "path": k.nfs.export}}},
    )


def node_files(config: CloudConfig, node: str, role: str, floating_ip: str, s: ClusterSecrets) -> list[File]:
    """The files cloud-init writes on a node; the scripts run in the order listed."""
    k = config.kubernetes
    assert k is not None
    files = [File("/etc/modules-load.d/k8s.conf", "overlay\nbr_netfilter\n"), File("/etc/sysctl.d/k8s.conf", SYSCTL),
             File(f"{CONF_DIR}/containerd.toml", CONTAINERD_TOML),
             File(f"{CONF_DIR}/setup.sh", setup_script(k), "0755")]
    if role == "master":
        files += [File("/etc/kubernetes/pki/ca.crt", s.ca_cert), File("/etc/kubernetes/pki/ca.key", s.ca_key, "0600"),
                  File(f"{CONF_DIR}/kubeadm.yaml", init_config(config, k, node, floating_ip, s), "0600"),
                  File(f"{CONF_DIR}/master.sh", master_script(config, k), "0755")]
        if k.nfs is not None:
            files += [File("/etc/exports", f"{k.nfs.export} {config.openstack.network.cidr}"
                                           "(rw,sync,no_subtree_check,no_root_squash)\n"),
                      File(f"{CONF_DIR}/nfs.yaml", manifests(config, k))]
    else:
        files += [File(f"{CONF_DIR}/kubeadm.yaml", join_config(config, node, s), "0600"),
                  File(f"{CONF_DIR}/worker.sh", worker_script(), "0755")]
    return files


def node_user_data(ctx: Context, node: str, role: str, master_address: str, *, plan: bool) -> str:
    """A node's cloud-init (the OpenStack step's ``user_data``): the files above, then the scripts."""
    config = ctx.config
    k = config.kubernetes
    if k is None:
        return f"#cloud-config\nhostname: {node}\n"
    secrets = ClusterSecrets.placeholders() if plan else ClusterSecrets.of(ctx.state)
    packages = ["apt-transport-https", "ca-certificates", "curl", "gpg", "nfs-common"]
    if role == "master" and k.nfs is not None:
        packages.append("nfs-kernel-server")
    script = "master.sh" if role == "master" else "worker.sh"
    return cloud_config(node, packages, node_files(config, node, role, master_address, secrets),
                        [["bash", f"{CONF_DIR}/setup.sh"], ["bash", f"{CONF_DIR}/{script}"]])


def kubeconfig(config: CloudConfig, floating_ip: str, s: ClusterSecrets, client: tuple[str, str]) -> str:
    """An admin kubeconfig for ``https://<floating IP>:6443`` with a client certificate the lab's CA signed."""
    import base64

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    user = f"{config.name}-admin"
    return _yaml({
        "apiVersion": "v1", "kind": "Config", "current-context": config.name,
        "clusters": [{"name": config.name, "cluster": {"server": f"https://{floating_ip}:6443",
                                                       "certificate-authority-data": b64(s.ca_cert)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(client[0]),
                                          "client-key-data": b64(client[1])}}],
        "contexts": [{"name": config.name, "context": {"cluster": config.name, "user": user}}],
    })


def kubeconfig_path(ctx: Context) -> Path:
    """Where the lab writes the user's kubeconfig: ``<state-dir>/<name>.kubeconfig``."""
    return ctx.workdir / f"{ctx.config.name}.kubeconfig"


class KubeadmStep:
    """Writes the user's kubeconfig once the master has its floating IP (the cluster forms through cloud-init),
    then waits until every node is Ready and runs the cluster checks (:mod:`.cluster`), unless ``checks`` is off."""

    name = STEP

    def __init__(self, checks: bool = True) -> None:
        self.checks = checks

    def _path(self, ctx: Context) -> Path:
        return kubeconfig_path(ctx)

    def nodes(self, ctx: Context) -> list[str]:
        """The nodes the cluster must have: every server of the lab, registered under its own name."""
        return [node for node, _ in ctx.config.nodes()]

    def plan(self, ctx: Context) -> StepPlan:
        path = self._path(ctx)
        recorded = ctx.state.find(STEP, "kubeconfig", str(path))
        verb, detail = (KEEP, "recorded") if recorded else (CREATE, "admin, a client certificate of system:masters")
        master = ctx.config.nodes()[0][0]
        fip = ctx.state.output("openstack", f"floating_ip/{master}") or f"((floating IP of {master}))"
        text = kubeconfig(ctx.config, fip, ClusterSecrets.placeholders(), ("((client cert))", "((client key))"))
        k = ctx.config.kubernetes
        summary = f"Kubernetes {k.version if k else ''} by kubeadm through cloud-init"
        if self.checks and k is not None:
            summary += (f"; then apply waits for {len(self.nodes(ctx))} nodes Ready and runs the cluster checks "
                        f"({k.checks.image})")
        return StepPlan(STEP, summary, (Action(verb, "kubeconfig", str(path), detail),),
                        (RenderedFile(str(path), text),))

    async def apply(self, ctx: Context) -> list[Action]:
        done = await self._kubeconfig(ctx)
        k = ctx.config.kubernetes
        if self.checks and k is not None:
            from switchman.lab.cloud.cluster import check_cluster  # the Kubernetes client: only when it is used
            from switchman.lab.cloud.reach import proxied_kubeconfig, proxy_url

            nodes = self.nodes(ctx)
            addresses = {n: ip for n in nodes if (ip := ctx.state.output("openstack", f"floating_ip/{n}"))}
            proxy = await proxy_url(ctx)
            path = self._path(ctx) if proxy is None else proxied_kubeconfig(self._path(ctx), proxy)
            await check_cluster(path, nodes, k.checks, k.ready_timeout, addresses,
                                lambda line: ctx.progress(STEP, line))
        return done

    async def _kubeconfig(self, ctx: Context) -> list[Action]:
        path = self._path(ctx)
        if ctx.state.find(STEP, "kubeconfig", str(path)) and path.exists():
            return [Action(KEEP, "kubeconfig", str(path), "exists")]
        master = ctx.config.nodes()[0][0]
        fip = ctx.state.output("openstack", f"floating_ip/{master}")
        if fip is None:
            from switchman.errors import LabError

            raise LabError(f"kubeadm: no floating IP recorded for {master}: apply the openstack step first")
        secrets = ClusterSecrets.of(ctx.state)
        client = client_cert((secrets.ca_cert, secrets.ca_key), f"{ctx.config.name}-admin", "system:masters")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(0o600)
        path.write_text(kubeconfig(ctx.config, fip, secrets, client))
        ctx.state.add(Record(STEP, "kubeconfig", str(path), str(path)))
        return [Action(CREATE, "kubeconfig", str(path), f"https://{fip}:6443")]

    async def status(self, ctx: Context) -> list[StatusLine]:
        return [StatusLine(r.kind, r.name, "present" if self._path(ctx).exists() else "MISSING",
                           self._path(ctx).exists()) for r in ctx.state.of_step(STEP)]

    async def destroy(self, ctx: Context) -> list[Action]:
        done = []
        for record in ctx.state.reversed_of_step(STEP):
            self._path(ctx).unlink(missing_ok=True)
            self._path(ctx).with_suffix(".proxy.kubeconfig").unlink(missing_ok=True)
            ctx.state.remove(record)
            done.append(Action(DELETE, record.kind, record.name, ""))
        ctx.state.forget_step(STEP)
        return done
