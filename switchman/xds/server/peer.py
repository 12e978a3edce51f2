"""Who is at the other end of a stream, and which node groups that identity may be served.

With mutual TLS the client's certificate names it: its SPIFFE URI SANs
(``spiffe://trust-domain/path``, what SPIRE and Istio issue) and its DNS SANs
are its names, and the first of them (a SPIFFE URI if it has one) is its
identity in messages. A pattern matches when it matches any of the names: so
which kind of name authorizes a client is the operator's choice, made by how
the patterns are written (``spiffe://mesh/ns/*`` or ``pod-*.example``).
The transport reads the certificate (the h2 transport from its ``ssl``
socket, :meth:`Peer.of_certificate`; grpc.aio from a call's auth context,
:func:`peer_of_auth_context`) and hands the stream a :class:`Peer`; the
stream decides (no I/O). :class:`NodeIdentities` maps identity patterns to
the node groups each may claim; :func:`parse_identity_patterns` reads a
list of patterns (who may read CSDS and the management API).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from switchman.errors import ConfigError

__all__ = [
    "ANONYMOUS",
    "NodeIdentities",
    "Peer",
    "identity_of",
    "matches_any",
    "names_of",
    "parse_identity_patterns",
    "parse_node_identities",
    "peer_of_auth_context",
]


@dataclass(frozen=True, slots=True)
class Peer:
    """A stream's client as its connection knows it.

    ``certified``: the client presented a certificate the server's client CA
    vouches for. ``identity``: what that certificate names (None without one,
    or when it names nothing usable).
    """

    identity: str | None = None
    certified: bool = False
    names: tuple[str, ...] = ()  # every SPIFFE URI and DNS name of its certificate; identity is the first

    @classmethod
    def of_certificate(cls, cert: Mapping[str, Any] | None) -> Peer:
        """A client with a verified certificate, as :meth:`ssl.SSLSocket.getpeercert` returns it."""
        names = names_of(cert)
        return cls(identity=names[0] if names else None, certified=True, names=names)


ANONYMOUS: Final = Peer()


def names_of(cert: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The names in a certificate as :meth:`ssl.SSLSocket.getpeercert` returns it: its SPIFFE URI SANs, then
    its DNS SANs, each in the certificate's order."""
    if not cert:
        return ()
    sans: list[tuple[str, str]] = list(cert.get("subjectAltName", ()))
    uris = [v for kind, v in sans if kind == "URI" and v.startswith("spiffe://")]
    return (*uris, *(v for kind, v in sans if kind == "DNS" and v))


def identity_of(cert: Mapping[str, Any] | None) -> str | None:
    """The identity in a certificate: its first SPIFFE URI, else its first DNS SAN."""
    names = names_of(cert)
    return names[0] if names else None


def peer_of_auth_context(auth: Mapping[str, Sequence[bytes]]) -> Peer:
    """A grpc.aio call's client, from ``ServicerContext.auth_context()``: the same rule as :func:`identity_of`.

    gRPC lists a verified client certificate's SANs by kind (``peer_uri``,
    ``peer_dns``, in the certificate's order) and the certificate itself
    (``x509_pem_cert``), which is there only when the client presented one
    the client CA vouches for.
    """
    if not auth.get("x509_pem_cert"):
        return ANONYMOUS
    sans = [("URI", v.decode(errors="replace")) for v in auth.get("peer_uri", ())]
    sans += [("DNS", v.decode(errors="replace")) for v in auth.get("peer_dns", ())]
    return Peer.of_certificate({"subjectAltName": sans})


def _matches(pattern: str, text: str) -> bool:
    """Exact, or a prefix when ``pattern`` ends with ``*``."""
    if pattern.endswith("*"):
        return text.startswith(pattern[:-1])
    return text == pattern


@dataclass(frozen=True, slots=True)
class NodeIdentities:
    """Identity pattern -> the node group patterns it may claim (each exact, or a prefix with a trailing ``*``).

    Empty: no authorization by identity (any client may claim any group).
    """

    rules: Mapping[str, tuple[str, ...]]

    @property
    def enabled(self) -> bool:
        return bool(self.rules)

    def allows(self, names: Sequence[str], group: str) -> bool:
        """May a client with the certificate ``names`` (none: no certificate) be served ``group``?"""
        if not self.rules:
            return True
        return any(
            any(_matches(pattern, name) for name in names) and any(_matches(g, group) for g in groups)
            for pattern, groups in self.rules.items()
        )


def matches_any(patterns: Iterable[str], names: Sequence[str]) -> bool:
    """Does one of the certificate ``names`` (none: no certificate) match one of ``patterns``?"""
    return any(_matches(p, name) for p in patterns for name in names)


def _check_pattern(pattern: str, what: str) -> None:
    if "*" in pattern[:-1]:
        raise ConfigError(what, f"{pattern!r}: '*' may only end a pattern")


def parse_identity_patterns(text: str, what: str) -> tuple[str, ...]:
    """``PATTERN,...`` (each exact, or a prefix with a trailing ``*``); ConfigError naming ``what``."""
    patterns = tuple(p.strip() for p in text.split(",") if p.strip())
    for pattern in patterns:
        if "=" in pattern:
            raise ConfigError(what, f"{pattern!r} is not an identity pattern (no '=': identities only)")
        _check_pattern(pattern, what)
    return patterns


def parse_node_identities(text: str, what: str = "--node-identities") -> dict[str, tuple[str, ...]]:
    """``IDENTITY=GROUP[|GROUP...],...`` -> the mapping; ConfigError naming ``what`` when malformed.

    An identity given twice gets the groups of both entries.
    """
    rules: dict[str, tuple[str, ...]] = {}
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            continue
        identity, sep, groups_text = entry.partition("=")
        identity = identity.strip()
        groups = tuple(g.strip() for g in groups_text.split("|") if g.strip())
        if not sep or not identity or not groups:
            raise ConfigError(what, f"{entry!r} is not IDENTITY=GROUP[|GROUP...]")
        for pattern in (identity, *groups):
            _check_pattern(pattern, what)
        rules[identity] = rules.get(identity, ()) + groups
    return rules
