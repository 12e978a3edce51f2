"""``cloud.yaml``: the nested cloud lab, read field by field so every error names where it is.

Sections, each optional except ``openstack``; a step runs when its section is there::

    name: demo                     # prefix of every resource the lab creates
    gce: {project, zone, machineType, minCpuPlatform, diskGb, diskType, imageFamily, imageProject,
          vmxLicense, network, sshUser, bootTimeout}
    devstack: {branch, host, sshUser, sshKey, sshPort, hostIp, adminPassword, stackTimeout}
    openstack: {cloud, externalNetwork, flavor: {...}, image: {...}, network: {...}, workers, ...}
    kubernetes: {version, podSubnet, serviceSubnet, cni, flannelVersion, nfs: {...}, readyTimeout,
                 checks: {image, pullPolicy, serve, port, get, resolve, timeout}, images}

Errors read ``cloud.yaml: openstack.flavor.vcpus: 0 is below 1`` (a
:class:`~switchman.errors.ConfigError` whose path is the document and the field).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from switchman.errors import ConfigError
from switchman.model.fields import Node

__all__ = [
    "ChecksConfig",
    "CloudConfig",
    "DevstackConfig",
    "FlavorConfig",
    "GceConfig",
    "ImageConfig",
    "KubernetesConfig",
    "NetworkConfig",
    "NfsConfig",
    "OpenStackConfig",
    "load_config",
    "nesting_refusal",
    "parse_config",
]

_NAME = r"[a-z]([-a-z0-9]{0,30}[a-z0-9])?"
_NAME_WHAT = "a lower-case name of letters, digits and dashes (at most 32, as GCE and DNS allow)"


@dataclass(frozen=True)
class GceConfig:
    project: str
    zone: str
    machine_type: str
    min_cpu_platform: str | None  # "Intel Haswell" for N1 unless given; None: the zone's default
    disk_gb: int
    disk_type: str
    image_family: str
    image_project: str
    vmx_license: bool
    network: str
    ssh_user: str
    boot_timeout: float


@dataclass(frozen=True)
class DevstackConfig:
    branch: str
    host: str | None  # None: the GCE step's instance
    ssh_user: str
    ssh_key: Path | None  # None: the lab's own key (next to the state file)
    ssh_port: int
    host_ip: str | None  # devstack's HOST_IP; None: the GCE instance's internal address, or asked of the host
    admin_password: str | None  # None: generated at apply and kept in the state file
    stack_timeout: float


@dataclass(frozen=True)
class FlavorConfig:
    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int


@dataclass(frozen=True)
class ImageConfig:
    name: str
    file: Path
    disk_format: str
    ssh_user: str = "ubuntu"  # the image's default user, who gets the lab's key (Ubuntu's cloud images: ubuntu)


@dataclass(frozen=True)
class NetworkConfig:
    cidr: str
    dns_nameservers: tuple[str, ...]
    master_ip: str


@dataclass(frozen=True)
class OpenStackConfig:
    cloud: str | None  # a clouds.yaml entry with admin rights; None: the devstack step's
    external_network: str
    role: str
    flavor: FlavorConfig
    image: ImageConfig
    network: NetworkConfig
    workers: int
    server_timeout: float


@dataclass(frozen=True)
class NfsConfig:
    export: str
    size: str


@dataclass(frozen=True)
class ChecksConfig:
    """The image the cluster checks run and the commands they run in it (``{url}``, ``{name}``, ``{port}`` filled in).

    The defaults are busybox 1.28's (``nslookup`` of later busybox releases ignores the search path, so
    ``kubernetes.default`` would not resolve); ``serve`` empty runs the image's own entrypoint."""

    image: str = "busybox:1.28"
    pull_policy: str = "IfNotPresent"
    serve: tuple[str, ...] = ("sh", "-c", "echo hello from $HOSTNAME >/tmp/index.html && "
                                          "exec httpd -f -p {port} -h /tmp")
    port: int = 8080
    get: tuple[str, ...] = ("wget", "-q", "-O", "-", "-T", "5", "{url}")
    resolve: tuple[str, ...] = ("nslookup", "{name}")
    timeout: float = 180.0  # for each check's pods: long enough to pull the image on a new node


@dataclass(frozen=True)
class KubernetesConfig:
    version: str  # a full version, v1.37.2; its minor picks the pkgs.k8s.io repository
    pod_subnet: str
    service_subnet: str
    cni: str
    flannel_version: str
    weave_version: str
    nfs: NfsConfig | None
    ready_timeout: float = 1800.0  # apply waits this long for every node to be Ready (cloud-init runs kubeadm)
    checks: ChecksConfig = ChecksConfig()
    images: Path | None = None  # scripts/images' OCI archives, imported into every node's containerd; None: none

    @property
    def minor(self) -> str:
        """``v1.37`` for ``v1.37.2``: the pkgs.k8s.io repository."""
        return ".".join(self.version.split(".")[:2])


@dataclass(frozen=True)
class CloudConfig:
    name: str
    gce: GceConfig | None
    devstack: DevstackConfig | None
    openstack: OpenStackConfig
    kubernetes: KubernetesConfig | None
    source: Path | None = None  # the file it was read from; relative paths in it are relative to its folder

    @property
    def host_name(self) -> str:
        """The GCE instance that hosts devstack."""
        return f"{self.name}-host"

    def nodes(self) -> list[tuple[str, str]]:
        """Each server of the lab as (name, role): the master, then the workers."""
        workers = [(f"{self.name}-worker-{i}", "worker") for i in range(1, self.openstack.workers + 1)]
        return [(f"{self.name}-master", "master"), *workers]


# Machine series that cannot nest, after Compute Engine's "About nested virtualization": E2; every AMD and Arm
# series; the memory-optimized series of Intel; and the shared-core N1 types, which take no minimum CPU platform.
REFUSED_FAMILIES = {
    "e2": "E2 has no nested virtualization",
    **{f: f"{f.upper()} is AMD" for f in ("n2d", "c2d", "t2d", "c3d", "n4d", "c4d", "h4d")},
    **{f: f"{f.upper()} is Arm" for f in ("t2a", "c4a", "n4a")},
    **{f: f"{f.upper()} is memory-optimized" for f in ("m1", "m2", "m3", "m4", "x4")},
    **{f: f"{f.upper()} is a shared-core N1 type, which takes no Haswell minimum CPU platform" for f in ("f1", "g1")},
}
# kubeadm.k8s.io/v1beta4, the configuration the lab renders, is read from kubeadm v1.31 on.
FIRST_V1BETA4 = 31
# kube-controller-manager's --node-cidr-mask-size for IPv4 (kubeadm leaves the default): each node's pod range.
NODE_CIDR_PREFIX = 24
# N1 runs on Sandy Bridge and Ivy Bridge too; nesting needs Haswell or later.
N1_PLATFORMS = ("Intel Haswell", "Intel Broadwell", "Intel Skylake")


def load_config(path: Path) -> CloudConfig:
    """Read ``path``; ConfigError when it cannot be read or a field is wrong."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(str(path), f"cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"is not YAML: {exc}") from None
    config = parse_config(data, path.name, base=path.parent)
    return CloudConfig(config.name, config.gce, config.devstack, config.openstack, config.kubernetes, path)


def nesting_refusal(machine_type: str) -> str | None:
    """Why ``machine_type`` cannot run nested virtualization, or None when its series can."""
    family = machine_type.split("-", 1)[0]
    return REFUSED_FAMILIES.get(family)


def parse_config(data: Any, doc: str = "cloud.yaml", base: Path = Path(".")) -> CloudConfig:
    root = Node(doc, "", data)
    name = root["name"].text(_NAME, _NAME_WHAT)
    gce = _gce(root.get("gce"))
    devstack = _devstack(root.get("devstack"), gce, base)
    openstack = _openstack(root["openstack"], name, base, devstack is not None)
    kubernetes = _kubernetes(root.get("kubernetes"), base)
    root.done()
    if kubernetes is not None:
        _disjoint(root, openstack.network.cidr, kubernetes)
        _pods_fit(root, openstack, kubernetes)
    return CloudConfig(name, gce, devstack, openstack, kubernetes)


def _gce(node: Node | None) -> GceConfig | None:
    if node is None:
        return None
    machine_type = node["machineType"].text(r"[a-z0-9]+-[-a-z0-9]+", "a machine type such as n2-standard-8")
    refusal = nesting_refusal(machine_type)
    if refusal is not None:
        node["machineType"].fail(
            f"{machine_type!r} cannot run nested virtualization ({refusal}); "
            "use an Intel type: N2 (n2-standard-8) or N1 (n1-standard-8, Haswell or later)"
        )
    platform = node.get("minCpuPlatform")
    min_cpu_platform = platform.text() if platform else None
    if machine_type.startswith("n1-"):
        if platform is not None and min_cpu_platform not in N1_PLATFORMS:
            platform.fail(f"{min_cpu_platform!r} cannot run nested virtualization on N1; "
                          f"use one of {', '.join(N1_PLATFORMS)}")
        min_cpu_platform = min_cpu_platform or N1_PLATFORMS[0]
    elif platform is not None and not (min_cpu_platform or "").startswith("Intel "):
        platform.fail(f"{min_cpu_platform!r} is not an Intel platform, and only Intel can nest")
    config = GceConfig(
        project=node["project"].text(r"[a-z][-a-z0-9]{4,28}[a-z0-9]", "a project id such as my-lab-123"),
        zone=node["zone"].text(r"[a-z]+-[a-z]+\d+-[a-z]", "a zone such as us-central1-a"),
        machine_type=machine_type,
        min_cpu_platform=min_cpu_platform,
        disk_gb=_int(node, "diskGb", 120, low=60, high=65536),
        disk_type=_text(node, "diskType", "pd-balanced", pattern=r"[-a-z0-9]+", what="a disk type such as pd-balanced"),
        image_family=_text(node, "imageFamily", "ubuntu-2404-lts-amd64"),
        image_project=_text(node, "imageProject", "ubuntu-os-cloud"),
        vmx_license=_flag(node, "vmxLicense", False),
        network=_text(node, "network", "default", pattern=_NAME, what=_NAME_WHAT),
        ssh_user=_text(node, "sshUser", "ubuntu", pattern=r"[a-z_][-a-z0-9_]{0,31}", what="a Linux user name"),
        boot_timeout=node["bootTimeout"].duration(low=30) if node.has("bootTimeout") else 600.0,
    )
    node.done()
    return config


def _devstack(node: Node | None, gce: GceConfig | None, base: Path) -> DevstackConfig | None:
    if node is None:
        return None
    host = node.get("host")
    if gce is not None:
        # The host is the GCE instance, reached as gce.sshUser with the lab's key.
        for name in ("host", "sshUser", "sshKey", "sshPort"):
            child = node.get(name)
            if child is not None:
                child.fail("is the GCE instance's with a gce section (gce.sshUser and the lab's key)")
    elif host is None:
        Node(node.doc, f"{node.path}.host", None).fail("is required without a gce section (the host to stack on)")
    key = node.get("sshKey")
    key_path = Path(key.text()).expanduser() if key else None
    host_ip = node.get("hostIp")
    password = node.get("adminPassword")
    config = DevstackConfig(
        branch=_text(node, "branch", "stable/2026.1", pattern=r"(stable|unmaintained)/[a-z0-9.]+|master",
                     what="a devstack branch such as stable/2026.1"),
        host=host.text() if host else None,
        ssh_user=_text(node, "sshUser", gce.ssh_user if gce else "ubuntu"),
        ssh_key=key_path if key_path is None or key_path.is_absolute() else base / key_path,
        ssh_port=_int(node, "sshPort", 22, low=1, high=65535),
        host_ip=host_ip.ip() if host_ip else None,
        admin_password=password.text(r"[A-Za-z0-9_.-]{8,}", "8 or more letters, digits, _ . -") if password else None,
        stack_timeout=node["stackTimeout"].duration(low=60) if node.has("stackTimeout") else 7200.0,
    )
    node.done()
    return config


def _openstack(node: Node, name: str, base: Path, devstack: bool) -> OpenStackConfig:
    cloud = node.get("cloud")
    if cloud is None and not devstack:
        Node(node.doc, f"{node.path}.cloud", None).fail(
            "is required without a devstack section (a clouds.yaml entry with admin rights)"
        )
    flavor = node["flavor"]
    flavor_config = FlavorConfig(
        name=_text(flavor, "name", f"{name}.node"),
        vcpus=_int(flavor, "vcpus", 2, low=1, high=256),
        ram_mb=_int(flavor, "ramMb", 4096, low=1024, high=1 << 20),
        disk_gb=_int(flavor, "diskGb", 20, low=1, high=65536),
    )
    flavor.done()
    image = node["image"]
    image_file = Path(image["file"].text())
    image_config = ImageConfig(
        name=image["name"].text(),
        file=image_file if image_file.is_absolute() else base / image_file,
        disk_format=image["diskFormat"].choice("qcow2", "raw") if image.has("diskFormat") else "qcow2",
        ssh_user=_text(image, "sshUser", "ubuntu", pattern=r"[a-z_][-a-z0-9_]{0,31}", what="a Linux user name"),
    )
    image.done()
    network = node.get("network")
    network_config = _network(network) if network else _network(Node(node.doc, "openstack.network", {}))
    config = OpenStackConfig(
        cloud=cloud.text() if cloud else None,
        external_network=_text(node, "externalNetwork", "public"),
        role=_text(node, "role", "member"),
        flavor=flavor_config,
        image=image_config,
        network=network_config,
        workers=_int(node, "workers", 1, low=0, high=20),
        server_timeout=node["serverTimeout"].duration(low=10) if node.has("serverTimeout") else 600.0,
    )
    node.done()
    return config


def _network(node: Node) -> NetworkConfig:
    cidr_node = node.get("cidr")
    cidr = cidr_node.text() if cidr_node else "10.10.0.0/24"
    try:
        net = ipaddress.IPv4Network(cidr)
    except ValueError:
        (cidr_node or node).fail(f"{cidr!r} is not an IPv4 network such as 10.10.0.0/24")
    if net.num_addresses < 16:
        (cidr_node or node).fail(f"{cidr} is too small for the nodes (at least a /28)")
    dns = node.get("dnsNameservers")
    master = node.get("masterIp")
    master_ip = master.ip() if master else str(net.network_address + 10)
    if ipaddress.ip_address(master_ip) not in net or master_ip in (str(net.network_address), str(net[1])):
        (master or node).fail(f"the master's address {master_ip} must be a host of {cidr} other than the gateway")
    config = NetworkConfig(cidr, tuple(d.ip() for d in dns.elements()) if dns else ("1.1.1.1",), master_ip)
    node.done()
    return config


def _kubernetes(node: Node | None, base: Path) -> KubernetesConfig | None:
    if node is None:
        return None
    nfs = node.get("nfs")
    nfs_config = None
    if nfs is not None:
        nfs_config = NfsConfig(
            export=_text(nfs, "export", "/srv/nfs/switchman", pattern=r"/[-/a-zA-Z0-9_.]+", what="an absolute path"),
            size=_text(nfs, "size", "1Gi", pattern=r"\d+(Mi|Gi|Ti)", what="a size such as 1Gi"),
        )
        nfs.done()
    config = KubernetesConfig(
        version=_version(node),
        pod_subnet=_cidr(node, "podSubnet", "10.244.0.0/16", widest=8,
                         why="kubeadm takes a pod subnet at most 16 bits wider than the nodes' /24s"),
        service_subnet=_cidr(node, "serviceSubnet", "10.96.0.0/12", widest=12, narrowest=28,
                             why="kubeadm takes a service subnet from /12 to /28 (10 addresses at least)"),
        cni=node["cni"].choice("flannel", "weave") if node.has("cni") else "flannel",
        flannel_version=_text(node, "flannelVersion", "v0.27.4", pattern=r"v\d+\.\d+\.\d+", what="a version"),
        weave_version=_text(node, "weaveVersion", "v2.8.10", pattern=r"v\d+\.\d+\.\d+", what="a version"),
        nfs=nfs_config,
        ready_timeout=node["readyTimeout"].duration(low=10) if node.has("readyTimeout") else 1800.0,
        checks=_checks(node.get("checks")),
        images=_images(node, base),
    )
    node.done()
    return config


def _images(node: Node, base: Path) -> Path | None:
    """The folder of scripts/images' archives (``runs/images`` beside cloud.yaml by default); ``false``: none."""
    if node.has("images") and node.mapping()["images"] is False:
        node.get("images")
        return None
    folder = Path(_text(node, "images", "runs/images")).expanduser()
    return folder if folder.is_absolute() else base / folder


def _checks(node: Node | None) -> ChecksConfig:
    default = ChecksConfig()
    if node is None:
        return default
    config = ChecksConfig(
        image=_text(node, "image", default.image),
        pull_policy=node["pullPolicy"].choice("IfNotPresent", "Always", "Never") if node.has("pullPolicy")
        else default.pull_policy,
        serve=_command(node, "serve", default.serve, ""),
        port=_int(node, "port", default.port, low=1, high=65535),
        get=_command(node, "get", default.get, "{url}"),
        resolve=_command(node, "resolve", default.resolve, "{name}"),
        timeout=node["timeout"].duration(low=1) if node.has("timeout") else default.timeout,
    )
    node.done()
    return config


def _command(node: Node, key: str, default: tuple[str, ...], needs: str) -> tuple[str, ...]:
    """A command as a list of words; ``needs`` is the placeholder one of them must hold."""
    child = node.get(key)
    if child is None:
        return default
    words = tuple(child.strings(1 if needs else 0))
    if needs and not any(needs in word for word in words):
        child.fail(f"has no {needs} (where the check puts what to ask for)")
    return words


def _disjoint(root: Node, node_cidr: str, kubernetes: KubernetesConfig) -> None:
    nets = {"openstack.network.cidr": node_cidr, "kubernetes.podSubnet": kubernetes.pod_subnet,
            "kubernetes.serviceSubnet": kubernetes.service_subnet}
    seen: list[tuple[str, ipaddress.IPv4Network]] = []
    for path, cidr in nets.items():
        net = ipaddress.IPv4Network(cidr)
        for other_path, other in seen:
            if net.overlaps(other):
                Node(root.doc, path, cidr).fail(f"{cidr} overlaps {other_path} ({other})")
        seen.append((path, net))


def _text(node: Node, key: str, default: str, pattern: str | None = None, what: str = "") -> str:
    child = node.get(key)
    return child.text(pattern, what) if child is not None else default


def _int(node: Node, key: str, default: int, low: int, high: int) -> int:
    child = node.get(key)
    return child.integer(low, high) if child is not None else default


def _flag(node: Node, key: str, default: bool) -> bool:
    child = node.get(key)
    return child.flag() if child is not None else default


def _version(node: Node) -> str:
    child = node.get("version")
    if child is None:
        return "v1.37.2"
    version = child.text(r"v1\.\d+\.\d+", "a version such as v1.37.2")
    if int(version.split(".")[1]) < FIRST_V1BETA4:
        child.fail(f"{version} is older than v1.{FIRST_V1BETA4}, the first kubeadm that reads the lab's "
                   "kubeadm.k8s.io/v1beta4 configuration")
    return version


def _cidr(node: Node, key: str, default: str, widest: int, narrowest: int = 32, why: str = "") -> str:
    child = node.get(key)
    if child is None:
        return default
    text = child.text()
    try:
        net = ipaddress.IPv4Network(text)
    except ValueError:
        child.fail(f"{text!r} is not an IPv4 network such as 10.244.0.0/16")
    if not widest <= net.prefixlen <= narrowest:
        child.fail(f"{net} is a /{net.prefixlen}: {why}")
    return str(net)


def _pods_fit(root: Node, config: OpenStackConfig, kubernetes: KubernetesConfig) -> None:
    """kube-controller-manager gives each node a /24 of the pod subnet (its node-cidr-mask-size): one for each."""
    nodes = 1 + config.workers
    room = 1 << max(0, NODE_CIDR_PREFIX - ipaddress.IPv4Network(kubernetes.pod_subnet).prefixlen)
    if room < nodes:
        Node(root.doc, "kubernetes.podSubnet", kubernetes.pod_subnet).fail(
            f"{kubernetes.pod_subnet} holds {room} of the /{NODE_CIDR_PREFIX}s kube-controller-manager gives each "
            f"node, and the lab has {nodes} nodes (the master and openstack.workers)")
