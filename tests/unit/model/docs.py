"""Small valid documents to start from, and helpers that expect a ConfigError and return it."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from switchman.errors import ConfigError
from switchman.model.config import Config, Document, build_config, parse_document

Raw = dict[str, Any]


def cluster(name: str = "c", **spec: Any) -> Raw:
    body: Raw = {"endpoints": [{"address": "127.0.0.1", "port": 9001}]}
    body.update(spec)
    return {"kind": "Cluster", "metadata": {"name": name}, "spec": body}


def service(name: str = "s", versions: Mapping[str, int] | None = None, **spec: Any) -> Raw:
    ports = versions or {"v1": 9001, "v2": 9002}
    body: Raw = {"versions": {v: {"endpoints": [{"address": "127.0.0.1", "port": p}]} for v, p in ports.items()}}
    body.update(spec)
    return {"kind": "Service", "metadata": {"name": name}, "spec": body}


def rollout(name: str = "r", **spec: Any) -> Raw:
    """A Rollout of service ``s`` from ``v1`` to ``v2`` (a canary with the default steps) unless given."""
    body: Raw = {"service": "s", "stable": "v1", "canary": "v2"}
    body.update(spec)
    return {"kind": "Rollout", "metadata": {"name": name}, "spec": body}


def route(**fields: Any) -> Raw:
    """One route: ``match: {prefix: /}`` and ``cluster: c`` unless given."""
    out: Raw = {"match": {"prefix": "/"}}
    if not {"cluster", "service", "split", "redirect", "directResponse"} & fields.keys():
        out["cluster"] = "c"
    out.update(fields)
    return out


def routes(name: str = "r", *route_list: Raw, hosts: list[Raw] | None = None) -> Raw:
    virtual_hosts = hosts or [{"name": "h", "domains": ["*"], "routes": list(route_list) or [route()]}]
    return {"kind": "Routes", "metadata": {"name": name}, "spec": {"virtualHosts": virtual_hosts}}


def listener(name: str = "l", **spec: Any) -> Raw:
    body: Raw = {"address": "127.0.0.1", "port": 10000}
    if "filterChains" not in spec and "tcp" not in spec:
        body["routes"] = "r"
    body.update(spec)
    return {"kind": "Listener", "metadata": {"name": name}, "spec": body}


def envoy_resource(name: str, spec: Raw) -> Raw:
    return {"kind": "EnvoyResource", "metadata": {"name": name}, "spec": spec}


def raw_cluster(name: str) -> Raw:
    return envoy_resource(
        name,
        {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": name, "type": "STATIC",
         "connect_timeout": "1s"},
    )


def parse(raw: Any, where: str = "request[0]") -> Document:
    return parse_document(copy.deepcopy(raw), where)


def config(docs: Iterable[Raw]) -> Config:
    return build_config([parse(d, f"request[{i}]") for i, d in enumerate(docs)])


def rejected(raw: Any, where: str = "request[0]") -> ConfigError:
    """The ConfigError that parsing ``raw`` raises (fails the test when it parses)."""
    with pytest.raises(ConfigError) as info:
        parse(raw, where)
    return info.value


def rejected_config(docs: Iterable[Raw]) -> ConfigError:
    """The ConfigError that checking ``docs`` together raises; each must parse on its own."""
    parsed = [parse(d, f"request[{i}]") for i, d in enumerate(docs)]
    with pytest.raises(ConfigError) as info:
        build_config(parsed)
    return info.value


def first_route(doc: Raw) -> Raw:
    """The first route of a Routes document (for tests that change one field)."""
    result: Raw = doc["spec"]["virtualHosts"][0]["routes"][0]
    return result
