"""Property: every configuration the model strategies draw builds, translates and makes a consistent Snapshot.

Consistent: the Envoy resources are exactly those the documents imply, every route forwards with the
traffic shares the documents ask for (worked out here independently, with fractions), weights fit in
Envoy's uint32, and the same documents always build the same snapshot.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, given, settings

from switchman.xds import Snapshot
from switchman.xds import resources as rt
from tests.unit.model.strategies import configs
from tests.unit.translate.envoy import build, listener, names, route_config, weights

Raw = dict[str, Any]
Shares = dict[str, Fraction]


def _service_shares(service: Raw) -> Shares:
    spec = service["spec"]
    weights_ = spec.get("weights") or {next(iter(spec["versions"])): 100}
    total = sum(weights_.values())
    name = service["metadata"]["name"]
    return {f"{name}-{v}": Fraction(w, total) for v, w in weights_.items() if w > 0}


def _target_shares(target: Raw, services: dict[str, Raw]) -> Shares:
    if "cluster" in target:
        return {target["cluster"]: Fraction(1)}
    if target.get("version") is not None:
        return {f"{target['service']}-{target['version']}": Fraction(1)}
    return _service_shares(services[target["service"]])


def expected_shares(route: Raw, services: dict[str, Raw]) -> Shares:
    """The share of traffic each Envoy cluster should get from one forwarding route."""
    if "cluster" in route:
        return {route["cluster"]: Fraction(1)}
    if "service" in route:
        service = route["service"]
        target = {"service": service} if isinstance(service, str) else {"service": service["name"], **service}
        return _target_shares(target, services)
    total = sum(e["weight"] for e in route["split"])
    out: Shares = {}
    for entry in route["split"]:
        for cluster, share in _target_shares(entry, services).items():
            out[cluster] = out.get(cluster, Fraction(0)) + Fraction(entry["weight"], total) * share
    return {c: s for c, s in out.items() if s > 0}


def check_consistent(docs: list[Raw], snapshot: Snapshot) -> None:
    by_kind: dict[str, list[Raw]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    services = {d["metadata"]["name"]: d for d in by_kind.get("Service", [])}
    clusters = {d["metadata"]["name"]: d for d in by_kind.get("Cluster", [])}

    version_clusters = {f"{s}-{v}" for s, d in services.items() for v in d["spec"]["versions"]}
    static = {n for n, d in clusters.items() if d["spec"].get("discovery") == "static"}
    collectors = {  # a tracing collector given by address is a static cluster of the listener's own
        f"{d['metadata']['name']}-tracing" for d in by_kind.get("Listener", [])
        if "address" in d["spec"].get("tracing", {}).get("collector", {})
    }
    assert names(snapshot, rt.CLUSTER) == version_clusters | set(clusters) | collectors
    assert names(snapshot, rt.ENDPOINT) == version_clusters | (set(clusters) - static)
    assert names(snapshot, rt.LISTENER) == {d["metadata"]["name"] for d in by_kind.get("Listener", [])}
    assert names(snapshot, rt.ROUTE) == {d["metadata"]["name"] for d in by_kind.get("Routes", [])}

    for doc in by_kind.get("Routes", []):
        config = route_config(snapshot, doc["metadata"]["name"])
        assert [v.name for v in config.virtual_hosts] == [v["name"] for v in doc["spec"]["virtualHosts"]]
        for vhost, raw_vhost in zip(config.virtual_hosts, doc["spec"]["virtualHosts"], strict=True):
            assert list(vhost.domains) == raw_vhost["domains"]
            assert len(vhost.routes) == len(raw_vhost["routes"])
            for envoy_route, raw_route in zip(vhost.routes, raw_vhost["routes"], strict=True):
                forwards = {"cluster", "service", "split"} & raw_route.keys()
                assert envoy_route.HasField("route") == bool(forwards)
                if not forwards:
                    continue
                found = weights(envoy_route)
                assert all(w > 0 for w in found.values())
                assert sum(found.values()) < 2**32
                total = sum(found.values())
                assert {c: Fraction(w, total) for c, w in found.items()} == expected_shares(raw_route, services)
                assert envoy_route.route.HasField("retry_policy") == ("retries" in raw_route)

    for doc in by_kind.get("Listener", []):
        found = listener(snapshot, doc["metadata"]["name"])
        assert len(found.filter_chains) == len(doc["spec"].get("filterChains", [doc["spec"]]))
        sni = any("serverNames" in c.get("match", {}) for c in doc["spec"].get("filterChains", []))
        assert [f.name for f in found.listener_filters] == (["envoy.filters.listener.tls_inspector"] if sni else [])


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(docs=configs())
def test_valid_documents_always_build_a_consistent_snapshot(docs: list[Raw]) -> None:
    snapshot = build(docs)
    check_consistent(docs, snapshot)
    again = build(docs)
    for type_url in rt.TYPE_URLS:
        assert again.version(type_url) == snapshot.version(type_url)
