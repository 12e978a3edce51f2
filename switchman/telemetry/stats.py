"""What a window of traffic looked like: the answer of :meth:`TrafficRecorder.window`, and one load report."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["LoadReport", "Source", "TrafficStats", "percentiles"]

Source = Literal["als", "lrs"]


@dataclass(frozen=True, slots=True)
class TrafficStats:
    """The traffic of one Envoy cluster in a window, as the data plane reported it.

    From access logs (``source="als"``): ``requests`` is every logged request;
    ``successes`` those answered below 500 without an upstream reset or
    connection failure; ``errors_5xx`` those answered 5xx, Envoy's own 503s
    (no connection, overflow) included; ``resets`` those whose response
    flags say the upstream reset, refused or overflowed (they are usually
    5xx too); ``responses_2xx`` .. ``responses_4xx`` the other classes.

    From load reports (``source="lrs"``): ``requests`` is Envoy's successful
    plus error requests, ``errors_5xx`` its error requests (5xx answers and
    requests that failed without one), ``resets`` and the classes are 0 and
    there are no latencies: LRS does not carry them.

    ``success_rate`` is None when there were no requests; ``p50_ms`` and
    ``p99_ms`` are None when there were no latency samples.
    """

    requests: int
    successes: int
    errors_5xx: int
    resets: int
    success_rate: float | None
    p50_ms: float | None
    p99_ms: float | None
    source: Source
    responses_2xx: int = 0
    responses_3xx: int = 0
    responses_4xx: int = 0


@dataclass(frozen=True, slots=True)
class LoadReport:
    """One cluster's entry in one LoadStatsRequest (summed over its localities), as it arrived."""

    reporter: str
    cluster: str
    at: float  # arrival, Unix seconds
    successes: int
    errors: int
    issued: int
    in_progress: int
    dropped: int
    interval: float  # the period Envoy says the report covers, seconds


def percentiles(samples: Iterable[tuple[float, float]], *qs: float) -> tuple[float | None, ...]:
    """The ``qs`` quantiles (0 < q <= 1, nearest rank) of weighted ``(value, weight)`` samples; None when empty."""
    ordered = sorted(samples)
    total = math.fsum(weight for _, weight in ordered)
    if not ordered or total <= 0:
        return tuple(None for _ in qs)
    # sums of float weights: a rank that is whole must stay whole
    targets = sorted((q * total * (1 - 1e-12), i) for i, q in enumerate(qs))
    found: list[float | None] = [ordered[-1][0]] * len(qs)
    running, next_target = 0.0, 0
    for value, weight in ordered:
        running += weight
        while next_target < len(targets) and running >= targets[next_target][0]:
            found[targets[next_target][1]] = value
            next_target += 1
        if next_target == len(targets):
            break
    return tuple(found)
