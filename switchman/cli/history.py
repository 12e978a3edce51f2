"""``switchman history [--limit N]``: applied revisions, newest first: when, who, why and what changed.

AUTHOR is the token that made the change (with no tokens on the server: what
the caller said, or ``anonymous``); FOR is whom it said it acted for
(``--author``, ``X-Switchman-Author``), when a token made the change.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

from switchman.cli.config import add_option, client_options, run_client
from switchman.cli.get import add_output_option, print_data, table
from switchman.client import SwitchmanClient

__all__ = ["add_parser", "changes", "run"]


def _limit(text: str) -> int:
    try:
        limit = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= limit <= 1000:
        raise argparse.ArgumentTypeError(f"{limit} is not between 1 and 1000")
    return limit


def changes(entry: Mapping[str, Any], most: int = 6) -> str:
    """``+Service/api ~Routes/shop -Listener/old``: the documents a revision added, changed and removed.

    Past ``most`` of them, the rest are counted (``-o yaml`` shows them all).
    """
    marks = (("+", "added"), ("~", "changed"), ("-", "removed"))
    items = [f"{mark}{name}" for mark, key in marks for name in entry.get(key) or ()]
    if len(items) > most:
        return " ".join(items[: most - 1]) + f" and {len(items) - most + 1} more"
    return " ".join(items)


def _when(created_at: object) -> str:
    if not isinstance(created_at, int | float):
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created_at))


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "history", parents=[client_options()], help="applied revisions, newest first",
        description="Applied revisions, newest first: revision, when (local time), author (the token's name), "
        "whom it acted for (--author), message and the documents added (+), changed (~) and removed (-).",
    )
    add_option(
        parser, "--limit", env="SWITCHMAN_HISTORY_LIMIT", default="20", type=_limit, metavar="N",
        help="how many revisions (1-1000)",
    )
    add_output_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    async def action(client: SwitchmanClient) -> int:
        entries = await client.history(args.limit)
        if args.output != "table":
            print_data(entries, args.output)
            return 0
        if not entries:
            print("no revisions yet")
            return 0
        rows = [
            (str(e.get("number", "")), _when(e.get("created_at")), str(e.get("author", "")),
             str(e.get("on_behalf_of") or "-"), str(e.get("message", "")), changes(e))
            for e in entries
        ]
        print(table(("REVISION", "WHEN", "AUTHOR", "FOR", "MESSAGE", "CHANGES"), rows))
        return 0

    return run_client(args, action)
