"""A Service version whose endpoints come from Kubernetes: ``kubernetes: {namespace, service, port}``."""

from __future__ import annotations

from typing import Any

import pytest

from switchman.model.kinds.service import KubernetesSource, ServiceSpec
from tests.unit.model.docs import parse, rejected, service


def _discovered(v2: dict[str, Any]) -> dict[str, Any]:
    doc = service()
    doc["spec"]["versions"]["v2"] = {"kubernetes": v2}
    return doc


def test_a_version_names_its_kubernetes_service() -> None:
    spec = parse(_discovered({"namespace": "shop", "service": "checkout-v2", "port": "http"})).spec
    assert isinstance(spec, ServiceSpec)
    assert spec.sources == {"v2": KubernetesSource("shop", "checkout-v2", "http")}
    assert spec.versions["v2"] == ()  # discovered: none in the document
    assert "v1" not in spec.sources


def test_the_namespace_defaults_to_default_and_a_port_may_be_a_number() -> None:
    spec = parse(_discovered({"service": "checkout-v2", "port": 8080})).spec
    assert isinstance(spec, ServiceSpec)
    assert spec.sources["v2"] == KubernetesSource("default", "checkout-v2", 8080)
    assert str(spec.sources["v2"]) == "default/checkout-v2:8080"


def test_endpoints_and_kubernetes_exclude_each_other() -> None:
    doc = _discovered({"service": "checkout-v2"})
    doc["spec"]["versions"]["v2"]["endpoints"] = []
    err = rejected(doc)
    assert (err.path, err.reason) == (
        "service/s: spec.versions.v2", "needs exactly one of endpoints, kubernetes (found endpoints, kubernetes)"
    )


@pytest.mark.parametrize(
    ("source", "path", "reason"),
    [
        ({}, "spec.versions.v2.kubernetes.service", "is required"),
        ({"service": "Checkout"}, "spec.versions.v2.kubernetes.service",
         "'Checkout' is not a Kubernetes Service name (a DNS label, starting with a letter)"),
        ({"service": "c", "namespace": "a_b"}, "spec.versions.v2.kubernetes.namespace",
         "'a_b' is not a namespace name (a DNS label)"),
        ({"service": "c", "port": 70000}, "spec.versions.v2.kubernetes.port", "70000 is above 65535"),
        ({"service": "c", "port": "HTTP"}, "spec.versions.v2.kubernetes.port",
         "'HTTP' is not a port name (lowercase, digits and -, at most 15) or a number"),
        ({"service": "c", "selector": {"version": "v2"}}, "spec.versions.v2.kubernetes.selector",
         "unknown field (allowed here: namespace, port, service)"),
    ],
)
def test_a_bad_source_is_refused_naming_the_field(source: dict[str, Any], path: str, reason: str) -> None:
    err = rejected(_discovered(source))
    assert (err.path, err.reason) == (f"service/s: {path}", reason)
