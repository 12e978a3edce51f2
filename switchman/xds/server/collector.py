"""Keep Python's cyclic garbage collector off the push path when many streams are open.

Every open stream holds about ninety container objects (its state, its
tasks, gRPC's call objects) for as long as it lives. With 10,000 streams a
full collection walks about a million objects, 0.3-0.5 s with the event
loop stopped, and the allocations of one push to every stream set off
several: measured with ``bench/ads_streams.py``, the collector took 1.1-1.9 s
of each change (of 4-5 s).

So every ``interval`` seconds a round collects what is not frozen (only the
objects made since the last round: cheap, about 20 ms for 200,000) and then
freezes the survivors (``gc.freeze()``, constant time), which takes them out
of every later collection. Frozen objects are still freed by reference
counting when they are let go; only reference cycles among them wait. So
every ``full_interval`` seconds a round unfreezes everything and collects it
once (0.15-0.5 s with 10,000 streams): what cycles can pin is what one such
period leaves. (Counting the frozen objects walks them all, which is why the
rounds do not decide by size.)

It changes the whole process's collector, so only the process's owner turns
it on: ``switchman serve`` does (``--gc-freeze-seconds``), a library user or
a test suite need not.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass

from switchman.tasks import cancel

__all__ = ["CollectorPolicy", "CollectorRound"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CollectorRound:
    """What one round did."""

    full: bool  # everything unfrozen and collected
    collected: int  # unreachable objects found
    seconds: float


class CollectorPolicy:
    """Rounds of collect-then-freeze every ``interval`` seconds; a full round every ``full_interval`` seconds."""

    def __init__(self, interval: float = 1.0, full_interval: float = 300.0) -> None:
        if interval <= 0 or full_interval < interval:
            raise ValueError("interval must be positive and full_interval at least interval")
        self.interval = interval
        self.full_interval = full_interval
        self._last_full = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run rounds in the background until :meth:`stop`."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="gc-rounds")

    async def stop(self) -> None:
        """Stop the rounds and hand every frozen object back to the collector."""
        task, self._task = self._task, None
        if task is not None:
            await cancel(task)
            gc.unfreeze()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            done = self.round()
            if done.full or done.seconds > 0.05:
                kind = "full" if done.full else "young"
                log.info("gc round: %s, %d unreachable, %.3f s", kind, done.collected, done.seconds)

    def round(self, full: bool | None = None) -> CollectorRound:
        """One round now: collect what is not frozen (everything when it is time, or ``full``), freeze the rest."""
        started = time.perf_counter()
        if full is None:
            full = time.monotonic() - self._last_full >= self.full_interval
        if full:
            gc.unfreeze()
            self._last_full = time.monotonic()
        collected = gc.collect()
        gc.freeze()
        return CollectorRound(full, collected, time.perf_counter() - started)
