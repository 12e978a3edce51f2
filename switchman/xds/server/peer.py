"""Who is at the other end of a stream, and which node groups that identity may be served.

With mutual TLS the client's certificate names it: the first SPIFFE URI SAN
(``spiffe://trust-domain/path``, what SPIRE and Istio issue), else the first
DNS SAN. The transport reads the certificate and hands the stream a
:class:`Peer`; the stream decides (no I/O). :class:`NodeIdentities` maps
identity patterns to the node groups each may claim.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from switchman.errors import ConfigError

__all__ = ["ANONYMOUS", "NodeIdentities", "Peer", "identity_of", "parse_node_identities"]


@dataclass(frozen=True, slots=True)
class Peer:
    """A stream's client as its connection knows it.

    ``certified``: the client presented a certificate the server's client CA
    vouches for. ``identity``: what that certificate names (None without one,
    or when it names nothing usable).
    """

    identity: str | None = None
    certified: bool = False


ANONYMOUS: Final = Peer()


def identity_of(cert: Mapping[str, Any] | None) -> str | None:
    """The identity in a certificate as :meth:`ssl.SSLSocket.getpeercert` returns it: SPIFFE URI, else DNS SAN."""
    if not cert:
        return None
    sans: Iterable[tuple[str, str]] = cert.get("subjectAltName", ())
    sans = list(sans)
    for kind, value in sans:
        if kind == "URI" and value.startswith("spiffe://"):
            return value
    for kind, value in sans:
        if kind == "DNS" and value:
            return value
    return None


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

    def allows(self, identity: str | None, group: str) -> bool:
        """May a client named ``identity`` (None: no certificate identity) be served ``group``?"""
        if not self.rules:
            return True
        if identity is None:
            return False
        return any(
            _matches(pattern, identity) and any(_matches(g, group) for g in groups)
            for pattern, groups in self.rules.items()
        )


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
            if "*" in pattern[:-1]:
                raise ConfigError(what, f"{pattern!r}: '*' may only end a pattern")
        rules[identity] = rules.get(identity, ()) + groups
    return rules
