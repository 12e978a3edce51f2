"""``switchman serve``'s TLS flags: certificates of both ports, their client CAs, and node identities.

``--tls-cert``/``--tls-key`` serve both ports; ``--xds-tls-cert``/``--xds-tls-key``
and ``--api-tls-cert``/``--api-tls-key`` serve one port each and win over
them. A client CA (``--xds-client-ca``, ``--api-client-ca``) makes that port
mutual TLS. Every file is read and checked before anything starts, and an
error names the flag that gave the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from switchman.cli.options import option, seconds
from switchman.errors import ConfigError
from switchman.tls import API_FLAGS, DEFAULT_POLL_SECONDS, XDS_FLAGS, TlsFlags, TlsSettings, server_context
from switchman.xds.server.peer import parse_node_identities

__all__ = ["add_tls_options", "api_tls_settings", "node_identities", "tls_settings"]

_SHARED = ("--tls-cert", "--tls-key")


def add_tls_options(parser: argparse.ArgumentParser) -> None:
    option(parser, "--tls-cert", "SWITCHMAN_TLS_CERT", "",
           "PEM certificate (chain) of both ports (xDS and API), unless --xds-tls-cert or --api-tls-cert "
           "gives a port its own; empty: plaintext")
    option(parser, "--tls-key", "SWITCHMAN_TLS_KEY", "", "PEM private key of --tls-cert")
    option(parser, "--xds-tls-cert", "SWITCHMAN_XDS_TLS_CERT", "",
           "PEM certificate (chain) of the xDS port (either transport), instead of --tls-cert")
    option(parser, "--xds-tls-key", "SWITCHMAN_XDS_TLS_KEY", "", "PEM private key of --xds-tls-cert")
    option(parser, "--xds-client-ca", "SWITCHMAN_XDS_CLIENT_CA", "",
           "PEM CA certificate(s) of the xDS port's clients: mutual TLS, every client must present a certificate "
           "it signed; only clients with one are served secrets (SDS)")
    option(parser, "--node-identities", "SWITCHMAN_NODE_IDENTITIES", "",
           "which node groups each client identity (a SPIFFE URI or DNS name of its certificate) may claim, for "
           "its config and for the access logs and load reports it sends: IDENTITY=GROUP[|GROUP...],... (a "
           "trailing * matches a prefix), or a YAML file mapping identity to a list of groups; they never grant "
           "CSDS or the management API (--read-identities); empty: any client may claim any group")
    option(parser, "--api-tls-cert", "SWITCHMAN_API_TLS_CERT", "",
           "PEM certificate (chain) of the REST API (HTTPS), instead of --tls-cert")
    option(parser, "--api-tls-key", "SWITCHMAN_API_TLS_KEY", "", "PEM private key of --api-tls-cert")
    option(parser, "--api-client-ca", "SWITCHMAN_API_CLIENT_CA", "",
           "PEM CA certificate(s) of the REST API's clients: mutual TLS, every client must present a certificate "
           "it signed (tokens still decide what it may do, or --read-identities)")
    option(parser, "--tls-poll-seconds", "SWITCHMAN_TLS_POLL_SECONDS", str(DEFAULT_POLL_SECONDS),
           "how often both ports look at their certificate, key and client CA files: changed files are loaded "
           "for new connections (open ones keep theirs), as on SIGHUP; files that do not do are logged and the "
           "certificate in use stays; 0: only on SIGHUP")


def _port(args: argparse.Namespace, flags: TlsFlags, cert: str, key: str, client_ca: str) -> TlsSettings | None:
    """One port's TLS: its own pair of flags, else the shared pair; None for plaintext."""
    if key and not cert:
        raise ConfigError(flags.key, f"given without {flags.cert}")
    if cert:
        if not key:
            raise ConfigError(flags.key, f"{flags.cert} needs its key")
        given = flags
    elif args.tls_cert:
        cert, key, given = args.tls_cert, args.tls_key, TlsFlags(*_SHARED, flags.client_ca)
    else:
        if client_ca:
            raise ConfigError(flags.client_ca, f"mutual TLS needs {flags.cert} and {flags.key} "
                                               f"(or {' and '.join(_SHARED)})")
        return None
    tls = TlsSettings(cert, key, client_ca or None, require_client_cert=bool(client_ca), flags=given,
                      poll_seconds=seconds(args.tls_poll_seconds, "--tls-poll-seconds", zero_ok=True))
    server_context(tls, ["h2"])  # a file that does not do is refused before anything starts
    return tls


def _shared(args: argparse.Namespace) -> None:
    if args.tls_key and not args.tls_cert:
        raise ConfigError("--tls-key", "given without --tls-cert")
    if args.tls_cert and not args.tls_key:
        raise ConfigError("--tls-key", "--tls-cert needs its key")


def tls_settings(args: argparse.Namespace) -> TlsSettings | None:
    """The TLS of the xDS port from the flags, its files checked now; None for plaintext."""
    _shared(args)
    return _port(args, XDS_FLAGS, args.xds_tls_cert, args.xds_tls_key, args.xds_client_ca)


def api_tls_settings(args: argparse.Namespace) -> TlsSettings | None:
    """The TLS of the REST API from the flags, its files checked now; None for plaintext."""
    _shared(args)
    return _port(args, API_FLAGS, args.api_tls_cert, args.api_tls_key, args.api_client_ca)


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
