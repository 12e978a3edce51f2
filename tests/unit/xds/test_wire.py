"""Hand-framed responses parse back with the real protobuf classes and equal what protobuf would produce."""

from __future__ import annotations

import pytest
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from switchman.testing.builders import eds_cluster, http_listener, load_assignment, route_config
from switchman.xds import Resource, wire
from switchman.xds import resources as rt
from tests.unit.xds.harness import unpack


def big_assignment(name: str, count: int) -> Message:
    hosts = [(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", 8000 + i % 1000) for i in range(count)]
    return load_assignment(name, hosts)


MESSAGES: list[Message] = [
    eds_cluster("checkout-v1", http2=True),
    eds_cluster("checkout-v2"),
    load_assignment("checkout-v1", [("127.0.0.1", 9001)]),
    route_config("ingress-routes", [("checkout-v1", 90), ("checkout-v2", 10)]),
    http_listener("ingress", "ingress-routes", port=8080),
]


def packed(message: Message) -> any_pb2.Any:
    type_url = rt.TYPE_URL_OF[type(message)]
    return any_pb2.Any(type_url=type_url, value=message.SerializeToString(deterministic=True))


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_sotw_response_of_one_resource_parses_and_unpacks_to_the_original(message: Message) -> None:
    resource = Resource(message)
    data = wire.sotw_response("v1", resource.sotw_field, resource.type_url, "n-1")
    parsed = discovery_pb2.DiscoveryResponse.FromString(data)
    assert parsed.version_info == "v1"
    assert parsed.type_url == resource.type_url
    assert parsed.nonce == "n-1"
    assert len(parsed.resources) == 1
    assert parsed.resources[0].type_url == resource.type_url
    assert unpack(parsed.resources[0]) == message


def test_sotw_response_equals_protobufs_own_encoding() -> None:
    clusters = [eds_cluster("a"), eds_cluster("b", http2=True), eds_cluster("c")]
    fields = b"".join(Resource(c).sotw_field for c in clusters)
    ours = wire.sotw_response("3f2a", fields, rt.CLUSTER, "7-12")
    expected = discovery_pb2.DiscoveryResponse(
        version_info="3f2a", resources=[packed(c) for c in clusters], type_url=rt.CLUSTER, nonce="7-12"
    )
    assert discovery_pb2.DiscoveryResponse.FromString(ours) == expected
    assert ours == expected.SerializeToString(deterministic=True)


def test_sotw_response_with_no_resources_and_empty_version() -> None:
    data = wire.sotw_response("", b"", rt.ROUTE, "n")
    parsed = discovery_pb2.DiscoveryResponse.FromString(data)
    assert parsed == discovery_pb2.DiscoveryResponse(type_url=rt.ROUTE, nonce="n")
    assert list(parsed.resources) == []


@pytest.mark.parametrize("count", [1, 20, 3000], ids=["tiny", "over-127-bytes", "over-16k-bytes"])
def test_long_resources_frame_their_lengths_correctly(count: int) -> None:
    message = big_assignment("big", count)
    resource = Resource(message)
    data = wire.sotw_response("v", resource.sotw_field * 2, rt.ENDPOINT, "n")
    parsed = discovery_pb2.DiscoveryResponse.FromString(data)
    assert [unpack(r) for r in parsed.resources] == [message, message]
    assert data == discovery_pb2.DiscoveryResponse(
        version_info="v", resources=[packed(message)] * 2, type_url=rt.ENDPOINT, nonce="n"
    ).SerializeToString(deterministic=True)


def test_delta_response_parses_with_names_versions_and_removals() -> None:
    resources = [Resource(m) for m in (eds_cluster("a"), eds_cluster("b", http2=True))]
    fields = b"".join(r.delta_field for r in resources)
    data = wire.delta_response("sys-9", fields, rt.CLUSTER, ["gone-1", "gone-2"], "4-2")
    parsed = discovery_pb2.DeltaDiscoveryResponse.FromString(data)
    assert parsed.system_version_info == "sys-9"
    assert parsed.type_url == rt.CLUSTER
    assert parsed.nonce == "4-2"
    assert list(parsed.removed_resources) == ["gone-1", "gone-2"]
    assert [r.name for r in parsed.resources] == ["a", "b"]
    assert [r.version for r in parsed.resources] == [r.version for r in resources]
    assert [unpack(r.resource) for r in parsed.resources] == [r.message for r in resources]


def test_delta_response_equals_protobufs_own_encoding() -> None:
    messages = [load_assignment("a", [("127.0.0.1", 1)]), big_assignment("b", 50)]
    resources = [Resource(m) for m in messages]
    ours = wire.delta_response("", b"".join(r.delta_field for r in resources), rt.ENDPOINT, ["x"], "n-5")
    expected = discovery_pb2.DeltaDiscoveryResponse(
        resources=[
            discovery_pb2.Resource(name=r.name, version=r.version, resource=packed(r.message)) for r in resources
        ],
        type_url=rt.ENDPOINT,
        removed_resources=["x"],
        nonce="n-5",
    )
    assert discovery_pb2.DeltaDiscoveryResponse.FromString(ours) == expected
    assert ours == expected.SerializeToString(deterministic=True)


def test_delta_response_of_removals_only() -> None:
    data = wire.delta_response("v", b"", rt.LISTENER, ["old"], "n")
    parsed = discovery_pb2.DeltaDiscoveryResponse.FromString(data)
    assert list(parsed.resources) == []
    assert list(parsed.removed_resources) == ["old"]


def test_encode_any_equals_a_packed_any() -> None:
    message = eds_cluster("a")
    value = message.SerializeToString(deterministic=True)
    ours = wire.encode_any(rt.CLUSTER, value)
    reference = any_pb2.Any()
    reference.Pack(message, deterministic=True)
    assert any_pb2.Any.FromString(ours) == reference
    assert ours == reference.SerializeToString(deterministic=True)


def test_resource_fields_are_cached_and_consistent() -> None:
    resource = Resource(route_config("r", "a"))
    assert resource.delta_field is resource.delta_field
    inner = discovery_pb2.DeltaDiscoveryResponse.FromString(resource.delta_field).resources[0]
    assert inner.name == "r" and inner.version == resource.version
    outer = discovery_pb2.DiscoveryResponse.FromString(resource.sotw_field).resources[0]
    assert outer.SerializeToString() == resource.any_bytes
