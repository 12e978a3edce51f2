"""EndpointSlice JSON -> endpoints: conditions, ports, zones, duplicates."""

from __future__ import annotations

from typing import Any

from switchman.kubernetes.slices import endpoints_of, read_slice
from switchman.model.kinds.service import KubernetesSource


def slice_(name: str, endpoints: list[dict[str, Any]], ports: list[dict[str, Any]] | None = None,
           service: str = "web", address_type: str = "IPv4") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "shop", "labels": {"kubernetes.io/service-name": service}},
        "addressType": address_type,
        "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }


def ep(address: str, zone: str = "", **conditions: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"addresses": [address], "conditions": conditions}
    if zone:
        out["zone"] = zone
    return out


def seen(source: KubernetesSource, *slices: dict[str, Any]) -> list[tuple[str, int, str, str, str]]:
    found = endpoints_of(source, [read_slice(s) for s in slices])
    return sorted((d.endpoint.address, d.endpoint.port, d.endpoint.health, d.endpoint.zone, d.origin) for d in found)


WEB = KubernetesSource("shop", "web", "http")


def test_conditions_ready_sent_terminating_drains_unready_left_out() -> None:
    got = seen(WEB, slice_("web-a", [
        ep("10.0.0.1", ready=True, serving=True, terminating=False),
        ep("10.0.0.2", ready=False, serving=True, terminating=True),
        ep("10.0.0.3", ready=False, serving=False, terminating=True),
        ep("10.0.0.4", ready=False, serving=False, terminating=False),
        ep("10.0.0.5"),  # nil conditions: ready, not terminating
    ]))
    assert got == [
        ("10.0.0.1", 8080, "", "", "kubernetes shop/web/web-a"),
        ("10.0.0.2", 8080, "DRAINING", "", "kubernetes shop/web/web-a"),
        ("10.0.0.3", 8080, "DRAINING", "", "kubernetes shop/web/web-a"),
        ("10.0.0.5", 8080, "", "", "kubernetes shop/web/web-a"),
    ]


def test_ports_by_name_by_number_or_the_only_one() -> None:
    two = [{"name": "http", "port": 8080}, {"name": "admin", "port": 9901}]
    s = slice_("web-a", [ep("10.0.0.1")], ports=two)
    assert [p for _, p, *_ in seen(KubernetesSource("shop", "web", "admin"), s)] == [9901]
    assert [p for _, p, *_ in seen(KubernetesSource("shop", "web", 8080), s)] == [8080]
    assert seen(KubernetesSource("shop", "web"), s) == []  # two ports, none named: nothing to choose
    assert [p for _, p, *_ in seen(KubernetesSource("shop", "web"), slice_("b", [ep("10.0.0.1")]))] == [8080]


def test_other_services_namespaces_and_fqdn_slices_are_not_taken() -> None:
    assert seen(WEB, slice_("x", [ep("10.0.0.1")], service="other")) == []
    assert seen(KubernetesSource("other", "web", "http"), slice_("x", [ep("10.0.0.1")])) == []
    assert seen(WEB, slice_("x", [ep("db.example")], address_type="FQDN")) == []


def test_zones_are_kept_and_an_address_in_two_slices_counts_once_ready_first() -> None:
    got = seen(WEB, slice_("web-a", [ep("10.0.0.1", zone="z1", terminating=True)]),
               slice_("web-b", [ep("10.0.0.1", zone="z1", ready=True)]))
    assert got == [("10.0.0.1", 8080, "", "z1", "kubernetes shop/web/web-b")]
