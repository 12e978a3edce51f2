"""kind: Service: named versions, each a set of endpoints, and the default split between them."""

from __future__ import annotations

from typing import Any

from switchman.model.kinds.service import ServiceSpec
from tests.unit.model.docs import parse, rejected, service


def _spec(doc: dict[str, Any]) -> ServiceSpec:
    spec = parse(doc).spec
    assert isinstance(spec, ServiceSpec)
    return spec


def test_versions_are_required() -> None:
    err = rejected(service() | {"spec": {"weights": {"v1": 1}}})
    assert (err.path, err.reason) == ("service/s: spec.versions", "is required")


def test_a_service_needs_a_version() -> None:
    err = rejected(service() | {"spec": {"versions": {}}})
    assert (err.path, err.reason) == ("service/s: spec.versions", "needs at least one version")


def test_version_names_are_plain() -> None:
    err = rejected(service(versions={"V1": 9001}))
    assert err.path == "service/s: spec.versions.V1"
    assert err.reason == "'V1' is not a version name (lowercase, digits, - and _)"


def test_a_version_needs_endpoints() -> None:
    err = rejected(service() | {"spec": {"versions": {"v1": {}}}})
    assert (err.path, err.reason) == ("service/s: spec.versions.v1.endpoints", "is required")


def test_an_endpoint_listed_twice_in_a_version_is_refused() -> None:
    endpoint = {"address": "10.0.0.1", "port": 80}
    err = rejected(service() | {"spec": {"versions": {"v1": {"endpoints": [endpoint, endpoint]}}}})
    assert (err.path, err.reason) == ("service/s: spec.versions.v1.endpoints[1]", "10.0.0.1:80 is listed twice")


def test_the_same_endpoint_in_two_versions_is_allowed() -> None:
    endpoints = {"endpoints": [{"address": "10.0.0.1", "port": 80}]}
    assert set(_spec(service() | {"spec": {"versions": {"v1": endpoints, "v2": endpoints}}}).versions) == {"v1", "v2"}


def test_weights_name_only_versions_that_exist() -> None:
    err = rejected(service(weights={"v1": 90, "v3": 10}))
    assert (err.path, err.reason) == ("service/s: spec.weights.v3", "there is no version 'v3' (versions: v1, v2)")


def test_weights_summing_to_zero_are_refused() -> None:
    err = rejected(service(weights={"v1": 0, "v2": 0}))
    assert (err.path, err.reason) == ("service/s: spec.weights", "weights sum to 0")


def test_without_weights_everything_goes_to_the_first_version() -> None:
    assert dict(_spec(service(versions={"blue": 1, "green": 2})).weights) == {"blue": 100}


def test_weights_left_out_are_zero() -> None:
    assert dict(_spec(service(weights={"v2": 10})).weights) == {"v2": 10}


def test_upstream_rules_apply_to_services_too() -> None:
    err = rejected(service(circuitBreakers={"maxRetries": 1, "retryBudget": {}}))
    assert err.path == "service/s: spec.circuitBreakers"
    assert err.reason.startswith("set either maxRetries or retryBudget")
    assert _spec(service(lbPolicy="LEAST_REQUEST", http2=True)).upstream.http2 is True
