"""The collector rounds: young garbage is collected, survivors frozen, frozen cycles freed by a full round."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from switchman.xds.server.collector import CollectorPolicy


class Node:
    """A reference cycle's member (reference counting alone cannot free it)."""

    def __init__(self) -> None:
        self.other: Node | None = None


def _cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """The rounds change the whole process's collector: give it back as it was."""
    gc.collect()
    yield
    gc.unfreeze()
    gc.collect()


def test_a_round_collects_young_garbage_and_freezes_what_lives() -> None:
    policy = CollectorPolicy(interval=1.0, full_interval=60.0)
    before = gc.get_freeze_count()
    dead = _cycle()
    alive = [Node() for _ in range(100)]
    done = policy.round()
    assert not done.full and done.collected >= 2
    assert dead() is None  # the cycle nobody held was collected
    assert gc.get_freeze_count() >= before + len(alive)  # the survivors are out of the collector's view
    assert all(o is not alive[0] for o in gc.get_objects())


def _frozen_cycle(policy: CollectorPolicy) -> weakref.ref[Node]:
    """A cycle that lived through a round (so it is frozen) and is unreachable now."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    ref = weakref.ref(a)
    policy.round(full=False)
    del a, b
    return ref


def test_a_cycle_dropped_after_it_was_frozen_waits_for_the_full_round() -> None:
    policy = CollectorPolicy(interval=1.0, full_interval=60.0)
    ref = _frozen_cycle(policy)
    assert not policy.round().full
    assert ref() is not None  # a young round cannot see it
    assert policy.round(full=True).full
    assert ref() is None  # a full one frees it


def test_the_full_round_comes_when_its_interval_has_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = CollectorPolicy(interval=1.0, full_interval=10.0)
    assert not policy.round().full
    now = policy._last_full + 10.0
    monkeypatch.setattr("switchman.xds.server.collector.time.monotonic", lambda: now)
    assert policy.round().full
    assert not policy.round().full  # and not again until another interval has passed


async def test_rounds_run_in_the_background_and_stop_unfreezes() -> None:
    policy = CollectorPolicy(interval=0.01, full_interval=60.0)
    policy.start()
    try:
        alive = [Node() for _ in range(50)]
        await asyncio.sleep(0.2)  # twenty rounds' time
        assert gc.get_freeze_count() > 0
    finally:
        await policy.stop()
    assert gc.get_freeze_count() == 0
    assert alive


def test_bad_intervals_are_refused() -> None:
    with pytest.raises(ValueError):
        CollectorPolicy(interval=0)
    with pytest.raises(ValueError):
        CollectorPolicy(interval=10, full_interval=5)
