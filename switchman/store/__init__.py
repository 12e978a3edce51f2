"""The store: every applied configuration as a numbered, immutable revision,
and runtime state records and leases beside the revisions (:class:`StateStore`).

:func:`open_store` picks the backend from a URL:

==========================================  ==========================================
``sqlite:///var/lib/switchman/store.db``    SQLite, absolute path (``sqlite://`` + path)
``store.db``, ``/var/lib/switchman/s.db``   SQLite, a bare path
``etcd://127.0.0.1:2379``                   etcd, keys under ``/switchman``
``etcd://etcd.internal:2379/prod/edge``     etcd, keys under ``/prod/edge``
==========================================  ==========================================

etcd over TLS (a CA, a client certificate) and with user/password
authentication: ``etcd_tls`` (:class:`EtcdTls`, its files read and checked
by :meth:`EtcdTls.from_files`) and ``etcd_auth`` (:class:`EtcdAuth`); ``serve``
sets them from ``--etcd-ca``, ``--etcd-cert``, ``--etcd-key``, ``--etcd-user``
and the password's environment variable or file. They are not part of the URL:
it is logged and shown in ``/readyz``, and secrets must not be.

Opening touches neither the disk nor the network (it may run inside the
event loop); the first call on the store does, and reports failures as
:class:`StoreError`.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from switchman.store.base import (
    MAX_STATE_BYTES,
    ConflictError,
    Document,
    Revision,
    RevisionNotFound,
    RevisionSummary,
    StateRecord,
    StateStore,
    Store,
    StoreError,
)
from switchman.store.diff import Changes, diff
from switchman.store.etcd import DEFAULT_PORT, DEFAULT_PREFIX, EtcdStore
from switchman.store.etcd_client import EtcdAuth, EtcdTls
from switchman.store.sqlite import SqliteStore

__all__ = [
    "MAX_STATE_BYTES",
    "Changes",
    "ConflictError",
    "Document",
    "EtcdAuth",
    "EtcdStore",
    "EtcdTls",
    "Revision",
    "RevisionNotFound",
    "RevisionSummary",
    "SqliteStore",
    "StateRecord",
    "StateStore",
    "Store",
    "StoreError",
    "diff",
    "open_store",
]

_URL_FORMS = "sqlite:///path/to/file.db, a bare path, or etcd://host:port[/prefix]"


def open_store(url: str, *, etcd_tls: EtcdTls | None = None, etcd_auth: EtcdAuth | None = None) -> Store:
    """The store that ``url`` names; raises :class:`StoreError` for a URL it cannot use, or for TLS or
    authentication settings given for a store that is not etcd."""
    if url.startswith("etcd://"):
        return _open_etcd(url, etcd_tls, etcd_auth)
    if etcd_tls is not None or etcd_auth is not None:
        raise StoreError(f"store URL {url!r} is not etcd: etcd's TLS and authentication settings do not apply")
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        if not path:
            raise StoreError(f"store URL {url!r} names no file: use {_URL_FORMS}")
        return SqliteStore(path)
    if "://" in url or not url:
        raise StoreError(f"store URL {url!r} is not one Switchman knows: use {_URL_FORMS}")
    return SqliteStore(os.path.expanduser(url))


def _open_etcd(url: str, tls: EtcdTls | None, auth: EtcdAuth | None) -> EtcdStore:
    parts = urlsplit(url)
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as e:  # a port that is not a number, or out of range
        raise StoreError(f"store URL {url!r}: {e}") from e
    if not parts.hostname:
        raise StoreError(f"store URL {url!r} names no host: use etcd://host:port[/prefix]")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise StoreError(
            f"store URL {url!r}: etcd URLs take only a host, a port and a key prefix (TLS and authentication are"
            " serve's --etcd-* options)"
        )
    prefix = parts.path.strip("/")
    return EtcdStore(parts.hostname, port, prefix=f"/{prefix}" if prefix else DEFAULT_PREFIX, tls=tls, auth=auth)
