"""Hypothesis strategies that mirror the model: valid Service, Cluster, Routes and Listener documents.

Everything drawn here is meant to pass the model and to be accepted by Envoy: endpoints on
127.0.0.1, listeners on port 0, regexes RE2 compiles, header names Envoy lets a route change.
Inputs that hit known model bugs are kept out on purpose (xfail tests in tests/unit/model,
tests/unit/translate and tests/e2e/test_model_envoy_accepts.py pin each): at most two whole services
spread in one split (more can overflow Envoy's uint32 weights), no explicit ``maxEjectionPercent: 0``,
no fault delay of 0s, domains and server names in lowercase and never shared between chains,
header names from ``x-[a-z0-9]+``, bodies and durations well inside Envoy's limits.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from hypothesis import strategies as st

from switchman.model.kinds.cluster import LB_POLICIES, PROTOCOLS
from switchman.model.kinds.routes import RETRY_ON

Raw = dict[str, Any]
T = TypeVar("T")
Draw = Callable[[st.SearchStrategy[T]], T]

_WORD = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=6)
REGEXES = ("/.*", "/api/[0-9]+", "^/v[12]/.*$", "/(a|b)/c", ".*\\.png")
_VALUE_REGEXES = ("v[0-9]+", "[a-f0-9]{8}", ".*", "(beta|canary)")


def _names(prefix: str, size: int) -> st.SearchStrategy[list[str]]:
    """Unique document names; no '-' after the prefix, so no two Envoy cluster names can collide."""
    return st.lists(_WORD.map(lambda w: prefix + w), min_size=size, max_size=size, unique=True)


def duration(low_ms: int = 0, high_ms: int = 120_000) -> st.SearchStrategy[Any]:
    """A duration as the model reads it: ``250ms``, ``1.5s``, ``2m`` or a number of seconds."""

    def spell(ms: int, how: int) -> Any:
        if how == 0:
            return f"{ms}ms"
        if how == 1:
            return f"{ms / 1000:g}s" if "e" not in f"{ms / 1000:g}" else f"{ms}ms"
        if how == 2 and ms % 60_000 == 0:
            return f"{ms // 60_000}m"
        return ms / 1000

    return st.builds(spell, st.integers(low_ms, high_ms), st.integers(0, 3))


@st.composite
def endpoints(draw: Draw[Any], max_size: int = 3) -> list[Raw]:
    ports = draw(st.lists(st.integers(1024, 65535), min_size=1, max_size=max_size, unique=True))
    out = []
    for port in ports:
        item: Raw = {"address": "127.0.0.1", "port": port}
        if draw(st.booleans()):
            item["weight"] = draw(st.integers(1, 128))
        out.append(item)
    return out


@st.composite
def upstream(draw: Draw[Any]) -> Raw:
    out: Raw = {}
    if draw(st.booleans()):
        out["lbPolicy"] = draw(st.sampled_from(LB_POLICIES))
    if draw(st.booleans()):
        out["connectTimeout"] = draw(duration(1, 10_000))
    spelling = draw(st.sampled_from(["none", "http2", "protocol"]))
    if spelling == "http2":
        out["http2"] = draw(st.booleans())
    elif spelling == "protocol":
        out["protocol"] = draw(st.sampled_from(PROTOCOLS))
        if out["protocol"] != "HTTP1" and draw(st.booleans()):
            out["maxConcurrentStreams"] = draw(st.integers(1, 1000))
    if out.get("protocol") == "AUTO" or draw(st.booleans()):
        out["tls"] = {"sni": draw(_WORD) + ".internal"}  # no CA or certificates: files Envoy would have to read
    if draw(st.booleans()):
        out["idleTimeout"] = draw(duration(1, 3_600_000))
    if draw(st.booleans()):
        check: Raw = {"path": "/" + draw(_WORD)}
        if draw(st.booleans()):
            check["interval"] = draw(duration(10, 30_000))
        if draw(st.booleans()):
            check["timeout"] = draw(duration(1, 10_000))
        if draw(st.booleans()):
            check["healthyThreshold"] = draw(st.integers(1, 10))
        if draw(st.booleans()):
            check["unhealthyThreshold"] = draw(st.integers(1, 10))
        out["healthCheck"] = check
    if draw(st.booleans()):
        outlier: Raw = {}
        if draw(st.booleans()):
            outlier["consecutive5xx"] = draw(st.integers(1, 100))
        if draw(st.booleans()):
            outlier["interval"] = draw(duration(1, 60_000))
        if draw(st.booleans()):
            outlier["baseEjectionTime"] = draw(duration(1, 60_000))
        if draw(st.booleans()):
            outlier["maxEjectionPercent"] = draw(st.integers(1, 100))
        out["outlierDetection"] = outlier
    if draw(st.booleans()):
        breakers: Raw = {}
        for key in ("maxConnections", "maxPendingRequests", "maxRequests"):
            if draw(st.booleans()):
                breakers[key] = draw(st.integers(1, 100_000))
        choice = draw(st.sampled_from(["none", "maxRetries", "retryBudget"]))
        if choice == "maxRetries":
            breakers["maxRetries"] = draw(st.integers(0, 100))
        elif choice == "retryBudget":
            budget: Raw = {}
            if draw(st.booleans()):
                budget["percent"] = draw(st.floats(0, 100, allow_nan=False))
            if draw(st.booleans()):
                budget["minRetryConcurrency"] = draw(st.integers(0, 100))
            breakers["retryBudget"] = budget
        out["circuitBreakers"] = breakers
    return out


def _envelope(kind: str, name: str, spec: Raw) -> Raw:
    return {"kind": kind, "metadata": {"name": name}, "spec": spec}


@st.composite
def service_doc(draw: Draw[Any], name: str) -> Raw:
    versions = draw(st.lists(_WORD, min_size=1, max_size=3, unique=True))
    spec: Raw = {"versions": {v: {"endpoints": draw(endpoints())} for v in versions}}
    if draw(st.booleans()):
        chosen = draw(st.lists(st.sampled_from(versions), min_size=1, unique=True))
        weights = {v: draw(st.integers(0, 100)) for v in chosen}
        if sum(weights.values()) == 0:
            weights[chosen[0]] = draw(st.integers(1, 100))
        spec["weights"] = weights
    spec.update(draw(upstream()))
    return _envelope("Service", name, spec)


@st.composite
def cluster_doc(draw: Draw[Any], name: str) -> Raw:
    spec: Raw = {"endpoints": draw(endpoints())}
    if draw(st.booleans()):
        spec["discovery"] = draw(st.sampled_from(["eds", "static"]))
    spec.update(draw(upstream()))
    return _envelope("Cluster", name, spec)


@dataclass(frozen=True)
class Targets:
    """What a route may forward to, by the documents drawn so far."""

    clusters: Sequence[str]
    services: dict[str, list[str]]  # service -> its versions

    def all(self) -> list[Raw]:
        out: list[Raw] = [{"cluster": c} for c in self.clusters]
        for service, versions in self.services.items():
            out.append({"service": service})
            out += [{"service": service, "version": v} for v in versions]
        return out


@st.composite
def _string_matchers(draw: Draw[Any], header: bool) -> list[Raw]:
    out = []
    for name in draw(st.lists(_WORD.map(lambda w: "x-" + w if header else w), max_size=2, unique=True)):
        kind = draw(st.sampled_from(["exact", "prefix", "regex", "present"]))
        value: Any = {
            "exact": draw(_WORD), "prefix": draw(_WORD), "regex": draw(st.sampled_from(_VALUE_REGEXES)), "present": True
        }[kind]
        item: Raw = {"name": name, kind: value}
        if draw(st.booleans()):
            item["invert"] = draw(st.booleans())
        out.append(item)
    return out


@st.composite
def match(draw: Draw[Any]) -> Raw:
    kind = draw(st.sampled_from(["prefix", "path", "regex"]))
    value = draw(st.sampled_from(REGEXES)) if kind == "regex" else "/" + draw(st.sampled_from(["", "api", "v2", "x"]))
    out: Raw = {kind: value}
    if draw(st.booleans()):
        out["headers"] = draw(_string_matchers(header=True))
    if draw(st.booleans()):
        out["queryParams"] = draw(_string_matchers(header=False))
    return out


@st.composite
def _split(draw: Draw[Any], targets: Targets) -> list[Raw]:
    chosen = draw(st.lists(st.sampled_from(targets.all()), min_size=1, max_size=4,
                           unique_by=lambda t: (t.get("cluster"), t.get("service"), t.get("version"))))
    whole = [t for t in chosen if "service" in t and "version" not in t]
    chosen = [t for t in chosen if t not in whole[2:]]  # at most two whole services (see the module's doc)
    out = [{**t, "weight": draw(st.integers(0, 100))} for t in chosen]
    if sum(e["weight"] for e in out) == 0:
        out[0]["weight"] = draw(st.integers(1, 100))
    return out


@st.composite
def _retries(draw: Draw[Any]) -> Raw:
    out: Raw = {}
    on: list[str] = []
    if draw(st.booleans()):
        on = draw(st.lists(st.sampled_from(RETRY_ON), min_size=1, max_size=3, unique=True))
        out["retryOn"] = on
    if "retriable-status-codes" in on and draw(st.booleans()):
        out["statusCodes"] = draw(st.lists(st.integers(100, 599), min_size=1, max_size=3))
    if draw(st.booleans()):
        out["attempts"] = draw(st.integers(1, 10))
    if draw(st.booleans()):
        out["perTryTimeout"] = draw(duration(1, 10_000))
    if draw(st.booleans()):
        out["avoidPreviousHosts"] = draw(st.booleans())
    if draw(st.booleans()):
        base = draw(st.integers(1, 1000))
        backoff: Raw = {"base": f"{base}ms"}
        if draw(st.booleans()):
            backoff["max"] = f"{draw(st.integers(base, 10_000))}ms"
        out["backoff"] = backoff
    return out


_HEADER_REWRITE = st.fixed_dictionaries(
    {},
    optional={
        "add": st.dictionaries(_WORD.map(lambda w: "x-" + w), _WORD, max_size=2),
        "remove": st.lists(_WORD.map(lambda w: "x-" + w), max_size=2),
    },
)


@st.composite
def rate_limit(draw: Draw[Any]) -> Raw:
    out: Raw = {"maxTokens": draw(st.integers(1, 10_000)), "fillInterval": draw(duration(50, 600_000))}
    optional = st.fixed_dictionaries({}, optional={
        "tokensPerFill": st.integers(1, 10_000), "status": st.sampled_from([429, 503, 400, 511]),
        "rateLimitHeaders": st.booleans(), "refusedHeaders": st.dictionaries(_WORD.map(lambda w: "x-" + w), _WORD,
                                                                              max_size=2),
        "enabledPercent": st.floats(0, 100, allow_nan=False), "enforcedPercent": st.floats(0, 100, allow_nan=False),
    })
    return out | draw(optional)


@st.composite
def route(draw: Draw[Any], targets: Targets) -> Raw:
    out: Raw = {"match": draw(match())}
    actions = ["split", "redirect", "directResponse"]
    actions += ["cluster"] if targets.clusters else []
    actions += ["service", "service-version"] if targets.services else []
    action = draw(st.sampled_from(actions))
    forwards = action in ("cluster", "service", "service-version", "split")
    if action == "cluster":
        out["cluster"] = draw(st.sampled_from(targets.clusters))
    elif action == "service":
        out["service"] = draw(st.sampled_from(sorted(targets.services)))
    elif action == "service-version":
        service = draw(st.sampled_from(sorted(targets.services)))
        out["service"] = {"name": service, "version": draw(st.sampled_from(targets.services[service]))}
    elif action == "split":
        out["split"] = draw(_split(targets))
    elif action == "redirect":
        # A redirect names somewhere else: a host (a redirect to the same URL loops).
        out["redirect"] = draw(st.fixed_dictionaries({"host": _WORD.map(lambda w: w + ".example")}, optional={
            "code": st.sampled_from([301, 302, 303, 307, 308]), "https": st.booleans(),
            "path": _WORD.map(lambda w: "/" + w),
        }))
    else:
        response: Raw = {"status": draw(st.integers(200, 599))}
        if draw(st.booleans()):
            response["body"] = draw(_WORD)
        out["directResponse"] = response
    if draw(st.booleans()):
        out["name"] = draw(_WORD)
    if forwards:
        if draw(st.booleans()):
            out["timeout"] = draw(duration(0, 60_000))
        if draw(st.booleans()):
            out["retries"] = draw(_retries())
        if draw(st.booleans()):
            mirror = dict(draw(st.sampled_from(targets.all())))
            if draw(st.booleans()):
                mirror["percent"] = draw(st.floats(0, 100, allow_nan=False))
            out["mirror"] = mirror
        if "prefix" in out["match"] and draw(st.booleans()):
            out["rewrite"] = {"prefix": "/" + draw(_WORD)}
    if draw(st.booleans()):
        fault: Raw = {}
        if draw(st.booleans()):
            fault["delay"] = {"fixed": draw(duration(1, 5_000)), "percent": draw(st.floats(0, 100, allow_nan=False))}
        if not fault or draw(st.booleans()):
            fault["abort"] = {"status": draw(st.integers(200, 599)),
                              "percent": draw(st.floats(0, 100, allow_nan=False))}
        out["fault"] = fault
    for key in ("requestHeaders", "responseHeaders"):
        if draw(st.booleans()):
            out[key] = draw(_HEADER_REWRITE)
    if draw(st.booleans()):
        out["rateLimit"] = draw(rate_limit())
    return out


@st.composite
def routes_doc(draw: Draw[Any], name: str, targets: Targets) -> Raw:
    hosts = draw(st.integers(1, 3))
    domains = draw(st.lists(_WORD.map(lambda w: w + ".example"), min_size=hosts, max_size=hosts + 3, unique=True))
    if draw(st.booleans()):
        domains[-1] = "*"
    vhosts = []
    for i in range(hosts):
        mine = domains[i::hosts]
        routes = draw(st.lists(route(targets), min_size=1, max_size=3))
        vhosts.append({"name": f"h{i}", "domains": mine, "routes": routes})
        if draw(st.booleans()):
            vhosts[-1]["rateLimit"] = draw(rate_limit())
    return _envelope("Routes", name, {"virtualHosts": vhosts})


def _http_settings() -> st.SearchStrategy[Raw]:
    return st.fixed_dictionaries({}, optional={
        "idleTimeout": duration(0, 600_000), "requestTimeout": duration(0, 600_000), "useRemoteAddress": st.booleans(),
        "xffNumTrustedHops": st.integers(0, 10), "serverName": _WORD,
        "codec": st.sampled_from(["AUTO", "HTTP1", "HTTP2"]),
        "requestId": st.fixed_dictionaries({}, optional={
            "generate": st.booleans(), "preserveExternal": st.booleans(), "inResponse": st.booleans()}),
    })


_TAG = st.one_of(_WORD, st.fixed_dictionaries({"literal": _WORD}),
                 st.fixed_dictionaries({"header": _WORD.map(lambda w: "x-" + w)}, optional={"default": _WORD}))


def _tracing() -> st.SearchStrategy[Raw]:
    # "xds": a bootstrap cluster that speaks gRPC; or an address, for a cluster of the listener's own
    collector = st.one_of(st.just({"cluster": "xds"}),
                          st.fixed_dictionaries({"address": st.just("127.0.0.1"), "port": st.integers(1024, 65535)}))
    percent = st.floats(0, 100, allow_nan=False)
    return st.fixed_dictionaries({"collector": collector}, optional={
        "serviceName": _WORD, "sampling": st.fixed_dictionaries({}, optional={
            "random": percent, "client": percent, "overall": percent}),
        "tags": st.dictionaries(_WORD, _TAG, max_size=3), "maxPathTagLength": st.integers(1, 1024),
        "spawnUpstreamSpan": st.booleans(),
    })


@st.composite
def listener_doc(draw: Draw[Any], name: str, routes: str, port: int) -> Raw:
    spec: Raw = {"address": "127.0.0.1", "port": port}
    if draw(st.booleans()):
        # "xds": the bootstrap cluster that reaches Switchman in the lab's (and the tests') Envoys
        spec["accessLogService"] = draw(st.fixed_dictionaries(
            {"cluster": st.just("xds")}, optional={"bufferFlushInterval": duration(1, 10_000)}
        ))
    if draw(st.booleans()):
        spec["tracing"] = draw(_tracing())
    if draw(st.booleans()):
        spec["routes"] = routes
        if draw(st.booleans()):
            spec["http"] = draw(_http_settings())
        return _envelope("Listener", name, spec)
    sni = draw(st.lists(_WORD.map(lambda w: w + ".example"), min_size=1, max_size=3, unique=True))
    chains: list[Raw] = [{"match": {"serverNames": [s]}, "routes": routes} for s in sni]
    if draw(st.booleans()):
        chains.append({"routes": routes, "http": draw(_http_settings())})
    spec["filterChains"] = chains
    return _envelope("Listener", name, spec)


@st.composite
def configs(draw: Draw[Any], port: int = 0) -> list[Raw]:
    """A whole valid configuration: services, clusters, routes, one listener per Routes, maybe a TCP proxy."""
    n_services, n_clusters = draw(st.integers(0, 3)), draw(st.integers(0, 2))
    if n_services + n_clusters == 0:
        n_services = 1
    docs: list[Raw] = []
    services: dict[str, list[str]] = {}
    for name in draw(_names("sv", n_services)):
        doc = draw(service_doc(name))
        services[name] = list(doc["spec"]["versions"])
        docs.append(doc)
    clusters = draw(_names("cl", n_clusters))
    docs += [draw(cluster_doc(name)) for name in clusters]
    targets = Targets(clusters, services)
    for i, name in enumerate(draw(_names("rt", draw(st.integers(1, 2))))):
        docs.append(draw(routes_doc(name, targets)))
        docs.append(draw(listener_doc(f"ls{i}-{name}", name, port)))
    if draw(st.booleans()):
        target = dict(draw(st.sampled_from(targets.all())))
        docs.append(_envelope("Listener", "tcp", {"address": "127.0.0.1", "port": port, "tcp": target}))
    return docs
