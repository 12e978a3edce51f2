"""Fixtures shared by the functional tests: stores on either backend (SQLite, or the test etcd), and whole
Switchmen on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from switchman.app import ServeSettings, Switchman
from switchman.store import EtcdStore, SqliteStore
from tests.functional.store.etcd_env import ENDPOINT, fresh_prefix, host_port, needs_etcd

AnyStore = SqliteStore | EtcdStore
StoreFactory = Callable[[], AnyStore]
Switchmen = Callable[..., Awaitable[Switchman]]


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


@pytest.fixture
async def switchmen(tmp_path: Path) -> AsyncIterator[Switchmen]:
    """``await switchmen(**settings)``: a running Switchman with those ServeSettings fields, both ports on
    loopback port 0 and a SQLite file of its own in ``tmp_path``; all stopped after the test."""
    running: list[Switchman] = []

    async def start(**settings: Any) -> Switchman:
        store = str(tmp_path / f"s{len(running)}.db")
        app = Switchman(ServeSettings(xds_address="127.0.0.1:0", api_address="127.0.0.1:0", store=store, **settings))
        await app.start()
        running.append(app)
        return app

    yield start
    for app in running:
        await app.stop(0.1)
