"""An upstream's ``tls``: how Envoy opens TLS (or mutual TLS) to a Cluster's or a Service's endpoints.

``sni`` is the server name Envoy sends; the upstream's certificate is
checked against a CA (``caFile``, or ``caSecret``: an SDS secret that
holds a validation context), and, with ``subjectAltNames``, must name
one of them. For mutual TLS, Envoy shows a certificate of its own:
``certFile`` and ``keyFile``, or ``secret`` (an SDS secret that holds a
TLS certificate). Secrets are ``EnvoyResource`` documents of type Secret.
"""

from __future__ import annotations

from dataclasses import dataclass

from switchman.model.fields import Node

__all__ = ["SAN_KINDS", "SubjectAltName", "UpstreamTls", "read_upstream_tls"]

SAN_KINDS = ("dns", "uri", "ip", "email")
_SNI = r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?"
_PATH = (r"/.*", "an absolute path")


@dataclass(frozen=True, slots=True)
class SubjectAltName:
    kind: str  # dns | uri | ip | email
    value: str


@dataclass(frozen=True, slots=True)
class UpstreamTls:
    sni: str | None = None
    ca_file: str | None = None
    ca_secret: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    secret: str | None = None
    subject_alt_names: tuple[SubjectAltName, ...] = ()

    @property
    def verifies(self) -> bool:
        """Whether Envoy checks the upstream's certificate at all."""
        return self.ca_file is not None or self.ca_secret is not None


def _subject_alt_names(node: Node) -> tuple[SubjectAltName, ...]:
    out = []
    for item in node.elements(min_items=1):
        kind, value = item.one_of(*SAN_KINDS)
        text = value.ip() if kind == "ip" else value.text()
        item.done()
        out.append(SubjectAltName(kind, text))
    if len(set(out)) != len(out):
        node.fail("lists the same name twice")
    return tuple(out)


def read_upstream_tls(node: Node) -> UpstreamTls:
    sni, ca_file, ca_secret, cert, key, secret, sans = (
        node.get("sni"), node.get("caFile"), node.get("caSecret"), node.get("certFile"), node.get("keyFile"),
        node.get("secret"), node.get("subjectAltNames"),
    )
    if ca_file is not None and ca_secret is not None:
        node.fail("use either caFile or caSecret")
    if secret is not None and (cert is not None or key is not None):
        node.fail("use either secret or certFile and keyFile")
    if (cert is None) != (key is None):
        node.fail("certFile and keyFile go together")
    if sans is not None and ca_file is None and ca_secret is None:
        sans.fail("are checked only against a trusted CA: set caFile or caSecret")
    result = UpstreamTls(
        sni=sni.text(_SNI, "a host name") if sni else None,
        ca_file=ca_file.text(*_PATH) if ca_file else None,
        ca_secret=ca_secret.text() if ca_secret else None,
        cert_file=cert.text(*_PATH) if cert else None,
        key_file=key.text(*_PATH) if key else None,
        secret=secret.text() if secret else None,
        subject_alt_names=_subject_alt_names(sans) if sans else (),
    )
    node.done()
    return result
