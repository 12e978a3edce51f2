"""kind: Cluster: endpoints, discovery, and the upstream settings a Service shares."""

from __future__ import annotations

from typing import Any

import pytest

from switchman.model.kinds.cluster import ClusterSpec, Endpoint, Upstream
from switchman.translate import translate
from tests.unit.model.docs import cluster, config, parse, rejected


def _spec(doc: dict[str, Any]) -> ClusterSpec:
    spec = parse(doc).spec
    assert isinstance(spec, ClusterSpec)
    return spec


def test_defaults() -> None:
    spec = _spec(cluster())
    assert spec.discovery == "eds"
    assert spec.endpoints == (Endpoint("127.0.0.1", 9001, 1),)
    assert spec.upstream == Upstream()


def test_endpoints_are_required() -> None:
    err = rejected(cluster() | {"spec": {"lbPolicy": "RANDOM"}})
    assert (err.path, err.reason) == ("cluster/c: spec.endpoints", "is required")


def test_an_endpoint_listed_twice_is_refused() -> None:
    endpoints = [{"address": "127.0.0.1", "port": 9001}, {"address": "127.0.0.1", "port": 9002},
                 {"address": "127.0.0.1", "port": 9001, "weight": 3}]
    err = rejected(cluster(endpoints=endpoints))
    assert (err.path, err.reason) == ("cluster/c: spec.endpoints[2]", "127.0.0.1:9001 is listed twice")


def test_endpoint_address_must_look_like_an_address() -> None:
    err = rejected(cluster(endpoints=[{"address": "127.0.0.1/8", "port": 1}]))
    assert err.path == "cluster/c: spec.endpoints[0].address"
    assert err.reason == "'127.0.0.1/8' is not an IP address"


def test_endpoint_port_is_required() -> None:
    err = rejected(cluster(endpoints=[{"address": "127.0.0.1"}]))
    assert (err.path, err.reason) == ("cluster/c: spec.endpoints[0].port", "is required")


def test_unknown_lb_policy_is_refused_with_the_choices() -> None:
    err = rejected(cluster(lbPolicy="FASTEST"))
    assert err.path == "cluster/c: spec.lbPolicy"
    assert err.reason == "'FASTEST' is not one of ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV"


def test_unknown_discovery_is_refused_with_the_choices() -> None:
    err = rejected(cluster(discovery="dns"))
    assert (err.path, err.reason) == ("cluster/c: spec.discovery", "'dns' is not one of eds, static")


def test_max_retries_and_retry_budget_together_are_refused() -> None:
    err = rejected(cluster(circuitBreakers={"maxRetries": 3, "retryBudget": {"percent": 20}}))
    assert err.path == "cluster/c: spec.circuitBreakers"
    assert err.reason == "set either maxRetries or retryBudget: Envoy uses the budget and ignores maxRetries"


def test_retry_budget_defaults_to_twenty_percent() -> None:
    breakers = _spec(cluster(circuitBreakers={"retryBudget": {}})).upstream.circuit_breakers
    assert breakers is not None
    assert (breakers.retry_budget_percent, breakers.max_retries) == (20.0, None)


def test_health_check_needs_a_path_starting_with_a_slash() -> None:
    err = rejected(cluster(healthCheck={"interval": "1s"}))
    assert (err.path, err.reason) == ("cluster/c: spec.healthCheck.path", "is required")
    err = rejected(cluster(healthCheck={"path": "healthz"}))
    assert (err.path, err.reason) == ("cluster/c: spec.healthCheck.path", "'healthz' is not a path starting with /")


def test_outlier_detection_defaults() -> None:
    outlier = _spec(cluster(outlierDetection={})).upstream.outlier_detection
    assert outlier is not None
    assert (outlier.consecutive_5xx, outlier.interval, outlier.base_ejection_time, outlier.max_ejection_percent) == (
        5, 10.0, 30.0, 10
    )


def test_max_ejection_percent_zero_is_kept() -> None:
    outlier = _spec(cluster(outlierDetection={"maxEjectionPercent": 0})).upstream.outlier_detection
    assert outlier is not None
    assert outlier.max_ejection_percent == 0


@pytest.mark.parametrize("discovery", ["eds", "static"])
def test_endpoint_host_names_are_refused_for_eds_and_static_clusters(discovery: str) -> None:
    err = rejected(cluster(discovery=discovery, endpoints=[{"address": "example.com", "port": 80}]))
    assert err.path == "cluster/c: spec.endpoints[0].address"


UINT32_FIELDS: dict[str, tuple[dict[str, Any], str]] = {
    "max-connections": ({"circuitBreakers": {"maxConnections": 2**32}}, "circuitBreakers.maxConnections"),
    "min-retry-concurrency": ({"circuitBreakers": {"retryBudget": {"minRetryConcurrency": 2**32}}},
                              "circuitBreakers.retryBudget.minRetryConcurrency"),
    "healthy-threshold": ({"healthCheck": {"path": "/", "healthyThreshold": 2**32}}, "healthCheck.healthyThreshold"),
    "consecutive-5xx": ({"outlierDetection": {"consecutive5xx": 2**32}}, "outlierDetection.consecutive5xx"),
}


@pytest.mark.parametrize("case", list(UINT32_FIELDS), ids=list(UINT32_FIELDS))
def test_counts_beyond_uint32_are_refused(case: str) -> None:
    spec, path = UINT32_FIELDS[case]
    err = rejected(cluster(**spec))
    assert err.path == f"cluster/c: spec.{path}"


def test_counts_up_to_uint32_translate() -> None:
    translate(config([cluster(circuitBreakers={"maxConnections": 2**32 - 1})]))
