"""SwitchmanClient against a real Switchman: every method, the typed errors, and Envoy messages as documents."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
import yaml
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2

from switchman.app import Switchman
from switchman.client import (
    ApplyResult,
    ClientError,
    Forbidden,
    InvalidConfig,
    NotFound,
    SwitchmanClient,
    Unauthorized,
    Unreachable,
    to_document,
)
from switchman.errors import SwitchmanError
from switchman.testing.builders import eds_cluster, http_listener, load_assignment, route_config
from tests.functional.cli.conftest import ADMIN, EXAMPLES, READER, api_url, free_port

CHECKOUT_IDS = ("listener/ingress", "routes/ingress-routes", "service/checkout")


def checkout() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / "checkout.yaml").read_text()) if d]


async def test_changes_return_what_they_did(server: Switchman) -> None:
    async with SwitchmanClient(api_url(server), author="alice") as client:
        dry = await client.apply(checkout(), dry_run=True)
        assert dry.dry_run and dry.revision is None
        assert sorted(dry.created) == list(CHECKOUT_IDS)
        assert "cds/checkout-v1" in dry.envoy.added and dry.changes
        assert await client.list() == []  # a dry run stores nothing

        first = await client.apply(checkout(), message="first")
        assert isinstance(first, ApplyResult)
        assert first.revision == 1 and not first.dry_run
        assert set(first.envoy.added) == {
            "cds/checkout-v1", "cds/checkout-v2", "eds/checkout-v1", "eds/checkout-v2", "lds/ingress",
            "rds/ingress-routes",
        }

        again = await client.apply(checkout())
        assert again.revision is None and not again.changes
        assert sorted(again.unchanged) == list(CHECKOUT_IDS)

        shifted = await client.set_weights("checkout", {"v1": 10, "v2": 90})
        assert shifted.revision == 2
        assert shifted.configured == ("service/checkout",)
        assert shifted.envoy.changed == ("rds/ingress-routes",)

        would = await client.delete("Listener", "ingress", dry_run=True)
        assert would.revision is None and would.deleted == ("listener/ingress",)
        assert would.envoy.removed == ("lds/ingress",)
        deleted = await client.delete("listener", "ingress")
        assert deleted.revision == 3 and deleted.deleted == ("listener/ingress",)

        back = await client.rollback(1)
        assert back.revision == 4
        assert back.created == ("listener/ingress",) and back.configured == ("service/checkout",)

        history = await client.history(limit=10)
        assert [h["number"] for h in history] == [4, 3, 2, 1]
        assert history[0]["rollback_of"] == 1
        assert history[3]["message"] == "first" and history[3]["author"] == "alice"
        assert [h["number"] for h in await client.history(limit=2)] == [4, 3]


async def test_reads(server: Switchman) -> None:
    async with SwitchmanClient(api_url(server)) as client:
        await client.apply(checkout(), message="first")
        service = await client.get("Service", "checkout")
        assert service["spec"]["weights"] == {"v1": 100, "v2": 0}
        assert [d["metadata"]["name"] for d in await client.list()] == ["ingress", "ingress-routes", "checkout"]
        assert [d["kind"] for d in await client.list("routes")] == ["Routes"]

        revision = await client.revision(1)
        assert revision["revision"]["number"] == 1 and len(revision["documents"]) == 3

        rendered = await client.render()
        assert rendered["group"] == "*"
        assert [c["name"] for c in rendered["resources"]["cds"]] == ["checkout-v1", "checkout-v2"]
        assert (await client.render(group="*"))["resources"] == rendered["resources"]
        with pytest.raises(ValueError, match="not both"):
            await client.render(node="a", group="b")

        status = await client.status()
        assert (status["revision"], status["nodes"], status["store"]["store_head"]) == (1, [], 1)


async def test_errors_are_typed_by_the_api_code(server: Switchman) -> None:
    async with SwitchmanClient(api_url(server)) as client:
        bad = checkout()
        bad[0]["spec"]["weights"]["v3"] = 5
        with pytest.raises(InvalidConfig) as invalid:
            await client.apply(bad)
        assert invalid.value.status == 422 and invalid.value.code == "invalid_config"
        assert invalid.value.path == "service/checkout: spec.weights.v3"
        assert "there is no version 'v3'" in str(invalid.value)
        assert isinstance(invalid.value, ClientError) and isinstance(invalid.value, SwitchmanError)

        with pytest.raises(NotFound) as missing:
            await client.get("Service", "nope")
        assert (missing.value.status, missing.value.code) == (404, "not_found")
        assert str(missing.value) == "service/nope does not exist"
        with pytest.raises(NotFound):
            await client.revision(42)
        with pytest.raises(NotFound):
            await client.rollback(42)
        with pytest.raises(NotFound):
            await client.set_weights("nope", {"v1": 100})
        with pytest.raises(NotFound, match="no node 'ghost'"):
            await client.render(node="ghost")
        with pytest.raises(NotFound, match="no kind"):
            await client.delete("Gateway", "x")


async def test_tokens(secured: Switchman) -> None:
    async with SwitchmanClient(api_url(secured)) as anonymous:
        with pytest.raises(Unauthorized) as no_token:
            await anonymous.list()
        assert no_token.value.status == 401 and "bearer token is required" in str(no_token.value)
    async with SwitchmanClient(api_url(secured), token="wrong") as wrong:
        with pytest.raises(Unauthorized, match="not known"):
            await wrong.status()
    async with SwitchmanClient(api_url(secured), token=READER) as reader:
        assert await reader.list() == []
        with pytest.raises(Forbidden) as refused:
            await reader.apply(checkout())
        assert refused.value.status == 403 and "may only read" in str(refused.value)
    async with SwitchmanClient(api_url(secured), token=ADMIN) as admin:
        assert (await admin.apply(checkout())).revision == 1
        assert (await admin.history())[0]["author"] == "ci"


async def test_unreachable_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with SwitchmanClient(url) as client:
        with pytest.raises(Unreachable) as exc:
            await client.status()
    assert exc.value.status == 0 and exc.value.code == "unreachable"
    assert url in str(exc.value)


async def test_the_session_reopens_after_close(server: Switchman) -> None:
    client = SwitchmanClient(f"127.0.0.1:{server.api_port}/")  # no scheme: http; a trailing slash is fine
    assert client.base_url == api_url(server)
    assert (await client.status())["nodes"] == []
    await client.close()
    assert (await client.status())["nodes"] == []
    await client.close()


# -- Envoy messages as documents -----------------------------------------------------------------------


def legacy_messages(port: int = 9201) -> list[Any]:
    """A listener -> routes -> EDS cluster -> endpoints chain as xds-protos messages.

    The endpoints have a name of their own (the cluster's EDS service name): documents are named by kind
    and name, and a cluster and its endpoints would both be ``envoyresource/legacy``.
    """
    cluster = eds_cluster("legacy")
    cluster.eds_cluster_config.service_name = "legacy-endpoints"
    return [
        http_listener("legacy-ingress", "legacy-routes", port=0),
        route_config("legacy-routes", "legacy"),
        cluster,
        load_assignment("legacy-endpoints", [("127.0.0.1", port)]),
    ]


async def test_protobuf_messages_are_envoy_resource_documents(server: Switchman) -> None:
    listener, routes, cluster, endpoints = legacy_messages()
    async with SwitchmanClient(api_url(server)) as client:
        # A bare message, or the spec of a mapping.
        wrapped = {"kind": "EnvoyResource", "metadata": {"name": "legacy"}, "spec": cluster}
        result = await client.apply([listener, routes, wrapped, endpoints])
        assert result.created == (
            "envoyresource/legacy", "envoyresource/legacy-endpoints", "envoyresource/legacy-ingress",
            "envoyresource/legacy-routes",
        )
        assert "cds/legacy" in result.envoy.added and "eds/legacy-endpoints" in result.envoy.added
        stored = await client.get("EnvoyResource", "legacy-ingress")
        assert stored["spec"]["@type"] == "type.googleapis.com/envoy.config.listener.v3.Listener"
        rendered = (await client.render())["resources"]
        assert [c["name"] for c in rendered["cds"]] == ["legacy"]
        assert rendered["eds"][0]["clusterName"] == "legacy-endpoints"
        assert rendered["lds"][0]["name"] == "legacy-ingress"


def test_to_document() -> None:
    cluster = cluster_pb2.Cluster(name="raw", type=cluster_pb2.Cluster.STATIC)
    doc = to_document(cluster)
    assert doc == {
        "kind": "EnvoyResource",
        "metadata": {"name": "raw"},
        "spec": {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "raw", "type": "STATIC"},
    }
    plain = {"kind": "Service", "metadata": {"name": "x"}, "spec": {"versions": {}}}
    assert to_document(plain) == plain
    with pytest.raises(TypeError, match="not a type Switchman serves"):
        to_document(base_pb2.Node(id="x"))
    with pytest.raises(TypeError, match="mapping or an Envoy protobuf message"):
        to_document(42)


_BETTERPROTO = importlib.util.find_spec("envoy_data_plane") is not None


@pytest.mark.skipif(not _BETTERPROTO, reason="envoy-data-plane is not installed")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # its pydantic validators, at import
async def test_envoy_data_plane_messages(server: Switchman) -> None:
    from envoy_data_plane.envoy.config.cluster.v3 import Cluster, ClusterDiscoveryType
    from envoy_data_plane.envoy.config.core.v3 import Address, SocketAddress
    from envoy_data_plane.envoy.config.endpoint.v3 import (
        ClusterLoadAssignment,
        Endpoint,
        LbEndpoint,
        LocalityLbEndpoints,
    )

    address = Address(socket_address=SocketAddress(address="127.0.0.1", port_value=9301))
    endpoints = ClusterLoadAssignment(
        cluster_name="bp",
        endpoints=[LocalityLbEndpoints(lb_endpoints=[LbEndpoint(endpoint=Endpoint(address=address))])],
    )
    cluster = Cluster(name="bp", type=ClusterDiscoveryType.STATIC, load_assignment=endpoints)
    async with SwitchmanClient(api_url(server)) as client:
        result = await client.apply([cluster])
        assert result.created == ("envoyresource/bp",)
        stored = await client.get("EnvoyResource", "bp")
    spec = stored["spec"]
    assert spec["@type"] == "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    assert spec["type"] == "STATIC"
    socket_address = spec["loadAssignment"]["endpoints"][0]["lbEndpoints"][0]["endpoint"]["address"]["socketAddress"]
    assert socket_address == {"address": "127.0.0.1", "portValue": 9301}


@pytest.mark.skipif(not _BETTERPROTO, reason="envoy-data-plane is not installed")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_envoy_data_plane_messages_with_packed_any() -> None:
    from envoy_data_plane.envoy.config.listener.v3 import Filter, FilterChain, Listener
    from envoy_data_plane.envoy.extensions.filters.http.router.v3 import Router
    from envoy_data_plane.envoy.extensions.filters.network.http_connection_manager.v3 import (
        HttpConnectionManager,
        HttpFilter,
        Rds,
    )
    from envoy_data_plane.google.protobuf import Any as PackedAny

    router = HttpFilter(name="envoy.filters.http.router", typed_config=PackedAny.pack(Router()))
    hcm = HttpConnectionManager(stat_prefix="bp", rds=Rds(route_config_name="bp-routes"), http_filters=[router])
    chain = FilterChain(filters=[Filter(name="hcm", typed_config=PackedAny.pack(hcm))])
    listener = Listener(name="bp-ingress", filter_chains=[chain])
    doc = to_document(listener)
    assert doc["metadata"] == {"name": "bp-ingress"}
    packed = doc["spec"]["filterChains"][0]["filters"][0]["typedConfig"]
    assert packed["@type"].endswith("http_connection_manager.v3.HttpConnectionManager")
    assert packed["rds"] == {"routeConfigName": "bp-routes"}
    router_type = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
    assert packed["httpFilters"][0]["typedConfig"] == {"@type": router_type}

    from envoy_data_plane.envoy.config.core.v3 import Node

    with pytest.raises(TypeError, match=r"envoy\.config\.core\.v3\.Node is not a type Switchman serves"):
        to_document(Node(id="x"))

