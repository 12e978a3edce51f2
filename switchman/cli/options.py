"""Options shared by subcommands; every option also reads an environment variable."""

from __future__ import annotations

import argparse
import os

__all__ = ["env_default", "option"]


def env_default(name: str, default: str) -> str:
    return os.environ.get(name, default)


def option(parser: argparse.ArgumentParser, flag: str, env: str, default: str, help: str) -> None:
    """Add ``flag`` whose default comes from ``env``, then ``default``; the help says so."""
    parser.add_argument(flag, default=env_default(env, default), help=f"{help} [env {env}; default {default}]")
