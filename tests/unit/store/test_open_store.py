"""open_store: which backend a URL names, and the URLs it refuses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from switchman.store import EtcdAuth, EtcdStore, EtcdTls, SqliteStore, Store, StoreError, open_store
from tests.certs import Authority

HOME_DB = Path(os.path.expanduser("~/d.db"))


async def opened(url: str) -> Store:
    store = open_store(url)
    await store.close()  # opening touched nothing, so closing is all there is to clean
    return store


async def test_sqlite_urls_and_bare_paths(tmp_path: Path) -> None:
    absolute = await opened(f"sqlite://{tmp_path}/a.db")
    assert isinstance(absolute, SqliteStore)
    assert absolute.path == tmp_path / "a.db"
    relative = await opened("sqlite://state/b.db")
    assert isinstance(relative, SqliteStore)
    assert relative.path == Path("state/b.db")
    bare = await opened(str(tmp_path / "c.db"))
    assert isinstance(bare, SqliteStore)
    assert bare.path == tmp_path / "c.db"
    home = await opened("~/d.db")
    assert isinstance(home, SqliteStore)
    assert home.path == HOME_DB
    assert not (tmp_path / "a.db").exists()


async def test_etcd_urls() -> None:
    plain = await opened("etcd://127.0.0.1:2379")
    assert isinstance(plain, EtcdStore)
    assert (plain.endpoint, plain.prefix) == ("127.0.0.1:2379", "/switchman")
    prefixed = await opened("etcd://etcd.internal/prod/edge/")
    assert isinstance(prefixed, EtcdStore)
    assert (prefixed.endpoint, prefixed.prefix) == ("etcd.internal:2379", "/prod/edge")
    v6 = await opened("etcd://[::1]:23790")
    assert isinstance(v6, EtcdStore)
    assert v6.endpoint == "[::1]:23790"


@pytest.mark.parametrize(
    "url",
    ["", "sqlite://", "postgres://db/switchman", "etcd://", "etcd://host:port", "etcd://host:99999", "etcd://h:1?x=1"],
)
def test_urls_it_cannot_use(url: str) -> None:
    with pytest.raises(StoreError, match="store URL"):
        open_store(url)


async def test_etcd_tls_and_auth_go_to_an_etcd_store_and_are_refused_for_sqlite(tmp_path: Path) -> None:
    ca = Authority(tmp_path)
    tls, auth = EtcdTls.from_files(str(ca.file)), EtcdAuth("switchman", "secret")
    store = open_store("etcd://127.0.0.1:2379/x", etcd_tls=tls, etcd_auth=auth)
    await store.close()
    assert repr(store) == "EtcdStore('127.0.0.1:2379', prefix='/x', tls, user='switchman')"
    with pytest.raises(StoreError, match="is not etcd: etcd's TLS and authentication settings do not apply"):
        open_store(str(tmp_path / "s.db"), etcd_auth=auth)
    with pytest.raises(StoreError, match="TLS and authentication are serve's --etcd-\\* options"):
        open_store("etcd://user:pw@127.0.0.1:2379/x")
