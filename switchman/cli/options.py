"""Options shared by subcommands; every option also reads an environment variable."""

from __future__ import annotations

import argparse
import os

from switchman.errors import ConfigError

__all__ = ["env_default", "option", "seconds", "whole_number"]


def env_default(name: str, default: str) -> str:
    return os.environ.get(name, default)


def option(parser: argparse.ArgumentParser, flag: str, env: str, default: str, help: str) -> None:
    """Add ``flag`` whose default comes from ``env``, then ``default``; the help says so."""
    parser.add_argument(flag, default=env_default(env, default), help=f"{help} [env {env}; default {default}]")


def seconds(text: str, what: str, zero_ok: bool = False) -> float:
    """``text`` as a number of seconds: positive (or zero when ``zero_ok``); ConfigError naming ``what``."""
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(what, f"{text!r} is not a number of seconds") from None
    if value < 0 or (value == 0 and not zero_ok) or value != value:
        raise ConfigError(what, f"{text!r} must be {'zero or more' if zero_ok else 'positive'}")
    return value


def whole_number(text: str, what: str, minimum: int = 0) -> int:
    """``text`` as a whole number of at least ``minimum``; ConfigError naming ``what``."""
    try:
        value = int(text.strip().replace("_", ""))
    except ValueError:
        raise ConfigError(what, f"{text!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(what, f"{text!r} must be {minimum} or more")
    return value
