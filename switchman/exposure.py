"""What each port offers to whom, as ``serve`` says at start: one line per concern, a warning where it is open.

A pure function of the settings (and the bound ports), so that what the
log says is what the servers were given: transport security, who may
claim node groups and be served secrets, who may read CSDS and the
management API, who may report traffic, and who may read or change
config through the REST API.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

from switchman.tls import TlsSettings

if TYPE_CHECKING:
    from switchman.app import ServeSettings
    from switchman.xds import XdsSettings

__all__ = ["exposure"]

Line = tuple[int, str]
_INFO, _WARNING = logging.INFO, logging.WARNING


def _port(name: str, address: str, port: int, *details: str) -> str:
    """``xDS port 127.0.0.1:18000 (h2, loopback only)``."""
    host = address.rpartition(":")[0].strip("[]")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    said = [*details, "loopback only"] if loopback else list(details)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{name} {where}" + (f" ({', '.join(said)})" if said else "")


def _transport(tls: TlsSettings | None, port: str) -> Line:
    if tls is None:
        return _WARNING, f"{port}: plaintext, no client certificates"
    looked_at = (f"looked at every {tls.poll_seconds:g} s and on SIGHUP" if tls.poll_seconds > 0
                 else "looked at on SIGHUP")
    if not tls.client_ca_file:
        return _INFO, f"{port}: TLS ({tls.cert_file}, {looked_at}), no client certificates"
    optional = "" if tls.require_client_cert else " (optional)"
    return _INFO, (f"{port}: mutual TLS ({tls.cert_file}, {looked_at}), client certificates{optional} from "
                   f"{tls.client_ca_file}")


def _readers(settings: ServeSettings, certificates: bool) -> str:
    identities = settings.tokens.read_identities
    if identities and certificates:
        return f"a read or admin token, or a client certificate matching --read-identities ({', '.join(identities)})"
    return "a read or admin token"


def exposure(settings: ServeSettings, xds: XdsSettings, xds_port: int, api_port: int) -> list[Line]:
    """``(logging level, text)`` lines saying who may do what on each port."""
    tokens = settings.tokens.enabled
    port = _port("xDS port", settings.xds_address, xds_port, xds.transport)
    mutual = xds.tls is not None and bool(xds.tls.client_ca_file)
    lines = [_transport(xds.tls, port)]
    if xds.node_identities:
        # (XdsServer refuses node identities without a client CA: they would refuse every node.)
        groups = f"node groups only as --node-identities allows ({len(xds.node_identities)} identities)"
        lines.append((_INFO, f"{port}: {groups}"))
    else:
        lines.append((_WARNING, f"{port}: any client may claim any node group, and report access logs and load "
                                "for it (no --node-identities)"))
    lines.append((_INFO, f"{port}: secrets only to clients with a certificate"
                  + ("" if mutual else ": none here (no --xds-client-ca)")))
    if tokens:
        lines.append((_INFO, f"{port}: CSDS and the management API's reads need {_readers(settings, mutual)}; "
                             "changes an admin token"))
    else:
        lines.append((_WARNING, f"{port}: CSDS and the gRPC management API (reads and changes) are open to anyone "
                                "who reaches it (no tokens configured)"))
    api = _port("API port", settings.api_address, api_port)
    api_tls = settings.api_tls
    lines.append(_transport(api_tls, api))
    if tokens:
        certificates = api_tls is not None and bool(api_tls.client_ca_file)
        lines.append((_INFO, f"{api}: reads need {_readers(settings, certificates)}; changes an admin token; "
                             "/healthz, /readyz and /v1/openapi.json are open"))
    else:
        lines.append((_WARNING, f"{api}: no API tokens configured: reads and changes are open to anyone who "
                                "can reach it"))
    return lines
