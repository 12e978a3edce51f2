"""Time series from samples: fixed-width bins of split, latency and success."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from switchman.lab.local.load import Sample
from switchman.lab.report.model import Phase

__all__ = ["Bin", "bin_samples", "percentile", "requested_at"]


@dataclass(frozen=True, slots=True)
class Bin:
    """The requests started in ``[start, start + width)``; ``start`` in seconds since the run's origin.

    ``expected_v2`` is the mean requested weight over the bin's answered requests
    (each request counts with the weight in effect when it started), and
    ``sigma_v2`` the standard deviation of the measured share under those
    weights (a Poisson-binomial): the 3σ band is ``expected_v2 ± 3 sigma_v2``.
    Shares and latencies are None when the bin has no request to measure them on.
    """

    start: float
    width: float
    requests: int
    answered: int  # successful requests: the ones whose version is known
    v2: int
    expected_v2: float | None
    sigma_v2: float | None
    p50_ms: float | None
    p99_ms: float | None
    success_rate: float | None

    @property
    def share_v2(self) -> float | None:
        """The measured share of v2 among answered requests."""
        return self.v2 / self.answered if self.answered else None

    @property
    def within_3_sigma(self) -> bool | None:
        """Is the measured share inside the 3σ band (None: nothing to judge)?"""
        share, expected, sigma = self.share_v2, self.expected_v2, self.sigma_v2
        if share is None or expected is None or sigma is None:
            return None
        return abs(share - expected) <= 3 * sigma + 1e-12


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0..1) of ``values``, as ``LoadResult.p99_ms`` computes it."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def requested_at(t: float, phases: Sequence[Phase], initial_v2: float = 0.0) -> float:
    """The v2 weight in effect at wall-clock time ``t``: that of the last phase applied by then."""
    weight = initial_v2
    for phase in sorted(phases, key=lambda p: p.applied):
        if phase.applied <= t:
            weight = phase.requested_v2
    return weight


def bin_samples(
    samples: Sequence[Sample],
    phases: Sequence[Phase],
    origin: float,
    width: float = 1.0,
    initial_v2: float = 0.0,
) -> list[Bin]:
    """Cut ``samples`` into bins of ``width`` seconds from ``origin`` (wall clock), up to the last sample."""
    if width <= 0:
        raise ValueError("width must be positive")
    if not samples:
        return []
    count = max(0, math.floor((max(s.started for s in samples) - origin) / width)) + 1
    grouped: list[list[Sample]] = [[] for _ in range(count)]
    for s in samples:
        index = math.floor((s.started - origin) / width)
        if 0 <= index < count:
            grouped[index].append(s)
    bins: list[Bin] = []
    for i, group in enumerate(grouped):
        answered = [s for s in group if s.ok]
        weights = [requested_at(s.started, phases, initial_v2) for s in answered]
        latencies = [s.latency_ms for s in group]
        n = len(answered)
        bins.append(
            Bin(
                start=i * width,
                width=width,
                requests=len(group),
                answered=n,
                v2=sum(1 for s in answered if s.version == "v2"),
                expected_v2=sum(weights) / n if n else None,
                sigma_v2=math.sqrt(sum(p * (1 - p) for p in weights)) / n if n else None,
                p50_ms=percentile(latencies, 0.50) if latencies else None,
                p99_ms=percentile(latencies, 0.99) if latencies else None,
                success_rate=n / len(group) if group else None,
            )
        )
    return bins
