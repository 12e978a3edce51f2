"""``switchman serve``'s options for an etcd store: TLS (a CA, a client certificate) and user/password.

The password is never an option (a command line is visible to every user of
the machine, in ``ps``): it comes from ``SWITCHMAN_ETCD_PASSWORD`` or from the
file ``--etcd-password-file`` names (a mounted secret), one of the two.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Final

from switchman.cli.options import option
from switchman.errors import ConfigError
from switchman.store import EtcdAuth, EtcdTls

__all__ = ["PASSWORD_ENV", "add_etcd_options", "etcd_auth", "etcd_tls"]

PASSWORD_ENV: Final = "SWITCHMAN_ETCD_PASSWORD"
_TLS_NAMES: Final = ("--etcd-ca", "--etcd-cert", "--etcd-key")


def add_etcd_options(parser: argparse.ArgumentParser) -> None:
    option(parser, "--etcd-ca", "SWITCHMAN_ETCD_CA", "",
           "PEM CA certificate(s) that signed etcd's certificate: talk to an etcd store over TLS; empty: plaintext")
    option(parser, "--etcd-cert", "SWITCHMAN_ETCD_CERT", "",
           "PEM client certificate shown to etcd (for its --client-cert-auth); needs --etcd-ca and --etcd-key")
    option(parser, "--etcd-key", "SWITCHMAN_ETCD_KEY", "", "PEM private key of --etcd-cert")
    option(parser, "--etcd-user", "SWITCHMAN_ETCD_USER", "",
           f"etcd user (etcd's authentication enabled; its role needs readwrite on the store's key prefix); the "
           f"password comes from env {PASSWORD_ENV} or --etcd-password-file, never from the command line")
    option(parser, "--etcd-password-file", "SWITCHMAN_ETCD_PASSWORD_FILE", "",
           "file holding --etcd-user's password (one trailing newline is ignored)")


def _given(args: argparse.Namespace, store: str) -> None:
    """etcd options for a store that is not etcd are a mistake: say which."""
    if store.startswith("etcd://"):
        return
    for name in (*_TLS_NAMES, "--etcd-user", "--etcd-password-file"):
        if getattr(args, name.removeprefix("--").replace("-", "_")):
            raise ConfigError(name, f"the store ({store}) is not etcd (--store etcd://host:port/prefix)")


def etcd_tls(args: argparse.Namespace) -> EtcdTls | None:
    """TLS to etcd from the options, its files read and checked now; None for plaintext."""
    _given(args, args.store)
    if not args.etcd_ca:
        for name, value in zip(_TLS_NAMES[1:], (args.etcd_cert, args.etcd_key), strict=True):
            if value:
                raise ConfigError(name, "TLS to etcd needs --etcd-ca, the CA that signed etcd's certificate")
        return None
    return EtcdTls.from_files(args.etcd_ca, args.etcd_cert or None, args.etcd_key or None, names=_TLS_NAMES)


def etcd_auth(args: argparse.Namespace, environ: dict[str, str] | None = None) -> EtcdAuth | None:
    """etcd's user and password from the options and the environment; None without a user."""
    environ = dict(os.environ) if environ is None else environ
    _given(args, args.store)
    user, file, env = args.etcd_user, args.etcd_password_file, environ.get(PASSWORD_ENV, "")
    if not user:
        if file or env:
            raise ConfigError("--etcd-user", f"a password is given ({'--etcd-password-file' if file else PASSWORD_ENV})"
                                             " but no user")
        return None
    if file and env:
        raise ConfigError("--etcd-password-file", f"{PASSWORD_ENV} is set too: give the password one way")
    if not file and not env:
        raise ConfigError("--etcd-user", f"needs a password: set {PASSWORD_ENV} or give --etcd-password-file")
    password = env
    if file:
        try:
            password = Path(file).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not text"
            raise ConfigError("--etcd-password-file", f"cannot read {file}: {reason}") from None
        password = password.removesuffix("\n").removesuffix("\r")
        if not password:
            raise ConfigError("--etcd-password-file", f"{file} is empty")
    return EtcdAuth(user, password)
