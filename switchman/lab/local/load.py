"""Downstream load: an open-loop HTTP load generator, bounded in time and count.

Requests start on a fixed schedule (open loop: a slow answer does not slow
the schedule), each recorded with its start time, status, latency, the
upstream version that answered, the kind of client and, on failure, the
kind of error. Three kinds of client, as real downstreams are:

* ``http1-new-connection``: HTTP/1.1, a new TCP connection per request;
* ``http1-keepalive``: HTTP/1.1 over pooled, reused connections;
* ``http2``: HTTP/2 with prior knowledge (h2c), many requests per connection
  (:mod:`switchman.lab.local.h2client`: in-flight requests finish after a
  server's graceful GOAWAY, as RFC 9113 lets them, and a request the server
  did not take is sent again on a new connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import aiohttp

from switchman.lab.local.h2client import H2Client, H2ClientError
from switchman.lab.local.upstream import VERSION_HEADER

__all__ = ["ClientKind", "Cohort", "LoadResult", "Sample", "run_load"]


class ClientKind(StrEnum):
    H1_NEW = "http1-new-connection"
    H1_KEEPALIVE = "http1-keepalive"
    H2 = "http2"


@dataclass(frozen=True, slots=True)
class Sample:
    """One request."""

    started: float
    status: int
    latency_ms: float
    version: str
    error: str = ""
    client: str = ClientKind.H1_KEEPALIVE.value
    cohort: bool = False  # sent with the cohort's headers (see :class:`Cohort`)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and not self.error


@dataclass(frozen=True, slots=True)
class Cohort:
    """A share of the requests that carries extra headers (an A/B cohort, a preview header, a cookie),
    spread evenly over the load: request ``i`` is in it when ``floor((i + 1) * share)`` rises."""

    share: float
    headers: tuple[tuple[str, str], ...]

    def has(self, i: int) -> bool:
        return int((i + 1) * self.share) > int(i * self.share)


@dataclass(slots=True)
class LoadResult:
    samples: list[Sample] = field(default_factory=list)
    # HTTP/2 requests sent again on a new connection because the server had not taken them (a GOAWAY
    # below their stream, or REFUSED_STREAM): RFC 9113 lets a client do so; each counts once in samples.
    resent: int = 0

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


# One GET with extra headers: (status, answering version); raises on transport errors.
Getter = Callable[[str, dict[str, str]], Awaitable[tuple[int, str]]]


@contextlib.asynccontextmanager
async def _client(kind: ClientKind, timeout: float, result: LoadResult) -> AsyncIterator[Getter]:
    if kind is ClientKind.H2:
        async with H2Client(timeout=timeout) as h2:

            async def get_h2(url: str, headers: dict[str, str]) -> tuple[int, str]:
                status, answer = await h2.get(url, headers)
                return status, answer.get(VERSION_HEADER, "")

            try:
                yield get_h2
            finally:
                result.resent += h2.retried
        return
    connector = aiohttp.TCPConnector(limit=0, force_close=kind is ClientKind.H1_NEW)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as h1:

        async def get_h1(url: str, headers: dict[str, str]) -> tuple[int, str]:
            async with h1.get(url, headers=headers) as resp:
                await resp.read()
                return resp.status, resp.headers.get(VERSION_HEADER, "")

        yield get_h1


async def _one(get: Getter, kind: ClientKind, url: str, headers: dict[str, str], out: list[Sample]) -> None:
    started = time.time()
    t0 = time.perf_counter()
    cohort = bool(headers)
    try:
        status, version = await get(url, headers)
        latency = (time.perf_counter() - t0) * 1000
        out.append(Sample(started, status, latency, version, client=kind.value, cohort=cohort))
    except (aiohttp.ClientError, H2ClientError, OSError, TimeoutError) as exc:
        latency = (time.perf_counter() - t0) * 1000
        out.append(Sample(started, 0, latency, "", type(exc).__name__, client=kind.value, cohort=cohort))


async def run_load(
    targets: Sequence[str],
    rate: float,
    count: int,
    max_seconds: float = 60.0,
    timeout: float = 5.0,
    stop: asyncio.Event | None = None,
    into: LoadResult | None = None,
    kinds: Sequence[ClientKind] = (ClientKind.H1_KEEPALIVE,),
    cohort: Cohort | None = None,
) -> LoadResult:
    """Send ``count`` GETs at ``rate`` per second, round-robin over ``targets`` (URLs) and ``kinds``.

    Stops by itself after ``count`` requests or ``max_seconds``, or earlier when ``stop`` is set.
    Samples go into ``into`` (returned) when given, as each request completes, so that a
    caller can watch the load while it runs; they are sorted by start time at the end.
    """
    if rate <= 0 or count <= 0:
        raise ValueError("rate and count must be positive")
    if not kinds:
        raise ValueError("kinds must name at least one client kind")
    result = into if into is not None else LoadResult()
    async with contextlib.AsyncExitStack() as stack:
        getters = [(kind, await stack.enter_async_context(_client(kind, timeout, result))) for kind in kinds]
        tasks: list[asyncio.Task[None]] = []
        start = time.monotonic()
        for i in range(count):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.monotonic() - start > max_seconds or (stop is not None and stop.is_set()):
                break
            kind, get = getters[i % len(getters)]
            url = targets[(i // len(getters)) % len(targets)]
            headers = dict(cohort.headers) if cohort is not None and cohort.has(i) else {}
            tasks.append(asyncio.create_task(_one(get, kind, url, headers, result.samples)))
        await asyncio.gather(*tasks)
    result.samples.sort(key=lambda s: s.started)
    return result
