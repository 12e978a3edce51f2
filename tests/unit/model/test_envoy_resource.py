"""kind: EnvoyResource: Envoy's own v3 JSON under spec, checked field by field; its name is metadata.name."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2

from tests.unit.model.docs import envoy_resource, parse, raw_cluster, rejected

SERVED = (
    "envoy.config.cluster.v3.Cluster, envoy.config.endpoint.v3.ClusterLoadAssignment, "
    "envoy.config.listener.v3.Listener, envoy.config.route.v3.RouteConfiguration, "
    "envoy.extensions.transport_sockets.tls.v3.Secret"
)
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"


def test_a_raw_cluster_is_parsed_into_its_message() -> None:
    message = parse(raw_cluster("legacy")).spec
    assert isinstance(message, cluster_pb2.Cluster)
    assert (message.name, message.type, message.connect_timeout.seconds) == ("legacy", cluster_pb2.Cluster.STATIC, 1)


def test_the_type_prefix_may_be_left_out() -> None:
    doc = envoy_resource("c", {"@type": "envoy.config.cluster.v3.Cluster", "name": "c"})
    assert isinstance(parse(doc).spec, cluster_pb2.Cluster)


def test_a_load_assignment_is_named_by_its_cluster_name() -> None:
    doc = envoy_resource(
        "c", {"@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment", "cluster_name": "c"}
    )
    assert isinstance(parse(doc).spec, endpoint_pb2.ClusterLoadAssignment)


def test_unknown_field_is_refused_naming_it() -> None:
    err = rejected(envoy_resource("c", {"@type": CLUSTER, "name": "c", "conect_timeout": "1s"}))
    assert err.path == "envoyresource/c: spec"
    assert 'has no field named "conect_timeout"' in err.reason


def test_a_wrong_value_is_refused_naming_the_field() -> None:
    err = rejected(envoy_resource("c", {"@type": CLUSTER, "name": "c", "lb_policy": "FASTEST"}))
    assert err.path == "envoyresource/c: spec"
    assert "lb_policy" in err.reason or "LbPolicy" in err.reason
    assert "FASTEST" in err.reason


def test_name_must_match_metadata_name() -> None:
    err = rejected(envoy_resource("legacy", {"@type": CLUSTER, "name": "legacy-v2"}))
    assert err.path == "envoyresource/legacy: spec"
    assert err.reason == "the resource is named 'legacy-v2'; it must match metadata.name 'legacy'"


def test_a_missing_name_does_not_match_either() -> None:
    err = rejected(envoy_resource("legacy", {"@type": CLUSTER}))
    assert err.reason == "the resource is named ''; it must match metadata.name 'legacy'"


@pytest.mark.parametrize(
    "type_name",
    ["type.googleapis.com/envoy.config.cluster.v3.Nope", "type.googleapis.com/google.protobuf.Struct",
     "envoy.config.cluster.v2.Cluster"],
)
def test_unknown_type_is_refused_with_the_served_types(type_name: str) -> None:
    err = rejected(envoy_resource("c", {"@type": type_name, "name": "c"}))
    assert err.path == "envoyresource/c: spec"
    assert err.reason == f"{type_name!r} is not one of {SERVED}"


def test_missing_type_is_refused() -> None:
    err = rejected(envoy_resource("c", {"name": "c"}))
    assert (err.path, err.reason) == ("envoyresource/c: spec", f"'' is not one of {SERVED}")
