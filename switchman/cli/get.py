"""``switchman get [KIND [NAME]]``: documents as a table, or as YAML/JSON to edit and apply again.

Also home of the output helpers other commands share: :func:`table` and :func:`print_data`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import yaml

from switchman.cli.config import add_option, client_options, run_client
from switchman.client import SwitchmanClient
from switchman.errors import ConfigError
from switchman.model.document import KINDS

__all__ = ["add_output_option", "add_parser", "canonical_kind", "print_data", "run", "summary", "table"]

OUTPUTS: Final = ("table", "yaml", "json")


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart (the last one not padded)."""
    grid = [list(headers), *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in grid) for i in range(len(headers))]
    lines = []
    for row in grid:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def print_data(data: Any, output: str) -> None:
    """``data`` as JSON (indented) or YAML; a list in YAML is a stream of documents (``---``)."""
    if output == "json":
        print(json.dumps(data, indent=2))
    elif isinstance(data, list):
        sys.stdout.write(yaml.safe_dump_all(data, sort_keys=False) if data else "")
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))


def output_type(choices: Sequence[str]) -> Any:
    """An argparse ``type`` that accepts one of ``choices`` (and so also checks the environment's value)."""

    def check(value: str) -> str:
        if value not in choices:
            raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(choices)}")
        return value

    check.__name__ = "output"
    return check


def add_output_option(parser: argparse.ArgumentParser, choices: Sequence[str] = OUTPUTS) -> None:
    """``-o/--output`` with ``choices``; the first one is the default."""
    add_option(
        parser, "-o", "--output", env="SWITCHMAN_OUTPUT", default=choices[0], type=output_type(choices),
        help=f"output format: {', '.join(choices)}",
    )


def canonical_kind(text: str) -> str:
    """``Service`` for ``service``, ``services`` or ``Service``; ConfigError for anything else."""
    for kind in KINDS:
        if text.lower() in (kind.lower(), f"{kind.lower()}s"):
            return kind
    raise ConfigError("KIND", f"{text!r} is not a kind (kinds: {', '.join(KINDS)})")


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def plural(count: int, noun: str) -> str:
    """``1 route``, ``3 routes``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def summary(doc: Mapping[str, Any]) -> str:
    """One line about a document, for the table: a listener's address, a service's versions and weights..."""
    kind, spec = doc.get("kind"), _mapping(doc.get("spec"))
    if kind == "Listener":
        where = f"{spec.get('address', '127.0.0.1')}:{spec.get('port')}"
        chains = spec.get("filterChains")
        if isinstance(chains, list):
            return f"{where}, {plural(len(chains), 'filter chain')}"
        target = f"routes {spec['routes']}" if "routes" in spec else "tcp" if "tcp" in spec else ""
        return f"{where} -> {target}" if target else where
    if kind == "Routes":
        hosts = spec.get("virtualHosts")
        hosts = hosts if isinstance(hosts, list) else []
        routes = sum(len(_mapping(h).get("routes") or []) for h in hosts)
        return f"{plural(len(hosts), 'virtual host')}, {plural(routes, 'route')}"
    if kind == "Service":
        versions = ", ".join(_mapping(spec.get("versions")))
        weights = " ".join(f"{k}={v}" for k, v in _mapping(spec.get("weights")).items())
        return f"versions {versions}" + (f"; weights {weights}" if weights else "")
    if kind == "Cluster":
        endpoints = spec.get("endpoints")
        return plural(len(endpoints) if isinstance(endpoints, list) else 0, "endpoint")
    if kind == "EnvoyResource":
        return str(spec.get("@type", "")).rsplit(".", 1)[-1]
    return ""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "get", parents=[client_options()], help="show documents",
        description="Show documents: all of them, those of one kind, or one. YAML output can be applied again.",
    )
    parser.add_argument("kind", nargs="?", metavar="KIND", help=f"one of {', '.join(KINDS)} (any case, or plural)")
    parser.add_argument("name", nargs="?", metavar="NAME", help="one document of that kind")
    add_output_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    kind = canonical_kind(args.kind) if args.kind else None

    async def action(client: SwitchmanClient) -> int:
        if kind is not None and args.name:
            one = await client.get(kind, args.name)
            if args.output != "table":
                print_data(one, args.output)
                return 0
            docs = [one]
        else:
            docs = await client.list(kind)
            if args.output != "table":
                print_data(docs, args.output)
                return 0
        if not docs:
            print(f"no {kind} documents" if kind else "no documents", file=sys.stderr)
            return 0
        rows = [(str(d.get("kind", "")), str(_mapping(d.get("metadata")).get("name", "")), summary(d)) for d in docs]
        print(table(("KIND", "NAME", "SUMMARY"), rows))
        return 0

    return run_client(args, action)
