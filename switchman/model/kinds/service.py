"""``kind: Service``: the unit a traffic shift moves — named versions, each a set of endpoints.

Each version becomes an Envoy cluster named ``SERVICE-VERSION`` (``checkout-v2``). Its endpoints are
listed (``endpoints``) or discovered (``kubernetes``: the EndpointSlices of one Kubernetes Service per
version, see :class:`KubernetesSource` and docs/kubernetes.md).
A route that targets the service without naming a version splits by
``spec.weights`` (default: all to the first version). Two more settings
apply to every such route, which is what a rollout moves besides weights:
``spec.cohort`` sends the requests that match (a header, a cookie) to one
version whatever the weights (A/B tests, blue/green previews), and
``spec.mirror`` copies a share of requests to a version whose answers
are thrown away (shadow traffic).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from switchman.model.fields import Node
from switchman.model.kinds.cluster import Endpoint, Upstream, read_endpoints, read_upstream
from switchman.model.kinds.routes import HeaderMatch, read_header_matches

__all__ = [
    "Cohort",
    "KubernetesSource",
    "ServiceMirror",
    "ServiceSpec",
    "cookie_match",
    "read_service",
    "version_cluster",
]

VERSION_PATTERN = r"[a-z0-9]([a-z0-9_-]{0,30}[a-z0-9])?"
# A namespace and a Service name are DNS labels (RFC 1123 / 1035); a port name an IANA service name.
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_SERVICE_NAME = r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?"
_PORT_NAME = r"[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?"
_COOKIE_NAME = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"  # a token (RFC 6265)
_COOKIE_VALUE = r"[A-Za-z0-9!#$%&'()*+./:<=>?@\[\]^_`{|}~-]+"  # cookie-octets, without quotes


@dataclass(frozen=True, slots=True)
class KubernetesSource:
    """Where a version's endpoints come from: the EndpointSlices of Kubernetes Service ``namespace/service``.

    ``port`` picks one of the Service's ports: by name (a str), by the endpoints' port number (an int), or
    None when the Service has one port.
    """

    namespace: str
    service: str
    port: str | int | None = None

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.namespace}/{self.service}{port}"


@dataclass(frozen=True, slots=True)
class Cohort:
    """Requests that match any one of ``matches`` (each: all of its headers) go to ``version``."""

    version: str
    matches: tuple[tuple[HeaderMatch, ...], ...]


@dataclass(frozen=True, slots=True)
class ServiceMirror:
    version: str
    percent: float


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    versions: Mapping[str, tuple[Endpoint, ...]]  # a discovered version's: none (they come apart)
    weights: Mapping[str, int]
    upstream: Upstream
    cohort: Cohort | None = None
    mirror: ServiceMirror | None = None
    sources: Mapping[str, KubernetesSource] = field(default_factory=dict)  # the discovered versions


def version_cluster(service: str, version: str) -> str:
    """The Envoy cluster of one version of a service."""
    return f"{service}-{version}"


def read_service(spec: Node) -> ServiceSpec:
    versions: dict[str, tuple[Endpoint, ...]] = {}
    sources: dict[str, KubernetesSource] = {}
    versions_node = spec["versions"]
    for name, version in versions_node.items():
        Node(version.doc, version.path, name).text(VERSION_PATTERN, "a version name (lowercase, digits, - and _)")
        key, node = version.one_of("endpoints", "kubernetes")
        if key == "endpoints":
            versions[name] = read_endpoints(node)
        else:
            versions[name] = ()
            sources[name] = _kubernetes_source(node)
        version.done()
    if not versions:
        versions_node.fail("needs at least one version")
    weights: dict[str, int] = {}
    weights_node = spec.get("weights")
    if weights_node is not None:
        for name, weight in weights_node.items():
            if name not in versions:
                weight.fail(f"there is no version {name!r} (versions: {', '.join(versions)})")
            weights[name] = weight.integer(0, 100)
        if sum(weights.values()) == 0:
            weights_node.fail("weights sum to 0")
    else:
        weights = {next(iter(versions)): 100}
    cohort_node, mirror_node = spec.get("cohort"), spec.get("mirror")
    result = ServiceSpec(
        versions=versions,
        weights=weights,
        upstream=read_upstream(spec),
        cohort=_cohort(cohort_node, versions) if cohort_node else None,
        mirror=_mirror(mirror_node, versions) if mirror_node else None,
        sources=sources,
    )
    spec.done()
    return result


def _kubernetes_source(node: Node) -> KubernetesSource:
    namespace = node.get("namespace")
    port = node.get("port")
    port_value: str | int | None = None
    if port is not None:
        if isinstance(port.value, int) and not isinstance(port.value, bool):
            port_value = port.integer(1, 65535)
        else:
            port_value = port.text(_PORT_NAME, "a port name (lowercase, digits and -, at most 15) or a number")
    source = KubernetesSource(
        namespace=namespace.text(_DNS_LABEL, "a namespace name (a DNS label)") if namespace else "default",
        service=node["service"].text(_SERVICE_NAME, "a Kubernetes Service name (a DNS label, starting with a letter)"),
        port=port_value,
    )
    node.done()
    return source


def _version(node: Node, versions: Mapping[str, object]) -> str:
    name = node.text()
    if name not in versions:
        node.fail(f"there is no version {name!r} (versions: {', '.join(versions)})")
    return name


def cookie_match(name: str, value: str) -> HeaderMatch:
    """A ``cookie`` header that carries ``name=value`` among its cookies (RE2, as Envoy runs it)."""
    return HeaderMatch("cookie", "regex", rf"^(.*?;\s*)?{re.escape(name)}={re.escape(value)}(;.*)?$")


def _cohort(node: Node, versions: Mapping[str, object]) -> Cohort:
    version = _version(node["version"], versions)
    matches = []
    for item in node["match"].elements(min_items=1):
        headers_node, cookie_node = item.get("headers"), item.get("cookie")
        if headers_node is None and cookie_node is None:
            item.fail("needs headers, cookie or both")
        headers = list(read_header_matches(headers_node, "header")) if headers_node else []
        if cookie_node is not None:
            cookie_name = cookie_node["name"].text(_COOKIE_NAME, "a cookie name")
            cookie_value = cookie_node["value"].text(_COOKIE_VALUE, "a cookie value (no spaces, quotes, ; or ,)")
            cookie_node.done()
            headers.append(cookie_match(cookie_name, cookie_value))
        if not headers:
            item.fail("needs at least one header or a cookie (an empty match would take every request)")
        item.done()
        matches.append(tuple(headers))
    node.done()
    return Cohort(version, tuple(matches))


def _mirror(node: Node, versions: Mapping[str, object]) -> ServiceMirror:
    version = _version(node["version"], versions)
    percent = node.get("percent")
    share = percent.number(0, 100) if percent else 100.0
    if share == 0:
        percent.fail("0 mirrors nothing: remove the mirror instead")  # type: ignore[union-attr]
    result = ServiceMirror(version, share)
    node.done()
    return result
