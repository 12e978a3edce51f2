"""The OpenStack step against a real OpenStack: apply, re-apply (nothing changes), status, destroy (nothing left).

Runs when SWITCHMAN_TEST_OPENSTACK_CLOUD names an admin cloud of clouds.yaml
(``lab-admin`` for ../shared/openstack-debian, which .ci/run starts).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from switchman.lab.cloud import Context, parse_config
from switchman.lab.cloud.kubeadm import node_user_data
from switchman.lab.cloud.openstack import OpenStackStep
from switchman.lab.cloud.runner import apply_steps, destroy_steps, status_steps
from switchman.lab.cloud.steps import open_context

CLOUD = os.environ.get("SWITCHMAN_TEST_OPENSTACK_CLOUD")
pytestmark = [
    pytest.mark.skipif(not CLOUD, reason="set SWITCHMAN_TEST_OPENSTACK_CLOUD=lab-admin (an admin cloud of "
                       "clouds.yaml, such as ../shared/openstack-debian's) to run against a real OpenStack"),
    pytest.mark.timeout(600),
]
EXTERNAL = "switchman-test-public"


@pytest.fixture(scope="module")
def admin() -> Any:
    import openstack

    return openstack.connect(cloud=CLOUD)


@pytest.fixture(scope="module")
def external(admin: Any) -> Iterator[str]:
    """An external network, as a devstack has (``public``): one that is there, or one made here and removed after."""
    net = next(iter(admin.network.networks(is_router_external=True)), None)
    made = net is None
    if made:
        net = admin.network.create_network(name=EXTERNAL, is_router_external=True, provider_network_type="flat",
                                           provider_physical_network="public")
        admin.network.create_subnet(network_id=net.id, name=EXTERNAL, ip_version=4, cidr="172.24.9.0/24",
                                    gateway_ip="172.24.9.1", enable_dhcp=False)
    yield str(net.name)
    if made:
        admin.network.delete_network(net.id)


def _context(tmp_path: Path, external: str, name: str) -> Context:
    image = tmp_path / "tiny.img"
    image.write_bytes(os.urandom(64 * 1024))
    config = parse_config({
        "name": name,
        "openstack": {"cloud": CLOUD, "externalNetwork": external, "flavor": {"ramMb": 1024, "diskGb": 1},
                      "image": {"name": f"{name}-tiny", "file": str(image), "diskFormat": "raw"}, "workers": 1},
        "kubernetes": {},
    })
    return open_context(config, tmp_path / "state")


def _leftovers(admin: Any, name: str) -> list[str]:
    found = [f"project {p.name}" for p in admin.identity.projects() if p.name == name]
    found += [f"user {u.name}" for u in admin.identity.users() if u.name.startswith(name)]
    found += [f"server {s.name}" for s in admin.compute.servers(all_projects=True) if s.name.startswith(name)]
    found += [f"flavor {f.name}" for f in admin.compute.flavors() if f.name.startswith(name)]
    found += [f"image {i.name}" for i in admin.image.images() if i.name.startswith(name)]
    for kind, items in (("network", admin.network.networks()), ("router", admin.network.routers()),
                        ("security group", admin.network.security_groups())):
        found += [f"{kind} {x.name}" for x in items if x.name.startswith(name)]
    found += [f"floating IP {f.floating_ip_address}" for f in admin.network.ips() if f.description.startswith(name)]
    return found


async def test_apply_reapply_status_destroy(tmp_path: Path, admin: Any, external: str) -> None:
    name = "swtest"
    assert _leftovers(admin, name) == [], "leftovers of an earlier run"
    ctx = _context(tmp_path, external, name)
    steps = [OpenStackStep(node_user_data)]
    try:
        (first,) = await apply_steps(ctx, steps)
        assert {a.verb for a in first.actions} == {"+", "~"}
        created = [a.what for a in first.actions if a.verb == "+"]
        assert created.count("server") == 2 and created.count("floating_ip") == 2
        assert len(ctx.state.records) == len(created)

        # Servers ACTIVE, each with its own user data (the kubeadm step's cloud-init: Nova takes it whole), and
        # the floating IPs on their ports.
        servers = {s.name: s.id for s in admin.compute.servers(all_projects=True)}
        master_fip = ctx.state.output("openstack", "floating_ip/swtest-master")
        for node, kind in (("swtest-master", "InitConfiguration"), ("swtest-worker-1", "JoinConfiguration")):
            server = admin.compute.get_server(servers[node])
            assert server.status == "ACTIVE"
            user_data = base64.b64decode(server.user_data).decode()
            assert user_data == node_user_data(ctx, node, node.split("-")[1], str(master_fip), plan=False)
            assert user_data.startswith("#cloud-config\n") and f"hostname: {node}" in user_data
            assert f"kind: {kind}" in user_data
            fip = ctx.state.output("openstack", f"floating_ip/{node}")
            (ip,) = admin.network.ips(floating_ip_address=fip)
            assert ip.port_id and ip.fixed_ip_address
        assert f"- {master_fip}\n" in base64.b64decode(admin.compute.get_server(servers["swtest-master"]).user_data
                                                       ).decode()  # in the API server's certSANs
        master = admin.compute.get_server(servers["swtest-master"])
        assert any(a["addr"] == "10.10.0.10" for net in master.addresses.values() for a in net)
        (subnet,) = admin.network.subnets(name="swtest-subnet")
        assert subnet.is_dhcp_enabled

        # Again: nothing is created or changed, and the state file is the same.
        before = ctx.state.path.read_text()
        (again,) = await apply_steps(_context(tmp_path, external, name), steps)
        assert {a.verb for a in again.actions} == {"="}, [a.line() for a in again.actions if a.verb != "="]
        assert ctx.state.path.read_text() == before

        status = (await status_steps(ctx, steps))["openstack"]
        assert all(line.ok for line in status), [line for line in status if not line.ok]
        assert [line.status.split()[0] for line in status if line.what == "server"] == ["ACTIVE", "ACTIVE"]
    finally:
        ctx = _context(tmp_path, external, name)
        (gone,) = await destroy_steps(ctx, steps)
    assert len(gone.actions) == len(created)
    assert ctx.state.records == []
    assert _leftovers(admin, name) == []
