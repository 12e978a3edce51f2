"""Waiting for something a test or benchmark checks: ask again until it holds, then say how long is too long."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["until"]


async def until(check: Callable[[], Awaitable[Any]], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Ask ``check()`` every ``interval`` seconds until it answers something true, and return that;
    AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(interval)
