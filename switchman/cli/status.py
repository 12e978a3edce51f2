"""``switchman status``: the revision served and the store's head, endpoint discovery (with serve
--kubernetes), every connected Envoy, the version it ACKed per type, and its last NACK.

::

    serving revision 3 (the store's head is 3)
    NODE     GROUP  STREAMS  SYNCED  CDS             EDS             LDS             RDS
    envoy-1  demo   1        no      4df63a3960 (2)  c19e7e35dd (2)  63f6ed0b40 (2)  22592c2bba (1)
    last NACK: envoy-1 rds version 2ec30bf544: missing ): (unclosed (documents: envoyresource/regex-routes)
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any, Final

from switchman.cli.config import client_options, run_client
from switchman.cli.get import add_output_option, print_data, table
from switchman.client import SwitchmanClient

__all__ = ["add_parser", "discovery_lines", "nack_lines", "revision_lines", "run", "status_table"]

# The order of an ADS stream: what a resource needs comes first.
TYPE_ORDER: Final = ("sds", "cds", "eds", "lds", "rds")
VERSION_WIDTH: Final = 10


def _short(version: object) -> str:
    text = str(version or "")
    return text if len(text) <= VERSION_WIDTH + 2 else text[:VERSION_WIDTH]


def _types(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    types = node.get("types")
    return [t for t in types if isinstance(t, Mapping)] if isinstance(types, list) else []


def status_table(nodes: Sequence[Mapping[str, Any]]) -> str:
    """One row per node: SYNCED when it ACKed what it is served now; then one column per type that any node
    subscribes to: the version it ACKed (and its number of resources)."""
    seen = {str(t.get("type")) for node in nodes for t in _types(node)}
    columns = [t for t in TYPE_ORDER if t in seen] + sorted(seen - set(TYPE_ORDER))
    rows = []
    for node in nodes:
        by_type = {str(t.get("type")): t for t in _types(node)}
        cells = []
        for name in columns:
            t = by_type.get(name)
            if t is None:
                cells.append("")
            elif not t.get("acked_version"):
                cells.append("not ACKed" + (" (NACK)" if t.get("nack_message") else ""))
            else:
                cells.append(f"{_short(t['acked_version'])} ({t.get('resources', 0)})")
        synced = node.get("synced")
        rows.append((
            str(node.get("node_id", "")), str(node.get("group", "")), str(node.get("streams", "")),
            "" if synced is None else "yes" if synced else "no", *cells,
        ))
    return table(("NODE", "GROUP", "STREAMS", "SYNCED", *(c.upper() for c in columns)), rows)


def nack_lines(nodes: Sequence[Mapping[str, Any]]) -> list[str]:
    """The last NACK of each node and type: Envoy's message, and the documents it traces to."""
    out = []
    for node in nodes:
        for t in _types(node):
            message = t.get("nack_message")
            if not message:
                continue
            documents = ", ".join(str(d) for d in t.get("documents") or ())
            one_line = " ".join(str(message).split())
            out.append(
                f"last NACK: {node.get('node_id')} {t.get('type')} version {_short(t.get('nack_version'))}: "
                f"{one_line}" + (f" (documents: {documents})" if documents else "")
            )
    return out


def revision_lines(status: Mapping[str, Any]) -> list[str]:
    """What this replica serves against the store's head, and why it is not ready if it is not."""
    revision = status.get("revision")
    store = status.get("store")
    store = store if isinstance(store, Mapping) else {}
    head = store.get("store_head")
    line = f"serving revision {revision}" if revision is not None else "serving nothing yet (no revision)"
    if head is not None:
        line += f" (the store's head is {head})"
    lines = [line]
    if store and not store.get("ready", True):
        lines.append(f"not ready: {store.get('reason')}")
    return lines


def discovery_lines(status: Mapping[str, Any]) -> list[str]:
    """With endpoint discovery: whether it is current (or stale, and why), and each source's endpoints."""
    discovery = status.get("discovery")
    if not isinstance(discovery, Mapping):
        return []
    namespaces = [n for n in discovery.get("namespaces") or () if isinstance(n, Mapping)]
    watched = ", ".join(str(n.get("namespace")) for n in namespaces) or "no namespace (no document names one)"
    state = "current" if discovery.get("current") else f"STALE: {discovery.get('reason')}"
    lines = [f"kubernetes discovery ({discovery.get('server')}): {state}; watching {watched}"]
    endpoints = discovery.get("endpoints")
    for source, count in (endpoints.items() if isinstance(endpoints, Mapping) else ()):
        lines.append(f"  kubernetes {source}: {count} endpoint{'' if count == 1 else 's'}")
    return lines


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "status", parents=[client_options()], help="connected Envoys: ACKed versions and NACKs",
        description="The revision this replica serves and the store's head (and why it is not ready, if it is "
        "not); every connected Envoy: its group, whether it runs what it is served now (SYNCED), the "
        "version it ACKed per type (with the number of resources), and its last NACK with Envoy's message and "
        "the documents it traces to. With serve --kubernetes: whether endpoint discovery is current or stale, "
        "and how many endpoints each Kubernetes source has (`switchman render` shows each endpoint's source).",
    )
    add_output_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    async def action(client: SwitchmanClient) -> int:
        status = await client.status()
        if args.output != "table":
            print_data(status, args.output)
            return 0
        for line in revision_lines(status) + discovery_lines(status):
            print(line)
        nodes = [n for n in status.get("nodes") or () if isinstance(n, Mapping)]
        if not nodes:
            print("no Envoys connected")
            return 0
        print(status_table(nodes))
        for line in nack_lines(nodes):
            print(line)
        return 0

    return run_client(args, action)
