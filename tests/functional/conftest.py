"""Fixtures shared by the functional tests: stores on either backend (SQLite, or the test etcd)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from switchman.store import EtcdStore, SqliteStore
from tests.functional.store.etcd_env import ENDPOINT, fresh_prefix, host_port, needs_etcd

AnyStore = SqliteStore | EtcdStore
StoreFactory = Callable[[], AnyStore]


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=needs_etcd)])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Make store objects on one backend: one SQLite file, or one etcd prefix. All closed at the end.

    Two objects made stand for two replicas (or two processes on one file):
    each has its own connection.
    """
    made: list[AnyStore] = []
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":

            def make() -> AnyStore:
                made.append(SqliteStore(tmp_path / "store.db"))
                return made[-1]

        else:
            prefix = await stack.enter_async_context(fresh_prefix())
            host, port = host_port(ENDPOINT)

            def make() -> AnyStore:
                made.append(EtcdStore(host, port, prefix=prefix))
                return made[-1]

        yield make
        for store in made:
            await store.close()
