"""``switchman diff -f FILE``: what an apply would change, without changing anything (like ``kubectl diff``).

Each document says created, configured or unchanged; a configured one shows a
unified diff of its YAML, served against the file's; then the Envoy
resources that would be added, changed and removed. Exits 0 when nothing
would change and 1 when something would (errors exit 2 or more).
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Mapping
from typing import Any

import yaml

from switchman.cli.apply import add_file_option, files_of, print_envoy, read_documents
from switchman.cli.config import client_options, run_client
from switchman.client import ClientError, SwitchmanClient

__all__ = ["add_parser", "run", "yaml_diff"]


def yaml_diff(served: Mapping[str, Any], proposed: Mapping[str, Any], doc_id: str) -> list[str]:
    """A unified diff of two documents as YAML, keys sorted so that only real changes show."""
    before = yaml.safe_dump(dict(served), sort_keys=True).splitlines(keepends=True)
    after = yaml.safe_dump(dict(proposed), sort_keys=True).splitlines(keepends=True)
    return list(difflib.unified_diff(before, after, f"{doc_id} (served)", f"{doc_id} (file)"))


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "diff", parents=[client_options()], help="show what an apply would change (exit 1 if anything)",
        description="Show what applying the files would change, without changing anything. "
        "Exit status: 0 no difference, 1 differences, 2 or more an error.",
    )
    add_file_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    docs = read_documents(files_of(args))

    async def action(client: SwitchmanClient) -> int:
        try:
            result = await client.apply(docs.documents, dry_run=True)
        except ClientError as exc:
            raise docs.locate(exc) from None
        states = {i: "created" for i in result.created}
        states |= {i: "configured" for i in result.configured}
        states |= {i: "unchanged" for i in result.unchanged}
        for doc_id, doc in zip(docs.ids(), docs.documents, strict=True):
            state = states.get(doc_id, "unchanged")
            print(f"{doc_id} {state}")
            if state == "configured":
                kind, name = doc_id.split("/", 1)
                served = await client.get(kind, name)
                print("".join(yaml_diff(served, doc, doc_id)), end="")
        print_envoy(result.envoy, dry_run=True)
        return 1 if result.changes else 0

    return run_client(args, action)
