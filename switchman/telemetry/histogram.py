"""A latency histogram with fixed log-scale bins: what replicas publish of their latencies, and merge.

Percentiles cannot be added up, but histograms over the same bins can, so
every replica bins its latencies the same way and the one that judges a
canary sums them.

**Bins.** Eight per doubling (the resolution of Prometheus's native
histograms at their default schema, 3): bin ``b`` holds the latencies in
``[LOWEST_MS * 2**(b/8), LOWEST_MS * 2**((b+1)/8))``, each about 9 % wider
than the one before, from 0.01 ms up to 0.01 ms * 2**25 (about 5.6
minutes) in :data:`BINS` (200) bins; bin 0 also holds everything below (down
to 0), and the last bin everything above.

**Accuracy.** A percentile is the geometric middle of the bin that holds
the nearest-rank percentile of the latencies put in. So it is off from the
exact nearest-rank answer by at most a factor ``2**(1/16)``: within 4.4 %
above or below, whatever the distribution, for latencies from 0.01 ms to
5.6 minutes (below, off by at most 0.0105 ms; above, reported as 5.3
minutes, the last bin's middle). p50 and p99 are equally good: the error
is per value, not per rank. Counts may be weighted (the recorder samples
busy seconds and weighs what it kept), and a weighted percentile is then
as good as its sample.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

__all__ = ["BINS", "LOWEST_MS", "PER_DOUBLING", "LatencyHistogram", "bin_of", "value_of"]

PER_DOUBLING: Final = 8
LOWEST_MS: Final = 0.01
BINS: Final = PER_DOUBLING * 25
_TOP_MS: Final = LOWEST_MS * 2.0**25  # where the last bin would end: about 335,544 ms


def bin_of(ms: float) -> int:
    """The bin a latency of ``ms`` milliseconds falls in."""
    if not ms > LOWEST_MS:  # also NaN: there is none, but it must land somewhere
        return 0
    if ms >= _TOP_MS:
        return BINS - 1
    return min(BINS - 1, int(math.log2(ms / LOWEST_MS) * PER_DOUBLING))


def value_of(index: int) -> float:
    """What a percentile that lands in bin ``index`` reports: the bin's geometric middle, in milliseconds."""
    return float(LOWEST_MS * 2.0 ** ((index + 0.5) / PER_DOUBLING))


class LatencyHistogram:
    """Weighted counts per bin, sparse: only the bins with something are kept."""

    __slots__ = ("counts",)

    def __init__(self, counts: Mapping[int, float] | None = None) -> None:
        self.counts: dict[int, float] = dict(counts) if counts else {}

    @classmethod
    def of(cls, samples: Iterable[tuple[float, float]]) -> LatencyHistogram:
        """The histogram of ``(ms, weight)`` samples (the recorder's :meth:`~TrafficRecorder.latencies`)."""
        histogram = cls()
        for ms, weight in samples:
            histogram.add(ms, weight)
        return histogram

    def add(self, ms: float, weight: float = 1.0) -> None:
        if weight > 0:
            index = bin_of(ms)
            self.counts[index] = self.counts.get(index, 0.0) + weight

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s counts into this one."""
        for index, count in other.counts.items():
            self.counts[index] = self.counts.get(index, 0.0) + count

    @property
    def total(self) -> float:
        return math.fsum(self.counts.values())

    def percentiles(self, *qs: float) -> tuple[float | None, ...]:
        """The ``qs`` quantiles (0 < q <= 1, nearest rank, as :func:`~switchman.telemetry.stats.percentiles`);
        None when empty."""
        total = self.total
        if total <= 0:
            return tuple(None for _ in qs)
        # sums of float weights: a rank that is whole must stay whole (as stats.percentiles does)
        targets = sorted((q * total * (1 - 1e-12), i) for i, q in enumerate(qs))
        ordered = sorted(self.counts.items())
        found: list[float | None] = [value_of(ordered[-1][0])] * len(qs)
        running, next_target = 0.0, 0
        for index, count in ordered:
            running += count
            while next_target < len(targets) and running >= targets[next_target][0]:
                found[targets[next_target][1]] = value_of(index)
                next_target += 1
            if next_target == len(targets):
                break
        return tuple(found)

    def to_json(self) -> list[float]:
        """``[bin, count, bin, count, ...]`` by bin; a count is whole, or rounded to 1/1000 when weighted."""
        flat: list[float] = []
        for index, count in sorted(self.counts.items()):
            rounded = round(count, 3)
            flat += [index, int(rounded) if rounded == int(rounded) else rounded]
        return flat

    @classmethod
    def from_json(cls, flat: Sequence[object]) -> LatencyHistogram:
        """The inverse of :meth:`to_json`; ValueError when ``flat`` is not one."""
        if len(flat) % 2:
            raise ValueError("a histogram is [bin, count, ...] pairs")
        counts: dict[int, float] = {}
        for index, count in zip(flat[::2], flat[1::2], strict=True):
            if not (isinstance(index, int) and not isinstance(index, bool) and 0 <= index < BINS):
                raise ValueError(f"{index!r} is not a bin")
            if not (isinstance(count, int | float) and not isinstance(count, bool) and count >= 0):
                raise ValueError(f"{count!r} is not a count")
            counts[index] = counts.get(index, 0.0) + float(count)
        return cls(counts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LatencyHistogram) and self.counts == other.counts

    def __repr__(self) -> str:
        return f"LatencyHistogram({self.counts!r})"

    __hash__ = None  # type: ignore[assignment]  # mutable
