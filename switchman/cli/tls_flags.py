"""``switchman serve``'s TLS flags for the xDS port: certificate, key, client CA and node identities."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from switchman.cli.options import option
from switchman.errors import ConfigError
from switchman.xds.server.peer import parse_node_identities
from switchman.xds.tls import TlsSettings, server_context

__all__ = ["add_tls_options", "node_identities", "tls_settings"]


def add_tls_options(parser: argparse.ArgumentParser) -> None:
    option(parser, "--xds-tls-cert", "SWITCHMAN_XDS_TLS_CERT", "",
           "PEM certificate (chain) of the xDS port: serve it over TLS (h2 transport only); empty: plaintext")
    option(parser, "--xds-tls-key", "SWITCHMAN_XDS_TLS_KEY", "", "PEM private key of --xds-tls-cert")
    option(parser, "--xds-client-ca", "SWITCHMAN_XDS_CLIENT_CA", "",
           "PEM CA certificate(s) of the clients: mutual TLS, every client must present a certificate it signed; "
           "only clients with one are served secrets (SDS)")
    option(parser, "--node-identities", "SWITCHMAN_NODE_IDENTITIES", "",
           "which node groups each client identity (its certificate's SPIFFE URI, else DNS name) may claim: "
           "IDENTITY=GROUP[|GROUP...],... (a trailing * matches a prefix), or a YAML file mapping identity to a "
           "list of groups; empty: any client may claim any group")


def tls_settings(args: argparse.Namespace) -> TlsSettings | None:
    """The TLS of the xDS port from the flags, its files checked now; None for plaintext."""
    cert, key, ca = args.xds_tls_cert, args.xds_tls_key, args.xds_client_ca
    if not cert:
        if key:
            raise ConfigError("--xds-tls-key", "given without --xds-tls-cert")
        if ca:
            raise ConfigError("--xds-client-ca", "mutual TLS needs --xds-tls-cert and --xds-tls-key")
        return None
    if not key:
        raise ConfigError("--xds-tls-key", "--xds-tls-cert needs its key")
    tls = TlsSettings(cert_file=cert, key_file=key, client_ca_file=ca or None, require_client_cert=bool(ca))
    server_context(tls)  # a file that does not do is refused before anything starts
    return tls


def node_identities(text: str) -> dict[str, tuple[str, ...]]:
    """``--node-identities``: inline (``IDENTITY=GROUP,...``) or a YAML file (``identity: [group, ...]``)."""
    text = text.strip()
    if not text or "=" in text:
        return parse_node_identities(text)
    path = Path(text)
    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError("--node-identities", f"cannot read {text} (not IDENTITY=GROUP,... either): "
                                                f"{exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("--node-identities", f"{text} is not YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError("--node-identities", f"{text}: a mapping of identity to groups is expected")
    entries = []
    for identity, groups in loaded.items():
        listed = groups if isinstance(groups, list) else [groups]
        if not isinstance(identity, str) or not listed or not all(isinstance(g, str) for g in listed):
            raise ConfigError("--node-identities", f"{text}: {identity!r}: a group name or a list of them is expected")
        entries.append(f"{identity}={'|'.join(listed)}")
    return parse_node_identities(",".join(entries), f"--node-identities ({text})")
