"""``kind: Routes``: virtual hosts and their routes — matches, actions and policies.

A route forwards to one target, or splits over weighted targets; a target
is a ``cluster`` or a ``service`` (optionally one ``version`` of it). Or it
redirects, or answers directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from switchman.model.fields import Node
from switchman.model.kinds.ratelimit import RateLimit, read_rate_limit

__all__ = [
    "Abort",
    "Delay",
    "DirectResponse",
    "Fault",
    "Forward",
    "HeaderMatch",
    "HeaderRewrite",
    "Match",
    "Mirror",
    "Redirect",
    "Retries",
    "Route",
    "RoutesSpec",
    "Split",
    "Target",
    "VirtualHost",
    "read_header_matches",
    "read_routes",
    "read_target",
]

RETRY_ON = (
    "5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx", "refused-stream",
    "retriable-status-codes", "retriable-headers", "http3-post-connect-failure",
)
_HEADER_NAME = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+|:authority|:path|:method|:scheme"
# A token without pseudo-headers: what a route may add or remove.
_REWRITABLE = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
_MAX_BODY = 4096  # Envoy refuses larger direct-response bodies


@dataclass(frozen=True, slots=True)
class Target:
    """A cluster, a whole service (split by its weights) or one version of a service."""

    cluster: str | None = None
    service: str | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class Split:
    target: Target
    weight: int


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    name: str
    kind: str  # exact | prefix | regex | present
    value: str
    invert: bool = False


@dataclass(frozen=True, slots=True)
class Match:
    kind: str  # prefix | path | regex
    value: str
    headers: tuple[HeaderMatch, ...] = ()
    query_params: tuple[HeaderMatch, ...] = ()


@dataclass(frozen=True, slots=True)
class Forward:
    splits: tuple[Split, ...]


@dataclass(frozen=True, slots=True)
class Redirect:
    host: str | None
    path: str | None
    https: bool
    code: int


@dataclass(frozen=True, slots=True)
class DirectResponse:
    status: int
    body: str


@dataclass(frozen=True, slots=True)
class Retries:
    on: tuple[str, ...]
    attempts: int
    per_try_timeout: float | None
    status_codes: tuple[int, ...]
    avoid_previous_hosts: bool
    backoff_base: float | None
    backoff_max: float | None


@dataclass(frozen=True, slots=True)
class Mirror:
    target: Target
    percent: float


@dataclass(frozen=True, slots=True)
class Delay:
    seconds: float
    percent: float


@dataclass(frozen=True, slots=True)
class Abort:
    status: int
    percent: float


@dataclass(frozen=True, slots=True)
class Fault:
    delay: Delay | None
    abort: Abort | None


@dataclass(frozen=True, slots=True)
class HeaderRewrite:
    add: Mapping[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Route:
    match: Match
    action: Forward | Redirect | DirectResponse
    path: str  # where it is in the document, for errors found later
    name: str = ""
    timeout: float | None = None
    retries: Retries | None = None
    mirrors: tuple[Mirror, ...] = ()
    fault: Fault | None = None
    request_headers: HeaderRewrite = HeaderRewrite()
    response_headers: HeaderRewrite = HeaderRewrite()
    prefix_rewrite: str | None = None
    rate_limit: RateLimit | None = None


@dataclass(frozen=True, slots=True)
class VirtualHost:
    name: str
    domains: tuple[str, ...]
    routes: tuple[Route, ...]
    rate_limit: RateLimit | None = None


@dataclass(frozen=True, slots=True)
class RoutesSpec:
    virtual_hosts: tuple[VirtualHost, ...]


def read_target(node: Node) -> Target:
    """``cluster: NAME``, or ``service: NAME`` with an optional ``version``, in a mapping."""
    cluster = node.get("cluster")
    service = node.get("service")
    if (cluster is None) == (service is None):
        node.fail("needs exactly one of cluster, service")
    if cluster is not None:
        if node.get("version") is not None:
            node.fail("version goes with service, not cluster")
        return Target(cluster=cluster.text())
    assert service is not None
    version = node.get("version")
    return Target(service=service.text(), version=version.text() if version else None)


def read_header_matches(node: Node, what: str) -> tuple[HeaderMatch, ...]:
    out = []
    for item in node.elements():
        name = item["name"].text(_HEADER_NAME if what == "header" else None, f"a {what} name")
        kind, value_node = item.one_of("exact", "prefix", "regex", "present")
        if kind == "present":
            if not value_node.flag():
                value_node.fail("present: false matches nothing; use invert: true to match absence")
            value = ""
        elif kind == "regex":
            value = value_node.regex()
        elif kind == "exact":
            value = value_node.header_value()
        else:
            value = value_node.text()
        invert_node = item.get("invert")
        item.done()
        invert = bool(invert_node and invert_node.flag())
        out.append(HeaderMatch(name.lower() if what == "header" else name, kind, value, invert))
    return tuple(out)


def _match(node: Node) -> Match:
    kind, value = node.one_of("prefix", "path", "regex")
    text = value.regex() if kind == "regex" else value.text()
    if kind in ("prefix", "path") and not text.startswith("/"):
        value.fail(f"{text!r} must start with /")
    headers = node.get("headers")
    params = node.get("queryParams")
    result = Match(
        kind,
        text,
        read_header_matches(headers, "header") if headers else (),
        read_header_matches(params, "query parameter") if params else (),
    )
    node.done()
    return result


def _splits(node: Node) -> tuple[Split, ...]:
    splits = []
    for item in node.elements(min_items=1):
        target = read_target(item)
        weight = item["weight"].integer(0, 100)
        item.done()
        splits.append(Split(target, weight))
    if sum(s.weight for s in splits) == 0:
        node.fail("weights sum to 0")
    seen: set[Target] = set()
    for i, split in enumerate(splits):
        if split.target in seen:
            Node(node.doc, f"{node.path}[{i}]", None).fail("the same target appears twice in the split")
        seen.add(split.target)
    return tuple(splits)


def _action(route: Node) -> Forward | Redirect | DirectResponse:
    kind, node = route.one_of("cluster", "service", "split", "redirect", "directResponse")
    if kind == "cluster":
        return Forward((Split(Target(cluster=node.text()), 100),))
    if kind == "service":
        if isinstance(node.value, str):
            return Forward((Split(Target(service=node.text()), 100),))
        name = node["name"].text()
        version = node.get("version")
        node.done()
        return Forward((Split(Target(service=name, version=version.text() if version else None), 100),))
    if kind == "split":
        return Forward(_splits(node))
    if kind == "redirect":
        host, path, https, code = node.get("host"), node.get("path"), node.get("https"), node.get("code")
        result = Redirect(
            host=host.text() if host else None,
            path=path.text(r"/.*", "a path starting with /") if path else None,
            https=https.flag() if https else False,
            code=code.integer() if code else 301,
        )
        if code is not None and result.code not in (301, 302, 303, 307, 308):
            code.fail(f"{result.code} is not a redirect code (301, 302, 303, 307, 308)")
        node.done()
        if result.host is None and result.path is None and not result.https:
            node.fail("needs host, path or https: true (a redirect to the same URL loops)")
        return result
    status = node["status"].integer(200, 599)
    body_node = node.get("body")
    body = body_node.scalar() if body_node else ""
    if len(body.encode()) > _MAX_BODY:
        body_node.fail(f"is {len(body.encode())} bytes; Envoy takes at most {_MAX_BODY}")  # type: ignore[union-attr]
    node.done()
    return DirectResponse(status, body)


def _retries(node: Node) -> Retries:
    on_node = node.get("retryOn")
    default_on = ("5xx", "reset", "connect-failure")
    on = tuple(item.choice(*RETRY_ON) for item in on_node.elements(1)) if on_node else default_on
    codes_node = node.get("statusCodes")
    codes = tuple(item.integer(100, 599) for item in codes_node.elements(1)) if codes_node else ()
    if codes and "retriable-status-codes" not in on:
        codes_node.fail("statusCodes only apply with retryOn: [retriable-status-codes]")  # type: ignore[union-attr]
    attempts = node.get("attempts")
    per_try = node.get("perTryTimeout")
    avoid = node.get("avoidPreviousHosts")
    base = max_ = None
    backoff = node.get("backoff")
    if backoff is not None:
        base_node, max_node = backoff.get("base"), backoff.get("max")
        base = base_node.duration(0.001) if base_node else 0.025
        max_ = max_node.duration(0.001) if max_node else base * 10
        if max_ < base:
            backoff.fail(f"max ({max_:g}s) is below base ({base:g}s)")
        backoff.done()
    result = Retries(
        on=on,
        attempts=attempts.integer(1, 100) if attempts else 1,
        per_try_timeout=per_try.duration(0.001) if per_try else None,
        status_codes=codes,
        avoid_previous_hosts=avoid.flag() if avoid else False,
        backoff_base=base,
        backoff_max=max_,
    )
    node.done()
    return result


def _fault(node: Node) -> Fault:
    delay_node, abort_node = node.get("delay"), node.get("abort")
    if delay_node is None and abort_node is None:
        node.fail("needs delay, abort or both")
    delay = abort = None
    if delay_node is not None:
        delay = Delay(delay_node["fixed"].duration(0.001), delay_node["percent"].number(0, 100))
        delay_node.done()
    if abort_node is not None:
        abort = Abort(abort_node["status"].integer(200, 599), abort_node["percent"].number(0, 100))
        abort_node.done()
    node.done()
    return Fault(delay, abort)


def _rewritable(node: Node, name: str) -> str:
    Node(node.doc, node.path, name).text(_REWRITABLE, "a header name (no pseudo-headers such as :path)")
    if name.lower() == "host":
        node.fail("host cannot be rewritten here (Envoy refuses it)")
    return name.lower()


def _rewrite(node: Node) -> HeaderRewrite:
    add_node, remove_node = node.get("add"), node.get("remove")
    add = {_rewritable(v, k): v.header_value() for k, v in add_node.items()} if add_node else {}
    remove = tuple(_rewritable(r, r.text()) for r in remove_node.elements()) if remove_node else ()
    node.done()
    return HeaderRewrite(add, remove)


def _route(node: Node) -> Route:
    action = _action(node)
    name, timeout, retries = node.get("name"), node.get("timeout"), node.get("retries")
    mirror_node, fault, req, resp, rewrite, limit = (
        node.get("mirror"), node.get("fault"), node.get("requestHeaders"), node.get("responseHeaders"),
        node.get("rewrite"), node.get("rateLimit"),
    )
    mirrors: tuple[Mirror, ...] = ()
    if mirror_node is not None:
        percent = mirror_node.get("percent")
        mirrors = (Mirror(read_target(mirror_node), percent.number(0, 100) if percent else 100.0),)
        mirror_node.done()
    prefix_rewrite = None
    if rewrite is not None:
        prefix_rewrite = rewrite["prefix"].text(r"/.*", "a path starting with /")
        rewrite.done()
    route = Route(
        match=_match(node["match"]),
        action=action,
        path=node.path,
        name=name.text() if name else "",
        timeout=timeout.duration(0.0) if timeout else None,
        retries=_retries(retries) if retries else None,
        mirrors=mirrors,
        fault=_fault(fault) if fault else None,
        request_headers=_rewrite(req) if req else HeaderRewrite(),
        response_headers=_rewrite(resp) if resp else HeaderRewrite(),
        prefix_rewrite=prefix_rewrite,
        rate_limit=read_rate_limit(limit) if limit else None,
    )
    if not isinstance(action, Forward):
        for key, value in (("retries", retries), ("mirror", mirror_node), ("rewrite", rewrite), ("timeout", timeout)):
            if value is not None:
                value.fail(f"{key} applies only to routes that forward (cluster, service, split)")
    node.done()
    return route


def read_routes(spec: Node) -> RoutesSpec:
    hosts = []
    names: set[str] = set()
    domains_seen: dict[str, str] = {}
    for vhost in spec["virtualHosts"].elements(min_items=1):
        name = vhost["name"].text()
        if name in names:
            vhost["name"].fail(f"virtual host {name!r} appears twice")
        names.add(name)
        domains_node = vhost["domains"]
        domains = domains_node.strings(min_items=1)
        for i, domain in enumerate(domains):
            key = domain.lower()  # Envoy compares domains without case
            if key in domains_seen:
                Node(domains_node.doc, f"{domains_node.path}[{i}]", None).fail(
                    f"domain {domain!r} is already served by virtual host {domains_seen[key]!r}"
                )
            domains_seen[key] = name
        routes = tuple(_route(r) for r in vhost["routes"].elements(min_items=1))
        limit = vhost.get("rateLimit")
        rate_limit = read_rate_limit(limit) if limit else None
        vhost.done()
        hosts.append(VirtualHost(name, tuple(domains), routes, rate_limit))
    spec.done()
    return RoutesSpec(tuple(hosts))
