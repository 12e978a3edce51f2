"""The controller's store follower outlives the store's failures, and says how it follows (a real SQLite store)."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from switchman.control import Controller
from switchman.store import SqliteStore
from switchman.xds import SnapshotCache

EXAMPLES = Path(__file__).parents[3] / "examples"


def checkout(v1: int = 100) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((EXAMPLES / "checkout.yaml").read_text()) if d]
    docs[0]["spec"]["weights"] = {"v1": v1, "v2": 100 - v1}
    return docs


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
async def controller(path: Path) -> AsyncIterator[Controller]:
    store = SqliteStore(path, poll_interval=0.05)
    controller = Controller(store, SnapshotCache(), probe_interval=0.1)
    await controller.start()
    yield controller
    await controller.stop()
    await store.close()


def write_row(path: Path, number: int, added: str, documents: list[dict[str, Any]]) -> None:
    """What another process writes into the same file, column by column."""
    with sqlite3.connect(path) as raw:
        raw.execute(
            "INSERT INTO revisions (number, author, created_at, message, added, changed, removed, rollback_of,"
            " on_behalf_of, documents) VALUES (?, 'other-process', ?, 'by hand', ?, '[]', '[]', NULL, NULL, ?)",
            (number, time.time(), added, json.dumps(documents)),
        )
    raw.close()


async def test_a_follower_whose_store_fails_restarts_and_catches_up(
    controller: Controller, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="switchman.control.follower")
    await controller.apply(checkout(), author="t")
    await until(lambda: controller.health().ready)
    assert (controller.health().served_revision, controller.health().store_head) == (1, 1)

    # Another process writes revision 2 with a column this version cannot read: the watch raises a TypeError
    # (not a StoreError: an error nobody expected), every time it reads that row.
    write_row(path, 2, "5", checkout(50))
    await until(lambda: controller.health().store_head == 2)
    await until(lambda: sum("failed again" in r.getMessage() for r in caplog.records) >= 3)
    health = controller.health()
    assert not health.ready
    assert health.reason is not None
    assert "TypeError" in health.reason or "while the store's head is 2" in health.reason
    assert health.last_error is not None and "TypeError" in health.last_error
    assert health.served_revision == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and "watch of" in r.getMessage()]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # once per kind, with the error
    assert "TypeError" in errors[0].getMessage() and str(path) in errors[0].getMessage()

    # Repaired: the next attempt reads it and serves it; the follower never stopped.
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE revisions SET added = '[]' WHERE number = 2")
    raw.close()
    await until(lambda: controller.served_revision == 2)
    await until(lambda: controller.health().ready)
    assert controller.cache.snapshot("*") is not None
    assert any("answers again" in r.getMessage() for r in caplog.records)

    # and it goes on following
    write_row(path, 3, '["service/checkout"]', checkout(10))
    await until(lambda: controller.served_revision == 3)
    result = await controller.apply(checkout(20), author="t", expected_revision=3)
    assert result.revision == 4


async def test_a_revision_that_cannot_be_served_is_skipped_and_reported(controller: Controller, path: Path) -> None:
    await controller.apply(checkout(), author="t")
    broken = checkout()
    broken[1]["spec"]["virtualHosts"][0]["routes"][2]["service"] = "nope"  # names a service that is not there
    write_row(path, 2, "[]", broken)
    await until(lambda: controller.health().store_head == 2)
    await asyncio.sleep(0.3)
    health = controller.health()
    assert (health.ready, health.served_revision) == (False, 1)
    assert health.reason == "serving revision 1 while the store's head is 2"
    write_row(path, 3, "[]", checkout(30))  # a later good one is served
    await until(lambda: controller.served_revision == 3)
    await until(lambda: controller.health().ready)


async def test_a_stopped_follower_is_not_ready(path: Path) -> None:
    store = SqliteStore(path)
    controller = Controller(store, SnapshotCache(), probe_interval=0.1)
    assert controller.health().reason == "the store follower is not running"
    await controller.start()
    await until(lambda: controller.health().ready)
    await controller.stop()
    assert controller.health().reason == "the store follower is not running"
    await store.close()


async def test_a_closed_store_makes_the_follower_report_it(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SqliteStore(path)
    controller = Controller(store, SnapshotCache(), probe_interval=0.1)
    await controller.start()
    try:
        await store.close()  # what a bug elsewhere could do: the watch ends, every read fails
        await until(lambda: not controller.health().ready)
        await asyncio.sleep(0.5)
        health = controller.health()
        assert health.reason is not None and "store" in health.reason
        assert health.last_error is not None and "closed" in health.last_error
    finally:
        await controller.stop()
