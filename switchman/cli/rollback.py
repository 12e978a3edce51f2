"""``switchman rollback REVISION``: a new revision with the documents of an earlier one."""

from __future__ import annotations

import argparse

from switchman.cli.apply import add_expect_option, print_result
from switchman.cli.config import client_options, run_client
from switchman.client import SwitchmanClient

__all__ = ["add_parser", "run"]


def _revision(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a revision number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a revision number (they start at 1)")
    return number


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "rollback", parents=[client_options()], help="go back to the documents of an earlier revision",
        description="Store the documents of an earlier revision as a new revision (see 'switchman history').",
    )
    parser.add_argument("revision", type=_revision, metavar="REVISION", help="the revision to go back to")
    add_expect_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    async def action(client: SwitchmanClient) -> int:
        result = await client.rollback(args.revision, expected_revision=args.expect_revision)
        print(f"rolled back to revision {args.revision}")
        print_result(result, show_unchanged=False)
        return 0

    return run_client(args, action)
