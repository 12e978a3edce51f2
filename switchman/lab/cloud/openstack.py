"""The OpenStack step: a project with a user, and in it everything two Kubernetes nodes need, made idempotently.

In order (destroy goes in reverse): project, user, role assignment and
flavor (as admin); then, as the lab user in its project, image, network,
subnet (DHCP on: the SDK's default is off), router with the external gateway
and the subnet attached, a security group with what Kubernetes and the CNI
need, keypair, a floating IP per node (first, so that the master's goes into
its API server certificate), the servers with their cloud-init user data, and
each floating IP associated with its server's port.

Each resource is looked up by name first; only what is missing is created and
recorded. What existed before is used and never destroyed.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from switchman.errors import LabError
from switchman.lab.cloud.devstack import admin_auth
from switchman.lab.cloud.openstack_api import Conn, admin_connection, call, identity, lookup, user_connection
from switchman.lab.cloud.openstack_resources import DELETERS, describe
from switchman.lab.cloud.pki import password
from switchman.lab.cloud.plan import CREATE, DELETE, KEEP, UPDATE, Action, RenderedFile, StepPlan
from switchman.lab.cloud.reach import proxy_url
from switchman.lab.cloud.runner import Context, StatusLine
from switchman.lab.cloud.ssh import lab_key
from switchman.lab.cloud.state import Record

__all__ = ["STEP", "OpenStackStep", "Rule", "UserData", "security_rules"]

STEP = "openstack"
PLACEHOLDER_FIP = "((floating IP of {node}))"


class UserData(Protocol):
    """Renders a node's cloud-init user data; ``plan`` asks for placeholders instead of secrets."""

    def __call__(self, ctx: Context, node: str, role: str, master_address: str, *, plan: bool) -> str: ...


@dataclass(frozen=True)
class Rule:
    """An ingress rule of the nodes' security group; ``group`` means from members of the group itself."""

    protocol: str | None
    low: int | None
    high: int | None
    why: str
    group: bool = False

    def key(self) -> tuple[str | None, int | None, int | None, bool]:
        return (self.protocol, self.low, self.high, self.group)

    def label(self) -> str:
        ports = "" if self.low is None else f" {self.low}" if self.low == self.high else f" {self.low}-{self.high}"
        source = "the group" if self.group else "anywhere"
        return f"{self.protocol or 'any'}{ports} from {source}: {self.why}"


def security_rules(cni: str) -> list[Rule]:
    """What Kubernetes and the CNI need from outside, plus everything between the nodes."""
    rules = [
        Rule("tcp", 22, 22, "SSH"),
        Rule("tcp", 6443, 6443, "Kubernetes API"),
        Rule("tcp", 10250, 10250, "kubelet API"),
        Rule("tcp", 30000, 32767, "NodePorts"),
        Rule("icmp", None, None, "ICMP"),
    ]
    if cni == "weave":
        rules += [Rule("tcp", 6783, 6783, "weave control"), Rule("udp", 6783, 6784, "weave data")]
    else:
        rules += [Rule("udp", 8472, 8472, "flannel VXLAN")]
    return [*rules, Rule(None, None, None, "between the nodes (etcd, NFS, pod traffic)", group=True)]


def plain_user_data(ctx: Context, node: str, role: str, master_address: str, *, plan: bool) -> str:
    """User data when the lab has no kubernetes section: the hostname only."""
    return f"#cloud-config\nhostname: {node}\n"


class OpenStackStep:
    name = STEP

    def __init__(self, user_data: UserData = plain_user_data) -> None:
        self.user_data = user_data

    # -- names --------------------------------------------------------------

    def _names(self, ctx: Context) -> dict[str, str]:
        n = ctx.config.name
        return {"project": n, "user": f"{n}-user", "network": f"{n}-net", "subnet": f"{n}-subnet",
                "router": f"{n}-router", "security_group": f"{n}-nodes", "keypair": f"{n}-key"}

    # -- plan ---------------------------------------------------------------

    def plan(self, ctx: Context) -> StepPlan:
        c = ctx.config.openstack
        names = self._names(ctx)
        cni = ctx.config.kubernetes.cni if ctx.config.kubernetes else "flannel"
        items: list[tuple[str, str, str]] = [
            ("project", names["project"], ""),
            ("user", names["user"], "password generated, kept in the state file"),
            ("role_assignment", f"{c.role}@{names['project']}", f"{names['user']} is {c.role}"),
            ("flavor", c.flavor.name, f"{c.flavor.vcpus} vCPU, {c.flavor.ram_mb} MiB, {c.flavor.disk_gb} GB"),
            ("image", c.image.name, f"{c.image.disk_format} from {c.image.file}"),
            ("network", names["network"], ""),
            ("subnet", names["subnet"], f"{c.network.cidr}, DHCP on, DNS {', '.join(c.network.dns_nameservers)}"),
            ("router", names["router"], f"gateway on {c.external_network}"),
            ("router_interface", f"{names['router']}:{names['subnet']}", ""),
            ("security_group", names["security_group"], ""),
            *[("security_group_rule", f"{names['security_group']}/{r.label()}", "") for r in security_rules(cni)],
            ("keypair", names["keypair"], "ed25519, private key next to the state file"),
        ]
        nodes = ctx.config.nodes()
        items += [("floating_ip", node, f"on {c.external_network}") for node, _ in nodes]
        items += [("server", node, f"{role}, {c.flavor.name}, {c.image.name}"
                   + (f", fixed IP {c.network.master_ip}" if role == "master" else "")) for node, role in nodes]
        actions = [self._planned(ctx, kind, name, detail) for kind, name, detail in items]
        actions += [Action(UPDATE, "floating_ip", node, f"associate with the port of {node}") for node, _ in nodes]
        master_fip = self._recorded_fip(ctx, nodes[0][0]) or PLACEHOLDER_FIP.format(node=nodes[0][0])
        files = tuple(RenderedFile(f"{node}: user data (cloud-init)",
                                   self.user_data(ctx, node, role, master_fip, plan=True)) for node, role in nodes)
        where = f"cloud {c.cloud!r} of clouds.yaml" if c.cloud else "the devstack step's admin"
        return StepPlan(STEP, f"project {names['project']} as {where}", tuple(actions), files)

    def _planned(self, ctx: Context, kind: str, name: str, detail: str) -> Action:
        record = ctx.state.find(STEP, kind, name)
        if record is not None:
            return Action(KEEP, kind, name, f"recorded, id {record.id}")
        return Action(CREATE, kind, name, detail)

    def _recorded_fip(self, ctx: Context, node: str) -> str | None:
        return ctx.state.output(STEP, f"floating_ip/{node}")

    # -- apply --------------------------------------------------------------

    async def apply(self, ctx: Context) -> list[Action]:
        run = _Apply(ctx, await self._admin(ctx), self._names(ctx), self.user_data, await proxy_url(ctx))
        return await run.all()

    async def _admin(self, ctx: Context) -> Conn:
        auth = admin_auth(ctx.state) if ctx.config.openstack.cloud is None else None
        return await admin_connection(ctx.config.openstack.cloud, auth or None, await proxy_url(ctx))

    # -- status and destroy -------------------------------------------------

    async def status(self, ctx: Context) -> list[StatusLine]:
        records = ctx.state.of_step(STEP)
        if not records:
            return []
        admin = await self._admin(ctx)
        lines = []
        for record in records:
            ok, words = await describe(admin, record)
            lines.append(StatusLine(record.kind, record.name, words, ok))
        return lines

    async def destroy(self, ctx: Context) -> list[Action]:
        records = list(ctx.state.reversed_of_step(STEP))
        if not records:
            return []
        admin = await self._admin(ctx)
        done = []
        for record in records:
            ctx.progress(STEP, f"delete {record.kind} {record.name}")
            await DELETERS[record.kind](admin, record)
            ctx.state.remove(record)
            done.append(Action(DELETE, record.kind, record.name, f"id {record.id}"))
        ctx.state.forget_step(STEP)
        return done


class _Apply:
    """One apply run: finds or creates each resource in order, recording what it creates."""

    def __init__(self, ctx: Context, admin: Conn, names: dict[str, str], user_data: UserData,
                 proxy: str | None) -> None:
        self.ctx = ctx
        self.proxy = proxy
        self.admin = admin
        self.names = names
        self.user_data = user_data
        self.done: list[Action] = []

    async def ensure(self, kind: str, name: str, find: Callable[[], Any], create: Callable[[], Any],
                     data: dict[str, str] | None = None) -> Any:
        """The resource ``name`` found by ``find``, or made by ``create`` and recorded."""
        found = await call(f"look up {kind} {name}", find)
        if found is not None:
            self.done.append(Action(KEEP, kind, name, "exists"))
            return found
        self.ctx.progress(STEP, f"create {kind} {name}")
        made = await call(f"create {kind} {name}", create)
        self.ctx.state.add(Record(STEP, kind, name, str(made.id), data or {}))
        self.done.append(Action(CREATE, kind, name, f"id {made.id}"))
        return made

    async def all(self) -> list[Action]:
        c = self.ctx.config.openstack
        state, admin, n = self.ctx.state, self.admin, self.names
        project = await self.ensure("project", n["project"], lambda: lookup(identity(admin).find_project, n["project"]),
                                    lambda: identity(admin).create_project(name=n["project"], domain_id="default",
                                                                          description="switchman cloud lab"))
        if state.find(STEP, "user", n["user"]) is None and "openstack.user" not in state.secrets:
            existing = await call("look up user", lookup, identity(admin).find_user, n["user"])
            if existing is not None:
                raise LabError(f"openstack: the user {n['user']} exists but this lab did not make it (its password "
                               "is not in the state file): delete it, or give the lab another name")
        secret = state.secret("openstack.user", lambda: password(24))
        user = await self.ensure("user", n["user"], lambda: lookup(identity(admin).find_user, n["user"]),
                                 lambda: identity(admin).create_user(name=n["user"], password=secret,
                                                                    domain_id="default",
                                                                    default_project_id=project.id))
        await self._role(project, user)
        flavor = await self.ensure(
            "flavor", c.flavor.name, lambda: lookup(admin.compute.find_flavor, c.flavor.name),
            lambda: admin.compute.create_flavor(name=c.flavor.name, vcpus=c.flavor.vcpus, ram=c.flavor.ram_mb,
                                                disk=c.flavor.disk_gb))
        me = await user_connection(admin, n["user"], secret, project.id, self.proxy)
        image = await self._image(me)
        network = await self.ensure("network", n["network"],
                                    lambda: lookup(me.network.find_network, n["network"], project_id=project.id),
                                    lambda: me.network.create_network(name=n["network"]))
        subnet = await self.ensure(
            "subnet", n["subnet"], lambda: lookup(me.network.find_subnet, n["subnet"], project_id=project.id),
            lambda: me.network.create_subnet(
                name=n["subnet"], network_id=network.id, ip_version=4, cidr=c.network.cidr, enable_dhcp=True,
                dns_nameservers=list(c.network.dns_nameservers)))
        external = await call("look up the external network", lookup, me.network.find_network, c.external_network)
        if external is None or not external.is_router_external:
            raise LabError(f"openstack: no external network {c.external_network!r} (openstack.externalNetwork): "
                           "the router's gateway and the floating IPs need one")
        router = await self.ensure(
            "router", n["router"], lambda: lookup(me.network.find_router, n["router"], project_id=project.id),
            lambda: me.network.create_router(name=n["router"], external_gateway_info={"network_id": external.id}))
        await self._interface(me, router, subnet)
        group = await self._security_group(me, project.id)
        key_name = n["keypair"]
        _, public_key = lab_key(self.ctx.workdir, self.ctx.config.name)
        await self.ensure("keypair", key_name, lambda: lookup(me.compute.find_keypair, key_name),
                          lambda: me.compute.create_keypair(name=key_name, public_key=public_key),
                          {"user_id": str(user.id)})
        nodes = self.ctx.config.nodes()
        fips = {node: await self._floating_ip(me, project.id, external.id, node) for node, _ in nodes}
        servers = {}
        for node, role in nodes:
            servers[node] = await self._server(me, node, role, fips[nodes[0][0]].floating_ip_address,
                                               flavor.id, image.id, network.id, group.name)
        for node, _ in nodes:
            servers[node] = await self._wait_active(me, servers[node])
            await self._associate(me, fips[node], servers[node], node)
        return self.done

    async def _role(self, project: Any, user: Any) -> None:
        role_name = self.ctx.config.openstack.role
        role = await call(f"look up role {role_name}", lookup, identity(self.admin).find_role, role_name)
        if role is None:
            raise LabError(f"openstack: no role {role_name!r} (openstack.role)")
        name = f"{role_name}@{project.name}"
        has = await call("check the role assignment", identity(self.admin).validate_user_has_project_role,
                         project, user, role)
        if has:
            self.done.append(Action(KEEP, "role_assignment", name, "exists"))
            return
        await call(f"assign {role_name}", identity(self.admin).assign_project_role_to_user, project, user, role)
        self.ctx.state.add(Record(STEP, "role_assignment", name, f"{project.id}/{user.id}/{role.id}",
                                  {"project_id": str(project.id), "user_id": str(user.id), "role_id": str(role.id)}))
        self.done.append(Action(CREATE, "role_assignment", name, f"{user.name} is {role_name}"))

    async def _image(self, me: Conn) -> Any:
        c = self.ctx.config.openstack.image
        if not c.file.is_file():
            found = await call(f"look up image {c.name}", self._find_image, me)
            if found is None:
                raise LabError(f"openstack: image file {c.file} (openstack.image.file) is not there")
        return await self.ensure(
            "image", c.name, lambda: self._find_image(me),
            lambda: self._upload(me))

    def _find_image(self, me: Conn) -> Any:
        # By listing: the image proxy's find_image looks names up with ignore_missing=True whatever it is given.
        return next(iter(me.image.images(name=self.ctx.config.openstack.image.name)), None)

    def _upload(self, me: Conn) -> Any:
        # An open file, not filename=: the SDK leaves the file it opens itself unclosed.
        c = self.ctx.config.openstack.image
        with c.file.open("rb") as data:
            return me.create_image(c.name, data=data, disk_format=c.disk_format, container_format="bare",
                                   visibility="private", wait=True, timeout=1800)

    async def _interface(self, me: Conn, router: Any, subnet: Any) -> None:
        name = f"{router.name}:{subnet.name}"
        ports = await call("list router ports", lambda: list(me.network.ports(device_id=router.id)))
        if any(ip.get("subnet_id") == subnet.id for p in ports for ip in p.fixed_ips or ()):
            self.done.append(Action(KEEP, "router_interface", name, "exists"))
            return
        self.ctx.progress(STEP, f"attach {subnet.name} to {router.name}")
        result = await call("attach the subnet", me.network.add_interface_to_router, router, subnet_id=subnet.id)
        self.ctx.state.add(Record(STEP, "router_interface", name, str(result.get("port_id", "")),
                                  {"router_id": str(router.id), "subnet_id": str(subnet.id)}))
        self.done.append(Action(CREATE, "router_interface", name, ""))

    async def _security_group(self, me: Conn, project_id: str) -> Any:
        name = self.names["security_group"]
        group = await self.ensure(
            "security_group", name, lambda: lookup(me.network.find_security_group, name, project_id=project_id),
            lambda: me.network.create_security_group(name=name, description="Kubernetes nodes of the switchman lab"))
        existing = await call("list rules", lambda: list(me.network.security_group_rules(security_group_id=group.id)))
        have = {(r.protocol, r.port_range_min, r.port_range_max, r.remote_group_id == group.id)
                for r in existing if r.direction == "ingress" and r.ether_type == "IPv4"}
        cni = self.ctx.config.kubernetes.cni if self.ctx.config.kubernetes else "flannel"
        for rule in security_rules(cni):
            label = f"{name}/{rule.label()}"
            if rule.key() in have:
                self.done.append(Action(KEEP, "security_group_rule", label, "exists"))
                continue
            made = await call(f"add rule {rule.label()}", me.network.create_security_group_rule,
                              security_group_id=group.id, direction="ingress", ethertype="IPv4",
                              protocol=rule.protocol, port_range_min=rule.low, port_range_max=rule.high,
                              **({"remote_group_id": group.id} if rule.group else {"remote_ip_prefix": "0.0.0.0/0"}))
            self.ctx.state.add(Record(STEP, "security_group_rule", label, str(made.id)))
            self.done.append(Action(CREATE, "security_group_rule", label, ""))
        return group

    async def _floating_ip(self, me: Conn, project_id: str, external_id: str, node: str) -> Any:
        def find() -> Any:
            return next(iter(me.network.ips(description=f"{self.ctx.config.name}:{node}", project_id=project_id)),
                        None)

        fip = await self.ensure("floating_ip", node, find,
                                lambda: me.network.create_ip(floating_network_id=external_id,
                                                             description=f"{self.ctx.config.name}:{node}"))
        self.ctx.state.set_output(STEP, f"floating_ip/{node}", str(fip.floating_ip_address))
        return fip

    async def _server(self, me: Conn, node: str, role: str, master_fip: str, flavor: str, image: str,
                      network: str, group: str) -> Any:
        c = self.ctx.config.openstack
        nic = {"uuid": network, **({"fixed_ip": c.network.master_ip} if role == "master" else {})}

        def create() -> Any:
            user_data = self.user_data(self.ctx, node, role, master_fip, plan=False)
            return me.compute.create_server(
                name=node, flavor_id=flavor, image_id=image, networks=[nic], key_name=self.names["keypair"],
                security_groups=[{"name": group}], metadata={"switchman-lab": self.ctx.config.name, "role": role},
                user_data=base64.b64encode(user_data.encode()).decode())

        return await self.ensure("server", node, lambda: lookup(me.compute.find_server, node), create)

    async def _wait_active(self, me: Conn, server: Any) -> Any:
        deadline = time.monotonic() + self.ctx.config.openstack.server_timeout
        last = ""
        while True:
            server = await call(f"look up server {server.name}", me.compute.get_server, server.id)
            if server.status != last:
                self.ctx.progress(STEP, f"server {server.name}: {server.status}")
                last = server.status
            if server.status == "ACTIVE":
                return server
            if server.status == "ERROR":
                fault = (server.fault or {}).get("message", "no fault given")
                raise LabError(f"openstack: server {server.name} went to ERROR: {fault}")
            if time.monotonic() > deadline:
                raise LabError(f"openstack: server {server.name} not ACTIVE after "
                               f"{self.ctx.config.openstack.server_timeout:g}s (openstack.serverTimeout); "
                               f"it is {server.status}")
            await asyncio.sleep(2.0)

    async def _associate(self, me: Conn, fip: Any, server: Any, node: str) -> None:
        ports = await call(f"list the ports of {node}", lambda: list(me.network.ports(device_id=server.id)))
        if not ports:
            raise LabError(f"openstack: server {node} has no port to put its floating IP on")
        if fip.port_id == ports[0].id:
            return
        self.ctx.progress(STEP, f"floating IP {fip.floating_ip_address} -> {node}")
        await call("associate the floating IP", me.network.update_ip, fip, port_id=ports[0].id)
        self.done.append(Action(UPDATE, "floating_ip", node, f"{fip.floating_ip_address} -> {node}"))

