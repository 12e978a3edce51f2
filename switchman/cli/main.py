"""``switchman``: the entry point. Errors become one line and an exit code, in one table."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, Final

from switchman.cli import (
    apply,
    delete,
    demo,
    diff,
    drill,
    get,
    history,
    lab,
    render,
    rollback,
    rollout,
    serve,
    status,
)
from switchman.cli.config import add_global_options
from switchman.client import ClientError, InvalidConfig, Unreachable
from switchman.errors import ConfigError, LabError, ProtocolError, SwitchmanError
from switchman.version import describe

__all__ = ["main"]

# Who is at fault -> exit code; the first class that matches wins. ``diff`` exits 1 when
# something would change, so no error of the commands that talk to the API exits 1.
EXIT_CODES: Final[dict[type[SwitchmanError], int]] = {
    ConfigError: 2,  # the input is wrong: an option, a file, the config file
    InvalidConfig: 2,  # ... or documents the API refused (the error names document and field)
    ProtocolError: 3,
    LabError: 4,
    Unreachable: 6,  # no answer from the API (the error says which URL, and where it came from)
    ClientError: 5,  # the API refused: no or read-only token, not found, conflict, a failing store
    SwitchmanError: 1,
}


class _Version(argparse.Action):
    """``--version``: asks git (in a checkout) only when given, not on every run."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(describe())
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchman", description="An Envoy control plane.",
        epilog="exit status: 0 done; 1 diff found differences; 2 bad input (an option, a file, the config file, "
        "documents the API refused); 3 protocol; 4 lab; 5 the API refused (token, not found, conflict); "
        "6 the API could not be reached; 7 apply --wait: stored, but an Envoy did not ACK it",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.add_argument("--version", action=_Version, help="print the version and the commit it was built from")
    add_global_options(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    serve.add_parser(sub)
    demo.add_parser(sub)
    drill.add_parser(sub)
    lab.add_parser(sub)
    for command in (apply, diff, get, delete, history, rollback, status, render, rollout):
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    base = logging.INFO if args.command == "serve" else logging.WARNING
    level = max(logging.DEBUG, base - 10 * args.verbose)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args))
    except SwitchmanError as exc:
        code = next(c for cls, c in EXIT_CODES.items() if isinstance(exc, cls))
        print(f"switchman: {exc}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, as a process killed by SIGPIPE would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
