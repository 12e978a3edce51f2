"""``kind: Listener``: an address and port, and filter chains that route HTTP (or proxy TCP).

The short form names one ``Routes`` document for the whole listener::

    spec: {address: 127.0.0.1, port: 10000, routes: ingress-routes}

The long form has ``filterChains``, each chosen by SNI, ALPN or
destination port, with TLS from files or from an SDS secret.

``accessLogService: {cluster: xds, bufferFlushInterval: 500ms}`` makes every
HTTP connection manager of the listener send its access logs to Switchman's
Access Log Service through the bootstrap cluster ``cluster``, so that
Switchman sees each request's upstream cluster, status and latency.
``tracing`` (see :mod:`switchman.model.kinds.tracing`) sends spans of every
HTTP request to an OpenTelemetry collector; ``http.requestId`` says how
Envoy makes and passes on ``x-request-id``.
"""

from __future__ import annotations

from dataclasses import dataclass

from switchman.model.fields import Node
from switchman.model.kinds.routes import Target, read_target
from switchman.model.kinds.tracing import Tracing, read_tracing

__all__ = [
    "AccessLogService", "ChainMatch", "FilterChain", "HttpSettings", "ListenerSpec", "RequestId", "Tls",
    "read_listener",
]


@dataclass(frozen=True, slots=True)
class ChainMatch:
    server_names: tuple[str, ...] = ()
    alpn: tuple[str, ...] = ()
    destination_port: int | None = None


@dataclass(frozen=True, slots=True)
class Tls:
    cert_file: str | None = None
    key_file: str | None = None
    secret: str | None = None


@dataclass(frozen=True, slots=True)
class RequestId:
    """``x-request-id``: made for requests without one, kept from outside, echoed in the answer (Envoy's defaults)."""

    generate: bool = True
    preserve_external: bool = False
    in_response: bool = False


@dataclass(frozen=True, slots=True)
class HttpSettings:
    idle_timeout: float | None = None
    request_timeout: float | None = None
    use_remote_address: bool = False
    xff_num_trusted_hops: int = 0
    server_name: str | None = None
    codec: str = "AUTO"
    request_id: RequestId = RequestId()


@dataclass(frozen=True, slots=True)
class FilterChain:
    match: ChainMatch
    path: str
    routes: str | None = None
    http: HttpSettings = HttpSettings()
    tcp: Target | None = None
    tls: Tls | None = None


@dataclass(frozen=True, slots=True)
class AccessLogService:
    """Where the listener's HTTP access logs go: a gRPC Access Log Service behind a bootstrap cluster."""

    cluster: str
    buffer_flush_interval: float = 0.5  # Envoy's default of 1 s delays what Switchman sees


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    address: str
    port: int
    chains: tuple[FilterChain, ...]
    access_log_service: AccessLogService | None = None
    tracing: Tracing | None = None


def _request_id(node: Node) -> RequestId:
    generate, preserve, respond = node.get("generate"), node.get("preserveExternal"), node.get("inResponse")
    result = RequestId(
        generate=generate.flag() if generate else True,
        preserve_external=preserve.flag() if preserve else False,
        in_response=respond.flag() if respond else False,
    )
    node.done()
    return result


def _http(node: Node) -> HttpSettings:
    idle, request, remote, hops, server, codec, request_id = (
        node.get("idleTimeout"), node.get("requestTimeout"), node.get("useRemoteAddress"),
        node.get("xffNumTrustedHops"), node.get("serverName"), node.get("codec"), node.get("requestId"),
    )
    result = HttpSettings(
        idle_timeout=idle.duration(0.0) if idle else None,
        request_timeout=request.duration(0.0) if request else None,
        use_remote_address=remote.flag() if remote else False,
        xff_num_trusted_hops=hops.integer(0, 10) if hops else 0,
        server_name=server.header_value() if server else None,
        codec=codec.choice("AUTO", "HTTP1", "HTTP2") if codec else "AUTO",
        request_id=_request_id(request_id) if request_id else RequestId(),
    )
    node.done()
    return result


def _access_log_service(node: Node) -> AccessLogService:
    interval = node.get("bufferFlushInterval")
    result = AccessLogService(
        cluster=node["cluster"].text(),
        buffer_flush_interval=interval.duration(0.001, 3600.0) if interval else 0.5,
    )
    node.done()
    return result


def _tls(node: Node) -> Tls:
    secret = node.get("secret")
    if secret is not None:
        if node.get("certFile") is not None or node.get("keyFile") is not None:
            node.fail("use either secret or certFile and keyFile")
        node.done()
        return Tls(secret=secret.text())
    result = Tls(cert_file=node["certFile"].text(r"/.*", "an absolute path"),
                 key_file=node["keyFile"].text(r"/.*", "an absolute path"))
    node.done()
    return result


def _chain_match(node: Node | None) -> ChainMatch:
    if node is None:
        return ChainMatch()
    names, alpn, port = node.get("serverNames"), node.get("alpn"), node.get("destinationPort")
    for listed in (names, alpn):
        if listed is not None:
            values = listed.strings(1)
            if len(set(values)) != len(values):
                listed.fail("lists the same value twice")
    result = ChainMatch(
        server_names=tuple(names.strings(1)) if names else (),
        alpn=tuple(alpn.strings(1)) if alpn else (),
        destination_port=port.integer(1, 65535) if port else None,
    )
    node.done()
    return result


def _chain(node: Node, top_level: bool) -> FilterChain:
    match = None if top_level else _chain_match(node.get("match"))
    routes, tcp = node.get("routes"), node.get("tcp")
    if (routes is None) == (tcp is None):
        node.fail("needs exactly one of routes (HTTP) and tcp (a TCP proxy)")
    http = node.get("http")
    if tcp is not None and http is not None:
        http.fail("http settings apply to routes, not to a TCP proxy")
    tls = node.get("tls")
    target = None
    if tcp is not None:
        target = read_target(tcp)
        tcp.done()
    chain = FilterChain(
        match=match or ChainMatch(),
        path=node.path,
        routes=routes.text() if routes else None,
        http=_http(http) if http else HttpSettings(),
        tcp=target,
        tls=_tls(tls) if tls else None,
    )
    if not top_level:
        node.done()
    return chain


def _same_or_shared(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """Both match anything, or both name something in common (Envoy: "overlapping matching rules")."""
    return (not a and not b) or bool(set(a) & set(b))


def _overlap(a: ChainMatch, b: ChainMatch) -> bool:
    return (
        a.destination_port == b.destination_port
        and _same_or_shared(a.server_names, b.server_names)
        and _same_or_shared(a.alpn, b.alpn)
    )


def read_listener(spec: Node) -> ListenerSpec:
    address = spec.get("address")
    port = spec["port"].integer(0, 65535)
    chains_node = spec.get("filterChains")
    if chains_node is not None:
        for key in ("routes", "tcp", "http", "tls"):
            if spec.get(key) is not None:
                spec[key].fail("goes inside a filter chain when filterChains is given")
        chains = tuple(_chain(c, top_level=False) for c in chains_node.elements(min_items=1))
        for i, chain in enumerate(chains):
            for other in chains[:i]:
                if _overlap(chain.match, other.match):
                    Node(spec.doc, chain.path, None).fail(f"matches some of the same connections as {other.path}")
    else:
        chains = (_chain(spec, top_level=True),)
    logs, tracing = spec.get("accessLogService"), spec.get("tracing")
    if logs is not None and all(chain.routes is None for chain in chains):
        logs.fail("logs HTTP requests: this listener has no routes, only a TCP proxy")
    if tracing is not None and all(chain.routes is None for chain in chains):
        tracing.fail("traces HTTP requests: this listener has no routes, only a TCP proxy")
    result = ListenerSpec(
        address=address.ip() if address else "127.0.0.1",
        port=port,
        chains=chains,
        access_log_service=_access_log_service(logs) if logs else None,
        tracing=read_tracing(tracing) if tracing else None,
    )
    spec.done()
    return result
