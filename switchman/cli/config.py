"""How the CLI finds the API and its token, and runs a command against it.

Each of ``api``, ``token``, ``ca_cert``, ``client_cert`` and ``client_key`` comes from the first of:

1. the flag (``--api URL``, ``--token TOKEN``, ``--ca-cert FILE``, ``--client-cert FILE``,
   ``--client-key FILE``), before or after the command;
2. the environment (``SWITCHMAN_API``, ``SWITCHMAN_TOKEN``, ``SWITCHMAN_CA_CERT``,
   ``SWITCHMAN_CLIENT_CERT``, ``SWITCHMAN_CLIENT_KEY``);
3. the config file: ``SWITCHMAN_CONFIG`` if set (it must exist), else
   ``$XDG_CONFIG_HOME/switchman/config.yaml`` (``~/.config/switchman/config.yaml``)
   if it exists; a YAML mapping with those keys;
4. the default: ``http://127.0.0.1:8080``, no token, the system's CAs
   for an ``https://`` API, and no client certificate.

The client certificate and its key (PEM files) are presented to an API
that asks for one (``serve --api-client-ca``); one without the other is a
ConfigError.

A bad URL or config file is a :class:`~switchman.errors.ConfigError` (exit 2).
Errors from the API are reworded here to say what to do (which token, which
address and where it came from); their class picks the exit code in main.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import yaml

from switchman.cli.options import env_default
from switchman.client import ClientError, Forbidden, SwitchmanClient, Unauthorized, Unreachable, Untrusted
from switchman.errors import ConfigError
from switchman.model.loader import load_documents, yaml_problem

__all__ = [
    "API_ENV",
    "CA_CERT_ENV",
    "CLIENT_CERT_ENV",
    "CLIENT_KEY_ENV",
    "CONFIG_ENV",
    "DEFAULT_API",
    "TOKEN_ENV",
    "Target",
    "add_global_options",
    "add_option",
    "add_switch",
    "client_options",
    "config_path",
    "read_config_file",
    "resolve",
    "run_client",
    "yaml_problem",
]

DEFAULT_API: Final = "http://127.0.0.1:8080"
API_ENV: Final = "SWITCHMAN_API"
TOKEN_ENV: Final = "SWITCHMAN_TOKEN"
CA_CERT_ENV: Final = "SWITCHMAN_CA_CERT"
CLIENT_CERT_ENV: Final = "SWITCHMAN_CLIENT_CERT"
CLIENT_KEY_ENV: Final = "SWITCHMAN_CLIENT_KEY"
CONFIG_ENV: Final = "SWITCHMAN_CONFIG"
AUTHOR_ENV: Final = "SWITCHMAN_AUTHOR"
TIMEOUT_ENV: Final = "SWITCHMAN_TIMEOUT"
CONFIG_KEYS: Final = ("api", "token", "ca_cert", "client_cert", "client_key")
_KEYS_SAID: Final = "the keys api, token, ca_cert, client_cert and client_key"
_TRUE: Final = ("1", "true", "yes", "on")
#: How a TLS 1.3 server refusing the client's certificate looks to aiohttp (the alert comes after the handshake).
_HUNG_UP: Final = ("Server disconnected", "Connection reset by peer")


@dataclass(frozen=True, slots=True)
class Target:
    """Where the API is, the token to show it, the CA to trust and the client certificate to present, each with
    where it came from (for error messages)."""

    api: str
    api_from: str
    token: str | None
    token_from: str
    config_file: Path
    ca_cert: str | None = None
    ca_cert_from: str = "nowhere"
    client_cert: tuple[str, str] | None = None  # certificate and key files
    client_cert_from: str = "nowhere"


def config_path(environ: Mapping[str, str] | None = None) -> tuple[Path, bool]:
    """The config file, and whether it was named explicitly (``SWITCHMAN_CONFIG``) and so must exist."""
    env = os.environ if environ is None else environ
    named = env.get(CONFIG_ENV, "")
    if named:
        return Path(named).expanduser(), True
    base = env.get("XDG_CONFIG_HOME", "") or str(Path(env.get("HOME", "") or Path.home()) / ".config")
    return Path(base) / "switchman" / "config.yaml", False


def read_config_file(path: Path, required: bool) -> dict[str, str]:
    """The settings (``api``, ``token``, ``ca_cert``, ...) of a config file; an absent optional file is empty.
    Raises ConfigError."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        if required:
            raise ConfigError(str(path), f"does not exist (named by {CONFIG_ENV})") from None
        return {}
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
    try:
        documents = load_documents(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"is not YAML: {yaml_problem(exc)}") from None
    if len(documents) > 1:
        raise ConfigError(str(path), f"holds more than one YAML document: it is one mapping with {_KEYS_SAID}")
    loaded: Any = documents[0] if documents else None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(str(path), f"must be a mapping with {_KEYS_SAID}")
    out: dict[str, str] = {}
    for key, value in loaded.items():
        if key not in CONFIG_KEYS:
            raise ConfigError(f"{path}: {key}", f"is not a setting (settings: {', '.join(CONFIG_KEYS)})")
        if value is None:
            continue
        if not isinstance(value, str):
            raise ConfigError(f"{path}: {key}", f"must be a string, not {type(value).__name__}")
        out[key] = value
    return out


def _check_url(value: str, source: str) -> str:
    url = value.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        port, parts = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise ConfigError(f"api (from {source})", f"{value!r} is not an http:// or https:// URL")
    return url


def _first(flag: str | None, flag_name: str, env: Mapping[str, str], env_name: str, file: Mapping[str, str],
           key: str, path: Path) -> tuple[str | None, str]:
    """A setting and where it came from: flag > environment > config file; ``(None, "nowhere")`` when unset."""
    for value, source in ((flag, flag_name), (env.get(env_name), env_name), (file.get(key), str(path))):
        if value and value.strip():
            return value.strip(), source
    return None, "nowhere"


def _client_cert(
    cert_flag: str | None, key_flag: str | None, env: Mapping[str, str], file: Mapping[str, str], path: Path,
) -> tuple[tuple[str, str] | None, str]:
    """The client certificate and key files, and where they came from; ConfigError when one is missing."""
    cert, cert_from = _first(cert_flag, "--client-cert", env, CLIENT_CERT_ENV, file, "client_cert", path)
    key, key_from = _first(key_flag, "--client-key", env, CLIENT_KEY_ENV, file, "client_key", path)
    if cert is None and key is None:
        return None, "nowhere"
    if cert is None or key is None:
        missing = "client_key (--client-key)" if key is None else "client_cert (--client-cert)"
        given = f"client_cert (from {cert_from})" if key is None else f"client_key (from {key_from})"
        raise ConfigError(missing, f"{given} needs it: a client certificate goes with its key")
    return (cert, key), cert_from


def resolve(
    api_flag: str | None, token_flag: str | None, environ: Mapping[str, str] | None = None,
    ca_cert_flag: str | None = None, client_cert_flag: str | None = None, client_key_flag: str | None = None,
) -> Target:
    """Where the API is, which token to use, which CA to trust and which client certificate to present:
    flag > environment > config file > default."""
    env = os.environ if environ is None else environ
    path, required = config_path(env)
    file = read_config_file(path, required)
    api, api_from = _first(api_flag, "--api", env, API_ENV, file, "api", path)
    if api is None:
        api, api_from = DEFAULT_API, "the default"
    token, token_from = _first(token_flag, "--token", env, TOKEN_ENV, file, "token", path)
    ca_cert, ca_cert_from = _first(ca_cert_flag, "--ca-cert", env, CA_CERT_ENV, file, "ca_cert", path)
    client_cert, client_cert_from = _client_cert(client_cert_flag, client_key_flag, env, file, path)
    return Target(_check_url(api, api_from), api_from, token, token_from, path, ca_cert, ca_cert_from,
                  client_cert, client_cert_from)


# -- options -------------------------------------------------------------------


def add_option(
    parser: argparse._ActionsContainer, *flags: str, env: str, default: str, help: str, **kwargs: Any
) -> None:
    """An option (with short flags, ``type`` and so on) whose default comes from ``env``, then ``default``.

    Like :func:`switchman.cli.options.option`; a ``type`` also checks a value from the environment.
    """
    shown = f"; default {default}" if default else ""
    parser.add_argument(*flags, default=env_default(env, default), help=f"{help} [env {env}{shown}]", **kwargs)


def add_switch(parser: argparse.ArgumentParser, flag: str, env: str, help: str) -> None:
    """A ``--flag`` that is also on when ``env`` is ``1``, ``true``, ``yes`` or ``on``."""
    on = env_default(env, "").strip().lower() in _TRUE
    parser.add_argument(flag, action="store_true", default=on, help=f"{help} [env {env}=1]")


def _add_api_options(parser: argparse.ArgumentParser, default: Any) -> None:
    group = parser.add_argument_group("the API")
    group.add_argument(
        "--api", default=default, metavar="URL",
        help=f"the Switchman API [env {API_ENV}; config file key api; default {DEFAULT_API}]",
    )
    group.add_argument(
        "--token", default=default, metavar="TOKEN",
        help=f"bearer token [env {TOKEN_ENV}; config file key token; config file: env {CONFIG_ENV}, "
        "default ~/.config/switchman/config.yaml]",
    )
    group.add_argument(
        "--ca-cert", default=default, metavar="FILE",
        help=f"PEM CA certificate(s) to trust, besides the system's, for an https:// API [env {CA_CERT_ENV}; "
        "config file key ca_cert]",
    )
    group.add_argument(
        "--client-cert", default=default, metavar="FILE",
        help="PEM client certificate (chain) to present to an API that asks for one (serve --api-client-ca) "
        f"[env {CLIENT_CERT_ENV}; config file key client_cert]",
    )
    group.add_argument(
        "--client-key", default=default, metavar="FILE",
        help=f"PEM private key of --client-cert [env {CLIENT_KEY_ENV}; config file key client_key]",
    )
    group.add_argument(
        "--author", default=default, metavar="NAME",
        help="whom a change is made for: the history keeps it beside the token's name (on behalf of); with no "
        f"tokens on the server it is the author [env {AUTHOR_ENV}]",
    )


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """``--api``, ``--token``, ``--ca-cert``, ``--client-cert``, ``--client-key`` and ``--author`` before the
    command (``switchman --api URL get``)."""
    _add_api_options(parser, None)


def client_options() -> argparse.ArgumentParser:
    """A parent parser with the same options after the command.

    Their default is SUPPRESS, so a value given before the command is kept.
    """
    parent = argparse.ArgumentParser(add_help=False)
    _add_api_options(parent, argparse.SUPPRESS)
    return parent


# -- running -------------------------------------------------------------------


def _explain(exc: ClientError, target: Target, command: str) -> ClientError:
    """The API's error, on one line, saying what to do about it."""
    exc = exc.with_message(" ".join(exc.message.split()))
    if isinstance(exc, Untrusted):
        trusted = f"the system's CAs and {target.ca_cert} (from {target.ca_cert_from})" if target.ca_cert else (
            "the system's CAs only")
        return exc.with_message(
            f"{exc.message}; this client trusts {trusted}: name the API's CA with --ca-cert, {CA_CERT_ENV} or "
            f"ca_cert: in {target.config_file}"
        )
    if isinstance(exc, Unreachable) and target.api.startswith("https://") and any(s in exc.message for s in _HUNG_UP):
        # A TLS 1.3 server refuses a client certificate after the handshake: the client sees it hang up.
        if target.client_cert is None:
            return exc.with_message(
                f"{exc.message}: does the API ask for a client certificate (serve --api-client-ca)? Give one with "
                f"--client-cert and --client-key ({CLIENT_CERT_ENV}, {CLIENT_KEY_ENV}, or client_cert: and "
                f"client_key: in {target.config_file})"
            )
        return exc.with_message(
            f"{exc.message}: does the API trust the client certificate {target.client_cert[0]} (from "
            f"{target.client_cert_from})? It must be signed by a CA in the API's --api-client-ca"
        )
    if isinstance(exc, Unreachable):
        return exc.with_message(
            f"{exc.message} (the address is from {target.api_from}; "
            f"set --api, {API_ENV} or api: in {target.config_file})"
        )
    if isinstance(exc, Unauthorized):
        if target.token is None:
            return exc.with_message(
                f"the API at {target.api} requires a token: pass --token, set {TOKEN_ENV} "
                f"or put token: in {target.config_file}"
            )
        return exc.with_message(f"the API at {target.api} refused the token from {target.token_from}: {exc.message}")
    if isinstance(exc, Forbidden):
        return exc.with_message(
            f"not allowed: {exc.message}; 'switchman {command}' needs an admin token "
            f"(this one is from {target.token_from})"
        )
    return exc


def run_client(args: argparse.Namespace, action: Callable[[SwitchmanClient], Awaitable[int]]) -> int:
    """Resolve the API and token of ``args``, run ``action`` with a client, and return its exit code."""
    target = resolve(getattr(args, "api", None), getattr(args, "token", None),
                     ca_cert_flag=getattr(args, "ca_cert", None), client_cert_flag=getattr(args, "client_cert", None),
                     client_key_flag=getattr(args, "client_key", None))
    author = getattr(args, "author", None) or env_default(AUTHOR_ENV, "") or None
    timeout_text = env_default(TIMEOUT_ENV, "30")
    try:
        timeout = float(timeout_text)
    except ValueError:
        raise ConfigError(TIMEOUT_ENV, f"{timeout_text!r} is not a number of seconds") from None

    try:
        client = SwitchmanClient(target.api, target.token, author=author, timeout=timeout, ca_cert=target.ca_cert,
                                 client_cert=target.client_cert)
    except ConfigError as exc:
        source = target.client_cert_from if exc.path == "client_cert" else target.ca_cert_from
        raise ConfigError(f"{exc.path} (from {source})", exc.reason) from None

    async def go() -> int:
        async with client:
            return await action(client)

    try:
        return asyncio.run(go())
    except ClientError as exc:
        raise _explain(exc, target, str(getattr(args, "command", ""))) from None
