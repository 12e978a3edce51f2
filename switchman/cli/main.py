"""``switchman``: the entry point. Errors become one line and an exit code, in one table."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Final

from switchman.cli import demo, serve
from switchman.errors import ConfigError, LabError, ProtocolError, SwitchmanError

__all__ = ["main"]

# Who is at fault -> exit code.
EXIT_CODES: Final[dict[type[SwitchmanError], int]] = {
    ConfigError: 2,
    ProtocolError: 3,
    LabError: 4,
    SwitchmanError: 1,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchman", description="An Envoy control plane.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve.add_parser(sub)
    demo.add_parser(sub)
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


if __name__ == "__main__":
    sys.exit(main())
