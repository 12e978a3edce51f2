"""Downstream load: an open-loop HTTP load generator, bounded in time and count.

Requests start on a fixed schedule (open loop: a slow answer does not slow
the schedule), each recorded with its start time, status, latency, the
upstream version that answered and, on failure, the kind of error.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from switchman.lab.local.upstream import VERSION_HEADER

__all__ = ["LoadResult", "Sample", "run_load"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One request."""

    started: float
    status: int
    latency_ms: float
    version: str
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and not self.error


@dataclass(slots=True)
class LoadResult:
    samples: list[Sample] = field(default_factory=list)

    @property
    def versions(self) -> Counter[str]:
        return Counter(s.version for s in self.samples if s.ok)

    @property
    def failures(self) -> list[Sample]:
        return [s for s in self.samples if not s.ok]

    def success_rate(self) -> float:
        return 1.0 - len(self.failures) / len(self.samples) if self.samples else 1.0

    def p99_ms(self) -> float:
        latencies = sorted(s.latency_ms for s in self.samples)
        return latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else 0.0


async def _one(session: aiohttp.ClientSession, url: str, out: list[Sample]) -> None:
    started = time.time()
    t0 = time.perf_counter()
    try:
        async with session.get(url) as resp:
            await resp.read()
            latency = (time.perf_counter() - t0) * 1000
            out.append(Sample(started, resp.status, latency, resp.headers.get(VERSION_HEADER, "")))
    except (aiohttp.ClientError, TimeoutError) as exc:
        out.append(Sample(started, 0, (time.perf_counter() - t0) * 1000, "", type(exc).__name__))


async def run_load(
    targets: Sequence[str],
    rate: float,
    count: int,
    max_seconds: float = 60.0,
    timeout: float = 5.0,
    stop: asyncio.Event | None = None,
    into: LoadResult | None = None,
) -> LoadResult:
    """Send ``count`` GETs at ``rate`` per second, round-robin over ``targets`` (URLs).

    Stops by itself after ``count`` requests or ``max_seconds``, or earlier when ``stop`` is set.
    Samples go into ``into`` (returned) when given, as each request completes, so that a
    caller can watch the load while it runs; they are sorted by start time at the end.
    """
    if rate <= 0 or count <= 0:
        raise ValueError("rate and count must be positive")
    result = into if into is not None else LoadResult()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        tasks: list[asyncio.Task[None]] = []
        start = time.monotonic()
        for i in range(count):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.monotonic() - start > max_seconds or (stop is not None and stop.is_set()):
                break
            tasks.append(asyncio.create_task(_one(session, targets[i % len(targets)], result.samples)))
        await asyncio.gather(*tasks)
    result.samples.sort(key=lambda s: s.started)
    return result
