"""``switchman delete KIND NAME``: delete one document (refused while others refer to it)."""

from __future__ import annotations

import argparse

from switchman.cli.apply import add_expect_option, print_result
from switchman.cli.config import add_switch, client_options, run_client
from switchman.cli.get import canonical_kind
from switchman.client import InvalidConfig, SwitchmanClient
from switchman.model.document import KINDS, document_id

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "delete", parents=[client_options()], help="delete a document",
        description="Delete one document; refused while another document refers to it.",
    )
    parser.add_argument("kind", metavar="KIND", help=f"one of {', '.join(KINDS)} (any case, or plural)")
    parser.add_argument("name", metavar="NAME")
    add_switch(parser, "--dry-run", "SWITCHMAN_DRY_RUN", "only show what would change; store nothing")
    add_expect_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    kind = canonical_kind(args.kind)

    doc_id = document_id(kind, args.name)

    async def action(client: SwitchmanClient) -> int:
        try:
            result = await client.delete(kind, args.name, dry_run=args.dry_run, expected_revision=args.expect_revision)
        except InvalidConfig as exc:  # what the rest of the config would lack without it
            raise exc.with_message(f"{doc_id} cannot be deleted: {exc.message}") from None
        print_result(result, [doc_id], show_unchanged=False)
        return 0

    return run_client(args, action)
