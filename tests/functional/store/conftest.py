"""Fixtures for the store's functional tests: an etcd prefix per test.

Stores on either backend (``stores``) come from tests/functional/conftest.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.functional.store.etcd_env import fresh_prefix


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A key prefix of the test's own on the test etcd, removed afterwards."""
    async with fresh_prefix() as prefix:
        yield prefix
